"""The synchronous :class:`Lock`, its renewal thread, and :func:`reset_all`.

The lock is written once, in ``_lockcore`` (state, decisions and steps, no I/O);
this module drives its steps with a synchronous client (``_engine.drive``) and
keeps what only threads have: the thread gate and the renewal thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _core, _engine, _local, _renewal
from ._core import logger_for_refresh_exit, logger_for_refresh_shutdown
from ._holdcore import HoldCore
from ._lockcore import LockCore, reset_all_steps, shared_doc

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from .typing import RedisClient

__all__ = ["Lock", "ThreadHold", "reset_all"]


class ThreadHold(HoldCore["RedisClient"]):
    """What a synchronous lock and semaphore share: threads take turns at a thread gate, and the
    client's renewal thread renews the hold.

    One daemon thread per client object renews all of that client's locks and
    semaphores, pipelining the extends that fall due together (see ``_renewal``).
    The 4.x log messages still say "renewal thread": they are emitted per lock, at
    the same moments as when each lock had a thread of its own.
    """

    #: Not a thread since 5.0: this object's entry in its client's renewal scheduler
    #: (:class:`redis_lock._renewal.Renewal`), with the ``is_alive()``/``join()``
    #: that 4.x code used on the thread; None when it is not being renewed.
    _lock_renewal_thread: _renewal.Renewal | None = None

    _flavour = "sync"

    @property
    def _renewing(self) -> bool:
        return self._lock_renewal_thread is not None

    def _new_gate(self) -> _local.ThreadGate:
        return _local.ThreadGate()

    def extend(self, expire: float | None = None) -> None:  # pragma: no cover - overridden by each kind
        raise NotImplementedError

    def _renew(self) -> None:
        """Extend once for auto-renewal, when the scheduler cannot pipeline this hold's extend.

        That is for a client without ``pipeline()``, a cluster client (whose
        pipelines refuse EVALSHA), or a subclass that overrides :meth:`extend`
        (which renewal then calls, as 4.x did). Errors propagate:
        the scheduler retries them until the lease runs out.
        """
        self.extend(expire=self._options.expire)

    def _start_lock_renewer(self) -> None:
        interval, pipelined = self._renewal_plan(self._public)
        self._lock_renewal_thread = _renewal.renew(self, self._lease, interval, pipelined=pipelined)

    def _drop_renewal(self) -> None:
        self._stop_lock_renewer()

    def _stop_renewal(self, until: float) -> None:
        self._stop_lock_renewer(until)

    def _stop_lock_renewer(self, until: float | None = None) -> None:
        renewal, self._lock_renewal_thread = self._lock_renewal_thread, None
        if renewal is None or not renewal.is_alive():
            return
        logger_for_refresh_shutdown.debug(
            "Signaling renewal thread for %s(%r) to exit.", self._kind, self._name
        )
        # Waits for an extend in flight, so none lands after the release
        # (but not past the lease: then no extend can save it any more).
        renewal.stop(until=self._lease.deadline if until is None else until)
        logger_for_refresh_exit.debug("Renewal thread for %s(%r) exited.", self._kind, self._name)


class Lock(LockCore["RedisClient"], ThreadHold, public=True):
    """A distributed lock on Redis, with the API of python-redis-lock 4.x.

    Acquiring runs one Lua script (one round trip) that sets ``lock:<name>`` to
    this lock's id if it is free. A blocking acquire that finds the lock busy
    waits with ``BLPOP`` on ``lock-signal:<name>``, the list a release pushes one
    wake-up signal onto; it never spins. A wait ends at the earliest of a signal,
    the holder's key expiring, the caller's ``timeout``, and a chunk shorter than
    the client's socket timeout, and then the script runs again::

        waiter                          Redis                         holder
          |-- EVALSHA acquire -------->|  busy, holder PTTL 800 ms      |
          |-- BLPOP signal 0.701 s --->|                                |
          |                            |<------- EVALSHA unlock --------| (DEL, LPUSH)
          |<-- signal -----------------|                                |
          |-- EVALSHA acquire -------->|  acquired                      |

    :param redis_client: a synchronous client: :class:`redis.Redis`, ``valkey.Valkey``,
        or (with ``strict=False``) any object with the methods of
        :class:`redis_lock.typing.RedisClient`.
    {identity}
    :param auto_renewal: renew the lock every ``expire * 2/3`` seconds from a daemon
        thread while it is held. Needs ``expire``. To use another interval, subclass
        and set ``self._lock_renewal_interval`` after calling ``super().__init__()``.
    :param strict: require ``redis_client`` to be a known client class.
    :param signal_expire: how long an unconsumed wake-up signal lives, in milliseconds.
    :param blocking: whether the ``with`` statement waits for the lock.
    :param timeout: how long the ``with`` statement waits, in seconds (``None``: forever).
        It does not apply to :meth:`acquire`, which takes its own ``timeout``.
    {shared}
    :raises InvalidArgumentType: (a :class:`TypeError`) for an argument of the wrong type.

    The constructor performs no I/O.

    .. versionchanged:: 5.0
       ``expire`` and ``timeout`` take fractional seconds; the ``timeout``,
       ``wait_replicas`` and ``wait_replicas_timeout`` arguments are new; valkey-py
       clients pass ``strict``.
    """

    _lock_renewal_interval: float | None

    @property
    def _held(self) -> bool:
        # 4.x name, kept for subclasses that read it.
        return self.owned()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire the lock.

        :param blocking: wait for the lock if it is busy; with ``False``, one attempt.
        :param timeout: the longest wait, in seconds (fractions allowed); ``None`` waits forever.
        :returns: True if the lock was acquired, False if it was busy (non-blocking) or the timeout passed.
        :raises AlreadyAcquired: this thread holds this object already, or another
            object with the same (chosen) ``id`` holds the lock.
        :raises TimeoutNotUsable: ``timeout`` given with ``blocking=False``.
        :raises InvalidTimeout: negative, non-finite or above 10**9 s ``timeout``.
        :raises InvalidArgumentType: (a :class:`TypeError`) ``blocking`` is not a bool, or ``timeout`` not a number.
        :raises TimeoutTooLarge: ``timeout`` greater than ``expire`` without auto-renewal.
        :raises NotReplicated: (a :class:`NotAcquired`) with ``wait_replicas``: the lock
            was taken, but too few replicas acknowledged it in time, so it was released
            again. Each attempt may then take up to ``wait_replicas_timeout`` longer.

        Threads sharing this object take turns, as with :class:`threading.Lock`:
        while one holds it, another thread's ``acquire()`` waits in this process,
        without Redis traffic, within its ``blocking`` and ``timeout``. Any thread
        may :meth:`release` it.

        A wait cut short by a failover (the server force-unblocks it with
        ``UNBLOCKED``, or drops the connection) counts as a wake-up: the lock is
        tried again at once, and an error then propagates.

        .. versionchanged:: 5.0
           One round trip when the lock is free; fractional timeouts; ``timeout=0``
           makes one attempt; a waiter wakes when the holder's key expires; waits
           survive the client's socket timeout and a failover; threads sharing the
           object take turns.
        """
        return _engine.drive(self._client, self._acquire_steps(blocking, timeout), self)

    def extend(self, expire: float | None = None) -> None:
        """Reset the lock's expiry to ``expire`` seconds (default: the constructor's ``expire``).

        :raises NotAcquired: this lock's id does not hold the lock.
        :raises NotExpirable: the lock key has no expiry.
        :raises InvalidArgumentType: (a :class:`TypeError`) no ``expire`` here nor at construction.
        """
        _engine.drive(self._client, self._extend_steps(expire), self)

    def release(self) -> None:
        """Release the lock held by this lock's id, and wake one waiter.

        Stops auto-renewal first. To release a lock acquired elsewhere, use
        ``Lock(conn, name, id=id_from_other_place).release()``, or :meth:`reset`.

        :raises NotAcquired: this lock's id does not hold the lock.
        :raises LockLost: auto-renewal had already lost the lock (a :class:`NotAcquired`).

        .. versionchanged:: 5.0
           Raises :class:`~redis_lock.LockLost` after a renewal failure.
        """
        _engine.drive(self._client, self._release_steps(), self)

    def reset(self) -> None:
        """Forcibly delete the lock, whoever holds it, and wake one waiter. Use with care.

        .. versionchanged:: 5.0
           Stops this instance's auto-renewal first.
        """
        _engine.drive(self._client, self._reset_steps(), self)

    def locked(self) -> bool:
        """True if the lock is held, by any id."""
        return _engine.drive(self._client, self._locked_steps())

    def owned(self) -> bool:
        """True if the lock is held by this lock's id.

        .. versionadded:: 5.0
        """
        return _engine.drive(self._client, self._owned_steps())

    def get_owner_id(self) -> str | None:
        """The id holding the lock, or None if it is free.

        .. versionchanged:: 5.0
           A bytes reply is decoded as UTF-8 (4.x: ASCII with replacement characters).
        """
        return _engine.drive(self._client, self._owner_steps())

    def __enter__(self) -> Self:
        if not self.acquire(blocking=self.blocking, timeout=self._timeout):
            raise _core.enter_error(self._name, blocking=self.blocking, timeout=self._timeout)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _engine.drive(self._client, self._exit_steps(exc_value), self)


Lock.__doc__ = shared_doc(Lock.__doc__)


def reset_all(redis_client: RedisClient, signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS) -> int:
    """Forcibly delete every lock (every ``lock:*`` key), waking one waiter of each. Use with care.

    Walks the keyspace with SCAN in pages, never KEYS, so it does not block the server.

    :param redis_client: a synchronous client.
    :param signal_expire: lifetime of the wake-up signals, in milliseconds.
    :returns: the number of locks deleted.

    .. versionchanged:: 5.0
       Uses SCAN instead of KEYS; returns the count; takes ``signal_expire``.
    """
    return _engine.drive(redis_client, reset_all_steps(redis_client, signal_expire, flavour="sync"))
