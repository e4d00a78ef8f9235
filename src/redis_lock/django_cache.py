"""A django-redis cache backend with distributed locks (``pip install "python-redis-lock[django]"``).

Use ``redis_lock.django_cache.RedisCache`` as the ``BACKEND`` of a django-redis
cache: it is django-redis's ``RedisCache`` plus :meth:`~RedisCache.lock`,
:meth:`~RedisCache.locked_get_or_set` and :meth:`~RedisCache.reset_all`
(see :doc:`/django`). The import path and the lock keys are those of 4.x.
"""

from __future__ import annotations

try:
    # django-redis ships no types (mypy.ini lets them be Any likewise).
    from django_redis.cache import RedisCache as PlainRedisCache  # pyright: ignore[reportMissingTypeStubs]
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without django-redis
    raise ImportError(
        f'redis_lock.django_cache needs Django and django-redis ({exc}): pip install "python-redis-lock[django]"',
        name=exc.name,
        path=exc.path,
    ) from exc

from ._django import CacheLockMixin

__all__ = ["RedisCache"]


# Our lock replaces django-redis's lock(*args, **kwargs) on purpose, with 4.x's signature.
class RedisCache(CacheLockMixin, PlainRedisCache):  # pyright: ignore[reportIncompatibleVariableOverride]
    """django-redis's cache backend with :meth:`lock`, :meth:`locked_get_or_set` and :meth:`reset_all`.

    Its ``lock`` replaces django-redis's own ``lock`` (a redis-py lock), as in 4.x.
    The ``CLIENT_CLASS`` must give a raw client (``django_redis.client.DefaultClient``,
    ``HerdClient`` or ``SentinelClient``).
    """
