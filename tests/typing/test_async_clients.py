"""Checker-only: which clients mypy and pyright accept as a :class:`redis_lock.typing.AsyncRedisClient`.

Nothing here runs against Redis: ``_assignments`` is never called, the checkers read it.
Each accepted client is a plain assignment; each rejected one carries
``# type: ignore[assignment]``, and mypy's ``warn_unused_ignores`` (on through ``strict``)
and pyright's ``reportUnnecessaryTypeIgnoreComment`` (pyproject.toml) fail the check if
that ignore ever stops being needed, i.e. if the client stops being rejected.
"""

# The functions below are never called: the checkers read them.
# pyright: reportUnusedFunction=false

from __future__ import annotations

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import valkey
import valkey.asyncio
import valkey.asyncio.cluster

import redis_lock
from redis_lock.typing import AsyncRedisClient


def _assignments() -> None:
    # Accepted: the asyncio clients, with either decode_responses setting.
    redis_bytes: AsyncRedisClient = redis.asyncio.Redis()
    redis_str: AsyncRedisClient = redis.asyncio.Redis(decode_responses=True)
    valkey_bytes: AsyncRedisClient = valkey.asyncio.Valkey()
    valkey_str: AsyncRedisClient = valkey.asyncio.Valkey(decode_responses=True)

    # Rejected: the synchronous clients (no __aenter__).
    redis_sync: AsyncRedisClient = redis.Redis()  # type: ignore[assignment]
    redis_sync_str: AsyncRedisClient = redis.Redis(decode_responses=True)  # type: ignore[assignment]
    valkey_sync: AsyncRedisClient = valkey.Valkey()  # type: ignore[assignment]
    valkey_sync_str: AsyncRedisClient = valkey.Valkey(decode_responses=True)  # type: ignore[assignment]

    del redis_bytes, redis_str, valkey_bytes, valkey_str
    del redis_sync, redis_sync_str, valkey_sync, valkey_sync_str


def _constructors() -> None:
    # The lock classes take their own flavour's client with no cast, and reject the other.
    redis_lock.AsyncLock(redis.asyncio.Redis(), "name")
    redis_lock.AsyncLock(valkey.asyncio.Valkey(decode_responses=True), "name")
    redis_lock.Lock(redis.Redis(), "name")
    redis_lock.AsyncLock(redis.Redis(), "name")  # type: ignore[arg-type]
    redis_lock.Lock(redis.asyncio.Redis(), "name")  # type: ignore[arg-type]
    redis_lock.async_reset_all(valkey.Valkey())  # type: ignore[arg-type,unused-coroutine]


def _cluster_clients(
    redis_cluster: redis.asyncio.cluster.RedisCluster,
    valkey_cluster: valkey.asyncio.cluster.ValkeyCluster,
    redis_sync_cluster: redis.cluster.RedisCluster,
) -> None:
    # Cluster clients type-check as clients of their own flavour, with no cast.
    async_client: AsyncRedisClient = redis_cluster
    valkey_client: AsyncRedisClient = valkey_cluster
    sync_rejected: AsyncRedisClient = redis_sync_cluster  # type: ignore[assignment]
    redis_lock.AsyncLock(redis_cluster, "name")
    redis_lock.AsyncLock(valkey_cluster, "name")
    del async_client, valkey_client, sync_rejected
