"""Who holds one lock object inside this process: the local gate of a Lock or AsyncLock.

A :class:`~redis_lock.Lock` shared by several threads (or an
:class:`~redis_lock.AsyncLock` shared by several tasks) stores one id in Redis
for all of them, so Redis alone cannot tell them apart: when one thread holds
the lock, another thread's acquire script would find the lock "owned" by the
very same id. The gate tells them apart locally, as :class:`threading.Lock`
does: one caller at a time passes it, from the start of its ``acquire()``
until the lock is released (or the attempt gave up); the others wait on it,
without any Redis traffic, honouring their ``blocking`` and ``timeout``::

    thread A                    gate                     thread B
      |-- acquire(): enter ---->| ticket A (acquiring)     |
      |-- EVALSHA acquire ...   |                          |
      |   acquired: hold ------>| ticket A (held)          |
      |                         |<---- acquire(): enter ---| waits locally
      |-- release(): unlock --->|                          |
      |   leave --------------->| free: wakes B ---------->| ticket B
                                                           |-- EVALSHA acquire ...

So the caller holding a ticket is the only caller of this process that sends
the lock's acquire script with this object's id: an "owned" reply to it can
only come from this call's own earlier copy (a client retry), or from a
copy of an earlier call of this object that raised and that nobody holds
(see ``_core.owned_is_ours``). The same thread or task entering a gate it
holds passes with the ticket it has, and asks Redis: the answer is
:class:`~redis_lock.AlreadyAcquired`, as in 4.x, unless the hold ended in
Redis meanwhile (it expired, or was reset). A ticket may be released from any
thread or task, as :class:`threading.Lock` allows.

:class:`ThreadGate` (threads, also greenlets under gevent or eventlet, whose
monkey-patching makes :mod:`threading` cooperative) and :class:`TaskGate`
(asyncio tasks, on any number of event loops) are the two tiny named twins
that differ only in how a caller waits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time as mod_time
from typing import final

__all__ = ["TaskGate", "ThreadGate", "Ticket"]


@final
class Ticket:
    """One caller's pass through a gate: from the start of its ``acquire()`` to the release.

    ``holder`` is the thread ident or the task of the caller; ``held`` turns True
    when the acquire succeeds; ``done`` once a release (or reset) started, or the
    pass ended: a done ticket never holds again.
    """

    __slots__ = ("done", "held", "holder")

    def __init__(self, holder: object) -> None:
        self.holder = holder
        self.held = False
        self.done = False


class _Gate:
    """The state the two gates share: the current ticket, guarded by a plain mutex."""

    __slots__ = ("_mutex", "_ticket")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._ticket: Ticket | None = None

    def _holding(self, me: object) -> Ticket | None:
        ticket = self._ticket
        if ticket is not None and ticket.held and ticket.holder == me:
            return ticket
        return None

    def hold(self, ticket: Ticket) -> bool:
        """Mark ``ticket`` as holding the lock (its acquire succeeded).

        :returns: False if a release started meanwhile (only possible for a holder's
            second acquire, racing a release from another thread or task): the
            caller must then give back what its acquire took.
        """
        with self._mutex:
            if ticket.done or self._ticket is not ticket:
                return False
            ticket.held = True
            return True

    def begin_release(self) -> Ticket | None:
        """Start a release: the held ticket, now done, or None if nobody holds the gate.

        Only one of several concurrent releases gets the ticket; the others release
        in Redis only (4.x lets any instance with the id release).
        """
        with self._mutex:
            ticket = self._ticket
            if ticket is None or not ticket.held:
                return None
            ticket.held = False
            ticket.done = True
            return ticket


@final
class ThreadGate(_Gate):
    """The gate of a :class:`~redis_lock.Lock`: callers wait on a condition variable."""

    __slots__ = ("_cond",)

    def __init__(self) -> None:
        super().__init__()
        # Made when a caller first has to wait: most objects never see contention.
        self._cond: threading.Condition | None = None

    def enter(self, *, blocking: bool, deadline: float | None) -> Ticket | None:
        """Pass the gate, waiting (with ``blocking``) until ``deadline`` (a ``monotonic()`` time, None: forever).

        :returns: the caller's new ticket; the ticket it holds already (``held``
            True: the caller asks Redis, which answers AlreadyAcquired unless the
            hold ended there, by expiry or reset); or None if the gate stayed busy.
        """
        me = threading.get_ident()
        with self._mutex:
            if (mine := self._holding(me)) is not None:
                return mine
            while self._ticket is not None:
                if not blocking:
                    return None
                remaining = None if deadline is None else deadline - mod_time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if self._cond is None:
                    self._cond = threading.Condition(self._mutex)
                self._cond.wait(remaining)
            self._ticket = ticket = Ticket(me)
            return ticket

    def leave(self, ticket: Ticket) -> None:
        """End ``ticket``'s pass and let the next waiting caller in."""
        with self._mutex:
            ticket.held = False
            ticket.done = True
            if self._ticket is ticket:
                self._ticket = None
                if self._cond is not None:
                    self._cond.notify()


@final
class TaskGate(_Gate):
    """The gate of an :class:`~redis_lock.AsyncLock`: callers wait on futures of their own loops.

    The mutex (never held across an ``await``) makes the gate safe for tasks of
    several event loops in several threads; a leaving ticket hands the gate to
    the first waiter directly, through its loop's ``call_soon_threadsafe``.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        super().__init__()
        self._waiters: collections.deque[tuple[asyncio.Future[Ticket], Ticket]] = collections.deque()

    async def enter(self, *, blocking: bool, deadline: float | None) -> Ticket | None:
        """Pass the gate, waiting (with ``blocking``) until ``deadline`` (a ``monotonic()`` time, None: forever).

        :returns: as :meth:`ThreadGate.enter`.
        :raises asyncio.CancelledError: cancelled while waiting; the gate is then not held by it.
        """
        me = asyncio.current_task()
        loop = asyncio.get_running_loop()
        with self._mutex:
            if (mine := self._holding(me)) is not None:
                return mine
            if self._ticket is None:
                self._ticket = ticket = Ticket(me)
                return ticket
            if not blocking or (deadline is not None and deadline <= mod_time.monotonic()):
                return None
            waiter: asyncio.Future[Ticket] = loop.create_future()
            entry = (waiter, Ticket(me))
            self._waiters.append(entry)
        timeout = None if deadline is None else max(0.0, deadline - mod_time.monotonic())
        ticket = entry[1]
        try:
            # asyncio.wait neither raises the future's outcome nor cancels it on a timeout.
            await asyncio.wait((waiter,), timeout=timeout)
        except BaseException:
            # Cancelled: if the gate was handed over meanwhile, pass it on.
            if self._withdraw(entry):
                self.leave(ticket)
            raise
        if self._withdraw(entry):
            return ticket  # handed over (the future may not be resolved yet: it does not matter)
        return None

    def _withdraw(self, entry: tuple[asyncio.Future[Ticket], Ticket]) -> bool:
        """Stop waiting: True if the gate had been handed to ``entry`` already."""
        with self._mutex:
            if self._ticket is entry[1]:
                return True
            # leave() may have dropped it already (its event loop had closed).
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            return False

    def leave(self, ticket: Ticket) -> None:
        """End ``ticket``'s pass and hand the gate to the first waiting task, if any."""
        with self._mutex:
            ticket.held = False
            ticket.done = True
            if self._ticket is not ticket:
                return
            self._ticket = None
            while self._waiters:
                waiter, successor = self._waiters.popleft()
                loop = waiter.get_loop()
                if waiter.done() or loop.is_closed():
                    continue
                self._ticket = successor
                try:
                    loop.call_soon_threadsafe(_resolve, waiter, successor)
                except RuntimeError:  # the loop closed meanwhile
                    self._ticket = None
                    continue
                return


def _resolve(waiter: asyncio.Future[Ticket], ticket: Ticket) -> None:
    if not waiter.done():
        waiter.set_result(ticket)
