"""The Lua scripts: loaded once at import, run with EVALSHA.

Each script is immutable module data (name, source, SHA1) read from
``redis_lock/lua/<name>.lua`` with :mod:`importlib.resources`; nothing here
belongs to a client, so there is no cache for a first instance to fill (4.x's
``Lock.register_scripts`` filled class attributes, which broke subclasses).
Importing this module performs no network I/O.

:func:`evalsha` is the one place the sync flavour runs a script, and
:func:`evalsha_async` its asyncio twin: EVALSHA, and on NOSCRIPT (a restarted
server, SCRIPT FLUSH, a failover to a replica that never saw the script) SCRIPT
LOAD and one retry. :func:`evalsha_then_wait` and :func:`evalsha_then_wait_async`
run a script and a ``WAIT`` on one connection, for ``wait_replicas``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Final, final

from ._clients import is_async_cluster, is_sync_cluster

if TYPE_CHECKING:
    from ._clients import AsyncPipeliningClient, PipeliningClient
    from .typing import AsyncRedisClient, RedisClient

__all__ = [
    "ACQUIRE",
    "EXTEND",
    "RESET",
    "RESET_ALL",
    "SCRIPTS",
    "UNLOCK",
    "Script",
    "evalsha",
    "evalsha_async",
    "evalsha_then_wait",
    "evalsha_then_wait_async",
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

#: Every script, by name; the registry both flavours use.
SCRIPTS: Final[dict[str, Script]] = {s.name: s for s in (ACQUIRE, UNLOCK, EXTEND, RESET, RESET_ALL)}


def is_noscript_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` is the client's NOSCRIPT error.

    redis-py and valkey-py each define their own ``NoScriptError`` class; matching
    the class name covers both (and forks) without importing the optional one.
    """
    return type(exc).__name__ == "NoScriptError"


def evalsha(client: RedisClient, script: Script, keys: tuple[str, ...], args: tuple[str, ...]) -> object:
    """Run ``script`` on ``client``; load it and retry once if the server lacks it."""
    try:
        return client.evalsha(script.sha1, len(keys), *keys, *args)
    except Exception as exc:
        if not is_noscript_error(exc):
            raise
    if is_sync_cluster(client):
        return client.eval(script.source.decode(), len(keys), *keys, *args)
    client.script_load(script.source)
    return client.evalsha(script.sha1, len(keys), *keys, *args)


async def evalsha_async(
    client: AsyncRedisClient, script: Script, keys: tuple[str, ...], args: tuple[str, ...]
) -> object:
    """Run ``script`` on an asyncio ``client``; load it and retry once if the server lacks it."""
    try:
        return await client.evalsha(script.sha1, len(keys), *keys, *args)
    except Exception as exc:
        if not is_noscript_error(exc):
            raise
    if is_async_cluster(client):
        return await client.eval(script.source.decode(), len(keys), *keys, *args)
    await client.script_load(script.source)
    return await client.evalsha(script.sha1, len(keys), *keys, *args)


def _send_then_wait(
    client: PipeliningClient,
    script: Script,
    keys: tuple[str, ...],
    args: tuple[str, ...],
    wait: tuple[int, int],
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("EVALSHA", script.sha1, len(keys), *keys, *args)
    pipe.execute_command("WAIT", *wait)
    return pipe.execute(raise_on_error=False)


def evalsha_then_wait(
    client: PipeliningClient,
    script: Script,
    keys: tuple[str, ...],
    args: tuple[str, ...],
    *,
    replicas: int,
    timeout_ms: int,
) -> tuple[object, object]:
    """Run ``script``, then ``WAIT replicas timeout_ms``, on one connection, in one round trip.

    WAIT counts only the writes made on its own connection, so the two go in one
    non-transactional pipeline, which holds a single connection for both.

    :returns: the script's reply, and WAIT's: the number of replicas that
        acknowledged, or the error WAIT replied with (as an exception object).
        When the script did not write (the lock was busy), WAIT's reply is
        meaningless; WAIT may then still wait, for earlier writes of that
        connection, up to ``timeout_ms``.
    :raises: the script's error, after one SCRIPT LOAD and retry on NOSCRIPT.
    """
    reply, acknowledged = _send_then_wait(client, script, keys, args, (replicas, timeout_ms))
    if is_noscript_error(reply):
        client.script_load(script.source)
        reply, acknowledged = _send_then_wait(client, script, keys, args, (replicas, timeout_ms))
    if isinstance(reply, BaseException):
        raise reply
    return reply, acknowledged


async def _send_then_wait_async(
    client: AsyncPipeliningClient,
    script: Script,
    keys: tuple[str, ...],
    args: tuple[str, ...],
    wait: tuple[int, int],
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("EVALSHA", script.sha1, len(keys), *keys, *args)
    pipe.execute_command("WAIT", *wait)
    return await pipe.execute(raise_on_error=False)


async def evalsha_then_wait_async(
    client: AsyncPipeliningClient,
    script: Script,
    keys: tuple[str, ...],
    args: tuple[str, ...],
    *,
    replicas: int,
    timeout_ms: int,
) -> tuple[object, object]:
    """The asyncio twin of :func:`evalsha_then_wait`."""
    reply, acknowledged = await _send_then_wait_async(client, script, keys, args, (replicas, timeout_ms))
    if is_noscript_error(reply):
        await client.script_load(script.source)
        reply, acknowledged = await _send_then_wait_async(client, script, keys, args, (replicas, timeout_ms))
    if isinstance(reply, BaseException):
        raise reply
    return reply, acknowledged
