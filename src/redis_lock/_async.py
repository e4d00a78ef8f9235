"""The asyncio :class:`AsyncLock`, its renewal task, and :func:`async_reset_all`.

The lock is written once, in ``_lockcore`` (state, decisions and steps, no I/O);
this module drives its steps with an asyncio client (``_engine.drive_async``)
and keeps what only asyncio has: the task gate, the renewal task, and
cancellation, which ``_engine.Guarded`` makes safe. The methods' docstrings are
:class:`~redis_lock.Lock`'s: the behaviour is the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _core, _engine, _local, _renewal
from ._core import logger_for_refresh_exit, logger_for_refresh_shutdown
from ._holdcore import HoldCore
from ._lockcore import LockCore, reset_all_steps, shared_doc
from ._sync import Lock

if TYPE_CHECKING:
    import asyncio
    from types import TracebackType

    from typing_extensions import Self

    from .typing import AsyncRedisClient

__all__ = ["AsyncHold", "AsyncLock", "async_reset_all"]


class AsyncHold(HoldCore["AsyncRedisClient"]):
    """What an asyncio lock and semaphore share: tasks take turns at a task gate, and the client's
    renewal task on the running loop renews the hold.

    One task per (event loop, client) renews all of that client's locks and
    semaphores on the loop, pipelining the extends that fall due together (see
    ``_renewal``). The 4.x log messages are emitted per lock, at the same moments
    as when each lock had a task of its own.
    """

    #: Not a task since 5.0: a future done once this object's renewal (by its loop's
    #: and client's scheduler task) has ended; None when it is not being renewed.
    _lock_renewal_task: asyncio.Future[None] | None = None
    _lock_renewal: _renewal.AsyncRenewal | None = None

    _flavour = "async"

    @property
    def _renewing(self) -> bool:
        return self._lock_renewal is not None

    def _new_gate(self) -> _local.TaskGate:
        return _local.TaskGate()

    async def extend(self, expire: float | None = None) -> None:  # pragma: no cover - overridden by each kind
        raise NotImplementedError

    async def _renew(self) -> None:
        await self.extend(expire=self._options.expire)

    def _start_lock_renewer(self) -> None:
        interval, pipelined = self._renewal_plan(self._public)
        renewal = _renewal.renew_async(self, self._lease, interval, pipelined=pipelined)
        self._lock_renewal = renewal
        self._lock_renewal_task = renewal.future

    def _drop_renewal(self) -> None:
        self._cancel_lock_renewer()

    def _cancel_lock_renewer(self) -> _renewal.AsyncRenewal | None:
        """End this object's renewal without waiting. Returns its entry if it was still running."""
        renewal = self._lock_renewal
        self._lock_renewal = self._lock_renewal_task = None
        if renewal is None or not renewal.is_alive():
            return None
        logger_for_refresh_shutdown.debug(
            "Signaling renewal thread for %s(%r) to exit.", self._kind, self._name
        )
        renewal.stop()
        return renewal

    async def _stop_renewal(self, until: float) -> None:
        renewal = self._cancel_lock_renewer()
        if renewal is None:
            return
        # Waits for an extend in flight, so none lands after the release
        # (but not past the lease: then no extend can save it any more).
        await renewal.wait_stopped(until=until)
        logger_for_refresh_exit.debug("Renewal thread for %s(%r) exited.", self._kind, self._name)


class AsyncLock(LockCore["AsyncRedisClient"], AsyncHold, public=True):
    """A distributed lock on Redis for asyncio: the twin of :class:`~redis_lock.Lock`.

    Same keys, scripts, arguments, exceptions and log messages as :class:`~redis_lock.Lock`,
    so an ``AsyncLock`` and a ``Lock`` (or a python-redis-lock 4.x process) on the same
    name exclude and wake each other. Every method that talks to Redis is a coroutine.

    A blocking :meth:`acquire` waits with ``BLPOP`` on the async client; it never
    polls. Auto-renewal is an :class:`asyncio.Task` on the running event loop.
    The id belongs to the instance, not to a task or thread.

    Cancellation (for example by :func:`asyncio.timeout`) is safe:

    - cancelling :meth:`acquire` leaves the lock not held by this instance and
      re-raises :class:`asyncio.CancelledError`, even if the acquire script had
      already taken the lock in Redis (it is then released, waking one waiter);
    - cancelling :meth:`release` lets the release script, once sent, finish, so
      Redis and the instance agree that the lock is released; then
      :class:`asyncio.CancelledError` propagates.

    :param redis_client: an asyncio client: :class:`~redis.asyncio.client.Redis`,
        ``valkey.asyncio.Valkey``, or (with ``strict=False``) any object with the
        methods of :class:`redis_lock.typing.AsyncRedisClient`.
    {identity}
    :param auto_renewal: renew the lock every ``expire * 2/3`` seconds from a task on
        the running event loop while it is held. Needs ``expire``. To use another
        interval, subclass and set ``self._lock_renewal_interval`` after calling
        ``super().__init__()``.
    :param strict: require ``redis_client`` to be a known asyncio client class.
    :param signal_expire: how long an unconsumed wake-up signal lives, in milliseconds.
    :param blocking: whether the ``async with`` statement waits for the lock.
    :param timeout: how long the ``async with`` statement waits, in seconds (``None``:
        forever). It does not apply to :meth:`acquire`, which takes its own ``timeout``.
    {shared}
    :raises InvalidArgumentType: (a :class:`TypeError`) for an argument of the wrong
        type, including a synchronous client.

    The constructor performs no I/O and needs no running event loop.

    .. versionadded:: 5.0
    """

    _lock_renewal_interval: float | None

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return await _engine.drive_async(self._client, self._acquire_steps(blocking, timeout), self)

    async def extend(self, expire: float | None = None) -> None:
        await _engine.drive_async(self._client, self._extend_steps(expire), self)

    async def release(self) -> None:
        await _engine.drive_async(self._client, self._release_steps(), self)

    async def reset(self) -> None:
        await _engine.drive_async(self._client, self._reset_steps(), self)

    async def locked(self) -> bool:
        return await _engine.drive_async(self._client, self._locked_steps())

    async def owned(self) -> bool:
        return await _engine.drive_async(self._client, self._owned_steps())

    async def get_owner_id(self) -> str | None:
        return await _engine.drive_async(self._client, self._owner_steps())

    async def __aenter__(self) -> Self:
        if not await self.acquire(blocking=self.blocking, timeout=self._timeout):
            raise _core.enter_error(self._name, blocking=self.blocking, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await _engine.drive_async(self._client, self._exit_steps(exc_value), self)


AsyncLock.__doc__ = shared_doc(AsyncLock.__doc__)

# One text for both flavours: the methods behave the same.
for _method in ("acquire", "extend", "release", "reset", "locked", "owned", "get_owner_id", "_renew"):
    getattr(AsyncLock, _method).__doc__ = getattr(Lock, _method).__doc__


async def async_reset_all(
    redis_client: AsyncRedisClient, signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS
) -> int:
    """Forcibly delete every lock (every ``lock:*`` key), waking one waiter of each. Use with care.

    The asyncio twin of :func:`~redis_lock.reset_all`: walks the keyspace with SCAN
    in pages, never KEYS, so it does not block the server.

    :param redis_client: an asyncio client.
    :param signal_expire: lifetime of the wake-up signals, in milliseconds.
    :returns: the number of locks deleted.

    .. versionadded:: 5.0
    """
    return await _engine.drive_async(
        redis_client, reset_all_steps(redis_client, signal_expire, flavour="async")
    )
