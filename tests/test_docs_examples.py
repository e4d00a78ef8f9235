"""Every Python example in the documentation runs against the harness's real Redis.

What runs: each ``.. code-block:: python`` block (also ``.. code:: python`` and
``.. sourcecode:: python``; ``py`` and ``python3`` count too) in ``docs/*.rst``
and ``README.rst``. Each block is one test, named ``<file>:<line>``, and a
traceback points at the line in the ``.rst`` file. Plain ``::`` literal blocks
are never run: they hold diagrams, shell sessions and output.

How it runs: every block on its own, in a fresh namespace (an example must not
depend on an earlier one), against a freshly flushed test database, with:

* ``conn``: a ``redis.Redis`` client (``decode_responses=False``) to the test server;
* ``redis_lock``: the package, imported;
* the ``REDIS_URL`` environment variable set to the test server's URL, so an
  example can connect the way applications do:
  ``redis.Redis.from_url(os.environ["REDIS_URL"])``;
* for a block that mentions ``django``: Django set up with the test project
  ``tests/django_project`` (whose ``default`` cache is a
  ``redis_lock.django_cache.RedisCache`` on the test server), as
  ``test_django_cache.py`` does, so ``django.core.cache.cache`` works.

Top-level ``await`` is allowed: such a block runs in a new event loop. Clients
the example leaves in its namespace are closed afterwards. An example must
release what it acquires: a renewal thread still running after it fails it.
Logger levels an example sets are restored afterwards.

Skipping: a reST comment line ``.. skip: next`` before a block (it applies to
the next Python block of the file) keeps that block from running; it is still
compiled, so it must be valid Python. Use it sparingly, for examples that need
something the harness has not got (a Sentinel, a cluster, a Django project).

Safety: a block that constructs a client without arguments (``Redis()``,
``StrictRedis()``, ``Valkey()``) would talk to localhost:6379, a server the tests
must never touch, so such a block fails without running.

Keep examples short and fast: no sleep longer than about 0.2 s.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import re
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import valkey
import valkey.asyncio

import redis_lock

from .conftest import MakeClient
from .django_project import setup_django

ROOT = Path(__file__).resolve().parent.parent

_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\.[ \t]+(?:code-block|code|sourcecode)::[ \t]*(?P<lang>\S*)[ \t]*$"
)
_SKIP = re.compile(r"^[ \t]*\.\.[ \t]+skip:[ \t]*next[ \t]*$")
_PYTHON = frozenset({"python", "python3", "py"})
# A client built with no arguments connects to localhost:6379.
_DEFAULT_CLIENT = re.compile(r"\b(?:Redis|StrictRedis|Valkey)\(\s*\)")
_RENEWAL_THREAD_PREFIX = "redis_lock.refresh"


@dataclass(frozen=True)
class Example:
    """One Python code block: where it is, its source (dedented), and whether to run it."""

    path: str
    line: int
    source: str
    skip: bool

    def compile(self) -> Any:
        """Compile with the block's ``.rst`` line numbers; top-level ``await`` allowed."""
        padded = "\n" * (self.line - 1) + self.source
        return compile(padded, str(ROOT / self.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def extract(text: str, path: str) -> list[Example]:
    """The Python code blocks of one reST document, in order."""
    lines = text.splitlines()
    examples: list[Example] = []
    skip_next = False
    i = 0
    while i < len(lines):
        if _SKIP.match(lines[i]):
            skip_next = True
            i += 1
            continue
        match = _DIRECTIVE.match(lines[i])
        if match is None:
            i += 1
            continue
        base = len(match["indent"])
        i += 1
        # Directive options (":caption: ...") come first, indented, before a blank line.
        while i < len(lines) and lines[i].strip().startswith(":") and _indent(lines[i]) > base:
            i += 1
        start = i
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            i += 1
        body = lines[start:i]
        while body and not body[-1].strip():
            body.pop()
        first = next((n for n, line in enumerate(body) if line.strip()), None)
        if match["lang"] not in _PYTHON or first is None:
            continue
        source = textwrap.dedent("\n".join(body[first:])) + "\n"
        examples.append(Example(path=path, line=start + first + 1, source=source, skip=skip_next))
        skip_next = False
    return examples


def _documents() -> list[Path]:
    docs = sorted((ROOT / "docs").glob("*.rst"))
    readme = ROOT / "README.rst"
    return [*docs, readme] if readme.exists() else docs


def _all_examples() -> list[Example]:
    found: list[Example] = []
    for document in _documents():
        found.extend(extract(document.read_text(encoding="utf-8"), str(document.relative_to(ROOT))))
    return found


EXAMPLES = _all_examples()


def _renewal_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(_RENEWAL_THREAD_PREFIX)}


async def _run_async(code: Any, namespace: dict[str, Any]) -> None:
    try:
        await eval(code, namespace)
    finally:
        for value in list(namespace.values()):
            if isinstance(value, redis.asyncio.Redis | valkey.asyncio.Valkey):
                await value.aclose()


def _logger_levels() -> dict[str, int]:
    """The levels of the root logger and of every ``redis_lock`` logger, which examples may change."""
    names = [name for name in logging.root.manager.loggerDict if name.startswith("redis_lock")]
    return {name: logging.getLogger(name).level for name in ["", *names]}


def _close_clients(namespace: dict[str, Any]) -> None:
    for value in list(namespace.values()):
        if isinstance(value, redis.Redis | valkey.Valkey):
            value.close()


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.path}:{e.line}" for e in EXAMPLES])
def test_example(
    example: Example,
    make_client: MakeClient,
    plain: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example compiles, and unless marked ``.. skip: next`` runs without error and leaks no renewal thread."""
    code = example.compile()
    if example.skip:
        return
    assert not _DEFAULT_CLIENT.search(example.source), (
        f"{example.path}:{example.line} builds a client without arguments (localhost:6379); "
        'use redis.Redis.from_url(os.environ["REDIS_URL"]) or the prepared `conn`'
    )
    monkeypatch.setenv("REDIS_URL", redis_url)
    if "django" in example.source:
        setup_django(redis_url)
    before = _renewal_threads()
    levels = _logger_levels()
    namespace: dict[str, Any] = {
        "__name__": "__docs_example__",
        "conn": make_client(),
        "redis_lock": redis_lock,
    }
    try:
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(_run_async(code, namespace))
        else:
            exec(code, namespace)
    finally:
        _close_clients(namespace)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    deadline = time.monotonic() + 2.0
    leaked = _renewal_threads() - before
    while leaked and time.monotonic() < deadline:
        next(iter(leaked)).join(timeout=0.05)
        leaked = {t for t in leaked if t.is_alive()}
    assert not leaked, f"{example.path}:{example.line} left a renewal thread running: release the lock"


def test_examples_are_found() -> None:
    """The extractor finds the examples of the main pages, so the run above is not vacuous."""
    per_page: dict[str, int] = {}
    for example in EXAMPLES:
        per_page[example.path] = per_page.get(example.path, 0) + 1
    assert per_page.get("docs/index.rst", 0) >= 1
    assert per_page.get("docs/usage.rst", 0) >= 8
    assert sum(not e.skip for e in EXAMPLES) >= 10


def test_extract_follows_rest_rules() -> None:
    """Only Python code blocks are extracted, options are dropped, and ``.. skip: next`` marks the next one."""
    text = textwrap.dedent(
        """\
        Title
        =====

        .. code-block:: bash

            echo not python

        .. code-block:: python
           :caption: first

           x = 1

           y = x + 1
        back at text level

        ::

            literal = "not run"

        .. skip: next

        .. code:: py

            needs_sentinel()

        - item

          .. sourcecode:: python3

             z = 3
        """
    )
    examples = extract(text, "doc.rst")
    assert [(e.line, e.source, e.skip) for e in examples] == [
        (11, "x = 1\n\ny = x + 1\n", False),
        (24, "needs_sentinel()\n", True),
        (30, "z = 3\n", False),
    ]
    with pytest.raises(ZeroDivisionError) as info:
        exec(Example("doc.rst", 7, "a = 1\n1 / 0\n", False).compile(), {})
    assert info.traceback[-1].lineno + 1 == 8
