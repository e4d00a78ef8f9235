"""Waiting at scale: one blocking connection per client, shared by every waiter of the process.

A waiter does not block in Redis itself. It joins the *hub* of its client
(per event loop, for asyncio clients; per hash slot, on Redis Cluster) and sleeps
on a local primitive (:class:`threading.Event`, an asyncio future) until its
own target: the caller's deadline, the holder's key expiring, or a re-check
chunk. The hub's loop (a daemon thread, or a task) is the one caller of
``BLPOP``: on a private control list and on the signal list of every lock that
has a waiter here. A popped signal wakes the first waiter of that lock in
arrival order::

    waiters (local)          hub loop                       Redis
      A, B: wait lock x  ->  BLPOP ctl sig:x sig:y 2.5 ---->| (one connection)
      C: wait lock y                                        |<-- release x: LPUSH sig:x
      A <- wake -----------  popped sig:x <-----------------|
      A -- EVALSHA acquire (one command, any connection) -->|

How the set of keys changes while a BLPOP is in flight: a waiter for a key the
BLPOP does not cover pushes one element onto the hub's control list (``wake.lua``,
one short command); the BLPOP returns it, and the loop blocks again with the new
set. Keys whose waiters left are dropped at the next round; a signal popped for a
key that no local waiter takes any more is *given back* (pushed again, unless the
lock was taken meanwhile), so waiters in other processes are not starved. A waiter
that leaves holding a signal it did not use (it timed out, was cancelled, or took
the lock by its own re-check) passes it to the next local waiter of that lock, or
gives it back. The hub loop holds its connection only while it blocks in Redis:
when nobody waits it stops blocking (the last waiter to leave nudges it) and
ends (a thread lingers for :data:`LINGER` seconds first, without a connection).

The decisions (who gets a signal, which keys to block on, when to nudge, what to
give back) are :class:`Hub`'s, in one copy, under one mutex; the loop is engine
steps (:func:`hub_steps`) that either driver runs, in a thread or in a task.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time as mod_time
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from . import _core, _keys
from ._core import logger_for_acquire
from ._engine import Block, Detach, Steps, Wait, drive, drive_async, in_background
from ._scripts import WAKE, run

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CONTROL_EXPIRE_MS",
    "CONTROL_PREFIX",
    "LINGER",
    "WAIT_TASK",
    "Entry",
    "Hub",
    "LocalSignal",
    "TaskSignal",
    "ThreadSignal",
    "enlist",
    "hub_steps",
    "leave_steps",
    "sleep_steps",
    "task_hub",
    "thread_hub",
    "wake_steps",
    "wakes_steps",
]

#: The name of a hub's thread or task starts with this (then the client's class and id).
WAIT_TASK: Final = "redis_lock.wait"
#: How long a hub thread that nobody needs stays (with no connection) for the next waiter, in seconds
#: (starting a thread costs about 100 us). A hub task ends at once: a task costs little, and one left
#: pending would outlive a program's last ``run_until_complete``.
LINGER: Final = 2.0
#: A hub nobody waits on stays registered (with its client) for the next wait, which then builds
#: nothing; past this many hubs, such idle ones are dropped.
KEEP_IDLE_HUBS: Final = 64
#: The hubs' private control lists: ``lock-waiters:<process>:<n>`` (``lock-waiters:{<name>}:...`` on a cluster).
CONTROL_PREFIX: Final = "lock-waiters:"
#: How long a control list element that no hub popped lives, in milliseconds.
CONTROL_EXPIRE_MS: Final = 60_000


# ---------------------------------------------------------------------------
# Local signals: how one waiter (or the hub loop) sleeps, per flavour.


class LocalSignal(Protocol):
    """How a waiter (or the hub's loop) sleeps: :class:`ThreadSignal` or :class:`TaskSignal`."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def wait(self, until: float) -> Any:
        """Sleep until set or until the ``monotonic()`` time ``until``; on asyncio, return the coroutine doing so."""


@final
class ThreadSignal:
    """A waiter's local wake-up, for threads (greenlets too, when :mod:`threading` is monkey-patched).

    A bare lock used as a binary semaphore: held while the signal is clear,
    free once set, so a wait is one ``acquire`` with a timeout. Cheaper than a
    :class:`threading.Event` (a condition variable and a lock per wait), which
    matters on the hand-off path. ``set`` and ``clear`` are called under the
    hub's mutex only, so they never race each other.
    """

    __slots__ = ("_is_set", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._is_set = False

    def set(self) -> None:
        if not self._is_set:
            self._is_set = True
            self._lock.release()

    def clear(self) -> None:
        if self._is_set:
            self._is_set = False
            self._lock.acquire()  # free (set), or held for an instant by a wait passing through

    def wait(self, until: float) -> None:
        """Sleep until set, or until the ``monotonic()`` time ``until``."""
        if self._is_set:
            return
        if self._lock.acquire(timeout=max(0.0, until - mod_time.monotonic())):
            self._lock.release()  # it stays set


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@final
class TaskSignal:
    """A waiter's local wake-up, for asyncio tasks of one event loop."""

    __slots__ = ("_future", "_is_set", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._is_set = False
        self._future: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._is_set = True
        if self._future is not None:
            _resolve(self._future)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self, until: float) -> None:
        """Sleep until set, or until the ``monotonic()`` time ``until``."""
        if self._is_set:
            return
        self._future = future = self._loop.create_future()
        timer = self._loop.call_later(max(0.0, until - mod_time.monotonic()), _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            self._future = None


# ---------------------------------------------------------------------------
# The decisions.


@final
class Entry:
    """One ``acquire()`` call's place in its hub, from its first wait to its end.

    ``signalled``: a signal was handed to it and not used yet, and ``value`` is
    the element popped for it; ``waiting``: it is sleeping on ``signal`` (rather
    than running the acquire script); ``error``: the hub's ``BLPOP`` failed while
    it waited. ``lock_key`` is the key whose existence stops a give-back of an
    unused signal (None: give it back as it was, see :meth:`Hub.enlist`).
    """

    __slots__ = ("error", "expire_ms", "key", "lock_key", "signal", "signalled", "value", "waiting")

    def __init__(self, key: str, lock_key: str | None, expire_ms: int, signal: LocalSignal) -> None:
        self.key = key
        self.lock_key = lock_key
        self.expire_ms = expire_ms
        self.signal = signal
        self.signalled = False
        self.value: bytes | str | None = None
        self.waiting = False
        self.error: Exception | None = None


#: What a waiter or the loop must send after a decision: (list key, lock key or None, expire in ms,
#: the element to push or None for the usual ``1``); see ``wake.lua``.
Wake = tuple[str, "str | None", int, "bytes | str | None"]


@final
class Hub:
    """The waiters of one client (one event loop, one hash slot), and every decision about them.

    Thread-safe; performs no I/O. The loop calls :meth:`plan`, :meth:`deliver`
    and :meth:`fail`; waiters call :meth:`enlist` (through :func:`thread_hub` or
    :func:`task_hub`), :meth:`ready`, :meth:`take` and :meth:`leave`.
    """

    def __init__(
        self,
        client: object,
        control: str,
        chunk: float,
        make_signal: Callable[[], LocalSignal],
        start: Callable[[Hub], None],
        forget: Callable[[Hub], bool],
        loop: asyncio.AbstractEventLoop | None = None,
        linger: float = 0.0,
        lead: bool = False,
    ) -> None:
        self.client = client
        #: How long the loop stays after the last waiter left (without a connection).
        self.linger = linger
        #: Whether a lone waiter may block in Redis itself (:meth:`lead`): threads only. A task
        #: cancelled in its BLPOP would lose a signal it popped for another waiter.
        self.may_lead = lead
        #: The event loop of an asyncio client's hub (None for threads).
        self.loop = loop
        #: This hub's private control list (see the module docstring).
        self.control = control
        #: The waiters' re-check chunk (shorter than the client's socket timeout), and the
        #: BLPOP timeout that fits in it (None: no BLPOP fits, the waiters re-check on their own).
        self.chunk = chunk
        self.blpop = _core.blpop_timeout(chunk)
        self.make_signal = make_signal
        self._start = start
        self._forget = forget
        self.mutex = threading.Lock()
        #: The entries of each signal key, in arrival order (a dict is an ordered set).
        self.queues: dict[str, dict[Entry, None]] = {}
        #: The loop's own wake-up, while it has no BLPOP to send.
        self.idle = make_signal()
        self.running = False
        #: The signal keys of the BLPOP in flight (or about to be sent), else empty.
        self.blocked: frozenset[str] = frozenset()
        self.in_blpop = False
        #: A waiter blocked in Redis itself (see :meth:`lead`): the BLPOP in flight is its.
        self.leader: Entry | None = None
        #: A control element is on its way for the BLPOP in flight.
        self.nudged = False
        #: Each signal key's lock key (or None) and ``signal_expire``, for giving its signal back
        #: (see :meth:`enlist`), while it may be popped.
        self.backs: dict[str, tuple[str | None, int]] = {}
        self._idle_since: float | None = None
        self.ended = False

    # -- waiters ----------------------------------------------------------------------

    def enlist(self, key: str, lock_key: str | None, expire_ms: int) -> Entry:
        """Queue a new waiter for ``key`` (called with the registry's mutex held, see :func:`_enlist`).

        A signal popped for ``key`` that no local waiter takes is given back:
        pushed again (with ``expire_ms``) unless ``lock_key`` exists (the lock was
        taken meanwhile, and its release will signal anew); with ``lock_key``
        None, always, with the element that was popped (a semaphore's signal
        list); a fair waiter's wake list, never (see :func:`_gives_back`).
        """
        entry = Entry(key, lock_key, expire_ms, self.make_signal())
        with self.mutex:
            self.queues.setdefault(key, {})[entry] = None
            self.backs[key] = (lock_key, expire_ms)
            self._idle_since = None
        return entry

    def lead(self, entry: Entry, until: float, now: float) -> tuple[tuple[str, str], float] | bool:
        """Whether ``entry``, about to sleep until ``until``, waits in Redis itself: the fast path of a lone waiter.

        A thread that is the only waiter sleeping, with no BLPOP in flight, sends
        the hub's BLPOP itself (for its own key and the control list): a signal
        for it then costs no hop from the loop's thread to the waiter's (about
        30 us, a tenth of a hand-off). Not for tasks: one cancelled in its BLPOP
        would lose a signal popped for the others, and a hop between tasks is cheap.
        A waiter that arrives meanwhile nudges it (if its key is another), and
        when the leader's BLPOP returns (:meth:`led`) the loop takes over for the
        others.

        :returns: the BLPOP's keys and timeout, to send and then pass to
            :meth:`led`; True: sleep locally without a BLPOP (the wait is too
            short for one, and nobody else sleeps); False: call :meth:`ready`.
        """
        with self.mutex:
            if not self.may_lead or entry.signalled or self.in_blpop or self._sleeps_besides(entry):
                return False
            timeout = None if self.blpop is None else _core.blpop_timeout(min(until - now, self.chunk))
            entry.waiting = True
            entry.signal.clear()
            if timeout is None:
                return True
            self.leader, self.in_blpop, self.nudged = entry, True, False
            self.blocked = frozenset((entry.key,))
            return (self.control, entry.key), timeout

    def led(self, entry: Entry, reply: object) -> Wake | None:
        """The leader's BLPOP returned ``reply`` (None: timed out or failed): hand it out; the loop serves the others.

        :returns: a signal to give back (no local waiter takes it), or None.
        """
        key, value = _popped(reply)
        with self.mutex:
            assert self.leader is entry, (self.leader, entry)
            self.leader, self.in_blpop = None, False
            back = self._pass(key, value)
            # The loop takes over for the others; and for the leader too when its BLPOP popped
            # something that was not its own wake-up (another waiter's signal, a nudge): it
            # sleeps on, and without the loop no BLPOP would cover its key until its re-check.
            if self._sleeps_besides(entry) or (key is not None and entry.waiting and not entry.signalled):
                self._run_loop()
            return back

    def _sleeps_besides(self, entry: Entry) -> bool:
        """Whether a waiter other than ``entry`` sleeps without a signal (mutex held)."""
        return any(
            other is not entry and other.waiting and not other.signalled
            for queue in self.queues.values()
            for other in queue
        )

    def _run_loop(self) -> None:
        """Make the loop plan again: start it, or wake it if idle (mutex held)."""
        if not self.running:
            self.running = True
            try:
                self._start(self)
            except BaseException:  # e.g. no new thread at interpreter shutdown: waiters re-check alone
                self.running = False
                raise
        else:
            self.idle.set()

    def ready(self, entry: Entry) -> Wake | None:
        """``entry`` is about to sleep: make sure a BLPOP covers its key.

        :returns: the control list's wake-up to push (the BLPOP in flight does
            not cover the key), or None. If ``entry`` holds a signal already, its
            ``signal`` is set and the wait returns at once.
        """
        with self.mutex:
            entry.waiting = True
            if entry.signalled:
                entry.signal.set()
                return None
            entry.signal.clear()
            if (
                self.in_blpop
            ):  # the loop's BLPOP, or a leader's (which hands over to the loop when it returns)
                if entry.key in self.blocked or self.nudged:
                    return None
                self.nudged = True
                return (self.control, None, CONTROL_EXPIRE_MS, None)
            self._run_loop()  # the loop is idle, between two BLPOPs, or not running: it plans again
            return None

    def take(self, entry: Entry) -> bool:
        """After the wait: True if a signal woke ``entry`` (it is used up now), False if its time came.

        :raises: the hub's ``BLPOP`` error, if it failed while ``entry`` waited.
        """
        with self.mutex:
            entry.waiting = False
            error, entry.error = entry.error, None
            if entry.signalled:
                entry.signalled = False
                return True
        if error is not None:
            raise error
        return False

    def leave(self, entry: Entry, *, acquired: bool) -> list[Wake]:
        """``entry``'s ``acquire()`` ends. A signal it did not use goes to the next waiter, or is given back.

        If the call ``acquired`` the lock, such a signal is dropped instead: the
        lock is held again, and its release will signal anew.

        :returns: what to push: a signal to give back, and the control list when
            nobody waits any more while a BLPOP holds a connection.
        """
        wakes: list[Wake] = []
        with self.mutex:
            entry.waiting = False
            queue = self.queues.get(entry.key)
            if queue is not None:
                queue.pop(entry, None)
                if not queue:
                    del self.queues[entry.key]
            if entry.signalled:
                entry.signalled = False
                value, entry.value = entry.value, None
                if not acquired and not self._hand(entry.key, value) and _gives_back(entry.key):
                    wakes.append(
                        (entry.key, entry.lock_key, entry.expire_ms, _back_value(entry.lock_key, value))
                    )
            if not self.queues:
                # The BLPOP in flight pops a signal given back on one of its keys: that ends it too.
                if self.in_blpop and not self.nudged and not (wakes and entry.key in self.blocked):
                    self.nudged = True
                    wakes.append((self.control, None, CONTROL_EXPIRE_MS, None))
                self.idle.set()
        return wakes

    # -- the loop ---------------------------------------------------------------------

    def plan(self, now: float) -> tuple[str, ...] | float | None:
        """What the loop does next.

        :returns: the keys to BLPOP (the control list first); or a ``monotonic()``
            time to sleep until, locally, when nobody needs Redis now; or None:
            the loop ends (nobody waited for :data:`LINGER` seconds).
        """
        with self.mutex:
            self.idle.clear()
            if self.leader is not None:
                return now + self.chunk  # a waiter blocks in Redis itself; it wakes the loop when done
            self.in_blpop = self.nudged = False
            keys = [k for k, q in self.queues.items() if any(e.waiting and not e.signalled for e in q)]
            if self.blpop is None:
                keys = []
            self.blocked = frozenset(keys)
            self.backs = {k: v for k, v in self.backs.items() if k in self.queues}
            if keys:
                self.in_blpop = True
                return (self.control, *keys)
            if self.queues:
                return now + self.chunk  # everyone has a signal to use, or is trying the lock
            if self._idle_since is None:
                self._idle_since = now
            if now < self._idle_since + self.linger:
                return self._idle_since + self.linger
        # The registry's mutex, then this one: the loop ends only if no waiter arrived meanwhile.
        return None if self._forget(self) else now

    def end_if_idle(self) -> bool:
        """Called by the registry with its mutex held: end this hub unless a waiter arrived meanwhile."""
        with self.mutex:
            if self.queues or (self.running and self._idle_since is None):
                return False
            self.running = False
            self.ended = True
            return True

    def deliver(self, reply: object) -> Wake | None:
        """The BLPOP returned ``reply`` (None: its time ran out): wake the first waiter of the popped key.

        :returns: a signal to give back (no local waiter takes it), or None.
        """
        key, value = _popped(reply)
        with self.mutex:
            self.in_blpop = False
            return self._pass(key, value)

    def _pass(self, key: str | None, value: bytes | str | None) -> Wake | None:
        """Hand a popped signal (``key``: its list; None or the control list: none) on (mutex held).

        :returns: the signal to give back when no local waiter takes it (the other
            processes' waiters need it), else None.
        """
        if key is None or key == self.control or self._hand(key, value) or not _gives_back(key):
            return None
        back = self.backs.get(key)
        if back is None:  # its waiters left and the loop planned since: only a lock's signal is known
            if not key.startswith(_keys.SIGNAL_PREFIX):
                return (key, None, _core.DEFAULT_SIGNAL_EXPIRE_MS, value)
            back = (_keys.LOCK_PREFIX + key[len(_keys.SIGNAL_PREFIX) :], _core.DEFAULT_SIGNAL_EXPIRE_MS)
        lock_key, expire_ms = back
        return (key, lock_key, expire_ms, _back_value(lock_key, value))

    def fail(self, error: Exception | None) -> None:
        """The loop ended abnormally: every sleeping waiter wakes, with ``error`` (None: to try again).

        A waiter restarts the loop when it waits again.
        """
        with self.mutex:
            self.in_blpop = False
            self.running = False
            for queue in self.queues.values():
                for entry in queue:
                    if entry.waiting and not entry.signalled:
                        entry.error = error
                        entry.signal.set()

    def _hand(self, key: str, value: bytes | str | None) -> bool:
        """Hand a signal for ``key`` (the popped ``value``) to its first waiter without one (mutex held).

        :returns: False if there is none.
        """
        for entry in self.queues.get(key, ()):
            if not entry.signalled:
                entry.signalled = True
                entry.value = value
                entry.signal.set()
                return True
        return False


def _gives_back(key: str) -> bool:
    """Whether an unused signal popped from ``key`` is pushed again; never a fair waiter's wake list.

    A hand-off there (``lua/fair.lua``) counts as taken once the list is empty:
    pushed back after its call took the lock another way, it would make the hold
    look untaken, and void it at the hand-off's deadline. A call that leaves
    without the lock runs the fair script's cancel, which hands the lock on.
    """
    return not key.startswith(_keys.WAKE_PREFIX)


def _back_value(lock_key: str | None, value: bytes | str | None) -> bytes | str | None:
    """What a give-back pushes: a lock's signal is the usual ``1``; a list without a lock key gets its element back."""
    return value if lock_key is None else None


def _popped(reply: object) -> tuple[str | None, bytes | str | None]:
    """A BLPOP reply's key and element: (None, None) when it timed out (or is not a pop)."""
    if not _core.is_array(reply) or len(reply) != 2:
        return None, None
    key, value = reply
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    if not isinstance(key, str):
        return None, None
    return key, value if isinstance(value, bytes | str) else None


# ---------------------------------------------------------------------------
# The loop, as steps either driver runs.


def wake_steps(wake: Wake, *, cluster: bool) -> Steps[object]:
    """Push one element onto a signal or control list (``wake.lua``)."""
    key, lock_key, expire_ms, value = wake
    keys = (key,) if lock_key is None else (key, lock_key)
    args = (str(expire_ms),) if value is None else (str(expire_ms), value)
    return run(WAKE, keys, args, cluster=cluster)


def wakes_steps(wakes: list[Wake], *, cluster: bool) -> Steps[None]:
    """Push each of ``wakes``; a failure is logged, not raised (the waiters re-check the lock on their own)."""
    for wake in wakes:
        try:
            yield from wake_steps(wake, cluster=cluster)
        except Exception as exc:
            logger_for_acquire.warning("Waking the waiters of %r failed: %r.", wake[0], exc)


def hub_steps(hub: Hub, *, cluster: bool) -> Steps[None]:
    """The hub's loop: BLPOP for every waiting key, hand out what it pops; end when nobody waits."""
    while True:
        plan = hub.plan(mod_time.monotonic())
        if plan is None:
            return
        if isinstance(plan, float):
            yield Wait(hub.idle, plan)
            continue
        try:
            reply = yield Block("blpop", (plan, hub.blpop))
        except Exception as exc:
            hub.fail(exc)
            return
        back = hub.deliver(reply)
        if back is not None:
            yield from wakes_steps([back], cluster=cluster)


def sleep_steps(hub: Hub, entry: Entry, until: float, *, cluster: bool) -> Steps[None]:
    """A waiter's sleep until a signal for ``entry`` or ``until``; a lone thread blocks in Redis itself (:meth:`Hub.lead`).

    :raises: the error of this call's own BLPOP, or (from ``take``) of the hub's.
    """
    lead = hub.lead(entry, until, mod_time.monotonic())
    if lead is False:
        nudge = hub.ready(entry)
        if nudge is not None:
            yield from wakes_steps([nudge], cluster=cluster)
    elif lead is not True:
        keys, timeout = lead
        try:
            reply = yield Block("blpop", (list(keys), timeout))
        except BaseException:
            hub.led(entry, None)
            raise
        back = hub.led(entry, reply)
        if back is not None:
            yield Detach(wakes_steps([back], cluster=cluster))
    yield Wait(entry.signal, until)


def leave_steps(hub: Hub, entry: Entry, *, acquired: bool, cluster: bool) -> Steps[None]:
    """End ``entry``'s place in ``hub``; what that leaves to push to Redis is pushed in the background.

    In the background (:class:`~redis_lock._engine.Detach`), so that nothing
    between taking the lock (or permit) and returning can be cancelled.
    """
    wakes = hub.leave(entry, acquired=acquired)
    if wakes:
        yield Detach(wakes_steps(wakes, cluster=cluster))


# ---------------------------------------------------------------------------
# The hubs of this process, by client (and event loop, and slot).


class _Registry:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = os.urandom(6).hex()
        self.mutex = threading.Lock()
        self.hubs: dict[tuple[int, ...], Hub] = {}
        self.count = itertools.count()

    def check_pid(self) -> None:
        """In a forked child, forget the parent's hubs (their loops did not survive the fork)."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.token = os.urandom(6).hex()
            self.mutex = threading.Lock()
            self.hubs = {}


_registry: Final = _Registry()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_registry.check_pid)


def _enlist(
    ident: tuple[int, ...],
    make: Callable[[str], Hub],
    tag: str,
    key: str,
    lock_key: str | None,
    expire_ms: int,
    loop: asyncio.AbstractEventLoop | None = None,
) -> tuple[Hub, Entry]:
    _registry.check_pid()
    with _registry.mutex:
        hub = _registry.hubs.get(ident)
        # A closed event loop's id may be reused by a new loop: its hub is not this loop's.
        if hub is None or hub.loop is not loop:
            if len(_registry.hubs) >= KEEP_IDLE_HUBS:
                _evict_idle()
            control = f"{CONTROL_PREFIX}{tag}{_registry.token}:{next(_registry.count)}"
            hub = _registry.hubs[ident] = make(control)
        return hub, hub.enlist(key, lock_key, expire_ms)


def _evict_idle() -> None:
    """Drop the hubs nobody waits on and whose loop is not running (registry mutex held)."""
    for ident, hub in list(_registry.hubs.items()):
        if hub.end_if_idle():
            del _registry.hubs[ident]


def _forget(ident: tuple[int, ...]) -> Callable[[Hub], bool]:
    def forget(hub: Hub) -> bool:
        with _registry.mutex:
            if not hub.end_if_idle():
                return False
            if _registry.hubs.get(ident) is hub:
                del _registry.hubs[ident]
            return True

    return forget


def _label(client: object) -> str:
    # Never the client's repr: it may show connection details.
    return f"{type(client).__qualname__}@{id(client):#x}"


def _tag(cluster: bool, key: str) -> tuple[int, str]:
    """The hub's slot part: on a cluster, the signal key's slot and hash tag (the control list goes with it)."""
    if not cluster:
        return -1, ""
    return _keys.key_slot(key), _keys.tag_of(key) + ":"


def thread_hub(
    client: object, *, cluster: bool, chunk: float, key: str, lock_key: str | None, expire_ms: int
) -> tuple[Hub, Entry]:
    """Queue a waiting thread for ``key`` in ``client``'s hub (started on demand, as a daemon thread)."""
    slot, tag = _tag(cluster, key)
    ident = (id(client), slot)

    def start(hub: Hub) -> None:
        name = f"{WAIT_TASK} {_label(client)}"
        threading.Thread(target=_run_thread, args=(hub, cluster), name=name, daemon=True).start()

    def make(control: str) -> Hub:
        return Hub(client, control, chunk, ThreadSignal, start, _forget(ident), linger=LINGER, lead=True)

    return _enlist(ident, make, tag, key, lock_key, expire_ms)


def task_hub(
    client: object, *, cluster: bool, chunk: float, key: str, lock_key: str | None, expire_ms: int
) -> tuple[Hub, Entry]:
    """Queue a waiting task for ``key`` in the hub of ``client`` on the running event loop."""
    loop = asyncio.get_running_loop()
    slot, tag = _tag(cluster, key)
    ident = (id(client), id(loop), slot)

    def start(hub: Hub) -> None:
        in_background(_run_task(hub, cluster), name=f"{WAIT_TASK} {_label(client)}")

    def make(control: str) -> Hub:
        return Hub(client, control, chunk, lambda: TaskSignal(loop), start, _forget(ident), loop)

    return _enlist(ident, make, tag, key, lock_key, expire_ms, loop)


def enlist(
    flavour: str,
    client: object,
    *,
    cluster: bool,
    chunk: float,
    key: str,
    lock_key: str | None,
    expire_ms: int,
) -> tuple[Hub, Entry]:
    """Queue a waiter of the ``flavour`` ("sync" or "async") in its hub: :func:`thread_hub` or :func:`task_hub`."""
    join = thread_hub if flavour == "sync" else task_hub
    return join(client, cluster=cluster, chunk=chunk, key=key, lock_key=lock_key, expire_ms=expire_ms)


def _run_thread(hub: Hub, cluster: bool) -> None:
    try:
        drive(hub.client, hub_steps(hub, cluster=cluster))
    except BaseException as exc:  # pragma: no cover - a bug: wake the waiters rather than strand them
        hub.fail(exc if isinstance(exc, Exception) else None)
        raise


async def _run_task(hub: Hub, cluster: bool) -> None:
    try:
        await drive_async(hub.client, hub_steps(hub, cluster=cluster))
    except BaseException as exc:
        # Cancelled (the event loop shuts down, or a program cancels every task), or a bug:
        # wake the waiters rather than strand them; after a cancellation they just try again.
        hub.fail(exc if isinstance(exc, Exception) else None)
        raise
