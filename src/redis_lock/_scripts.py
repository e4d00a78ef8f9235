"""The Lua scripts: loaded once at import, run with EVALSHA.

Each script is immutable module data (name, source, SHA1) read from
``redis_lock/lua/<name>.lua`` with :mod:`importlib.resources`; nothing here
belongs to a client, so there is no cache for a first instance to fill (4.x's
``Lock.register_scripts`` filled class attributes, which broke subclasses).
Importing this module performs no network I/O.

:func:`evalsha` is the one place the sync flavour runs a script, and
:func:`evalsha_async` its asyncio twin: EVALSHA, and on NOSCRIPT (a restarted
server, SCRIPT FLUSH, a failover to a replica that never saw the script) SCRIPT
LOAD and one retry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Final, final

from ._core import is_async_cluster, is_sync_cluster

if TYPE_CHECKING:
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
