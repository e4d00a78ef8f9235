"""The synchronous :class:`Lock`, its renewal thread, and :func:`reset_all`.

Decisions live in ``_core``; this module only talks to Redis and waits.
"""

from __future__ import annotations

import sys
import time as mod_time
from typing import TYPE_CHECKING

from . import _clients, _core, _keys, _local, _renewal
from ._core import (
    logger_for_acquire,
    logger_for_refresh_exit,
    logger_for_refresh_shutdown,
    logger_for_refresh_start,
    logger_for_release,
)
from ._scripts import ACQUIRE, EXTEND, RESET, RESET_ALL, UNLOCK, evalsha, evalsha_then_wait

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from .typing import RedisClient

__all__ = ["Lock", "reset_all"]


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
    :param wait_replicas: how many replicas must acknowledge the lock key before
        :meth:`acquire` returns (Redis ``WAIT``, on the connection that took the
        lock). If fewer do within ``wait_replicas_timeout``, the lock is released
        again and :meth:`acquire` raises :class:`~redis_lock.NotReplicated`. This
        narrows the window in which a failover loses the lock (see :doc:`/cluster`).
        0, the default, does not wait. Needs a client with ``pipeline()``; not
        supported on cluster clients yet.
    :param wait_replicas_timeout: how long :meth:`acquire` waits for those replicas,
        in seconds (fractions allowed); at most half the client's socket timeout.
    :raises InvalidArgument: (a :class:`ValueError`) for an unusable value.
    :raises InvalidArgumentType: (a :class:`TypeError`) for an argument of the wrong type.

    The constructor performs no I/O.

    .. versionchanged:: 5.0
       ``expire`` and ``timeout`` take fractional seconds; the ``timeout``,
       ``wait_replicas`` and ``wait_replicas_timeout`` arguments are new; valkey-py
       clients pass ``strict``.
    """

    _lock_renewal_interval: float | None
    #: Not a thread since 5.0: this lock's entry in its client's renewal scheduler
    #: (:class:`redis_lock._renewal.Renewal`), with the ``is_alive()``/``join()``
    #: that 4.x code used on the thread; None when the lock is not being renewed.
    _lock_renewal_thread: _renewal.Renewal | None

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
        wait_replicas: int = 0,
        wait_replicas_timeout: float = 1.0,
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
            flavour="sync",
            wait_replicas=wait_replicas,
            wait_replicas_timeout=wait_replicas_timeout,
        )
        # The 4.x attribute names, which subclasses read (and _lock_renewal_interval, which they set).
        self._client = redis_client
        self._name, self._signal, self._receipt = settings.lock_key, settings.signal_key, settings.receipt_key
        self._id = settings.id
        options = settings.options
        self._receipt_ttl_ms = options.receipt_ttl_ms
        self._expire = options.expire
        self._signal_expire = options.signal_expire
        self.blocking = options.blocking
        self._lock_renewal_interval = options.renewal_interval
        self._timeout = options.timeout
        self._wait_chunk = options.wait_chunk
        self._wait_replicas = options.wait_replicas
        self._wait_replicas_timeout = options.wait_replicas_timeout
        # The client again, typed for pipelines, when acquire must WAIT for replicas.
        self._replicated_client: _clients.PipeliningClient | None = (
            redis_client if options.wait_replicas and _clients.supports_pipeline(redis_client) else None
        )
        self._lock_renewal_thread = None
        self._lease_deadline = 0.0
        # Which thread holds this object (see _local): like threading.Lock, one at a time.
        self._gate = _local.ThreadGate()
        self._generated_id = settings.generated_id
        self._id_pid = _core.current_pid()
        # Whether the current hold is auto-renewed (its lease then bounds it: see `lost`).
        self._renewed = False
        self._lost: BaseException | None = None

    def __repr__(self) -> str:
        return f"<{_clients.public_name(type(self))} {self._name!r}>"

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

        It turns True when the lease of the last confirmed renewal runs out, whatever
        the renewal's I/O is doing (for example waiting in the client's own retries
        behind a network partition), and stays True until the next acquire.

        .. versionadded:: 5.0
        """
        if self._lost is None and _core.lease_lost(self._renewed, self._lease_deadline, mod_time.monotonic()):
            self._lost = _core.lease_ran_out(self._name)
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
        request = self._prepare_acquire(blocking, timeout)
        logger_for_acquire.debug("Acquiring Lock(%r) ...", self._name)
        ticket = self._gate.enter(blocking=request.blocking, deadline=request.deadline)
        if ticket is None:
            logger_for_acquire.warning("Failed to acquire Lock(%r).", self._name)
            return False
        again = ticket.held  # this thread holds the object already: Redis decides (see _local)
        request, self._id, self._id_pid = _core.request_for_pass(
            request, again=again, generated=self._generated_id, id_pid=self._id_pid, pid=_core.current_pid()
        )
        try:
            acquired = self._acquire_in_redis(request)
        except BaseException:
            if not again:
                self._gate.leave(ticket)
            raise
        if not acquired:
            if not again:
                self._gate.leave(ticket)
        elif not self._gate.hold(ticket):
            # A release from another thread started while this holder acquired again.
            self._unlock()
            return False
        return acquired

    def _prepare_acquire(self, blocking: object, timeout: object) -> _core.AcquireRequest:
        return _core.prepare_acquire(
            blocking=blocking,
            timeout=timeout,
            expire=self._expire,
            renewal=self._lock_renewal_interval,
            lock_key=self._name,
            signal_key=self._signal,
            lock_id=self._id,
            now=mod_time.monotonic(),
            owned_is_ours=_core.owned_is_ours(generated_id=self._generated_id),
        )

    def _acquire_in_redis(self, request: _core.AcquireRequest) -> bool:
        """The acquire loop, run by the thread that passed the gate: try, wait, try again."""
        interrupted = False
        while True:
            sent = mod_time.monotonic()
            reply = self._try_acquire(request)
            step = _core.next_acquire_step(reply, request, now=mod_time.monotonic(), chunk=self._wait_chunk)
            if not isinstance(step, _core.WaitPlan):
                break
            if step.blpop:
                try:
                    woken = self._client.blpop([self._signal], step.blpop)
                except Exception as exc:
                    # A failover cut the wait short: try again at once, as on a
                    # wake-up, but never twice in a row (no spinning on a broken wait).
                    if interrupted or not _core.is_interrupted_wait(exc):
                        raise
                    interrupted = True
                    logger_for_acquire.warning(
                        "Waiting for Lock(%r) was interrupted (%r); trying again.", self._name, exc
                    )
                    continue
                interrupted = False
                if woken:
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
        self._renewed = _core.renews(self._lock_renewal_interval, self._expire)
        if self._renewed:
            self._start_lock_renewer()
        return True

    def _try_acquire(self, request: _core.AcquireRequest) -> object:
        """Run acquire.lua once; with ``wait_replicas``, WAIT for the replicas too.

        The WAIT goes on the script's connection, in the same round trip. A lock
        taken but acknowledged by too few replicas is released again before the
        error propagates; if that release fails too, its error propagates instead,
        with the first as its context, and the key lives until it expires.
        """
        client = self._replicated_client
        if client is None:
            return evalsha(self._client, ACQUIRE, request.keys, request.args)
        reply, acknowledged = evalsha_then_wait(
            client,
            ACQUIRE,
            request.keys,
            request.args,
            replicas=self._wait_replicas,
            timeout_ms=_core.to_ms(self._wait_replicas_timeout),
        )
        error = _core.replication_error(
            reply,
            acknowledged,
            request,
            required=self._wait_replicas,
            timeout=self._wait_replicas_timeout,
            lock_key=self._name,
        )
        if error is None:
            return reply
        logger_for_acquire.warning("Releasing Lock(%r): too few replicas acknowledged it.", self._name)
        try:
            raise error
        finally:
            self._unlock()

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
        ticket = self._gate.begin_release()
        try:
            self.lost  # noqa: B018 (latches a lease that ran out, to report it below)
            self._stop_lock_renewer()
            logger_for_release.debug("Releasing Lock(%r).", self._name)
            reply = self._unlock()
            # Redis has answered: only now forget a loss, so that a release that failed
            # (a connection error) still reports the loss when retried.
            lost, self._lost = self._lost, None
        finally:
            if ticket is not None:
                self._renewed = False
                self._gate.leave(ticket)
        if lost is not None:
            raise _core.lock_lost_error(self._name) from lost
        _core.check_unlock_reply(reply, self._name)

    def _unlock(self) -> object:
        """Run unlock.lua once for this call, with a receipt that recognises the client's retries of it."""
        return evalsha(
            self._client,
            UNLOCK,
            (self._name, self._signal, self._receipt),
            _core.unlock_args(self._id, self._signal_expire, self._receipt_ttl_ms),
        )

    def reset(self) -> None:
        """Forcibly delete the lock, whoever holds it, and wake one waiter. Use with care.

        .. versionchanged:: 5.0
           Stops this instance's auto-renewal first.
        """
        ticket = self._gate.begin_release()
        try:
            self._stop_lock_renewer()
            evalsha(self._client, RESET, (self._name, self._signal), (str(self._signal_expire),))
        finally:
            if ticket is not None:
                self._renewed = False
                self._gate.leave(ticket)

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
    #
    # One daemon thread per client object renews all of that client's locks,
    # pipelining the extends that fall due together (see ``_renewal``). The 4.x
    # log messages still say "renewal thread": they are emitted per lock, at the
    # same moments as when each lock had a thread of its own.

    def _renew(self) -> None:
        """Extend once for auto-renewal, when the scheduler cannot pipeline this lock's extend.

        That is for a client without ``pipeline()``, a cluster client (whose
        pipelines refuse EVALSHA), or a subclass that overrides :meth:`extend`
        (which renewal then calls, as 4.x did). Errors propagate:
        the scheduler retries them until the lease runs out.
        """
        self.extend(expire=self._expire)

    def _start_lock_renewer(self) -> None:
        interval = _core.check_renewal_interval(self._lock_renewal_interval)
        assert interval is not None
        logger_for_refresh_start.debug(
            "Starting renewal thread for Lock(%r). Refresh interval: %s seconds.", self._name, interval
        )
        pipelined = type(self).extend is Lock.extend and type(self)._renew is Lock._renew
        self._lock_renewal_thread = _renewal.renew(self, interval, pipelined=pipelined)

    def _stop_lock_renewer(self) -> None:
        renewal, self._lock_renewal_thread = self._lock_renewal_thread, None
        if renewal is None or not renewal.is_alive():
            return
        logger_for_refresh_shutdown.debug("Signaling renewal thread for Lock(%r) to exit.", self._name)
        # Waits for an extend of this lock in flight, so none lands after the release.
        renewal.stop(until=self._lease_deadline)
        logger_for_refresh_exit.debug("Renewal thread for Lock(%r) exited.", self._name)


def reset_all(redis_client: RedisClient, signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS) -> int:
    """Forcibly delete every lock (every ``lock:*`` key), waking one waiter of each. Use with care.

    Walks the keyspace with SCAN in pages, never KEYS, so it does not block the server.

    :param redis_client: a synchronous client.
    :param signal_expire: lifetime of the wake-up signals, in milliseconds.
    :returns: the number of locks deleted.

    .. versionchanged:: 5.0
       Uses SCAN instead of KEYS; returns the count; takes ``signal_expire``.
    """
    _clients.check_client(redis_client, strict=False, flavour="sync", needs_commands=True)
    expire_arg = (str(_core.validate_signal_expire(signal_expire)),)
    deleted = 0
    if _clients.is_sync_cluster(redis_client):
        # scan_iter walks every primary; a script may only touch keys of one slot.
        page: list[object] = []
        for key in redis_client.scan_iter(match=_keys.LOCK_PREFIX + "*", count=_keys.RESET_ALL_SCAN_COUNT):
            page.append(key)
            if len(page) >= _keys.RESET_ALL_SCAN_COUNT:
                deleted += _reset_cluster_page(redis_client, page, expire_arg)
                page = []
        return deleted + _reset_cluster_page(redis_client, page, expire_arg)
    cursor = 0
    while True:
        reply = redis_client.scan(
            cursor=cursor, match=_keys.LOCK_PREFIX + "*", count=_keys.RESET_ALL_SCAN_COUNT
        )
        cursor, keys = _core.parse_scan_reply(reply)
        batch, locks = _keys.reset_all_batch(keys)
        if batch:
            deleted += _core.as_int_reply(
                evalsha(redis_client, RESET_ALL, batch, (*expire_arg, str(locks))), "reset_all"
            )
        if cursor == 0:
            return deleted


def _reset_cluster_page(redis_client: RedisClient, keys: list[object], expire_arg: tuple[str]) -> int:
    deleted = 0
    for group, locks in _keys.reset_all_groups(keys):
        deleted += _core.as_int_reply(
            evalsha(redis_client, RESET_ALL, group, (*expire_arg, str(locks))), "reset_all"
        )
    return deleted
