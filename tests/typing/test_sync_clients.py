"""Checker-only: which clients mypy and pyright accept as a :class:`redis_lock.typing.RedisClient`.

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
import valkey.cluster

import redis_lock
from redis_lock.typing import RedisClient


def _assignments() -> None:
    # Accepted: the synchronous clients, with either decode_responses setting.
    redis_bytes: RedisClient = redis.Redis()
    redis_str: RedisClient = redis.Redis(decode_responses=True)
    valkey_bytes: RedisClient = valkey.Valkey()
    valkey_str: RedisClient = valkey.Valkey(decode_responses=True)

    # Rejected: the asyncio clients (their commands return awaitables).
    redis_async: RedisClient = redis.asyncio.Redis()  # type: ignore[assignment]
    redis_async_str: RedisClient = redis.asyncio.Redis(decode_responses=True)  # type: ignore[assignment]
    valkey_async: RedisClient = valkey.asyncio.Valkey()  # type: ignore[assignment]
    valkey_async_str: RedisClient = valkey.asyncio.Valkey(decode_responses=True)  # type: ignore[assignment]

    del redis_bytes, redis_str, valkey_bytes, valkey_str
    del redis_async, redis_async_str, valkey_async, valkey_async_str


def _cluster_clients(
    redis_cluster: redis.cluster.RedisCluster,
    valkey_cluster: valkey.cluster.ValkeyCluster,
    redis_async_cluster: redis.asyncio.cluster.RedisCluster,
) -> None:
    # Cluster clients type-check as clients of their own flavour, with no cast.
    sync_client: RedisClient = redis_cluster
    valkey_client: RedisClient = valkey_cluster
    async_rejected: RedisClient = redis_async_cluster  # type: ignore[assignment]
    redis_lock.Lock(redis_cluster, "name")
    redis_lock.Lock(valkey_cluster, "name")
    redis_lock.reset_all(redis_cluster)
    del sync_client, valkey_client, async_rejected
