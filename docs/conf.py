"""Sphinx configuration of the redis_lock documentation.

Built by ``scripts/test.sh`` with ``sphinx-build -W --keep-going -n``: any
warning, including a cross-reference that does not resolve (``-n``, nitpicky),
fails the build.

Intersphinx without a network
-----------------------------
The build machine has no internet access, so intersphinx must not download
``objects.inv`` from docs.python.org or redis.readthedocs.io: a failed download
is a warning, and ``-W`` would turn it into a failed build. Instead each mapping
points at a small inventory committed next to this file, in the plain-text
"Sphinx inventory version 1" format (``docs/_inventories/*.txt``: one
``name type page`` line per object; Sphinx appends ``#name`` to the page). It
lists only the external objects these docs refer to. A reference to anything
else, in Python's or redis-py's docs or ours, stays unresolved and fails the
build, which is the point of ``-n``. To link to a new external object, add
its line to the inventory.

Set ``REDIS_LOCK_DOCS_ONLINE=1`` to use the projects' real inventories instead
(downloaded at build time); this checks that every line of the local ones still
names a real object.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import redis_lock  # noqa: E402  (needs the sys.path entry above)

project = "redis_lock"
author = "redis_lock developers"
copyright = "redis_lock developers"
release = redis_lock.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]

exclude_patterns = ["_build", "_inventories"]
nitpicky = True
nitpick_ignore: list[tuple[str, str]] = [
    # The client type variable of the base both lock classes share (Lock's is RedisClient,
    # AsyncLock's AsyncRedisClient); each class's docstring names its clients.
    ("py:class", "redis_lock._lockcore.C"),
    # The same, when autodoc shows the signature unevaluated (its hook types are imported for checkers only).
    ("py:class", "C"),
]

# autodoc: members are listed explicitly in api.rst; keep the source order.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# The modules import the client Protocol under ``TYPE_CHECKING`` only (no
# runtime import cycle), so signatures carry the bare string "RedisClient";
# this tells autodoc which object that string names.
autodoc_type_aliases = {
    "RedisClient": "redis_lock.typing.RedisClient",
}

_ONLINE = os.environ.get("REDIS_LOCK_DOCS_ONLINE") == "1"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", None if _ONLINE else "_inventories/python.txt"),
    "redis": ("https://redis.readthedocs.io/en/stable/", None if _ONLINE else "_inventories/redis.txt"),
}
# Never wait on the network when it is used at all.
intersphinx_timeout = 10

html_theme = "furo"
html_title = f"redis_lock {release}"
pygments_style = "sphinx"

# Tables that fit their column on any screen width (see the comment at the top of the file).
html_static_path = ["_static"]
html_css_files = ["custom.css"]
