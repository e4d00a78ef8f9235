"""The asyncio :class:`AsyncLock`, its renewal task, and :func:`async_reset_all`.

The twin of ``_sync``: same constructor, methods, exceptions, messages and
loggers, with every method that talks to Redis a coroutine. Decisions live in
``_core``; this module only talks to Redis and waits.

The primitives that differ from the sync flavour:

- waiting is ``await client.blpop(...)`` and :func:`asyncio.sleep`, never a poll;
- renewal is one :class:`asyncio.Task` per (running loop, client) for all of the
  client's locks on that loop (a thread per client in ``_sync``; see ``_renewal``),
  holding only weak references to the locks; release stops it for the lock and
  awaits an extend of it in flight;
- the id belongs to the instance, not to a thread or a context, so a lock
  acquired in one task can be released from another;
- cancellation: the acquire script and the release script, once sent, are run to
  completion in a shielded task, so cancelling never leaves Redis and the
  instance disagreeing about who holds the lock (see ``AsyncLock._attempt`` and
  ``AsyncLock.release``).
"""

from __future__ import annotations

import asyncio
import sys
import time as mod_time
from typing import TYPE_CHECKING, Any, Final

from . import _clients, _core, _keys, _local, _renewal
from ._core import (
    logger_for_acquire,
    logger_for_refresh_exit,
    logger_for_refresh_shutdown,
    logger_for_refresh_start,
    logger_for_release,
)
from ._scripts import ACQUIRE, EXTEND, RESET, RESET_ALL, UNLOCK, evalsha_async, evalsha_then_wait_async

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import TracebackType

    from typing_extensions import Self

    from .typing import AsyncRedisClient

__all__ = ["AsyncLock", "async_reset_all"]

#: Tasks finishing a shielded script after their caller was cancelled. asyncio
#: keeps only weak references to tasks, so they are held here until done.
_background: Final[set[asyncio.Task[Any]]] = set()


def _in_background(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


class AsyncLock:
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
    :param name: the lock's name; the keys are ``lock:<name>`` and ``lock-signal:<name>``.
    :param expire: the lock's lifetime in seconds, with millisecond precision; ``None``
        (or any falsy value) means the lock never expires.
    :param id: the value stored in the lock key, as ``str`` or ``bytes`` (non-ASCII
        bytes are base64-encoded, as in 4.x); random by default. Locks sharing an id
        own the lock together.
    :param auto_renewal: renew the lock every ``expire * 2/3`` seconds from a task on
        the running event loop while it is held. Needs ``expire``. To use another
        interval, subclass and set ``self._lock_renewal_interval`` after calling
        ``super().__init__()``.
    :param strict: require ``redis_client`` to be a known asyncio client class.
    :param signal_expire: how long an unconsumed wake-up signal lives, in milliseconds.
    :param blocking: whether the ``async with`` statement waits for the lock.
    :param timeout: how long the ``async with`` statement waits, in seconds (``None``:
        forever). It does not apply to :meth:`acquire`, which takes its own ``timeout``.
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
    :raises InvalidArgumentType: (a :class:`TypeError`) for an argument of the wrong
        type, including a synchronous client.

    The constructor performs no I/O and needs no running event loop.

    .. versionadded:: 5.0
    """

    _lock_renewal_interval: float | None
    #: Not a task since 5.0: a future done once this lock's renewal (by its loop's
    #: and client's scheduler task) has ended; None when the lock is not being renewed.
    _lock_renewal_task: asyncio.Future[None] | None

    def __init__(
        self,
        redis_client: AsyncRedisClient,
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
            flavour="async",
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
        self._replicated_client: _clients.AsyncPipeliningClient | None = (
            redis_client if options.wait_replicas and _clients.supports_async_pipeline(redis_client) else None
        )
        self._lock_renewal_task = None
        self._lock_renewal: _renewal.AsyncRenewal | None = None
        self._lease_deadline = 0.0
        # Which task holds this object (see _local): like asyncio.Lock, one at a time.
        self._gate = _local.TaskGate()
        self._generated_id = settings.generated_id
        self._id_pid = _core.current_pid()
        # Whether the current hold is auto-renewed (its lease then bounds it: see `lost`).
        self._renewed = False
        self._lost: BaseException | None = None

    def __repr__(self) -> str:
        return f"<{_clients.public_name(type(self))} {self._name!r}>"

    @classmethod
    def register_scripts(cls, redis_client: object) -> None:
        """Do nothing: kept for parity with :meth:`Lock.register_scripts <redis_lock.Lock.register_scripts>`.

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
        """
        if self._lost is None and _core.lease_lost(self._renewed, self._lease_deadline, mod_time.monotonic()):
            self._lost = _core.lease_ran_out(self._name)
        return self._lost is not None

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire the lock.

        :param blocking: wait for the lock if it is busy; with ``False``, one attempt.
        :param timeout: the longest wait, in seconds (fractions allowed); ``None`` waits forever.
        :returns: True if the lock was acquired, False if it was busy (non-blocking) or the timeout passed.
        :raises AlreadyAcquired: this task holds this object already, or another
            object with the same (chosen) ``id`` holds the lock.
        :raises TimeoutNotUsable: ``timeout`` given with ``blocking=False``.
        :raises InvalidTimeout: negative or non-finite ``timeout``.
        :raises TimeoutTooLarge: ``timeout`` greater than ``expire`` without auto-renewal.
        :raises NotReplicated: (a :class:`NotAcquired`) with ``wait_replicas``: the lock
            was taken, but too few replicas acknowledged it in time, so it was released
            again. Each attempt may then take up to ``wait_replicas_timeout`` longer.
        :raises asyncio.CancelledError: when cancelled; the lock is then not held by this instance.

        Tasks sharing this object take turns, as with :class:`asyncio.Lock`: while
        one holds it, another task's ``acquire()`` waits in this process, without
        Redis traffic, within its ``blocking`` and ``timeout``. Any task may
        :meth:`release` it.

        A wait cut short by a failover (the server force-unblocks it with
        ``UNBLOCKED``, or drops the connection) counts as a wake-up: the lock is
        tried again at once, and an error then propagates.
        """
        request = self._prepare_acquire(blocking, timeout)
        logger_for_acquire.debug("Acquiring Lock(%r) ...", self._name)
        ticket = await self._gate.enter(blocking=request.blocking, deadline=request.deadline)
        if ticket is None:
            logger_for_acquire.warning("Failed to acquire Lock(%r).", self._name)
            return False
        again = ticket.held  # this task holds the object already: Redis decides (see _local)
        request, self._id, self._id_pid = _core.request_for_pass(
            request, again=again, generated=self._generated_id, id_pid=self._id_pid, pid=_core.current_pid()
        )
        undo: list[asyncio.Task[Any]] = []
        try:
            acquired = await self._acquire_in_redis(request, undo)
        except BaseException:
            if again:
                pass  # still held from before
            elif undo:
                # A cancelled attempt is being undone in the background: the gate
                # stays closed until Redis has answered (see _attempt).
                undo[0].add_done_callback(lambda _: self._gate.leave(ticket))
            else:
                self._gate.leave(ticket)
            raise
        if not acquired:
            if not again:
                self._gate.leave(ticket)
        elif not self._gate.hold(ticket):
            # A release from another task started while this holder acquired again.
            await self._unlock()
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

    async def _acquire_in_redis(self, request: _core.AcquireRequest, undo: list[asyncio.Task[Any]]) -> bool:
        """The acquire loop, run by the task that passed the gate: try, wait, try again."""
        interrupted = False
        while True:
            sent = mod_time.monotonic()
            reply = await self._attempt(request, undo)
            step = _core.next_acquire_step(reply, request, now=mod_time.monotonic(), chunk=self._wait_chunk)
            if not isinstance(step, _core.WaitPlan):
                break
            # Cancelled here, nothing is held. A BLPOP cancelled just as it popped
            # a signal swallows that wake-up; the other waiters then see the free
            # lock at their next re-check (at most a wait chunk, see _core.MAX_WAIT_CHUNK).
            if step.blpop:
                try:
                    woken = await self._client.blpop([self._signal], step.blpop)
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
                await asyncio.sleep(max(0.0, step.sleep_until - mod_time.monotonic()))
        if not step:
            logger_for_acquire.warning("Failed to acquire Lock(%r).", self._name)
            return False
        # From the reply to the return there is no await, so no cancellation can
        # land between taking the lock and reporting it (see _attempt for the rest).
        logger_for_acquire.info("Acquired Lock(%r).", self._name)
        self._cancel_lock_renewer()
        self._lost = None
        self._lease_deadline = _core.lease_end(sent, self._expire, self._lease_deadline)
        self._renewed = _core.renews(self._lock_renewal_interval, self._expire)
        if self._renewed:
            self._start_lock_renewer()
        return True

    async def _attempt(self, request: _core.AcquireRequest, undo: list[asyncio.Task[Any]]) -> object:
        """Run acquire.lua once, undoing it if the caller is cancelled meanwhile.

        Timeline of a cancellation (by ``task.cancel()``, :func:`asyncio.timeout`, ...)::

            caller task             attempt task (shielded)       Redis
              |-- starts ---------->|-- EVALSHA acquire ------->| SET NX: lock taken
              X cancelled           |                           |
              |-- waits (shielded)  |<-- {0, 0} (acquired) -----|
              |                     |   undo: EVALSHA unlock -->| DEL, LPUSH signal
              |<--------------------|                           |
              |-- re-raises CancelledError

        The script may be anywhere on its way when the cancellation lands: not yet
        sent, executed with the reply in flight, or answered with the caller not yet
        resumed. Cancelling the command itself would leave that unknown (redis-py
        drops the connection, and with it the reply), so the script runs in its own
        task that the cancellation cannot reach, and its reply decides: only a
        reply by which *this* call took the key (:func:`redis_lock._core.takes_lock`:
        ``acquired``, or ``owned`` after a client retry of this very call) is
        undone; a busy reply, or ``owned`` by another instance with the same id,
        left nothing to undo. A second
        cancellation while this clean-up runs lets it finish in the background;
        the undo task is put in ``undo``, so that the object's gate stays closed
        to the other tasks until it is done.
        """
        attempt = asyncio.ensure_future(self._try_acquire(request))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            undo.append(_in_background(self._undo_attempt(attempt, request)))
            # A second cancellation interrupts only this wait; the undo goes on.
            await asyncio.shield(undo[0])
            raise

    async def _try_acquire(self, request: _core.AcquireRequest) -> object:
        """Run acquire.lua once; with ``wait_replicas``, WAIT for the replicas too.

        The WAIT goes on the script's connection, in the same round trip. A lock
        taken but acknowledged by too few replicas is released again before the
        error propagates; if that release fails too, its error propagates instead,
        with the first as its context, and the key lives until it expires. All of
        this runs inside the shielded attempt task (see :meth:`_attempt`).
        """
        client = self._replicated_client
        if client is None:
            return await evalsha_async(self._client, ACQUIRE, request.keys, request.args)
        reply, acknowledged = await evalsha_then_wait_async(
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
            await self._unlock()

    async def _undo_attempt(self, attempt: asyncio.Future[object], request: _core.AcquireRequest) -> None:
        try:
            acquired = _core.takes_lock(await attempt, request)
        except Exception:
            return  # the script failed, so it took nothing that we know of
        if not acquired:
            return
        logger_for_release.debug("Releasing Lock(%r).", self._name)
        try:
            await self._unlock()
        except Exception as exc:
            logger_for_release.warning(
                "Releasing Lock(%r) after a cancelled acquire failed: %r.", self._name, exc
            )

    async def extend(self, expire: float | None = None) -> None:
        """Reset the lock's expiry to ``expire`` seconds (default: the constructor's ``expire``).

        :raises NotAcquired: this lock's id does not hold the lock.
        :raises NotExpirable: the lock key has no expiry.
        :raises InvalidArgumentType: (a :class:`TypeError`) no ``expire`` here nor at construction.
        """
        seconds = _core.extend_seconds(expire, self._expire)
        sent = mod_time.monotonic()
        reply = await evalsha_async(
            self._client, EXTEND, (self._name,), (self._id, str(_core.to_ms(seconds)))
        )
        _core.check_extend_reply(reply, self._name)
        self._lease_deadline = _core.lease_end(sent, seconds, self._lease_deadline)

    async def release(self) -> None:
        """Release the lock held by this lock's id, and wake one waiter.

        Stops auto-renewal first. To release a lock acquired elsewhere, use
        ``AsyncLock(conn, name, id=id_from_other_place).release()``, or :meth:`reset`.

        Cancelling a release does not abort it: the renewal task is stopped and the
        release script runs to completion, and only then is the local state (the
        :attr:`lost` flag) cleared, from Redis's answer. Then
        :class:`asyncio.CancelledError` propagates. A second cancellation lets the
        release finish in the background.

        :raises NotAcquired: this lock's id does not hold the lock.
        :raises LockLost: auto-renewal had already lost the lock (a :class:`NotAcquired`).
        """
        releasing = asyncio.ensure_future(self._release(self._gate.begin_release()))
        try:
            await asyncio.shield(releasing)
        except asyncio.CancelledError:
            # Wait for the release to finish, then let the cancellation win. A
            # second cancellation interrupts only this wait; the release goes on.
            await asyncio.shield(_in_background(self._await_release(releasing)))
            raise

    async def _await_release(self, releasing: asyncio.Future[None]) -> None:
        # Retrieves the outcome of a release whose caller was cancelled, so its
        # error is logged rather than reported as "never retrieved".
        try:
            await releasing
        except Exception as exc:
            logger_for_release.warning(
                "Releasing Lock(%r) failed after it was cancelled: %r.", self._name, exc
            )

    async def _release(self, ticket: _local.Ticket | None) -> None:
        try:
            self.lost  # noqa: B018 (latches a lease that ran out, to report it below)
            await self._stop_lock_renewer()
            logger_for_release.debug("Releasing Lock(%r).", self._name)
            reply = await self._unlock()
            # Redis has answered: only now forget a loss, so that a release cut short
            # before this point still reports it when retried.
            lost, self._lost = self._lost, None
        finally:
            if ticket is not None:
                self._renewed = False
                self._gate.leave(ticket)
        if lost is not None:
            raise _core.lock_lost_error(self._name) from lost
        _core.check_unlock_reply(reply, self._name)

    async def _unlock(self) -> object:
        """Run unlock.lua once for this call, with a receipt that recognises the client's retries of it."""
        return await evalsha_async(
            self._client,
            UNLOCK,
            (self._name, self._signal, self._receipt),
            _core.unlock_args(self._id, self._signal_expire, self._receipt_ttl_ms),
        )

    async def reset(self) -> None:
        """Forcibly delete the lock, whoever holds it, and wake one waiter. Use with care."""
        ticket = self._gate.begin_release()
        try:
            await self._stop_lock_renewer()
            await evalsha_async(self._client, RESET, (self._name, self._signal), (str(self._signal_expire),))
        finally:
            if ticket is not None:
                self._renewed = False
                self._gate.leave(ticket)

    async def locked(self) -> bool:
        """True if the lock is held, by any id."""
        return _core.as_int_reply(await self._client.exists(self._name), "EXISTS") == 1

    async def owned(self) -> bool:
        """True if the lock is held by this lock's id."""
        return await self.get_owner_id() == self._id

    async def get_owner_id(self) -> str | None:
        """The id holding the lock, or None if it is free."""
        return _core.decode_owner(await self._client.get(self._name))

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
        if exc_value is None:
            await self.release()
            return
        # The body raised (or was cancelled): a release error must not replace its exception.
        try:
            await self.release()
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
    # One task per (event loop, client) renews all of that client's locks on the
    # loop, pipelining the extends that fall due together (see ``_renewal``).
    # The 4.x log messages are emitted per lock, at the same moments as when each
    # lock had a task of its own.

    async def _renew(self) -> None:
        """Extend once for auto-renewal, when the scheduler cannot pipeline this lock's extend.

        That is for a client without ``pipeline()``, a cluster client (whose
        pipelines refuse EVALSHA), or a subclass that overrides :meth:`extend`.
        Errors propagate: the scheduler retries them until the lease runs out.
        """
        await self.extend(expire=self._expire)

    def _start_lock_renewer(self) -> None:
        interval = _core.check_renewal_interval(self._lock_renewal_interval)
        assert interval is not None
        logger_for_refresh_start.debug(
            "Starting renewal thread for Lock(%r). Refresh interval: %s seconds.", self._name, interval
        )
        pipelined = type(self).extend is AsyncLock.extend and type(self)._renew is AsyncLock._renew
        renewal = _renewal.renew_async(self, interval, pipelined=pipelined)
        self._lock_renewal = renewal
        self._lock_renewal_task = renewal.future

    def _cancel_lock_renewer(self) -> _renewal.AsyncRenewal | None:
        """End this lock's renewal without waiting. Returns its entry if it was still running."""
        renewal = self._lock_renewal
        self._lock_renewal = self._lock_renewal_task = None
        if renewal is None or not renewal.is_alive():
            return None
        logger_for_refresh_shutdown.debug("Signaling renewal thread for Lock(%r) to exit.", self._name)
        renewal.stop()
        return renewal

    async def _stop_lock_renewer(self) -> None:
        renewal = self._cancel_lock_renewer()
        if renewal is None:
            return
        # Waits for an extend of this lock in flight, so none lands after the release.
        await renewal.wait_stopped(until=self._lease_deadline)
        logger_for_refresh_exit.debug("Renewal thread for Lock(%r) exited.", self._name)


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
    _clients.check_client(redis_client, strict=False, flavour="async", needs_commands=True)
    expire_arg = (str(_core.validate_signal_expire(signal_expire)),)
    deleted = 0
    if _clients.is_async_cluster(redis_client):
        # scan_iter walks every primary; a script may only touch keys of one slot.
        page: list[object] = []
        async for key in redis_client.scan_iter(
            match=_keys.LOCK_PREFIX + "*", count=_keys.RESET_ALL_SCAN_COUNT
        ):
            page.append(key)
            if len(page) >= _keys.RESET_ALL_SCAN_COUNT:
                deleted += await _reset_cluster_page(redis_client, page, expire_arg)
                page = []
        return deleted + await _reset_cluster_page(redis_client, page, expire_arg)
    cursor = 0
    while True:
        reply = await redis_client.scan(
            cursor=cursor, match=_keys.LOCK_PREFIX + "*", count=_keys.RESET_ALL_SCAN_COUNT
        )
        cursor, keys = _core.parse_scan_reply(reply)
        batch, locks = _keys.reset_all_batch(keys)
        if batch:
            deleted += _core.as_int_reply(
                await evalsha_async(redis_client, RESET_ALL, batch, (*expire_arg, str(locks))), "reset_all"
            )
        if cursor == 0:
            return deleted


async def _reset_cluster_page(
    redis_client: AsyncRedisClient, keys: list[object], expire_arg: tuple[str]
) -> int:
    deleted = 0
    for group, locks in _keys.reset_all_groups(keys):
        deleted += _core.as_int_reply(
            await evalsha_async(redis_client, RESET_ALL, group, (*expire_arg, str(locks))), "reset_all"
        )
    return deleted
