"""python-redis-lock 4.0.1, loaded beside redis_lock under the module name ``prl401``.

4.x is also the module ``redis_lock``, so it cannot be installed into the
virtualenv next to this project. ``scripts/test.sh`` and ``scripts/bench.sh``
unpack it beside the virtualenv instead (``ensure_prl401`` in
``scripts/_bootstrap.sh``: ``pip install --target .venv/side/prl401 --no-deps``),
and :func:`prl401` imports that copy's ``redis_lock/__init__.py`` as ``prl401``.
It uses the virtualenv's redis-py. Used by ``tests/test_interop_4x.py`` and by
the benchmarks (``benchmarks/_peers.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

__all__ = ["MODULE_NAME", "PRL401_DIR", "VERSION", "prl401"]

ROOT: Final = Path(__file__).resolve().parent.parent
#: The version the interop tests and the benchmarks are written against.
VERSION: Final = "4.0.1"
#: The name 4.x is imported under (``sys.modules["redis_lock"]`` stays this project).
MODULE_NAME: Final = "prl401"
#: Where ``ensure_prl401`` installs it; ``$PRL401_DIR`` overrides (for both).
PRL401_DIR: Final = Path(os.environ.get("PRL401_DIR") or ROOT / ".venv" / "side" / "prl401")


@functools.cache
def prl401() -> ModuleType:
    """python-redis-lock 4.0.1 from :data:`PRL401_DIR`, imported as the module ``prl401``.

    :raises RuntimeError: it is not installed there (the message says how to install it),
        or the copy there is not 4.0.1.
    """
    init = PRL401_DIR / "redis_lock" / "__init__.py"
    if not init.is_file():
        raise RuntimeError(
            f"python-redis-lock {VERSION} is not installed in {PRL401_DIR}: run `bash scripts/test.sh` "
            f"(or `bash scripts/bench.sh`) once, which installs it, or run "
            f"`.venv/bin/python -m pip install --no-deps --target {PRL401_DIR} python-redis-lock=={VERSION}`"
        )
    spec = importlib.util.spec_from_file_location(MODULE_NAME, init)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    version = getattr(module, "__version__", None)
    if version != VERSION:
        del sys.modules[MODULE_NAME]
        raise RuntimeError(
            f"{PRL401_DIR} holds python-redis-lock {version}, not {VERSION}: delete that directory and "
            f"run `bash scripts/test.sh` again"
        )
    return module
