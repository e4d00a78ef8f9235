"""Auto-renewal for many locks: one scheduler per client, pipelined extends.

Every auto-renewed lock of a process is an entry in the schedule of its
client object: a daemon thread per client for :class:`~redis_lock.Lock`, and
a task per (event loop, client) for :class:`~redis_lock.AsyncLock`. A
scheduler sleeps until the earliest entry falls due, then extends every entry
due by then (or due a little later, see :data:`BATCH_WINDOW_FRACTION`) with
one ``pipeline(transaction=False)`` of ``EVALSHA extend`` per
:data:`PIPELINE_CHUNK` locks, so renewing N locks costs one thread, one
connection and one round trip per batch, not N of each::

    scheduler (one per client)                    Redis
      |  sleep until the first entry is due          |
      |-- pipeline: EVALSHA extend x N ------------>|
      |<-- N replies -------------------------------|
      |  per lock (decided by _core): extended -> due again in `interval`;
      |  error -> retry after a growing pause until the lease ends -> lost

Separate schedulers per client keep a slow or unreachable server from
delaying the locks of other clients. A client without ``pipeline()``, a
cluster client (redis-py's and valkey-py's cluster pipelines refuse EVALSHA),
or a lock class that overrides ``extend``, is renewed one call per lock
(through the lock's ``_renew``), on the same schedule.

A scheduler never keeps a lock alive: an entry holds a weak reference whose
callback (which may run in any thread, during garbage collection) only posts
to the scheduler (:class:`queue.SimpleQueue` is reentrant; asyncio via
``call_soon_threadsafe``), and the I/O runs on plain data (:class:`_Job`), so
that an error a lost lock keeps does not keep the other locks of its batch
alive through its traceback. Entries are removed lazily from the heap. A
scheduler ends when it has no live entry; in a forked child the schedulers
of the parent are forgotten (their threads did not survive the fork) and new
ones start on demand; the child does not renew the locks it inherited, as in
4.x, whose renewal thread did not survive a fork either.

Nothing here decides a lock's fate: :func:`redis_lock._core.check_extend_reply`
and :func:`redis_lock._core.renewal_outcome` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import os
import queue
import threading
import time as mod_time
import traceback
import weakref
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, final

from . import _clients, _core
from ._core import logger_for_refresh_thread
from ._engine import Steps, drive, drive_async
from ._exceptions import RedisLockError
from ._scripts import EXTEND, Script, run_pipelined
from .hooks import notify

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._async import AsyncHold
    from ._sync import ThreadHold

__all__ = ["AsyncRenewal", "Renewal", "renew", "renew_async"]

#: An entry may be renewed up to this fraction of its interval early, to share a batch.
BATCH_WINDOW_FRACTION: Final = 0.1
#: ... but never more than this many seconds early.
BATCH_WINDOW_MAX: Final = 1.0
#: Extends sent in one pipeline; a larger batch is sent as several pipelines in a row.
PIPELINE_CHUNK: Final = 1000
#: Per-lock extends (clients without pipelines) an asyncio scheduler runs at once.
ASYNC_PER_LOCK_CONCURRENCY: Final = 32

_L = TypeVar("_L", "ThreadHold", "AsyncHold")
_E = TypeVar("_E", "Renewal", "AsyncRenewal")

#: One renewal attempt's result: the error it raised (None: extended) and, for a
#: pipelined extend, the lock's new lease deadline (a per-lock ``extend()`` sets it itself).
_Result = tuple[Exception | None, float | None]
#: One extend to send: the lock's index in its batch, extend.lua's KEYS and ARGV, the lifetime it sets.
_Command = tuple[int, tuple[str, str, str], float]

_ADD: Final = 0
_COLLECTED: Final = 1
_WAKE: Final = 2


class _Entry(Generic[_L]):
    """One held lock in a schedule. Touched by its scheduler, and by ``stop`` from the lock's side."""

    __slots__ = (
        "delay",
        "due",
        "finished",
        "in_flight",
        "interval",
        "key",
        "lease",
        "pipelined",
        "ref",
        "retrying",
        "seq",
        "window",
    )

    def __init__(self, lock: _L, lease: _core.Lease, interval: float, pipelined: bool) -> None:
        #: The hold being renewed: plain data, read and written here (the lock is only weakly referenced).
        self.lease = lease
        self.key = self.lease.key
        self.interval = interval
        self.window = min(interval * BATCH_WINDOW_FRACTION, BATCH_WINDOW_MAX)
        self.due = mod_time.monotonic() + interval
        self.delay = _core.RENEWAL_RETRY_DELAY
        self.retrying = False
        self.finished = False
        self.in_flight = False
        self.seq = -1
        self.pipelined = pipelined
        self.ref: weakref.ref[_L] = weakref.ref(lock, self._collected)

    @property
    def name(self) -> str:
        """The name 4.x gave the lock's renewal thread."""
        return f"redis_lock.refresh {self.key}"

    def _collected(self, ref: weakref.ref[_L]) -> None:
        raise NotImplementedError


def _settle(entry: _Entry[Any], result: _Result, now: float) -> bool:
    """Apply one renewal attempt's ``result`` (at ``now``) to its lease and entry, and log it.

    :returns: whether renewal goes on (``entry.due`` is then set); False when it must stop.
    """
    error, deadline = result
    lease = entry.lease
    if lease.lost is not None:
        # Its lease ran out before a renewal was confirmed, and someone saw it (`lost`):
        # a late confirmation does not take that back.
        logger_for_refresh_thread.debug("Exiting renewal thread for Lock(%r).", entry.key)
        _report_loss(entry)
        return False
    if error is None:
        if deadline is not None:
            lease.deadline = deadline
        lease.failure = None
        entry.delay = _core.RENEWAL_RETRY_DELAY
        entry.retrying = False
        entry.due = now + entry.interval
        if lease.hold_until is not None:
            entry.due = min(entry.due, lease.hold_until)  # then renewal stops (see _job)
        notify(lease.observer, "renewed", lease.name)
        return True
    # A lost lock keeps its error (the cause of its LockLost), and a handler may keep
    # a log record with it. Its frames hold at most the lock being renewed (see
    # _Job); clear their locals anyway, so that neither keeps a lock alive.
    traceback.clear_frames(error.__traceback__)
    outcome = _core.renewal_outcome(
        error, lock_key=entry.key, now=now, lease_deadline=lease.deadline, delay=entry.delay
    )
    logger_for_refresh_thread.log(outcome.level, outcome.message, *outcome.args)
    if outcome.lost:
        lease.lost = error
    if outcome.retry_in is None:
        logger_for_refresh_thread.debug("Exiting renewal thread for Lock(%r).", entry.key)
        _report_loss(entry)
        return False
    lease.failure = error
    entry.delay = outcome.next_delay
    entry.retrying = True
    entry.due = now + outcome.retry_in
    return True


def _report_loss(entry: _Entry[Any]) -> None:
    """Tell the lock's observer and its ``on_lost`` hook, once per hold, that renewal lost the lock."""
    lease = entry.lease
    if lease.lost is None or lease.reported:
        return
    lease.reported = True
    notify(lease.observer, "lost", lease.name)
    lock = entry.ref()
    if lease.on_lost is None or lock is None:
        return
    try:
        lease.on_lost(lock)
    except Exception:
        logger_for_refresh_thread.warning("on_lost of Lock(%r) failed.", entry.key, exc_info=True)


def _pop_due(heap: list[tuple[float, int, _E]], now: float) -> list[_E]:
    """Take from ``heap`` every entry due by ``now`` (or within its batch window); drop stale ones."""
    due: list[_E] = []
    while heap:
        when, seq, entry = heap[0]
        if entry.seq != seq or entry.finished:
            heapq.heappop(heap)  # stale: rescheduled, stopped or collected since
            continue
        if when > now + (0.0 if entry.retrying else entry.window):
            break
        heapq.heappop(heap)
        due.append(entry)
    return due


def _jobs_for(due: list[_E], unpipelined: set[int], collected: Callable[[_E], None]) -> list[_Job[_E]]:
    """The jobs renewing the ``due`` entries (marked in flight); ``collected`` gets those whose lock is gone."""
    jobs: list[_Job[_E]] = []
    for entry in due:
        if entry.finished:
            continue
        job = _job(entry, unpipelined)
        if job is None:
            collected(entry)
            continue
        entry.in_flight = True
        jobs.append(job)
        if not entry.retrying:
            logger_for_refresh_thread.debug("Refreshing Lock(%r).", entry.key)
    return jobs


def _settle_jobs(
    jobs: Sequence[_Job[_E]],
    *,
    stopped: Callable[[_E], None],
    collected: Callable[[_E], None],
    due: Callable[[_E], None],
    ended: Callable[[_E], None],
) -> None:
    """Settle a batch's results: each entry is ``stopped`` (ended meanwhile: its lock is no longer ours
    to change), ``collected`` (its lock is gone), ``due`` again, or ``ended`` (renewal stops)."""
    now = mod_time.monotonic()
    for job in jobs:
        entry = job.entry
        entry.in_flight = False
        if entry.finished:
            stopped(entry)
        elif entry.ref() is None:
            collected(entry)
        elif _settle(entry, job.result, now):
            due(entry)
        elif not entry.finished:  # a release made while _settle logged the loss has ended (and counted) it
            entry.finished = True
            ended(entry)


def _nothing(entry: object) -> None:
    del entry


def _log_collected(entry: _Entry[Any]) -> None:
    logger_for_refresh_thread.debug("Stopping loop because Lock(%r) was garbage collected.", entry.key)
    logger_for_refresh_thread.debug("Exiting renewal thread for Lock(%r).", entry.key)


def _extend_args(lease: _core.Lease) -> tuple[tuple[str, ...], float]:
    """The KEYS and ARGV of extend.lua for a renewal of ``lease``, and the lifetime it sets.

    With ``max_hold``, the last renewals set no more than what is left of it, so
    the key expires when the hold reaches ``max_hold``.
    """
    seconds = _core.extend_seconds(lease.expire, lease.expire)
    if lease.hold_until is not None:
        seconds = max(_core.MIN_WAIT, min(seconds, lease.hold_until - mod_time.monotonic()))
    return (lease.key, *lease.extend_keys, lease.id, str(_core.to_ms(seconds)), *lease.extend_tail), seconds


# How a job is sent.
_PIPELINED: Final = 0
_ONE_BY_ONE: Final = 1
_SETTLED: Final = 2


@final
class _Job(Generic[_E]):
    """One lock's renewal in a batch, as data.

    The I/O runs on jobs, never on the locks: a renewal error keeps the frames
    it passed through (and, through ``f_back``, their callers, with their
    locals) alive as long as the error lives, and a lost lock keeps its error.
    So no frame that sends holds a strong reference to a lock, except the
    one-call-per-lock path's to the lock it renews.
    """

    __slots__ = ("args", "client", "deadline", "entry", "how", "result", "seconds")

    def __init__(self, entry: _E, client: object, how: int, deadline: float) -> None:
        self.entry: _E = entry
        self.client = client
        self.how = how
        #: The lock's lease deadline when the job was made: renewal I/O is no use past it.
        self.deadline = deadline
        self.args: tuple[str, ...] = ()
        self.seconds = 0.0
        self.result: _Result = (None, None)


def _job(entry: _E, unpipelined: set[int]) -> _Job[_E] | None:
    """The job renewing ``entry``'s lock now; None if the lock was garbage collected."""
    lock = entry.ref()
    if lock is None:
        return None
    lease = entry.lease
    client = lease.client
    if lease.hold_until is not None and mod_time.monotonic() >= lease.hold_until:
        job = _Job(entry, client, _SETTLED, lease.deadline)
        job.result = (_core.MaxHoldReached("it reached its max_hold: renewal stopped, the key expires"), None)
        return job
    if not entry.pipelined or id(client) in unpipelined or _pipeline_factory(client) is None:
        return _Job(entry, client, _ONE_BY_ONE, lease.deadline)
    job = _Job(entry, client, _PIPELINED, lease.deadline)
    try:
        job.args, job.seconds = _extend_args(lease)
    except Exception as exc:
        job.how, job.result = _SETTLED, (exc, None)
    return job


def _renew_by_ref(entry: _Entry[ThreadHold]) -> _Result:
    """Renew ``entry``'s lock with one call of its ``_renew`` (which sets the lease itself)."""
    lock = entry.ref()
    if lock is not None:
        try:
            lock._renew()
        except Exception as exc:
            return exc, None
    return None, None  # extended, or collected meanwhile (settling tells)


async def _renew_by_ref_async(entry: _Entry[AsyncHold]) -> _Result:
    """The asyncio twin of :func:`_renew_by_ref`."""
    lock = entry.ref()
    if lock is not None:
        try:
            await lock._renew()
        except Exception as exc:
            return exc, None
    return None, None


def _read_replies(replies: Sequence[object], jobs: Sequence[_Job[Any]], sent: float) -> None:
    """Set each job's result from its reply in a pipeline."""
    if len(replies) != len(jobs):
        error = RedisLockError(
            f"Unexpected reply from a pipeline: {len(replies)} replies to {len(jobs)} commands"
        )
        for job in jobs:
            job.result = (error, None)
        return
    for job, reply in zip(jobs, replies, strict=True):
        if isinstance(reply, Exception):
            job.result = (reply, None)
            continue
        try:
            _core.check_extend_reply(reply, job.args[0])
        except RedisLockError as exc:
            job.result = (exc, None)
        else:
            job.result = (None, _core.lease_end(sent, job.seconds, 0.0))


def _fail(jobs: Sequence[_Job[Any]], error: Exception) -> None:
    for job in jobs:
        job.result = (error, None)


def _pipelined(jobs: Sequence[_Job[Any]]) -> Steps[bool]:
    """Steps that extend ``jobs`` in one pipeline (NOSCRIPT handled by ``_scripts.run_pipelined``).

    :returns: False if the client refused to build the pipeline (nothing was sent).
    """
    sent = mod_time.monotonic()
    try:
        numkeys = 1 + len(jobs[0].entry.lease.extend_keys)  # one script per batch (_group), so one layout
        replies = yield from run_pipelined(_script_of(jobs[0]), [job.args for job in jobs], numkeys)
    except Exception as exc:
        _fail(jobs, exc)
        return True
    if replies is None:
        return False
    _read_replies(replies, jobs, sent)
    return True


def _script_of(job: _Job[Any]) -> Script:
    """The script that extends ``job``'s lease: extend.lua, or its lease's own (a semaphore's permit)."""
    return job.entry.lease.extend_script or EXTEND


def _group(jobs: Sequence[_Job[_E]]) -> tuple[dict[tuple[int, str], list[_Job[_E]]], list[_Job[_E]]]:
    """Split a batch into pipelines (by client and extend script) and one-call-per-lock jobs."""
    groups: dict[tuple[int, str], list[_Job[_E]]] = {}
    one_by_one: list[_Job[_E]] = []
    for job in jobs:
        if job.how == _PIPELINED:
            groups.setdefault((id(job.client), _script_of(job).name), []).append(job)
        elif job.how == _ONE_BY_ONE:
            one_by_one.append(job)
    return groups, one_by_one


def _pipeline_factory(client: object) -> Any:
    """The client's ``pipeline`` method, or None to renew its locks one call each.

    Cluster clients get None: redis-py's and valkey-py's cluster pipelines refuse
    EVALSHA, and their per-lock extend sends EVAL on NOSCRIPT to the key's node.
    """
    factory = getattr(client, "pipeline", None)
    if not callable(factory) or _clients.is_cluster_client(client):
        return None
    return factory


def _client_label(client: object) -> str:
    # Never the client's repr: it may show connection details.
    return f"{type(client).__qualname__}@{id(client):#x}"


# ---------------------------------------------------------------------------
# The registry of schedulers, per process.


class _Registry:
    """Every running scheduler of this process, by client (and event loop)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # Reentrant: a finalizer (a __del__ that acquires a lock) may run while it is held.
        self.lock = threading.RLock()
        self.threads: dict[int, _Scheduler] = {}
        self.tasks: dict[tuple[int, int], _AsyncScheduler] = {}

    def check_pid(self) -> None:
        """Forget the schedulers of the parent in a forked child (their threads are gone).

        Runs after every fork (``os.register_at_fork``) and before every registration,
        so a child never waits for a thread it did not inherit, nor for a lock that
        thread held at the fork.
        """
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.lock = threading.RLock()
            self.threads = {}
            self.tasks = {}


_registry: Final = _Registry()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_registry.check_pid)


# ---------------------------------------------------------------------------
# Threads, for Lock.


@final
class Renewal(_Entry["ThreadHold"]):
    """A :class:`~redis_lock.Lock`'s place in its client's renewal schedule, held in ``_lock_renewal_thread``.

    It offers the part of :class:`threading.Thread` that 4.x code used on the
    renewal thread (``is_alive()``, ``join()``, ``name``, ``daemon``), about
    this lock's renewal: alive while the lock is being renewed.
    """

    __slots__ = ("_scheduler",)

    daemon: Final = True

    def __init__(
        self,
        scheduler: _Scheduler,
        lock: ThreadHold,
        lease: _core.Lease,
        interval: float,
        pipelined: bool,
    ) -> None:
        super().__init__(lock, lease, interval, pipelined)
        self._scheduler = scheduler

    @property
    def ident(self) -> int | None:
        """The ident of the thread that renews this lock (shared by its client's locks)."""
        return self._scheduler.thread.ident

    def is_alive(self) -> bool:
        """True while this lock is being renewed (in this process)."""
        return not self.finished and self._scheduler.pid == os.getpid()

    def join(self, timeout: float | None = None) -> None:
        """Wait until this lock's renewal has ended and no renewal of it is in flight."""
        scheduler = self._scheduler
        if scheduler.pid != os.getpid() or threading.current_thread() is scheduler.thread:
            return
        with scheduler.cond:
            scheduler.cond.wait_for(lambda: self.finished and not self.in_flight, timeout)

    def stop(self, until: float | None = None) -> bool:
        """End this lock's renewal; wait for an extend of it in flight. False if it had already ended.

        :param until: a ``monotonic()`` time (the lock's lease deadline) after which an
            extend still in flight is not waited for: it cannot save the lease any more.
        """
        scheduler = self._scheduler
        if scheduler.pid != os.getpid():
            return False  # a forked child: the parent's scheduler does not run here
        with scheduler.cond:
            if self.finished:
                return False
            self.finished = True
            scheduler.live -= 1
            if threading.current_thread() is not scheduler.thread:
                timeout = None if until is None else max(0.0, until - mod_time.monotonic())
                scheduler.cond.wait_for(lambda: not self.in_flight, timeout)
            logger_for_refresh_thread.debug("Exiting renewal thread for Lock(%r).", self.key)
        scheduler.inbox.put((_WAKE, self))
        return True

    def _collected(self, ref: weakref.ref[ThreadHold]) -> None:
        # Any thread, during garbage collection, maybe inside the scheduler's own
        # critical section: SimpleQueue.put is reentrant, a lock would not be.
        self._scheduler.inbox.put((_COLLECTED, self))


@final
class _Scheduler:
    """The daemon thread renewing every auto-renewed :class:`~redis_lock.Lock` of one client."""

    def __init__(self, key: int, label: str) -> None:
        self.key = key
        self.pid = os.getpid()
        self.cond = threading.Condition(threading.RLock())
        self.inbox: queue.SimpleQueue[tuple[int, Renewal]] = queue.SimpleQueue()
        #: Entries not finished; guarded by ``cond`` (and the registry's lock to grow from 0).
        self.live = 0
        self.closed = False
        self._heap: list[tuple[float, int, Renewal]] = []
        self._seq = itertools.count()
        #: Clients (by id) whose pipelines refused EVALSHA: renewed one call per lock.
        self._unpipelined: set[int] = set()
        self.thread = threading.Thread(target=self._run, name=f"redis_lock.refresh {label}", daemon=True)

    def _push(self, entry: Renewal) -> None:
        entry.seq = seq = next(self._seq)
        heapq.heappush(self._heap, (entry.due, seq, entry))

    def _run(self) -> None:
        while True:
            # First, as the last entry may have ended in the previous round (lost, not expirable).
            if not self.live and self._close():
                return
            timeout = max(0.0, self._heap[0][0] - mod_time.monotonic()) if self._heap else None
            try:
                message: tuple[int, Renewal] | None = self.inbox.get(timeout=timeout)
            except queue.Empty:
                message = None
            while message is not None:
                self._receive(*message)
                try:
                    message = self.inbox.get_nowait()
                except queue.Empty:
                    message = None
            if not self.live and self._close():
                return
            try:
                self._renew_due()
            except Exception:  # a bug here must not end renewal for every lock of the client
                logger_for_refresh_thread.exception("Renewal failed unexpectedly; it goes on.")

    def _receive(self, kind: int, entry: Renewal) -> None:
        if kind == _ADD:
            if not entry.finished:
                self._push(entry)
        elif kind == _COLLECTED:
            self._finish_collected(entry)

    def _finish_collected(self, entry: Renewal) -> None:
        with self.cond:
            if entry.finished or entry.ref() is not None:
                return
            _log_collected(entry)
            entry.finished = True
            self.live -= 1
            self.cond.notify_all()

    def _close(self) -> bool:
        with _registry.lock, self.cond:
            if self.live or not self.inbox.empty():
                return False
            self.closed = True
            if _registry.threads.get(self.key) is self:
                del _registry.threads[self.key]
        self._heap.clear()  # stale entries only; a lock may keep this (closed) scheduler
        return True

    def _renew_due(self) -> None:
        due = _pop_due(self._heap, mod_time.monotonic())
        if not due:
            return
        with self.cond:
            jobs = _jobs_for(due, self._unpipelined, self._finish_collected)
        try:
            self._send(jobs)
        except Exception as exc:  # not expected: _send turns errors into results
            _fail(jobs, exc)
        self._settle_all(jobs)
        jobs.clear()

    def _send(self, jobs: list[_Job[Renewal]]) -> None:
        groups, one_by_one = _group(jobs)
        for group in groups.values():
            client = group[0].client
            for first in range(0, len(group), PIPELINE_CHUNK):
                if not drive(client, _pipelined(group[first : first + PIPELINE_CHUNK])):
                    self._unpipelined.add(id(client))
                    one_by_one.extend(group[first:])
                    break
        for job in one_by_one:
            job.result = _renew_by_ref(job.entry)

    def _settle_all(self, jobs: list[_Job[Renewal]]) -> None:
        with self.cond:
            _settle_jobs(
                jobs, stopped=_nothing, collected=self._finish_collected, due=self._push, ended=self._end
            )
            self.cond.notify_all()

    def _end(self, entry: Renewal) -> None:
        self.live -= 1


def renew(lock: ThreadHold, lease: _core.Lease, interval: float, *, pipelined: bool) -> Renewal:
    """Renew ``lock`` every ``interval`` seconds from its client's scheduler thread, started if needed.

    :param pipelined: whether its extends may be pipelined (False: call ``lock._renew()``).
    """
    _registry.check_pid()
    client = lease.client
    with _registry.lock:
        scheduler = _registry.threads.get(id(client))
        start = scheduler is None or scheduler.closed
        if scheduler is None or start:
            scheduler = _registry.threads[id(client)] = _Scheduler(id(client), _client_label(client))
        entry = Renewal(scheduler, lock, lease, interval, pipelined)
        with scheduler.cond:
            scheduler.live += 1
        scheduler.inbox.put((_ADD, entry))
        if start:
            try:
                scheduler.thread.start()
            except BaseException:  # e.g. RuntimeError at interpreter shutdown: leave no dead scheduler behind
                scheduler.closed = True
                del _registry.threads[id(client)]
                raise
    return entry


# ---------------------------------------------------------------------------
# Tasks, for AsyncLock.


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@final
class AsyncRenewal(_Entry["AsyncHold"]):
    """An :class:`~redis_lock.AsyncLock`'s place in its (event loop, client) renewal schedule.

    ``future`` (held in the lock's ``_lock_renewal_task``) is done once this
    lock's renewal has ended and no renewal of it is in flight.
    """

    __slots__ = ("_scheduler", "future")

    def __init__(
        self,
        scheduler: _AsyncScheduler,
        lock: AsyncHold,
        lease: _core.Lease,
        interval: float,
        pipelined: bool,
    ) -> None:
        super().__init__(lock, lease, interval, pipelined)
        self._scheduler = scheduler
        self.future: asyncio.Future[None] = scheduler.loop.create_future()

    def is_alive(self) -> bool:
        return not self.finished and self._scheduler.pid == os.getpid()

    def stop(self) -> bool:
        """End this lock's renewal, from any thread. False if it had already ended."""
        if self.finished or self._scheduler.pid != os.getpid():
            return False
        # From now on the scheduler ignores results for this entry.
        self.finished = True
        logger_for_refresh_thread.debug("Exiting renewal thread for Lock(%r).", self.key)
        loop = self._scheduler.loop
        if _running_loop() is loop:
            self._scheduler.forget(self)
        else:
            # RuntimeError: the loop is closed, so its scheduler will never run again anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._scheduler.forget, self)
        return True

    async def wait_stopped(self, until: float | None = None) -> None:
        """Wait until no renewal of this lock is in flight (only on the scheduler's own loop).

        :param until: a ``monotonic()`` time (the lock's lease deadline) after which an
            extend still in flight is not waited for: it cannot save the lease any more.
        """
        if not self.future.done() and self.future.get_loop() is asyncio.get_running_loop():
            timeout = None if until is None else max(0.0, until - mod_time.monotonic())
            # asyncio.wait neither raises the future's outcome nor swallows a cancellation.
            await asyncio.wait((self.future,), timeout=timeout)

    def _collected(self, ref: weakref.ref[AsyncHold]) -> None:
        with contextlib.suppress(RuntimeError):
            self._scheduler.loop.call_soon_threadsafe(self._scheduler.collected, self)


@final
class _AsyncScheduler:
    """The task renewing every auto-renewed :class:`~redis_lock.AsyncLock` of one client on one loop."""

    def __init__(self, key: tuple[int, int], loop: asyncio.AbstractEventLoop, label: str) -> None:
        self.key = key
        self.loop = loop
        self.pid = os.getpid()
        self.live = 0
        self.closed = False
        self._heap: list[tuple[float, int, AsyncRenewal]] = []
        self._seq = itertools.count()
        self._unpipelined: set[int] = set()
        self._in_flight: list[AsyncRenewal] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._sleeping_until = -math.inf
        self.task = loop.create_task(self._run(), name=f"redis_lock.refresh {label}")

    def add(self, entry: AsyncRenewal) -> None:
        self.live += 1
        self._push(entry)
        if entry.due < self._sleeping_until:
            self._wake()

    def forget(self, entry: AsyncRenewal) -> None:
        """Account for an entry that ``stop`` or the scheduler finished (on the loop)."""
        self.live -= 1
        if not entry.in_flight:
            _resolve(entry.future)
        if not self.live:
            self._wake()

    def collected(self, entry: AsyncRenewal) -> None:
        if entry.finished or entry.ref() is not None:
            return
        _log_collected(entry)
        entry.finished = True
        self.forget(entry)

    def _push(self, entry: AsyncRenewal) -> None:
        entry.seq = seq = next(self._seq)
        heapq.heappush(self._heap, (entry.due, seq, entry))

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (None: until woken); :meth:`add` and :meth:`forget` may wake it earlier."""
        self._wakeup = wakeup = self.loop.create_future()
        timer = None
        if seconds is None:
            self._sleeping_until = math.inf
        else:
            self._sleeping_until = mod_time.monotonic() + seconds
            timer = self.loop.call_later(seconds, _resolve, wakeup)
        try:
            await wakeup
        finally:
            if timer is not None:
                timer.cancel()
            self._wakeup = None
            self._sleeping_until = -math.inf

    async def _run(self) -> None:
        try:
            while self.live:
                heap = self._heap
                while heap and (heap[0][2].seq != heap[0][1] or heap[0][2].finished):
                    heapq.heappop(heap)
                if not heap:
                    await self._sleep(None)  # until an entry is added, or the last one ends
                    continue
                delay = heap[0][0] - mod_time.monotonic()
                if delay > 0:
                    await self._sleep(delay)
                    continue
                try:
                    await self._renew_due()
                except Exception:  # a bug here must not end renewal for every lock of the client
                    logger_for_refresh_thread.exception("Renewal failed unexpectedly; it goes on.")
        finally:
            # Ended (or cancelled, as when the loop shuts down): end every entry still scheduled.
            self.closed = True
            if _registry.tasks.get(self.key) is self:
                del _registry.tasks[self.key]
            for entry in [item[2] for item in self._heap] + self._in_flight:
                entry.in_flight = False
                if not entry.finished:
                    entry.finished = True
                    logger_for_refresh_thread.debug("Exiting renewal thread for Lock(%r).", entry.key)
                _resolve(entry.future)
            self._heap.clear()

    async def _renew_due(self) -> None:
        jobs = _jobs_for(_pop_due(self._heap, mod_time.monotonic()), self._unpipelined, self.collected)
        if not jobs:
            return
        self._in_flight = [job.entry for job in jobs]
        try:
            await self._send(jobs)
        except Exception as exc:  # not expected: _send turns errors into results
            _fail(jobs, exc)
        self._in_flight = []
        self._settle_all(jobs)
        jobs.clear()

    async def _send(self, jobs: list[_Job[AsyncRenewal]]) -> None:
        groups, one_by_one = _group(jobs)
        for group in groups.values():
            client = group[0].client
            for first in range(0, len(group), PIPELINE_CHUNK):
                chunk = group[first : first + PIPELINE_CHUNK]
                if await _within_leases(chunk, drive_async(client, _pipelined(chunk))) is False:
                    self._unpipelined.add(id(client))
                    one_by_one.extend(group[first:])
                    break
        for first in range(0, len(one_by_one), ASYNC_PER_LOCK_CONCURRENCY):
            chunk = one_by_one[first : first + ASYNC_PER_LOCK_CONCURRENCY]
            results = await asyncio.gather(
                *(_within_leases([job], _renew_by_ref_async(job.entry)) for job in chunk)
            )
            for job, result in zip(chunk, results, strict=True):
                if result is not None:
                    job.result = result

    def _settle_all(self, jobs: list[_Job[AsyncRenewal]]) -> None:
        _settle_jobs(
            jobs, stopped=_resolve_entry, collected=self.collected, due=self._push, ended=self.forget
        )


def _resolve_entry(entry: AsyncRenewal) -> None:
    _resolve(entry.future)


_T = TypeVar("_T")


async def _within_leases(jobs: Sequence[_Job[AsyncRenewal]], io: Awaitable[_T]) -> _T | None:
    """Await ``io`` until the latest lease of ``jobs`` ends, at most: renewal I/O must not outlive its leases.

    Past that, no extend can save them (they are lost: ``_core.renewal_outcome``):
    the I/O is cancelled (the client drops its connection), every job fails with
    :class:`TimeoutError`, and None is returned.
    """
    timeout = max(job.deadline for job in jobs) - mod_time.monotonic()
    try:
        return await asyncio.wait_for(io, max(0.0, timeout))
    except asyncio.TimeoutError:
        _fail(jobs, TimeoutError("renewal I/O outlived the lease it was renewing"))
        return None


def renew_async(lock: AsyncHold, lease: _core.Lease, interval: float, *, pipelined: bool) -> AsyncRenewal:
    """Renew ``lock`` every ``interval`` seconds from its (running loop, client) scheduler task.

    :param pipelined: whether its extends may be pipelined (False: await ``lock._renew()``).
    """
    _registry.check_pid()
    loop = asyncio.get_running_loop()
    key = (id(loop), id(lease.client))
    scheduler = _registry.tasks.get(key)
    if scheduler is None or scheduler.closed or scheduler.loop is not loop or scheduler.task.done():
        scheduler = _registry.tasks[key] = _AsyncScheduler(key, loop, _client_label(lease.client))
    entry = AsyncRenewal(scheduler, lock, lease, interval, pipelined)
    scheduler.add(entry)
    return entry
