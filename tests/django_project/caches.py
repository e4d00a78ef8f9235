"""Typed access to the test project's caches (importable before Django is set up)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from redis_lock.django_cache import RedisCache
    from redis_lock.django_valkey_cache import ValkeyCache

#: A cache backend with the lock methods.
LockingCache: TypeAlias = "RedisCache | ValkeyCache"


def locking_cache(alias: str) -> LockingCache:
    """This thread's cache ``alias``, which must be one of our backends; Django must be set up."""
    from django.core.cache import caches

    from redis_lock.django_cache import RedisCache
    from redis_lock.django_valkey_cache import ValkeyCache

    cache = caches[alias]
    assert isinstance(cache, (RedisCache, ValkeyCache)), type(cache)
    return cache
