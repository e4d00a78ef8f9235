"""The Django cache methods shared by the django-redis and django-valkey backends.

:class:`CacheLockMixin` holds the one copy of ``lock``, ``locked_get_or_set`` and
``reset_all``; ``django_cache`` and ``django_valkey_cache`` mix it into their
package's cache backend. The mixin imports neither package, so it can be imported
with only Django installed, and it needs three things of the class it is mixed
into (the :class:`CacheBackend` Protocol): a ``client`` whose ``get_client()``
returns the raw redis-py or valkey-py client, and the cache's ``get`` and ``set``.

Lock keys are the lock's name as given: like python-redis-lock 4.x, they do not go
through the cache's key function, so ``KEY_PREFIX`` and ``VERSION`` leave them
alone and a 4.x process and this one share ``lock:<name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from . import _core
from ._sync import Lock, reset_all

if TYPE_CHECKING:
    from collections.abc import Callable

    from .hooks import LockObserver
    from .typing import RedisClient

__all__ = ["GET_OR_SET_DEFAULT_EXPIRE", "GET_OR_SET_LOCK_PREFIX", "CacheBackend", "CacheLockMixin"]

#: What ``locked_get_or_set`` puts before the cache key to name its lock (4.x value).
GET_OR_SET_LOCK_PREFIX: Final = "get_or_set:"
#: The lifetime, in seconds, of ``locked_get_or_set``'s lock when no ``expire`` is
#: given: auto-renewed while the value is computed, so it never expires under a
#: live worker, and a worker killed mid-computation frees the key within this time.
GET_OR_SET_DEFAULT_EXPIRE: Final = 60.0

T = TypeVar("T")


class RawClientFactory(Protocol):
    """The part of a django-redis or django-valkey client object the mixin uses."""

    def get_client(self) -> RedisClient: ...


class CacheBackend(Protocol):
    """What :class:`CacheLockMixin` needs of the cache backend it is mixed into."""

    @property
    def client(self) -> RawClientFactory: ...

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: Any = ..., version: int | None = None) -> Any: ...

    def lock(
        self,
        key: str,
        expire: float | None = None,
        id: str | bytes | None = None,
        auto_renewal: bool = False,
        strict: bool = True,
        signal_expire: int = ...,
        blocking: bool = True,
        timeout: float | None = None,
        wait_replicas: int = 0,
        wait_replicas_timeout: float = 1.0,
        fencing: bool = False,
        fencing_expire: float | None = ...,
        renewal_interval: float | None = None,
        max_hold: float | None = None,
        on_lost: Callable[[Lock], object] | None = None,
        observer: LockObserver | None = None,
        fair: bool = False,
        queue_lease: float | None = None,
    ) -> Lock: ...


def raw_client(cache: CacheBackend) -> RedisClient:
    """The cache's raw client, or NotImplementedError naming a client class that has one (as 4.x)."""
    try:
        return cache.client.get_client()
    except Exception as exc:
        backend = type(cache)
        default_client = getattr(backend, "DEFAULT_CLIENT_CLASS", "django_redis.client.DefaultClient")
        raise NotImplementedError(
            f"{backend.__name__} doesn't have a raw client: {exc!r}. "
            f"Use {default_client!r} as the CLIENT_CLASS!"
        ) from exc


class CacheLockMixin:
    """Lock methods for a Django cache backend on Redis or Valkey.

    Mixed into :class:`redis_lock.django_cache.RedisCache` and
    :class:`redis_lock.django_valkey_cache.ValkeyCache`; see :doc:`/django`.
    """

    # Adds no instance state: the backends it is mixed into keep their own layout.
    __slots__ = ()

    def lock(
        self: CacheBackend,
        key: str,
        expire: float | None = None,
        id: str | bytes | None = None,
        auto_renewal: bool = False,
        strict: bool = True,
        signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS,
        blocking: bool = True,
        timeout: float | None = None,
        wait_replicas: int = 0,
        wait_replicas_timeout: float = 1.0,
        fencing: bool = False,
        fencing_expire: float | None = _core.DEFAULT_FENCING_EXPIRE,
        renewal_interval: float | None = None,
        max_hold: float | None = None,
        on_lost: Callable[[Lock], object] | None = None,
        observer: LockObserver | None = None,
        fair: bool = False,
        queue_lease: float | None = None,
    ) -> Lock:
        """A :class:`redis_lock.Lock` named ``key`` on this cache's server.

        The name is used as given, not passed through the cache's key function:
        the keys are ``lock:<key>`` and ``lock-signal:<key>`` whatever ``KEY_PREFIX``
        and ``VERSION`` say, as in 4.x, so 4.x processes share these locks. Every
        argument after ``key`` is passed to :class:`~redis_lock.Lock` unchanged.

        :param key: the lock's name.
        :param expire: the lock's lifetime in seconds (``None``: never expires).
        :param id: the value stored in the lock key; random by default.
        :param auto_renewal: renew the lock while it is held (needs ``expire``).
        :param strict: require the raw client to be a redis-py or valkey-py client.
        :param signal_expire: lifetime of the wake-up signal, in milliseconds.
        :param blocking: whether ``with cache.lock(...)`` waits for the lock.
        :param timeout: how long ``with cache.lock(...)`` waits, in seconds (``None``: forever).
            This is not django-redis's ``lock(timeout=)``, which is the lock's lifetime.
        :param wait_replicas: replicas that must acknowledge the lock (see :class:`~redis_lock.Lock`).
        :param wait_replicas_timeout: how long to wait for them, in seconds.
        :param fencing: mint a fencing token with every grant (see :doc:`/fencing`).
        :param fencing_expire: how long the name's fencing counter lives after a grant, in seconds.
        :param renewal_interval: with ``auto_renewal``, renew this often (see :class:`~redis_lock.Lock`).
        :param max_hold: with ``auto_renewal``, stop renewing this long after acquiring.
        :param on_lost: called once when auto-renewal loses the lock.
        :param observer: a :class:`~redis_lock.hooks.LockObserver`.
        :param fair: first come, first served (see :doc:`/fair`).
        :param queue_lease: with ``fair``, how long a dead waiter may hold up the queue.
        :raises NotImplementedError: the cache's ``CLIENT_CLASS`` has no raw client
            (django-redis's ``ShardClient``).

        .. versionchanged:: 5.0
           Takes ``strict``, ``signal_expire``, ``blocking``, ``timeout``,
           ``wait_replicas``, ``wait_replicas_timeout``, ``fencing``, ``fencing_expire``,
           ``renewal_interval``, ``max_hold``, ``on_lost``, ``observer``, ``fair`` and ``queue_lease``.
        """
        return Lock(
            raw_client(self),
            key,
            expire=expire,
            id=id,
            auto_renewal=auto_renewal,
            strict=strict,
            signal_expire=signal_expire,
            blocking=blocking,
            timeout=timeout,
            wait_replicas=wait_replicas,
            wait_replicas_timeout=wait_replicas_timeout,
            fencing=fencing,
            fencing_expire=fencing_expire,
            renewal_interval=renewal_interval,
            max_hold=max_hold,
            on_lost=on_lost,
            observer=observer,
            fair=fair,
            queue_lease=queue_lease,
        )

    def locked_get_or_set(
        self: CacheBackend,
        key: str,
        value_creator: Callable[[], T],
        version: int | None = None,
        expire: float | None = None,
        id: str | bytes | None = None,
        lock_key: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        *,
        wait_timeout: float | None = None,
        auto_renewal: bool | None = None,
        strict: bool = True,
        signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS,
        wait_replicas: int = 0,
        wait_replicas_timeout: float = 1.0,
        fencing: bool = False,
        fencing_expire: float | None = _core.DEFAULT_FENCING_EXPIRE,
        renewal_interval: float | None = None,
        max_hold: float | None = None,
        on_lost: Callable[[Lock], object] | None = None,
        observer: LockObserver | None = None,
        fair: bool = False,
        queue_lease: float | None = None,
    ) -> T:
        """Return the cached value of ``key``, computing and caching it once if it is missing.

        If the key is missing, take the lock ``lock_key`` (default
        ``"get_or_set:" + key``), look again, and only if the value is still
        missing call ``value_creator()`` and cache its result. Concurrent callers
        on a cold key wait for the lock and then read the value the first one
        stored, so ``value_creator`` runs once (dogpile prevention). A cached
        ``None`` counts as missing.

        :param key: the cache key (it goes through the cache's key function).
        :param value_creator: computes the value; it must not return ``None``.
        :param version: the cache key's version.
        :param expire: the lock's lifetime in seconds. ``None`` (the default) means
            :data:`GET_OR_SET_DEFAULT_EXPIRE` (60 s) with auto-renewal, so a worker
            killed while computing cannot block the key for ever; 0 means a lock that
            never expires (4.x's default).
        :param id: the lock's id.
        :param lock_key: the lock's name (not passed through the key function).
        :param timeout: the cached value's lifetime, as for the cache's ``set``
            (it is not a lock timeout: that is ``wait_timeout``).
        :param wait_timeout: how long to wait for the lock, in seconds (``None``:
            forever); then :class:`~redis_lock.AcquireTimeout` is raised.
        :param auto_renewal: renew the lock while ``value_creator`` runs; ``None``
            (the default) renews it exactly when ``expire`` is ``None``.
        :param strict: as for :class:`~redis_lock.Lock`.
        :param signal_expire: as for :class:`~redis_lock.Lock`.
        :param wait_replicas: as for :class:`~redis_lock.Lock`.
        :param wait_replicas_timeout: as for :class:`~redis_lock.Lock`.
        :param fencing: as for :class:`~redis_lock.Lock` (the token is not exposed here).
        :param fencing_expire: as for :class:`~redis_lock.Lock`.
        :param renewal_interval: as for :class:`~redis_lock.Lock`.
        :param max_hold: as for :class:`~redis_lock.Lock`.
        :param on_lost: as for :class:`~redis_lock.Lock`.
        :param observer: as for :class:`~redis_lock.Lock`.
        :param fair: as for :class:`~redis_lock.Lock`.
        :param queue_lease: as for :class:`~redis_lock.Lock`.
        :raises ValueError: ``value_creator`` returned ``None``.
        :raises AcquireTimeout: the lock was not acquired within ``wait_timeout``.

        .. versionchanged:: 5.0
           Takes every :class:`~redis_lock.Lock` option (``wait_timeout`` is the
           lock's ``timeout``); without ``expire`` the lock expires and is renewed.
        """
        if lock_key is None:
            lock_key = GET_OR_SET_LOCK_PREFIX + key
        if auto_renewal is None:
            auto_renewal = expire is None
        if expire is None:
            expire = GET_OR_SET_DEFAULT_EXPIRE
        # Built (and so validated) before the first cache read.
        lock = self.lock(
            lock_key,
            expire=expire,
            id=id,
            auto_renewal=auto_renewal,
            strict=strict,
            signal_expire=signal_expire,
            timeout=wait_timeout,
            wait_replicas=wait_replicas,
            wait_replicas_timeout=wait_replicas_timeout,
            fencing=fencing,
            fencing_expire=fencing_expire,
            renewal_interval=renewal_interval,
            max_hold=max_hold,
            on_lost=on_lost,
            observer=observer,
            fair=fair,
            queue_lease=queue_lease,
        )
        value: T | None = self.get(key, version=version)
        if value is not None:
            return value
        with lock:
            # Another caller may have stored the value while this one waited.
            value = self.get(key, version=version)
            if value is not None:
                return value
            value = value_creator()
            if value is None:
                raise ValueError("`value_creator` must return a value")
            self.set(key, value, timeout=timeout, version=version)
            return value

    def reset_all(self: CacheBackend) -> int:
        """Forcibly delete every lock on this cache's server, waking one waiter of each. Use with care.

        Meant for application start-up, to clear locks a crash left behind.

        :returns: the number of locks deleted.

        .. versionchanged:: 5.0
           Returns the count.
        """
        return reset_all(raw_client(self))
