"""The Lua scripts: loaded once at import, run with EVALSHA.

Each script is immutable module data (name, source, SHA1) read from
``redis_lock/lua/<name>.lua`` with :mod:`importlib.resources`; nothing here
belongs to a client, so there is no cache for a first instance to fill (4.x's
``Lock.register_scripts`` filled class attributes, which broke subclasses).
Importing this module performs no network I/O.

:func:`run` is the one place a script is run, as engine steps (``_engine``)
that either flavour drives: EVALSHA, and on NOSCRIPT (a restarted server,
SCRIPT FLUSH, a failover to a replica that never saw the script) SCRIPT LOAD and
one retry. :func:`run_then_wait` runs a script and a ``WAIT`` on one
connection, for ``wait_replicas``; :func:`run_pipelined` many copies of one
script in a pipeline, for renewal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Final, final

from ._clients import is_cluster_client
from ._engine import Call, Pipeline, PipelineRefused, Steps, drive

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ACQUIRE",
    "EXTEND",
    "FAIR",
    "FENCED_SET",
    "RESET",
    "RESET_ALL",
    "SCRIPTS",
    "SEMAPHORE_ACQUIRE",
    "SEMAPHORE_EXTEND",
    "SEMAPHORE_QUERY",
    "SEMAPHORE_RELEASE",
    "SEMAPHORE_RESET",
    "SEMAPHORE_RESET_ALL",
    "SEMAPHORE_SCRIPTS",
    "SEMAPHORE_SET_LIMIT",
    "UNLOCK",
    "WAKE",
    "Script",
    "evalsha",
    "is_noscript_error",
    "run",
    "run_pipelined",
    "run_then_wait",
]


@final
@dataclass(frozen=True, slots=True)
class Script:
    """One Lua script: its file name (without ``.lua``), source bytes and SHA1 hex digest."""

    name: str
    source: bytes
    sha1: str


def _load(name: str) -> Script:
    source = files("redis_lock").joinpath(f"lua/{name}.lua").read_bytes()
    return Script(name=name, source=source, sha1=hashlib.sha1(source).hexdigest())


ACQUIRE: Final = _load("acquire")
UNLOCK: Final = _load("unlock")
EXTEND: Final = _load("extend")
RESET: Final = _load("reset")
RESET_ALL: Final = _load("reset_all")
#: The resource side of fencing (``redis_lock.fencing``): a write checked against the last accepted token.
FENCED_SET: Final = _load("fenced_set")
#: The waiters' hub (``_waiting``): give a signal back, or nudge a hub's BLPOP.
WAKE: Final = _load("wake")
#: Fair mode (``Lock(fair=True)``): queue, take, give up, cancel and release with a direct hand-off.
FAIR: Final = _load("fair")

#: Every script, by name; the registry both flavours use.
SCRIPTS: Final[dict[str, Script]] = {
    s.name: s for s in (ACQUIRE, UNLOCK, EXTEND, RESET, RESET_ALL, FENCED_SET, WAKE, FAIR)
}

#: The semaphore's scripts (``_semcore``): its permits are leases in one sorted set.
SEMAPHORE_ACQUIRE: Final = _load("semaphore_acquire")
SEMAPHORE_RELEASE: Final = _load("semaphore_release")
SEMAPHORE_EXTEND: Final = _load("semaphore_extend")
SEMAPHORE_QUERY: Final = _load("semaphore_query")
SEMAPHORE_RESET: Final = _load("semaphore_reset")
SEMAPHORE_RESET_ALL: Final = _load("semaphore_reset_all")
SEMAPHORE_SET_LIMIT: Final = _load("semaphore_set_limit")
SEMAPHORE_SCRIPTS: Final = (
    SEMAPHORE_ACQUIRE,
    SEMAPHORE_RELEASE,
    SEMAPHORE_EXTEND,
    SEMAPHORE_QUERY,
    SEMAPHORE_RESET,
    SEMAPHORE_RESET_ALL,
    SEMAPHORE_SET_LIMIT,
)
SCRIPTS.update({s.name: s for s in SEMAPHORE_SCRIPTS})


def is_noscript_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` is the client's NOSCRIPT error.

    redis-py and valkey-py each define their own ``NoScriptError`` class; matching
    the class name covers both (and forks) without importing the optional one.
    """
    return type(exc).__name__ == "NoScriptError"


def run(
    script: Script, keys: tuple[str, ...], args: tuple[str | bytes, ...], *, cluster: bool
) -> Steps[object]:
    """Steps that run ``script``; on NOSCRIPT, load it and run it once more. The one NOSCRIPT recovery.

    ``args`` may hold bytes (a fenced write's value), which the client sends unchanged.

    On a cluster client the script is sent with EVAL instead, which runs and
    caches it on the one node that serves the keys: SCRIPT LOAD would go to every
    primary, and fail while any of them is down.
    """
    try:
        return (yield Call("evalsha", (script.sha1, len(keys), *keys, *args)))
    except Exception as exc:
        if not is_noscript_error(exc):
            raise
    if cluster:
        return (yield Call("eval", (script.source.decode(), len(keys), *keys, *args)))
    yield Call("script_load", (script.source,))
    return (yield Call("evalsha", (script.sha1, len(keys), *keys, *args)))


def evalsha(client: Any, script: Script, keys: tuple[str, ...], args: tuple[str, ...]) -> object:
    """Run ``script`` on a synchronous ``client`` (for tests and tools): :func:`run`, driven."""
    return drive(client, run(script, keys, args, cluster=is_cluster_client(client)))


def run_then_wait(
    script: Script, keys: tuple[str, ...], args: tuple[str, ...], *, replicas: int, timeout_ms: int
) -> Steps[tuple[object, object]]:
    """Steps that run ``script``, then ``WAIT replicas timeout_ms``, on one connection, in one round trip.

    WAIT counts only the writes made on its own connection, so the two go in one
    non-transactional pipeline, which holds a single connection for both.

    :returns: the script's reply, and WAIT's: the number of replicas that
        acknowledged, or the error WAIT replied with (as an exception object).
        When the script did not write (the lock was busy), WAIT's reply is
        meaningless; WAIT may then still wait, for earlier writes of that
        connection, up to ``timeout_ms``.
    :raises: the script's error, after one SCRIPT LOAD and retry on NOSCRIPT.
    """
    commands = (("EVALSHA", script.sha1, len(keys), *keys, *args), ("WAIT", replicas, timeout_ms))
    reply, acknowledged = yield Pipeline(commands)
    if is_noscript_error(reply):
        yield Call("script_load", (script.source,))
        reply, acknowledged = yield Pipeline(commands)
    if isinstance(reply, BaseException):
        raise reply
    return reply, acknowledged


def run_pipelined(
    script: Script, argsets: Sequence[tuple[str, ...]], numkeys: int
) -> Steps[list[object] | None]:
    """Steps that run ``script`` once per ``argsets`` entry (KEYS then ARGV) in one pipeline.

    Copies the server lacked the script for (NOSCRIPT) are sent again, once,
    after a SCRIPT LOAD; an error of the load becomes their reply.

    :returns: one reply (or error, as an exception object) per entry, or None if
        the client refused to build the pipeline before any I/O.
    """
    try:
        replies = list((yield Pipeline(tuple(("EVALSHA", script.sha1, numkeys, *a) for a in argsets))))
    except PipelineRefused:
        return None
    if len(replies) != len(argsets):
        return replies
    again = [i for i, reply in enumerate(replies) if is_noscript_error(reply)]
    if not again:
        return replies
    try:
        yield Call("script_load", (script.source,))
        retried = yield Pipeline(tuple(("EVALSHA", script.sha1, numkeys, *argsets[i]) for i in again))
    except Exception as exc:
        retried = [exc] * len(again)
    for i, reply in zip(again, retried, strict=False):
        replies[i] = reply
    return replies
