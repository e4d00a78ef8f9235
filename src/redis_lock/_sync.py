"""The synchronous :class:`Lock`, its renewal thread, and :func:`reset_all`.

Decisions live in ``_core``; this module only talks to Redis and waits.
"""

from __future__ import annotations

import sys
import threading
import time as mod_time
import weakref
from typing import TYPE_CHECKING

import redis

from . import _core
from ._core import (
    logger_for_acquire,
    logger_for_refresh_exit,
    logger_for_refresh_shutdown,
    logger_for_refresh_start,
    logger_for_refresh_thread,
    logger_for_release,
)
from ._scripts import ACQUIRE, EXTEND, RESET, RESET_ALL, UNLOCK, evalsha

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from .typing import RedisClient

__all__ = ["Lock", "reset_all"]


def _sync_client_types() -> tuple[type, ...]:
    """The client classes ``strict=True`` accepts: redis-py's, and valkey-py's when it is in use."""
    types: list[type] = [redis.Redis]
    valkey = sys.modules.get("valkey")
    valkey_client = getattr(valkey, "Valkey", None)
    if isinstance(valkey_client, type):
        types.append(valkey_client)
    types.extend(_core.cluster_client_types("sync"))
    return tuple(types)


class Lock:
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
    :param name: the lock's name; the keys are ``lock:<name>`` and ``lock-signal:<name>``.
    :param expire: the lock's lifetime in seconds, with millisecond precision; ``None``
        (or any falsy value) means the lock never expires.
    :param id: the value stored in the lock key, as ``str`` or ``bytes`` (non-ASCII
        bytes are base64-encoded, as in 4.x); random by default. Locks sharing an id
        own the lock together.
    :param auto_renewal: renew the lock every ``expire * 2/3`` seconds from a daemon
        thread while it is held. Needs ``expire``. To use another interval, subclass
        and set ``self._lock_renewal_interval`` after calling ``super().__init__()``.
    :param strict: require ``redis_client`` to be a known client class.
    :param signal_expire: how long an unconsumed wake-up signal lives, in milliseconds.
    :param blocking: whether the ``with`` statement waits for the lock.
    :param timeout: how long the ``with`` statement waits, in seconds (``None``: forever).
        It does not apply to :meth:`acquire`, which takes its own ``timeout``.
    :raises InvalidArgument: (a :class:`ValueError`) for an unusable value.
    :raises InvalidArgumentType: (a :class:`TypeError`) for an argument of the wrong type.

    The constructor performs no I/O.

    .. versionchanged:: 5.0
       ``expire`` and ``timeout`` take fractional seconds; the ``timeout`` argument
       is new; valkey-py clients pass ``strict``.
    """

    _lock_renewal_interval: float | None
    _lock_renewal_thread: threading.Thread | None

    def __init__(
        self,
        redis_client: RedisClient,
        name: str,
        expire: float | None = None,
        id: str | bytes | None = None,
        auto_renewal: bool = False,
        strict: bool = True,
        signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS,
        blocking: bool = True,
        timeout: float | None = None,
    ) -> None:
        settings = _core.lock_settings(
            redis_client,
            name=name,
            expire=expire,
            id=id,
            auto_renewal=auto_renewal,
            strict=strict,
            signal_expire=signal_expire,
            blocking=blocking,
            timeout=timeout,
            accepted=_sync_client_types(),
            flavour="sync",
        )
        # The 4.x attribute names, which subclasses read (and _lock_renewal_interval, which they set).
        self._client = redis_client
        self._name, self._signal = settings.lock_key, settings.signal_key
        self._expire = settings.expire
        self._id = settings.id
        self._signal_expire = settings.signal_expire
        self.blocking = settings.blocking
        self._lock_renewal_interval = settings.renewal_interval
        self._timeout = settings.timeout
        self._wait_chunk = settings.wait_chunk
        self._lock_renewal_thread = None
        self._lock_renewal_stop: threading.Event | None = None
        self._lock_renewal_finalizer: weakref.finalize[[], Lock] | None = None
        self._lease_deadline = 0.0
        self._lost: BaseException | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self._name!r}>"

    @classmethod
    def register_scripts(cls, redis_client: object) -> None:
        """Do nothing: kept so 4.x code calling it still runs.

        .. deprecated:: 5.0
           Scripts are module data, loaded on the server on first use.
        """

    @property
    def id(self) -> str:
        """The value this lock stores in its key."""
        return self._id

    @property
    def lost(self) -> bool:
        """True once auto-renewal failed to keep the lock (its lease ran out, or another client took it).

        :meth:`release` then raises :class:`~redis_lock.LockLost`; a new
        :meth:`acquire` clears the flag.

        .. versionadded:: 5.0
        """
        return self._lost is not None

    @property
    def _held(self) -> bool:
        # 4.x name, kept for subclasses that read it.
        return self.owned()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire the lock.

        :param blocking: wait for the lock if it is busy; with ``False``, one attempt.
        :param timeout: the longest wait, in seconds (fractions allowed); ``None`` waits forever.
        :returns: True if the lock was acquired, False if it was busy (non-blocking) or the timeout passed.
        :raises AlreadyAcquired: this lock's id already holds it.
        :raises TimeoutNotUsable: ``timeout`` given with ``blocking=False``.
        :raises InvalidTimeout: negative, non-finite or above 10**9 s ``timeout``.
        :raises InvalidArgumentType: (a :class:`TypeError`) ``blocking`` is not a bool, or ``timeout`` not a number.
        :raises TimeoutTooLarge: ``timeout`` greater than ``expire`` without auto-renewal.

        .. versionchanged:: 5.0
           One round trip when the lock is free; fractional timeouts; a waiter wakes
           when the holder's key expires; waits survive the client's socket timeout.
        """
        request = _core.prepare_acquire(
            blocking=blocking,
            timeout=timeout,
            expire=self._expire,
            renewal=self._lock_renewal_interval,
            lock_key=self._name,
            signal_key=self._signal,
            lock_id=self._id,
            now=mod_time.monotonic(),
        )
        logger_for_acquire.debug("Acquiring Lock(%r) ...", self._name)
        while True:
            sent = mod_time.monotonic()
            reply = evalsha(self._client, ACQUIRE, request.keys, request.args)
            step = _core.next_acquire_step(reply, request, now=mod_time.monotonic(), chunk=self._wait_chunk)
            if not isinstance(step, _core.WaitPlan):
                break
            if step.blpop and self._client.blpop([self._signal], step.blpop):
                continue  # woken by a release or reset: try again at once
            if step.sleep_until is not None:
                mod_time.sleep(max(0.0, step.sleep_until - mod_time.monotonic()))
        if not step:
            logger_for_acquire.warning("Failed to acquire Lock(%r).", self._name)
            return False
        logger_for_acquire.info("Acquired Lock(%r).", self._name)
        self._stop_lock_renewer()
        self._lost = None
        self._lease_deadline = _core.lease_end(sent, self._expire, self._lease_deadline)
        if _core.renews(self._lock_renewal_interval, self._expire):
            self._start_lock_renewer()
        return True

    def extend(self, expire: float | None = None) -> None:
        """Reset the lock's expiry to ``expire`` seconds (default: the constructor's ``expire``).

        :raises NotAcquired: this lock's id does not hold the lock.
        :raises NotExpirable: the lock key has no expiry.
        :raises InvalidArgumentType: (a :class:`TypeError`) no ``expire`` here nor at construction.
        """
        seconds = _core.extend_seconds(expire, self._expire)
        sent = mod_time.monotonic()
        reply = evalsha(self._client, EXTEND, (self._name,), (self._id, str(_core.to_ms(seconds))))
        _core.check_extend_reply(reply, self._name)
        self._lease_deadline = _core.lease_end(sent, seconds, self._lease_deadline)

    def release(self) -> None:
        """Release the lock held by this lock's id, and wake one waiter.

        Stops auto-renewal first. To release a lock acquired elsewhere, use
        ``Lock(conn, name, id=id_from_other_place).release()``, or :meth:`reset`.

        :raises NotAcquired: this lock's id does not hold the lock.
        :raises LockLost: auto-renewal had already lost the lock (a :class:`NotAcquired`).

        .. versionchanged:: 5.0
           Raises :class:`~redis_lock.LockLost` after a renewal failure.
        """
        self._stop_lock_renewer()
        logger_for_release.debug("Releasing Lock(%r).", self._name)
        reply = evalsha(
            self._client, UNLOCK, (self._name, self._signal), (self._id, str(self._signal_expire))
        )
        # Redis has answered: only now forget a loss, so that a release that failed
        # (a connection error) still reports the loss when retried.
        lost, self._lost = self._lost, None
        if lost is not None:
            raise _core.lock_lost_error(self._name) from lost
        _core.check_unlock_reply(reply, self._name)

    def reset(self) -> None:
        """Forcibly delete the lock, whoever holds it, and wake one waiter. Use with care.

        .. versionchanged:: 5.0
           Stops this instance's auto-renewal first.
        """
        self._stop_lock_renewer()
        evalsha(self._client, RESET, (self._name, self._signal), (str(self._signal_expire),))

    def locked(self) -> bool:
        """True if the lock is held, by any id."""
        return _core.as_int_reply(self._client.exists(self._name), "EXISTS") == 1

    def owned(self) -> bool:
        """True if the lock is held by this lock's id.

        .. versionadded:: 5.0
        """
        return self.get_owner_id() == self._id

    def get_owner_id(self) -> str | None:
        """The id holding the lock, or None if it is free.

        .. versionchanged:: 5.0
           A bytes reply is decoded as UTF-8 (4.x: ASCII with replacement characters).
        """
        return _core.decode_owner(self._client.get(self._name))

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
        if exc_value is None:
            self.release()
            return
        # The body raised: a release error must not replace its exception.
        try:
            self.release()
        except Exception as release_error:
            logger_for_release.warning(
                "Releasing Lock(%r) failed while an exception propagated from the with block.",
                self._name,
                exc_info=release_error,
            )
            if sys.version_info >= (3, 11):
                exc_value.add_note(_core.exit_release_failed_note(self._name, release_error))

    # -- auto-renewal ------------------------------------------------------------

    @staticmethod
    def _lock_renewer(name: str, lockref: weakref.ref[Lock], interval: float, stop: threading.Event) -> None:
        """Renew the lock every ``interval`` seconds until ``stop`` is set or the lock is collected."""
        while True:
            stopped = stop.wait(timeout=interval)
            lock = lockref()
            if lock is None:
                # Also reached at once when the lock is collected: its finalizer sets ``stop``.
                logger_for_refresh_thread.debug("Stopping loop because Lock(%r) was garbage collected.", name)
                break
            if stopped:
                break
            logger_for_refresh_thread.debug("Refreshing Lock(%r).", name)
            keep_going = lock._renew(stop)
            del lock
            if not keep_going:
                break
        logger_for_refresh_thread.debug("Exiting renewal thread for Lock(%r).", name)

    def _renew(self, stop: threading.Event) -> bool:
        """Extend once, retrying errors until the lease runs out. False when renewal must stop."""
        delay = _core.RENEWAL_RETRY_DELAY
        while True:
            try:
                self.extend(expire=self._expire)
            except Exception as exc:
                outcome = _core.renewal_outcome(
                    exc,
                    lock_key=self._name,
                    now=mod_time.monotonic(),
                    lease_deadline=self._lease_deadline,
                    delay=delay,
                )
                if outcome.lost:
                    self._lost = exc
                logger_for_refresh_thread.log(outcome.level, outcome.message, *outcome.args)
                if outcome.retry_in is None or stop.wait(outcome.retry_in):
                    return False
                delay = outcome.next_delay
            else:
                return True

    def _start_lock_renewer(self) -> None:
        interval = _core.check_renewal_interval(self._lock_renewal_interval)
        assert interval is not None
        logger_for_refresh_start.debug(
            "Starting renewal thread for Lock(%r). Refresh interval: %s seconds.", self._name, interval
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=self._lock_renewer,
            name=f"redis_lock.refresh {self._name}",
            kwargs={"name": self._name, "lockref": weakref.ref(self), "interval": interval, "stop": stop},
            daemon=True,
        )
        # When the lock is collected, wake the thread at once instead of at its next interval.
        self._lock_renewal_finalizer = weakref.finalize(self, stop.set)
        self._lock_renewal_stop = stop
        self._lock_renewal_thread = thread
        thread.start()

    def _stop_lock_renewer(self) -> None:
        thread, stop = self._lock_renewal_thread, self._lock_renewal_stop
        self._lock_renewal_thread = self._lock_renewal_stop = None
        if thread is None or stop is None:
            return
        if self._lock_renewal_finalizer is not None:
            self._lock_renewal_finalizer.detach()
            self._lock_renewal_finalizer = None
        if thread.is_alive():
            logger_for_refresh_shutdown.debug("Signaling renewal thread for Lock(%r) to exit.", self._name)
            stop.set()
            if thread is not threading.current_thread():
                thread.join()
            logger_for_refresh_exit.debug("Renewal thread for Lock(%r) exited.", self._name)
        else:
            stop.set()


def reset_all(redis_client: RedisClient, signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS) -> int:
    """Forcibly delete every lock (every ``lock:*`` key), waking one waiter of each. Use with care.

    Walks the keyspace with SCAN in pages, never KEYS, so it does not block the server.

    :param redis_client: a synchronous client.
    :param signal_expire: lifetime of the wake-up signals, in milliseconds.
    :returns: the number of locks deleted.

    .. versionchanged:: 5.0
       Uses SCAN instead of KEYS; returns the count; takes ``signal_expire``.
    """
    _core.check_client(redis_client, strict=False, accepted=(), flavour="sync")
    expire_arg = (str(_core.validate_signal_expire(signal_expire)),)
    deleted = 0
    if _core.is_sync_cluster(redis_client):
        # scan_iter walks every primary; a script may only touch keys of one slot.
        page: list[object] = []
        for key in redis_client.scan_iter(match=_core.LOCK_PREFIX + "*", count=_core.RESET_ALL_SCAN_COUNT):
            page.append(key)
            if len(page) >= _core.RESET_ALL_SCAN_COUNT:
                deleted += _reset_cluster_page(redis_client, page, expire_arg)
                page = []
        return deleted + _reset_cluster_page(redis_client, page, expire_arg)
    cursor = 0
    while True:
        reply = redis_client.scan(
            cursor=cursor, match=_core.LOCK_PREFIX + "*", count=_core.RESET_ALL_SCAN_COUNT
        )
        cursor, keys = _core.parse_scan_reply(reply)
        batch = _core.reset_all_batch(keys)
        if batch:
            deleted += _core.as_int_reply(evalsha(redis_client, RESET_ALL, batch, expire_arg), "reset_all")
        if cursor == 0:
            return deleted


def _reset_cluster_page(redis_client: RedisClient, keys: list[object], expire_arg: tuple[str]) -> int:
    deleted = 0
    for group in _core.reset_all_groups(keys):
        deleted += _core.as_int_reply(evalsha(redis_client, RESET_ALL, group, expire_arg), "reset_all")
    return deleted
