"""Hand-written clients that are not ``redis.Redis``, for ``strict=False`` tests.

:class:`Delegating` has exactly the commands :class:`redis_lock.typing.RedisClient`
names (so no ``pipeline()``) and forwards each to a real client: Redis stays real.
:class:`AsyncDelegating` does the same for :class:`redis_lock.typing.AsyncRedisClient`.
"""

from __future__ import annotations

from typing import Any

import redis

__all__ = ["AsyncDelegating", "Delegating"]


class Delegating:
    """A hand-written client that is not a redis.Redis: every command goes to a real client."""

    def __init__(self, inner: redis.Redis) -> None:
        self.inner = inner

    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        return self.inner.evalsha(sha, numkeys, *keys_and_args)

    def script_load(self, script: bytes, /) -> object:
        return self.inner.script_load(script)

    def get(self, name: str, /) -> object:
        return self.inner.get(name)

    def exists(self, *names: str) -> object:
        return self.inner.exists(*names)

    def blpop(self, keys: list[str], timeout: Any, /) -> object:
        return self.inner.blpop(keys, timeout)

    def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> object:
        return self.inner.scan(cursor=cursor, match=match, count=count)

    def __enter__(self) -> Delegating:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.inner.close()


class AsyncDelegating:
    """A hand-written asyncio client that is not a redis.asyncio.Redis: every command goes to a real one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def execute_command(self, *args: Any) -> object:
        reply: object = await self.inner.execute_command(*args)
        return reply

    async def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        reply: object = await self.inner.evalsha(sha, numkeys, *keys_and_args)
        return reply

    async def script_load(self, script: bytes, /) -> object:
        reply: object = await self.inner.script_load(script)
        return reply

    async def get(self, name: str, /) -> object:
        reply: object = await self.inner.get(name)
        return reply

    async def exists(self, *names: str) -> object:
        reply: object = await self.inner.exists(*names)
        return reply

    async def blpop(self, keys: list[str], timeout: Any, /) -> object:
        reply: object = await self.inner.blpop(keys, timeout)
        return reply

    async def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> object:
        reply: object = await self.inner.scan(cursor=cursor, match=match, count=count)
        return reply

    async def __aenter__(self) -> AsyncDelegating:
        return self
