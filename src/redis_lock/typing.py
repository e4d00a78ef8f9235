"""Client types that :mod:`redis_lock` accepts, for annotating your own code.

:class:`RedisClient` names only the commands :class:`redis_lock.Lock` sends, and
:class:`AsyncRedisClient` those :class:`redis_lock.AsyncLock` awaits.
``redis.Redis`` and ``valkey.Valkey`` satisfy the first, ``redis.asyncio.Redis``
and ``valkey.asyncio.Valkey`` the second, as they are, with either
``decode_responses`` setting, and so does any object with these methods.

Two choices are deliberate:

* Replies are typed :class:`object`, not the precise reply types, because
  valkey-py annotates every command as ``Awaitable[Any] | Any`` (one annotation
  for its sync and asyncio clients). :mod:`redis_lock` checks each reply at run
  time instead, in ``_core``.
* An object reply type alone would also admit an asyncio client, whose commands
  return awaitables. ``__enter__`` is what tells them apart: a synchronous client
  is a context manager (``with Redis() as r:``), while the asyncio clients of
  redis-py and valkey-py are only async context managers. (``close`` cannot serve:
  redis-py 8 wraps the asyncio ``close`` in an untyped deprecation decorator, which
  makes it ``Any``.) ``tests/typing/`` checks both directions.
* :class:`AsyncRedisClient` declares its commands ``def x(...) -> Awaitable[object]``,
  not ``async def``: the asyncio clients' commands are plain methods that return an
  awaitable, which mypy rejects against an ``async def`` Protocol member. The
  discriminator mirrors ``__enter__``: ``__aenter__``, which the asyncio clients of
  redis-py and valkey-py have and a synchronous client has not. (``aclose`` would
  also do.) ``evalsha`` and ``blpop`` return ``Awaitable[object] | Any``, because
  valkey-py's annotations for them include the synchronous reply type.

.. versionadded:: 5.0
"""

from __future__ import annotations

# At run time too, so typing.get_type_hints() and Sphinx resolve the Protocols.
from collections.abc import Awaitable  # noqa: TC003
from typing import Any, Protocol, TypeAlias

__all__ = ["AsyncRedisClient", "KeyT", "RedisClient"]

#: The key type :mod:`redis_lock` passes to the client: lock names are ``str``.
KeyT: TypeAlias = str


class RedisClient(Protocol):
    """A synchronous Redis client: ``redis.Redis``, ``valkey.Valkey`` or an equivalent.

    .. versionadded:: 5.0
    """

    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object: ...

    def script_load(self, script: bytes, /) -> object: ...

    def get(self, name: KeyT, /) -> object: ...

    def exists(self, *names: KeyT) -> object: ...

    # ``timeout`` is fractional seconds (Redis >= 6.0 accepts them). It is typed
    # Any because valkey-py annotates it ``Optional[int]`` although it forwards
    # any number unchanged; a float-typed parameter would reject valkey.Valkey.
    def blpop(self, keys: list[KeyT], timeout: Any, /) -> object: ...

    def scan(self, cursor: int = 0, match: KeyT | None = None, count: int | None = None) -> object: ...

    def __enter__(self) -> Any: ...


class AsyncRedisClient(Protocol):
    """An asyncio Redis client: ``redis.asyncio.Redis``, ``valkey.asyncio.Valkey`` or an equivalent.

    .. versionadded:: 5.0
    """

    # evalsha and blpop also admit Any: valkey-py annotates them ``Awaitable[str] | str``
    # and ``Awaitable[list] | list`` (one annotation for both of its clients), which a
    # plain ``Awaitable[object]`` would reject. Synchronous clients are still kept
    # out, by ``__aenter__``.
    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> Awaitable[object] | Any: ...

    def script_load(self, script: bytes, /) -> Awaitable[object]: ...

    def get(self, name: KeyT, /) -> Awaitable[object]: ...

    def exists(self, *names: KeyT) -> Awaitable[object]: ...

    # ``timeout`` is typed Any for the reason given on RedisClient.blpop.
    def blpop(self, keys: list[KeyT], timeout: Any, /) -> Awaitable[object] | Any: ...

    def scan(
        self, cursor: int = 0, match: KeyT | None = None, count: int | None = None
    ) -> Awaitable[object]: ...

    def __aenter__(self) -> Awaitable[Any]: ...
