"""The :class:`Semaphore` and :class:`AsyncSemaphore` drivers, and the semaphores' ``reset_all``.

The semaphore is written once, in ``_semcore`` (decisions, state and steps, no
I/O); the two classes here drive its steps with a synchronous client
(``_engine.drive``) or an asyncio one (``_engine.drive_async``) and keep what
really differs: the local gate (threads or tasks) and the renewal (the
client's renewal thread, or its task on the running loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _core, _engine
from ._async import AsyncHold
from ._semcore import SemaphoreCore, reset_all_semaphores_steps, semaphore_doc
from ._sync import ThreadHold

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from .typing import AsyncRedisClient, RedisClient

__all__ = ["AsyncSemaphore", "Semaphore", "async_reset_all_semaphores", "reset_all_semaphores"]


class Semaphore(SemaphoreCore["RedisClient"], ThreadHold, public=True):
    """A distributed semaphore on Redis: at most ``limit`` holders at once, each holding one permit.

    Each object holds at most one permit. A permit is a lease: a member of the
    sorted set ``sem:<name>`` scored by its expiry on the server's clock, so a
    crashed holder's permit comes back when its lease ends, and no counter can
    drift from the holders. Acquiring is one script call (one round trip) when a
    permit is free; when none is, a blocking acquire waits through the client's
    hub (one ``BLPOP`` per client for every waiter of the process) until a
    release signals, or until the earliest permit expires, and tries again::

        waiter                          Redis                          holders
          |-- EVALSHA acquire -------->|  2 of 2 held, earliest in 800 ms |
          |   (sleeps <= 0.801 s)      |<------ EVALSHA release ---------| (ZREM, LPUSH)
          |<-- signal (hub's BLPOP) ---|                                 |
          |-- EVALSHA acquire -------->|  granted                        |

    Threads sharing one object take turns, as with a lock: one holds its permit,
    the others wait locally (the same id cannot hold two permits).

    :param redis_client: a synchronous client: :class:`redis.Redis`, ``valkey.Valkey``,
        a cluster client, or (with ``strict=False``) any object with the methods of
        :class:`redis_lock.typing.RedisClient`.
    {identity}
    {shared}

    The constructor performs no I/O.

    .. versionadded:: 5.0
    """

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a permit; with ``blocking``, wait until one is free (or ``timeout`` seconds).

        :param blocking: wait for a permit if none is free; with ``False``, one attempt.
        :param timeout: the longest wait, in seconds (fractions allowed); ``None`` waits forever.
        :returns: True if a permit was taken, False if none was free (non-blocking) or the timeout passed.
        :raises AlreadyAcquired: this thread holds this object's permit already, or another
            object with the same (chosen) ``id`` holds one.
        :raises LimitMismatch: the limit stored in Redis is not this object's ``limit``.
        :raises TimeoutNotUsable: ``timeout`` given with ``blocking=False``.
        :raises InvalidTimeout: negative, non-finite or above 10**9 s ``timeout``.
        :raises TimeoutTooLarge: ``timeout`` greater than ``expire`` without auto-renewal.
        """
        return _engine.drive(self._client, self._acquire_steps(blocking, timeout), self)

    def release(self) -> None:
        """Give the permit back and wake one waiter.

        :raises NotAcquired: this id holds no permit (never acquired, expired or reset).
        :raises LockLost: auto-renewal had already lost the permit (a :class:`~redis_lock.NotAcquired`).
        """
        _engine.drive(self._client, self._release_steps(), self)

    def extend(self, expire: float | None = None) -> None:
        """Set the permit's expiry to ``expire`` seconds from now (default: the constructor's ``expire``).

        An expired permit is never brought back: its place may be someone else's.

        :raises NotAcquired: this id holds no permit (never acquired, expired or reset).
        :raises NotExpirable: the permit has no expiry.
        :raises InvalidArgumentType: (a :class:`TypeError`) no ``expire`` here nor at construction.
        """
        _engine.drive(self._client, self._extend_steps(expire), self)

    def owned(self) -> bool:
        """True if this object's id holds a permit that has not expired."""
        return _engine.drive(self._client, self._owned_steps())

    def holders(self) -> list[str]:
        """The ids holding a permit now (expired permits are not counted), earliest expiry first."""
        return _engine.drive(self._client, self._holders_steps())

    def available(self) -> int:
        """How many permits are free now: ``limit`` minus the permits held (0 if more are held).

        :raises LimitMismatch: the limit stored in Redis is not this object's ``limit``.
        """
        return _engine.drive(self._client, self._available_steps())

    def set_limit(self, limit: int) -> int | None:
        """Store a new limit for the semaphore, and make it this object's.

        Every process must then use the new limit: objects made with the old one
        get :class:`~redis_lock.LimitMismatch` from :meth:`acquire`. A higher limit
        wakes waiters at once; with a lower one, holders above it keep their permits
        and no permit is granted until fewer are held.

        :param limit: the new number of permits (1 to 2**31 - 1).
        :returns: the limit stored before, or None if none was.
        """
        return _engine.drive(self._client, self._set_limit_steps(limit))

    def reset(self) -> int:
        """Forcibly drop every permit and the stored limit, whoever holds them, and wake a waiter. Use with care.

        :returns: the number of permits dropped.
        """
        return _engine.drive(self._client, self._reset_steps(), self)

    def __enter__(self) -> Self:
        if not self.acquire(blocking=self.blocking, timeout=self._options.timeout):
            raise self._enter_error()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _engine.drive(self._client, self._exit_steps(exc_value), self)


Semaphore.__doc__ = semaphore_doc(Semaphore.__doc__)


class AsyncSemaphore(SemaphoreCore["AsyncRedisClient"], AsyncHold, public=True):
    """A distributed semaphore on Redis for asyncio: the twin of :class:`~redis_lock.Semaphore`.

    Same keys, scripts, arguments and exceptions as :class:`~redis_lock.Semaphore`,
    so both flavours (and many processes) share one semaphore. Every method that
    talks to Redis is a coroutine. Tasks sharing one object take turns.

    Cancellation is safe, as with :class:`~redis_lock.AsyncLock`: a cancelled
    :meth:`acquire` holds nothing afterwards (a permit its script had already
    taken is given back, waking a waiter), and a cancelled :meth:`release` still
    completes in Redis before :class:`asyncio.CancelledError` propagates.

    :param redis_client: an asyncio client: :class:`~redis.asyncio.client.Redis`,
        ``valkey.asyncio.Valkey``, an asyncio cluster client, or (with ``strict=False``)
        any object with the methods of :class:`redis_lock.typing.AsyncRedisClient`.
    {identity}
    {shared}

    The constructor performs no I/O and needs no running event loop.

    .. versionadded:: 5.0
    """

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return await _engine.drive_async(self._client, self._acquire_steps(blocking, timeout), self)

    async def release(self) -> None:
        await _engine.drive_async(self._client, self._release_steps(), self)

    async def extend(self, expire: float | None = None) -> None:
        await _engine.drive_async(self._client, self._extend_steps(expire), self)

    async def owned(self) -> bool:
        return await _engine.drive_async(self._client, self._owned_steps())

    async def holders(self) -> list[str]:
        return await _engine.drive_async(self._client, self._holders_steps())

    async def available(self) -> int:
        return await _engine.drive_async(self._client, self._available_steps())

    async def set_limit(self, limit: int) -> int | None:
        return await _engine.drive_async(self._client, self._set_limit_steps(limit))

    async def reset(self) -> int:
        return await _engine.drive_async(self._client, self._reset_steps(), self)

    async def __aenter__(self) -> Self:
        if not await self.acquire(blocking=self.blocking, timeout=self._options.timeout):
            raise self._enter_error()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await _engine.drive_async(self._client, self._exit_steps(exc_value), self)


AsyncSemaphore.__doc__ = semaphore_doc(AsyncSemaphore.__doc__)

# One text for both flavours: the methods behave the same.
for _method in (
    "acquire",
    "release",
    "extend",
    "owned",
    "holders",
    "available",
    "set_limit",
    "reset",
):
    getattr(AsyncSemaphore, _method).__doc__ = getattr(Semaphore, _method).__doc__


def reset_all_semaphores(
    redis_client: RedisClient, signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS
) -> int:
    """Forcibly drop every semaphore's permits and stored limit, waking one waiter of each. Use with care.

    Walks the keyspace with SCAN (``MATCH sem*``) in pages, never KEYS, and deletes
    the ``sem:<name>`` and ``sem-limit:<name>`` keys it finds; on a cluster client
    it visits every primary. Locks (``lock:*``) are left alone: see
    :func:`~redis_lock.reset_all`.

    :param redis_client: a synchronous client.
    :param signal_expire: lifetime of the wake-up signals, in milliseconds.
    :returns: the number of semaphores that had permits held.

    .. versionadded:: 5.0
    """
    return _engine.drive(
        redis_client, reset_all_semaphores_steps(redis_client, signal_expire, flavour="sync")
    )


async def async_reset_all_semaphores(
    redis_client: AsyncRedisClient, signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS
) -> int:
    """The asyncio twin of :func:`~redis_lock.reset_all_semaphores`.

    .. versionadded:: 5.0
    """
    return await _engine.drive_async(
        redis_client, reset_all_semaphores_steps(redis_client, signal_expire, flavour="async")
    )
