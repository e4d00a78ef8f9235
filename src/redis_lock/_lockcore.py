"""The lock, written once: state, decisions and the steps of every operation, with no I/O.

:class:`LockCore` is the part :class:`~redis_lock.Lock` and
:class:`~redis_lock.AsyncLock` share: the validated settings, the local gate,
the lease, and the steps (``_engine``) of acquire, release, extend, reset and
the queries. ``Lock`` drives those steps with :func:`~redis_lock._engine.drive`,
``AsyncLock`` with :func:`~redis_lock._engine.drive_async`; each keeps only
what really differs: its gate (threads or tasks) and its renewal (a thread or a
task per client). The 4.x attribute names (``_name``, ``_signal``, ``_expire``,
``_id``, ``_lock_renewal_interval``, ...) are kept: subclasses read them.
"""

from __future__ import annotations

import functools
import os
import time as mod_time
from typing import TYPE_CHECKING, Final, TypeVar

from . import _clients, _core, _keys
from ._core import logger_for_acquire
from ._engine import Call, Collect, Steps, StopRenewal
from ._exceptions import RedisLockError
from ._holdcore import HoldCore, Tries
from ._scripts import ACQUIRE, EXTEND, FAIR, RESET, RESET_ALL, UNLOCK, run, run_then_wait

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Self

    from ._exceptions import LockLost
    from .hooks import LockObserver

__all__ = ["LockCore", "reset_all_steps", "shared_doc"]

#: The constructor parameters both flavours document alike: ``{identity}`` and ``{shared}`` in a class docstring.
_IDENTITY_PARAMETERS: Final = """    :param name: the lock's name; the keys are ``lock:<name>`` and ``lock-signal:<name>``.
    :param expire: the lock's lifetime in seconds, with millisecond precision; ``None``
        (or any falsy value) means the lock never expires.
    :param id: the value stored in the lock key, as ``str`` or ``bytes`` (non-ASCII
        bytes are base64-encoded, as in 4.x); random by default. Locks sharing an id
        own the lock together.
"""
_SHARED_PARAMETERS: Final = """    :param wait_replicas: how many replicas must acknowledge the lock key before
        :meth:`acquire` returns (Redis ``WAIT``, on the connection that took the
        lock). If fewer do within ``wait_replicas_timeout``, the lock is released
        again and :meth:`acquire` raises :class:`~redis_lock.NotReplicated`. This
        narrows the window in which a failover loses the lock (see :doc:`/cluster`).
        0, the default, does not wait. Needs a client with ``pipeline()``; not
        supported on cluster clients yet.
    :param wait_replicas_timeout: how long :meth:`acquire` waits for those replicas,
        in seconds (fractions allowed); at most half the client's socket timeout.
    :param fencing: mint a fencing token with every grant, in the script that takes
        the lock: :attr:`fencing_token`, an ``int`` greater than every token minted
        for the name before (see :doc:`/fencing`). Kept in ``lock-fence:<name>``.
    :param fencing_expire: how long the name's fencing counter lives after its last
        grant, in seconds (default 7 days; ``None``: for ever). Losing it is safe:
        the next token starts from the server's clock, above every earlier one.
    :param renewal_interval: with ``auto_renewal``, renew every this many seconds
        (less than ``expire``) instead of every ``expire * 2/3``.
    :param max_hold: with ``auto_renewal``, stop renewing this many seconds after
        the lock was acquired: the key then expires when the hold reaches
        ``max_hold``, and the hold is reported lost (:attr:`lost`, ``on_lost``,
        :class:`~redis_lock.LockLost` from :meth:`release`). It keeps a stuck job
        from holding the lock for ever.
    :param on_lost: called as ``on_lost(lock)``, once per hold, from the renewal
        thread (or task) when auto-renewal loses the lock (or ``max_hold`` ends
        it), so that a long job can stop at once instead of polling :attr:`lost`.
        A plain function; an exception it raises is logged. If the renewal's
        request is stuck (behind a partition), it is called when that returns,
        while :attr:`lost` turns True when the lease ends.
    :param observer: a :class:`redis_lock.hooks.LockObserver` told of waits,
        acquisitions, releases, renewals and losses (for metrics: see
        :mod:`redis_lock.otel`); an exception it raises is logged.
    :param fair: first come, first served: waiters queue in arrival order, and a
        release hands the lock straight to the first of them, who returns from
        :meth:`acquire` holding it (see :doc:`/fair`). Every contender on the name
        should be fair: a non-fair one may take a free lock before the queue.
    :param queue_lease: with ``fair``, how long (seconds) a waiter whose process
        died can hold up the queue before it is skipped; 2 by default. A waiter
        refreshes its place every third of it.
    :raises InvalidArgument: (a :class:`ValueError`) for an unusable value.
"""


def shared_doc(doc: str | None) -> str:
    """``doc`` with its ``{identity}`` and ``{shared}`` lines replaced by the parameters both flavours share."""
    assert doc is not None
    assert "    {shared}\n" in doc
    assert "    {identity}\n" in doc
    return doc.replace("    {identity}\n", _IDENTITY_PARAMETERS).replace("    {shared}\n", _SHARED_PARAMETERS)


C = TypeVar("C")


class LockCore(HoldCore[C]):
    """State and steps shared by ``Lock`` and ``AsyncLock`` (see the module docstring).

    ``C`` is the client type: ``Lock`` is a ``LockCore[RedisClient]``, ``AsyncLock``
    a ``LockCore[AsyncRedisClient]``, so a checker rejects the other flavour's client.
    """

    _kind = "Lock"

    def __init__(
        self,
        redis_client: C,
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
        fencing: bool = False,
        fencing_expire: float | None = _core.DEFAULT_FENCING_EXPIRE,
        renewal_interval: float | None = None,
        max_hold: float | None = None,
        on_lost: Callable[[Self], object] | None = None,
        observer: LockObserver | None = None,
        fair: bool = False,
        queue_lease: float | None = None,
    ) -> None:
        settings = _core.lock_settings(
            redis_client,
            name,
            expire,
            id,
            auto_renewal,
            strict,
            signal_expire,
            blocking,
            timeout,
            wait_replicas,
            wait_replicas_timeout,
            fencing,
            fencing_expire,
            self._flavour,
            renewal_interval,
            max_hold,
            fair,
            queue_lease,
        )
        _core.validate_hooks(on_lost, observer)
        # The 4.x attribute names, which subclasses read (and _lock_renewal_interval, which they set);
        # the other options are read through properties, from the shared options object.
        self._client = redis_client
        self._name, self._signal, self._receipt, self._id, self._generated_id, self._options = settings
        self.blocking = self._options.blocking
        self._lock_renewal_interval = self._options.renewal_interval
        # The current hold, as plain data (what renewal works on).
        self._lease = _core.Lease(
            redis_client,
            self._name,
            self._id,
            self._options.expire,
            name=name,
            observer=observer,
            on_lost=on_lost,
        )
        #: When the current hold was acquired (a ``monotonic()`` time), for the observer.
        self._acquired_at = 0.0
        self._id_pid = _core.current_pid()
        #: The fencing token of the current hold (with ``fencing``), else None.
        self._fencing_token: int | None = None
        #: With ``fencing``, the name's fencing counter (``lock-fence:<name>``), else None.
        self._fence = _keys.fence_key(self._name) if self._options.fencing else None
        #: Fair mode's queue, waiters hash and wake list prefix (see ``lua/fair.lua``).
        self._fair_keys = _keys.fair_keys(self._name)

    @property
    def _expire(self) -> float | None:
        return self._options.expire

    @property
    def _signal_expire(self) -> int:
        return self._options.signal_expire

    @property
    def _timeout(self) -> float | None:
        return self._options.timeout

    @property
    def _wait_chunk(self) -> float:
        return self._options.wait_chunk

    @property
    def _wait_replicas(self) -> int:
        return self._options.wait_replicas

    @property
    def _wait_replicas_timeout(self) -> float:
        return self._options.wait_replicas_timeout

    @property
    def _receipt_ttl_ms(self) -> int:
        return self._options.receipt_ttl_ms

    @property
    def _cluster(self) -> bool:
        return self._options.cluster

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
    def fencing_token(self) -> int | None:
        """The fencing token of this object's current hold: an ``int``; None when not held or without ``fencing``.

        Every grant of the name to a lock with ``fencing=True`` mints a token
        greater than every token minted for the name before (see :doc:`/fencing`).
        Pass it with every write to the protected resource, which keeps the
        largest token it has seen and refuses older ones. Renewal and
        :meth:`extend` keep it; :meth:`release` and :meth:`reset` clear it. After
        a loss (:attr:`lost`) it stays, so that the resource refuses the writes
        of a holder that lost its lease to a newer one.

        .. versionadded:: 5.0
        """
        return self._fencing_token

    # -- acquire ---------------------------------------------------------------------

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
            fence_key=self._fence,
            fence_ttl_ms=self._options.fencing_ttl_ms,
        )

    def _tries(self, request: _core.AcquireRequest) -> Tries:
        if not self._options.fair:
            return Tries(
                request,
                self._wait_chunk,
                self._try_acquire_steps,
                functools.partial(self._undo_attempt, request),
                wake=self._signal,
                back=self._name,
            )
        return _FairTries(
            request,
            self._wait_chunk,
            self._options.queue_refresh,
            self._fair_keys[2],
            self._fair_steps,
            self._undo_fair,
            self._cancel_fair_steps,
        )

    # -- fair mode -------------------------------------------------------------------

    def _fair_script_keys(self) -> tuple[str, ...]:
        queue, waiters, _ = self._fair_keys
        return (self._name, self._signal, queue, waiters, _keys.fence_key(self._name), self._receipt)

    def _fair_steps(self, op: str, request: _core.AcquireRequest, token: str) -> Steps[object]:
        args = _core.fair_args(
            op, request, token, self._fair_keys[2], self._signal_expire, self._options.queue_lease_ms
        )
        return run(FAIR, self._fair_script_keys(), args, cluster=self._cluster)

    def _cancel_fair_steps(self, request: _core.AcquireRequest, token: str) -> Steps[None]:
        try:
            yield from self._fair_steps(_core.FAIR_CANCEL, request, token)
        except Exception as exc:
            logger_for_acquire.warning(
                "Leaving the queue of Lock(%r) failed: %r; the place lapses with its lease.", self._name, exc
            )

    def _undo_fair(self, request: _core.AcquireRequest, token: str, reply: object) -> Steps[None]:
        """After a cancelled fair attempt: release what it took, or leave the queue it joined."""
        try:
            taken = _core.fair_taken(_core.parse_fair_reply(reply), request)
        except RedisLockError:
            taken = False
        if taken:
            yield from self._release_undone()
        else:
            yield from self._cancel_fair_steps(request, token)

    def _try_acquire_steps(self, request: _core.AcquireRequest) -> Steps[object]:
        """Run acquire.lua once; with ``wait_replicas``, WAIT for the replicas too.

        The WAIT goes on the script's connection, in the same round trip. A lock
        taken but acknowledged by too few replicas is released again before the
        error propagates; if that release fails too, its error propagates instead,
        with the first as its context, and the key lives until it expires.
        """
        if not self._wait_replicas:
            return run(ACQUIRE, request.keys, request.args, cluster=self._cluster)
        return self._acquire_replicated_steps(request)

    def _acquire_replicated_steps(self, request: _core.AcquireRequest) -> Steps[object]:
        """acquire.lua and WAIT in one round trip; too few acknowledgements release the lock again."""
        reply, acknowledged = yield from run_then_wait(
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
            yield from self._unlock_steps()

    def _undo_attempt(self, request: _core.AcquireRequest, reply: object) -> Steps[None]:
        """After a cancelled acquire: give back what its attempt took (only a reply by which this call took it)."""
        if _core.takes_lock(reply, request):
            yield from self._release_undone()

    @property
    def _title(self) -> str:
        return f"Lock({self._name})"

    def _release_script_steps(self) -> Steps[object]:
        return self._unlock_steps()

    def _check_release_reply(self, reply: object) -> None:
        _core.check_unlock_reply(reply, self._name)

    def _lost_error(self) -> LockLost:
        return _core.lock_lost_error(self._name)

    def _granted(self, token: int | None) -> None:
        self._fencing_token = token

    def _released(self) -> None:
        self._fencing_token = None

    # -- release, extend, reset -------------------------------------------------------

    def _unlock_steps(self) -> Steps[object]:
        """Run unlock.lua once for this call, with a receipt that recognises the client's retries of it.

        A fair lock runs fair.lua's release instead, which hands the lock to the next waiter.
        """
        if self._options.fair:
            args = _core.fair_release_args(
                self._id, self._fair_keys[2], self._signal_expire, self._receipt_ttl_ms
            )
            return run(FAIR, self._fair_script_keys(), args, cluster=self._cluster)
        return run(
            UNLOCK,
            (self._name, self._signal, self._receipt),
            _core.unlock_args(self._id, self._signal_expire, self._receipt_ttl_ms),
            cluster=self._cluster,
        )

    def _extend_steps(self, expire: object) -> Steps[None]:
        seconds = _core.extend_seconds(expire, self._expire)
        sent = mod_time.monotonic()
        reply = yield from run(
            EXTEND, (self._name,), (self._id, str(_core.to_ms(seconds))), cluster=self._cluster
        )
        _core.check_extend_reply(reply, self._name)
        self._lease.deadline = _core.lease_end(sent, seconds, self._lease.deadline)

    def _reset_steps(self) -> Steps[None]:
        ticket = self._gate.begin_release()
        try:
            if self._renewing:
                yield StopRenewal(self._lease.deadline)
            yield from run(RESET, *_reset_arguments(self._name, self._signal_expire), cluster=self._cluster)
            self._fencing_token = None
        finally:
            if ticket is not None:
                self._lease.renewed = False
                self._gate.leave(ticket)

    # -- queries ---------------------------------------------------------------------

    def _locked_steps(self) -> Steps[bool]:
        return _core.as_int_reply((yield Call("exists", (self._name,))), "EXISTS") == 1

    def _owner_steps(self) -> Steps[str | None]:
        return _core.decode_owner((yield Call("get", (self._name,))))

    def _owned_steps(self) -> Steps[bool]:
        return (yield from self._owner_steps()) == self._id


class _FairTries(Tries):
    """Fair mode's tries (``lua/fair.lua``): queue, or take; woken by a hand-off, the call holds the lock.

    The call has its own token and wake list (``lock-wake:<name>:<token>``),
    watched by the client's hub like any signal list. The release that hands
    the lock over pushes "h" there: popped, the call returns holding the lock
    without another request, its lease counted from its last try that found the
    lock busy (the hand-off came later). Each try refreshes the call's place;
    past the deadline a try gives up unless granted, in one atomic step, so a
    lock handed over at that moment is never dropped. A call ending by an
    exception leaves the queue in the background, handing on a lock handed to
    it meanwhile.
    """

    def __init__(
        self,
        request: _core.AcquireRequest,
        chunk: float,
        refresh: float,
        wake_prefix: str,
        steps: Callable[[str, _core.AcquireRequest, str], Steps[object]],
        undo: Callable[[_core.AcquireRequest, str, object], Steps[None]],
        cancel: Callable[[_core.AcquireRequest, str], Steps[None]],
    ) -> None:
        self.call = os.urandom(8).hex()
        self._fair_steps = steps
        self._cancel = cancel
        super().__init__(
            request,
            chunk,
            self._attempt_steps,
            functools.partial(undo, request, self.call),
            wake=wake_prefix + self.call,
            back=None,
        )
        self.refresh = refresh
        self.queued_at: float = request.started

    def _attempt_steps(self, request: _core.AcquireRequest) -> Steps[object]:
        return self._fair_steps(_core.fair_op(request, self.sent), request, self.call)

    def decide(self, reply: object) -> bool | _core.WaitPlan:
        parsed = _core.parse_fair_reply(reply)
        step = _core.next_fair_step(
            parsed, self.request, now=mod_time.monotonic(), refresh=self.refresh, chunk=self.chunk
        )
        if isinstance(step, _core.WaitPlan):
            self.queued_at = self.sent
        else:
            self.token = parsed.token
        return step

    def woken(self, signalled: bool, value: object) -> bool:
        handed, token = _core.handed_over(value) if signalled else (False, None)
        if handed:
            self.token = token
            self.sent = self.queued_at
        return handed

    def abort(self, error: BaseException) -> Steps[None] | None:
        return self._cancel(self.request, self.call)


def _reset_arguments(lock_key: str, signal_expire: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """reset.lua's KEYS and ARGV for ``lock_key``: fair mode's queue included, so its waiters queue again."""
    queue, waiters, wake_prefix = _keys.fair_keys(lock_key)
    signal = _keys.SIGNAL_PREFIX + lock_key[len(_keys.LOCK_PREFIX) :]
    return (lock_key, signal, queue, waiters), (str(signal_expire), wake_prefix)


def reset_all_steps(client: object, signal_expire: object, *, flavour: str) -> Steps[int]:
    """Reset every lock (every ``lock:*`` key), waking one waiter of each; return how many were held.

    Walks the keyspace with SCAN in pages, never KEYS. On a cluster client
    ``scan_iter`` walks every primary, and each page is reset in one script
    call per hash slot (a script may only touch keys of one slot). Then every
    fair queue (``lock-queue:*``) is cleared, its waiters woken to queue again.
    """
    _clients.check_client(client, strict=False, flavour=flavour, needs_commands=True)
    expire_ms = _core.validate_signal_expire(signal_expire)
    cluster = _clients.is_cluster_client(client)

    def locks(keys: list[object]) -> Steps[int]:
        deleted = 0
        for group, count in _keys.reset_all_groups(keys) if cluster else [_keys.reset_all_batch(keys)]:
            if group:
                reply = yield from run(RESET_ALL, group, (str(expire_ms), str(count)), cluster=cluster)
                deleted += _core.as_int_reply(reply, "reset_all")
        return deleted

    def queues(keys: list[object]) -> Steps[int]:
        deleted = 0
        for key in keys:
            lock_key = _keys.lock_key_of_queue(key)
            if lock_key is not None:
                reply = yield from run(RESET, *_reset_arguments(lock_key, expire_ms), cluster=cluster)
                deleted += _core.as_int_reply(reply, "reset")
        return deleted

    held = yield from _each_page(client, _keys.LOCK_PREFIX + "*", locks)
    return held + (yield from _each_page(client, _keys.QUEUE_PREFIX + "*", queues))


def _each_page(client: object, match: str, handle: Callable[[list[object]], Steps[int]]) -> Steps[int]:
    """Run ``handle`` on each page of the keys matching ``match`` (SCAN; on a cluster, ``scan_iter``); sum it."""
    count = _keys.RESET_ALL_SCAN_COUNT
    total = 0
    if _clients.is_cluster_client(client):
        keys: list[object] = yield Collect("scan_iter", {"match": match, "count": count})
        for first in range(0, len(keys), count):
            total += yield from handle(keys[first : first + count])
        return total
    cursor = 0
    while True:
        cursor, keys = _core.parse_scan_reply(
            (yield Call("scan", (), {"cursor": cursor, "match": match, "count": count}))
        )
        if keys:
            total += yield from handle(keys)
        if cursor == 0:
            return total
