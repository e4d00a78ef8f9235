"""What a lock and a semaphore share, written once: one hold per object, with no I/O.

:class:`HoldCore` is the common part of :class:`~redis_lock._lockcore.LockCore`
and :class:`~redis_lock._semcore.SemaphoreCore`: the local gate (threads or
tasks sharing one object take turns), the acquire loop (try, wait through the
client's hub, try again), the new hold's lease and renewal, the release that a
cancellation cannot abort, and the ``with`` block's exit. What a try is, and
what a wake-up means, is a :class:`Tries` object of each kind (and mode); the
rest that differs (the scripts, the messages) are small hooks.
"""

from __future__ import annotations

import functools
import sys
import time as mod_time
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from . import _core
from ._core import logger_for_acquire, logger_for_refresh_start, logger_for_release
from ._engine import Detach, EnterGate, Guarded, Host, Steps, StopRenewal
from ._waiting import Entry, Hub, enlist, leave_steps, sleep_steps
from .hooks import notify

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._exceptions import LockLost
    from ._local import Ticket

__all__ = ["HoldCore", "Tries"]


class Tries:
    """What one try of the acquire loop is, and what its reply and a wake-up mean: a lock's usual mode.

    A try runs the kind's acquire script (undone in the background if the call
    is cancelled meanwhile); a wake-up only says "try again". ``sent`` is when
    the granting try was sent (the lease counts from it) and ``token`` its
    fencing token. ``wake`` is the list the call waits on (its hub entry's key)
    and ``back`` the key whose existence stops a give-back of a signal it did
    not use (None: give it back as it was; see ``_waiting.Hub.enlist``).
    """

    sent: float
    token: int | None
    #: A grant makes a signal the call was handed and did not use moot: the lock is held
    #: again, and its release signals anew. Not so for a semaphore, whose other permits
    #: may be free: the signal goes on.
    drop_unused: bool = True

    def __init__(
        self,
        request: _core.AcquireRequest,
        chunk: float,
        steps: Callable[[_core.AcquireRequest], Steps[object]],
        undo: Callable[[object], Steps[None]],
        *,
        wake: str,
        back: str | None,
    ) -> None:
        self.request = request
        self.chunk = chunk
        self._steps = steps
        self._undo = undo
        self.wake = wake
        self.back = back
        self.sent = 0.0
        self.token = None

    def attempt(self) -> Guarded[object]:
        self.sent = mod_time.monotonic()
        return Guarded(self._steps(self.request), self._undo)

    def decide(self, reply: object) -> bool | _core.WaitPlan:
        step = _core.next_acquire_step(reply, self.request, now=mod_time.monotonic(), chunk=self.chunk)
        if step is True:
            self.token = _core.granted_token(reply)
        return step

    def woken(self, signalled: bool, value: object) -> bool:
        """The wait ended (``signalled``: by a signal, popped with ``value``): whether that handed the lock over.

        Never, in this mode: the call tries again.
        """
        return False

    def abort(self, error: BaseException) -> Steps[None] | None:
        """What to send in the background when the call ends by ``error``: nothing, in this mode."""
        return None


C = TypeVar("C")


class HoldCore(Host, Generic[C]):
    """The state and steps a lock and a semaphore share (see the module docstring).

    A subclass sets, in its constructor: ``_client``, ``_name`` (the name logs
    show), ``_id``, ``_generated_id``, ``_id_pid``, ``_options`` (a
    :class:`~redis_lock._core.LockOptions`), ``_lease``, ``_lock_renewal_interval``
    and ``_acquired_at``; and provides the hooks below.
    """

    #: "sync" or "async": which clients the constructor accepts.
    _flavour: ClassVar[str]
    #: What logs and messages call it: "Lock" or "Semaphore".
    _kind: ClassVar[str]

    #: The public class this one is or derives from (Lock, AsyncLock, Semaphore, AsyncSemaphore,
    #: marked ``public=True``): a subclass overriding its ``extend`` or ``_renew`` is renewed
    #: through them, one call at a time, as 4.x did.
    _public: ClassVar[type]

    def __init_subclass__(cls, *, public: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if public:
            cls._public = cls

    _client: C
    _name: str
    _id: str
    _generated_id: bool
    _id_pid: int
    _options: _core.LockOptions
    _lease: _core.Lease
    _lock_renewal_interval: float | None
    _acquired_at: float

    @property
    def _title(self) -> str:
        """How messages name it: ``Lock(lock:<name>)`` (as 4.x), ``Semaphore('<name>')``."""
        raise NotImplementedError  # pragma: no cover - overridden by LockCore and SemaphoreCore

    @property
    def lost(self) -> bool:
        """True once auto-renewal failed to keep the hold (its lease ran out, or another client took it).

        :meth:`release` then raises :class:`~redis_lock.LockLost`; a new
        :meth:`acquire` clears the flag.

        It turns True when the lease of the last confirmed renewal runs out, whatever
        the renewal's I/O is doing (for example waiting in the client's own retries
        behind a network partition), and stays True until the next acquire, or
        until :meth:`release` (which raises :class:`~redis_lock.LockLost` for it).

        .. versionadded:: 5.0
        """
        lease = self._lease
        if lease.lost is None and _core.lease_lost(lease.renewed, lease.deadline, mod_time.monotonic()):
            lease.lost = _core.lease_ran_out(lease.key, lease.failure)
        return lease.lost is not None

    # -- what each flavour provides ---------------------------------------------------

    @property
    def _gate(self) -> Any:
        """Which thread or task holds this object (see ``_local``): one at a time.

        Made on first use (most objects are built, used once and dropped);
        ``dict.setdefault`` keeps one gate even when two threads make it at once.
        """
        gate = self.__dict__.get("_gate_object")
        if gate is None:
            gate = self.__dict__.setdefault("_gate_object", self._new_gate())
        return gate

    @property
    def _renewing(self) -> bool:  # pragma: no cover - overridden by each flavour
        """Whether this object has a renewal to stop (the 4.x test before ``_stop_lock_renewer``)."""
        raise NotImplementedError

    def _new_gate(self) -> Any:  # pragma: no cover - overridden by each flavour
        """A new local gate: a ThreadGate, or a TaskGate."""
        raise NotImplementedError

    def _drop_renewal(self) -> None:  # pragma: no cover - overridden by each flavour
        """End this object's renewal at once, without waiting (no I/O, no suspension)."""
        raise NotImplementedError

    def _start_lock_renewer(self) -> None:  # pragma: no cover - overridden by each flavour
        raise NotImplementedError

    # -- what each kind provides -------------------------------------------------------

    def _prepare_acquire(self, blocking: object, timeout: object) -> _core.AcquireRequest:
        raise NotImplementedError  # pragma: no cover - overridden by each kind

    def _tries(self, request: _core.AcquireRequest) -> Tries:
        raise NotImplementedError  # pragma: no cover - overridden by each kind

    def _release_script_steps(self) -> Steps[object]:
        """Run the kind's release script once for this call."""
        raise NotImplementedError  # pragma: no cover - overridden by each kind

    def _check_release_reply(self, reply: object) -> None:
        raise NotImplementedError  # pragma: no cover - overridden by each kind

    def _lost_error(self) -> LockLost:
        raise NotImplementedError  # pragma: no cover - overridden by each kind

    def _granted(self, token: int | None) -> None:
        """A hold begins, with the fencing ``token`` of its grant (locks keep it)."""

    def _released(self) -> None:
        """A hold ended by a release Redis confirmed (locks forget their fencing token)."""

    def _renewal_plan(self, flavour_class: type) -> tuple[float, bool]:
        """The renewal interval, and whether this object's extends may be pipelined (4.x log line included).

        A subclass that overrides ``extend`` or ``_renew`` is renewed through them, one call per object, as 4.x did.
        """
        interval = _core.check_renewal_interval(self._lock_renewal_interval)
        assert interval is not None
        logger_for_refresh_start.debug(
            "Starting renewal thread for %s(%r). Refresh interval: %s seconds.",
            self._kind,
            self._name,
            interval,
        )
        cls = type(self)
        own = all(getattr(cls, name) is getattr(flavour_class, name) for name in ("extend", "_renew"))
        return interval, own

    # -- acquire ---------------------------------------------------------------------

    def _acquire_steps(self, blocking: object, timeout: object) -> Steps[bool]:
        request = self._prepare_acquire(blocking, timeout)
        logger_for_acquire.debug("Acquiring %s(%r) ...", self._kind, self._name)
        ticket: Ticket | None = yield EnterGate(request.blocking, request.deadline)
        if ticket is None:
            logger_for_acquire.warning("Failed to acquire %s(%r).", self._kind, self._name)
            notify(self._lease.observer, "gave_up", self._lease.name, mod_time.monotonic() - request.started)
            return False
        again = ticket.held  # this caller holds the object already: Redis decides (see _local)
        request, self._id, self._id_pid = _core.request_for_pass(
            request, again=again, generated=self._generated_id, id_pid=self._id_pid, pid=_core.current_pid()
        )
        self._lease.id = self._id
        guards: list[Guarded[object]] = []
        try:
            acquired = yield from self._acquire_in_redis(request, guards)
        except BaseException:
            if not again:
                # A cancelled attempt may still be undone in the background (see
                # _engine.Guarded): the gate stays closed until Redis has answered.
                leave = functools.partial(self._gate.leave, ticket)
                guards[-1].when_done(leave) if guards else leave()
            raise
        if not acquired:
            if not again:
                self._gate.leave(ticket)
            return False
        if not self._gate.hold(ticket):
            # A release from another thread or task started while this holder acquired again.
            yield from self._release_script_steps()
            return False
        return True

    def _acquire_in_redis(self, request: _core.AcquireRequest, guards: list[Guarded[object]]) -> Steps[bool]:
        """The acquire loop, run by the caller that passed the gate: try, wait, try again.

        A busy lock (or semaphore) is waited for through the client's hub
        (``_waiting``): this call sleeps locally, and one BLPOP per client
        watches the lists of every waiter of the process. What a try is, and
        what a wake-up means, is the :class:`Tries` of the kind and mode.
        """
        tries = self._tries(request)
        cluster = self._options.cluster
        hub: Hub | None = None
        entry: Entry | None = None
        interrupted = False
        try:
            while True:
                guard = tries.attempt()
                guards.append(guard)
                step = tries.decide((yield guard))
                if not isinstance(step, _core.WaitPlan):
                    break
                if hub is None or entry is None:
                    notify(self._lease.observer, "wait_started", self._lease.name)
                    hub, entry = enlist(
                        self._flavour,
                        self._client,
                        cluster=cluster,
                        chunk=self._options.wait_chunk,
                        key=tries.wake,
                        lock_key=tries.back,
                        expire_ms=self._options.signal_expire,
                    )
                try:
                    yield from sleep_steps(hub, entry, step.until, cluster=cluster)
                    # Woken by a signal, or the plan's time came: try again, unless the signal handed it over.
                    if tries.woken(hub.take(entry), entry.value):
                        step = True
                        break
                except Exception as exc:
                    # A failover cut the hub's wait short: try again at once, as on a
                    # wake-up, but never twice in a row (no spinning on a broken wait).
                    if interrupted or not _core.is_interrupted_wait(exc):
                        raise
                    interrupted = True
                    tries.woken(True, None)
                    logger_for_acquire.warning(
                        "Waiting for %s(%r) was interrupted (%r); trying again.", self._kind, self._name, exc
                    )
                    continue
                interrupted = False
        except GeneratorExit:
            if hub is not None and entry is not None:
                hub.leave(entry, acquired=False)  # closed without a driver: only the local hand-over
            raise
        except BaseException as exc:
            if hub is not None and entry is not None:
                # Cancelled or failed, nothing is held: a signal this call was handed
                # and did not use goes to the next waiter, here or in another process.
                yield from leave_steps(hub, entry, acquired=False, cluster=cluster)
            abort = tries.abort(exc)
            if abort is not None:
                yield Detach(abort)
            raise
        if hub is not None and entry is not None:
            yield from leave_steps(hub, entry, acquired=step and tries.drop_unused, cluster=cluster)
        if not step:
            logger_for_acquire.warning("Failed to acquire %s(%r).", self._kind, self._name)
            notify(self._lease.observer, "gave_up", self._lease.name, mod_time.monotonic() - request.started)
            return False
        # From the reply to the return nothing is yielded, so no cancellation can
        # land between taking the hold and reporting it.
        self._record_grant(tries.token, tries.sent, request)
        return True

    def _record_grant(self, token: int | None, sent: float, request: _core.AcquireRequest) -> None:
        """Granted (with the fencing ``token``) no earlier than ``sent``: the new hold's state."""
        logger_for_acquire.info("Acquired %s(%r).", self._kind, self._name)
        self._granted(token)
        self._drop_renewal()
        lease = self._lease
        expire = self._options.expire
        lease.lost = None
        lease.deadline = _core.lease_end(sent, expire, lease.deadline)
        lease.renewed = _core.renews(self._lock_renewal_interval, expire)
        lease.reported = False
        max_hold = self._options.max_hold
        lease.hold_until = None if max_hold is None or not lease.renewed else sent + max_hold
        if lease.renewed:
            self._start_lock_renewer()
        self._acquired_at = now = mod_time.monotonic()
        notify(lease.observer, "acquired", lease.name, now - request.started)

    def _release_undone(self) -> Steps[None]:
        """Release what an acquire took before it was cancelled; a failure is logged."""
        logger_for_release.debug("Releasing %s(%r).", self._kind, self._name)
        try:
            yield from self._release_script_steps()
        except Exception as exc:
            logger_for_release.warning(
                "Releasing %s(%r) after a cancelled acquire failed: %r.", self._kind, self._name, exc
            )

    # -- release ---------------------------------------------------------------------

    def _release_steps(self) -> Steps[None]:
        # Cancelling a release does not abort it (Guarded): renewal is stopped and the
        # script runs to completion, and only then is the local state cleared.
        ticket = self._gate.begin_release()
        yield Guarded(self._release_body(ticket))

    def _release_body(self, ticket: Ticket | None) -> Steps[None]:
        try:
            self.lost  # noqa: B018 (latches a lease that ran out, to report it below)
            if self._renewing:  # as 4.x: stopped only if there is a renewal to stop
                yield StopRenewal(self._lease.deadline)
            logger_for_release.debug("Releasing %s(%r).", self._kind, self._name)
            reply = yield from self._release_script_steps()
            # Redis has answered: only now forget a loss, so that a release that failed
            # (a connection error) still reports the loss when retried.
            lost, self._lease.lost = self._lease.lost, None
            self._released()
        finally:
            if ticket is not None:
                self._lease.renewed = False
                self._gate.leave(ticket)
        if lost is not None:
            raise self._lost_error() from lost
        self._check_release_reply(reply)
        notify(self._lease.observer, "released", self._lease.name, mod_time.monotonic() - self._acquired_at)

    def _exit_steps(self, exc_value: BaseException | None) -> Steps[None]:
        """Release at the end of a ``with`` block; a release error must not replace the body's exception."""
        if exc_value is None:
            yield from self._release_steps()
            return
        try:
            yield from self._release_steps()
        except Exception as release_error:
            logger_for_release.warning(
                "Releasing %s(%r) failed while an exception propagated from the with block.",
                self._kind,
                self._name,
                exc_info=release_error,
            )
            if sys.version_info >= (3, 11):
                exc_value.add_note(_core.exit_release_failed_note(self._title, release_error))
