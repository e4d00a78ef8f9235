"""Waiting at scale against a real Redis: one blocking connection per client, no lost wake-up.

A blocking ``acquire()`` on a busy lock sleeps locally and leaves the ``BLPOP``
to its client's hub (``redis_lock._waiting``): one per client object (per event
loop for asyncio clients, per hash slot on a cluster). These tests drive many
waiters through bounded connection pools, count the connections blocked in
``BLPOP`` with CLIENT LIST, pass a signal between the hubs of two clients (as
between two processes), record hand-off histories under cancellations and
timeouts, and check that a hub gives its connection back and ends, survives its
client being closed and a fork, and works per slot on a cluster.

Clients made with ``socket_timeout=None`` re-check a busy lock only every 10 s
(the longest wait chunk), so a hand-off seen within 1 s came from a signal.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import pytest
import redis
import redis.asyncio
import redis.cluster
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.property.conftest  # noqa: F401 (registers and loads the HYPOTHESIS_PROFILE profile)
from redis_lock import AsyncLock, Lock, _keys, _waiting
from redis_lock._waiting import LINGER, WAIT_TASK

from ._cluster import RedisClusterDeployment
from ._topology import async_wait_for, blocked_in, wait_for
from .test_concurrency import Hold, check_history

#: The loaded profile (``ci`` unless ``HYPOTHESIS_PROFILE`` says otherwise), applied explicitly below.
PROFILE: Final = settings()

#: How long any single scenario may take before a waiter counts as hung (far above what a run needs).
DEADLINE: Final = 60.0
#: A hand-off (a release, then the next waiter's acquire) through a signal; a lost one takes 10 s.
HANDOFF_BOUND: Final = 1.0


def unique(prefix: str) -> str:
    """A lock (or client) name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex}"


def hubs_of(client: object) -> list[_waiting.Hub]:
    """The hubs of ``client`` in this process (every event loop and slot) that have waiters or a running loop.

    A hub nobody uses stays registered, idle, for the next wait (``KEEP_IDLE_HUBS``).
    """
    registry = _waiting._registry  # pyright: ignore[reportPrivateUsage]
    with registry.mutex:
        return [hub for hub in registry.hubs.values() if hub.client is client and (hub.queues or hub.running)]


def waiting_entries(client: object) -> int:
    """How many ``acquire()`` calls of ``client`` sleep in its hubs right now."""
    total = 0
    for hub in hubs_of(client):
        with hub.mutex:
            total += sum(1 for queue in hub.queues.values() for entry in queue if entry.waiting)
    return total


def blocks_on(client: object, lock_name: str) -> bool:
    """Whether a hub of ``client`` has a BLPOP in flight that covers ``lock_name``'s signal list."""
    signal_key = _keys.keys_for(lock_name)[1]
    for hub in hubs_of(client):
        with hub.mutex:
            if hub.in_blpop and signal_key in hub.blocked:
                return True
    return False


def hub_threads(client: object) -> list[threading.Thread]:
    """The live hub threads of the sync ``client`` (named ``redis_lock.wait <class>@<id>``)."""
    suffix = f"@{id(client):#x}"
    return [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith(f"{WAIT_TASK} ") and thread.name.endswith(suffix)
    ]


def hub_tasks() -> list[asyncio.Task[Any]]:
    """The hub tasks of the running event loop."""
    return [task for task in asyncio.all_tasks() if task.get_name().startswith(f"{WAIT_TASK} ")]


def first_waiter(client: object, lock_name: str) -> _waiting.Entry | None:
    """The first ``acquire()`` call of ``client`` in line for ``lock_name``, if any."""
    signal_key = _keys.keys_for(lock_name)[1]
    for hub in hubs_of(client):
        with hub.mutex:
            queue = hub.queues.get(signal_key)
            if queue:
                return next(iter(queue))
    return None


class Workers:
    """Threads running ``work(index)``; :meth:`join` fails on a hung thread and re-raises the first error."""

    def __init__(self, count: int, work: Callable[[int], None]) -> None:
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(work, i), daemon=True) for i in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self, work: Callable[[int], None], index: int) -> None:
        try:
            work(index)
        except BaseException as exc:
            self.errors.append(exc)

    def join(self, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), f"a worker thread hung for {timeout} s"
        if self.errors:
            raise self.errors[0]


# ---------------------------------------------------------------------------
# Bounded pools: the hub's one connection leaves the others to the acquire scripts.

WORKERS: Final = 50
DOGPILE_RUNS: Final = 10


def _dogpile_threads(client: redis.Redis, names: list[str]) -> Counter[str]:
    """``WORKERS`` threads fill the cache entry of lock ``i % len(names)`` unless filled; count the fills."""
    fills: Counter[str] = Counter()
    record = threading.Lock()

    def work(index: int) -> None:
        name = names[index % len(names)]
        with Lock(client, name, timeout=5, expire=10):
            if client.get(f"value:{name}") is None:
                time.sleep(0.01)  # the expensive computation
                with record:
                    fills[name] += 1
                client.set(f"value:{name}", b"computed")

    Workers(WORKERS, work).join()
    return fills


@pytest.mark.parametrize("locks", [1, 20])
def test_bounded_pool_threads_fill_each_cache_entry_once(
    redis_url: str, plain: redis.Redis, locks: int
) -> None:
    """50 threads on a 10-connection pool all get their lock, and each value is computed exactly once."""
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=10, timeout=5)
    client = redis.Redis(connection_pool=pool)
    try:
        for run in range(DOGPILE_RUNS):
            names = [unique(f"dogpile-{run}-{i}") for i in range(locks)]
            assert _dogpile_threads(client, names) == Counter(dict.fromkeys(names, 1)), f"run {run}"
    finally:
        client.close()
        pool.disconnect()


def test_bounded_pool_threads_all_take_one_busy_lock(redis_url: str, plain: redis.Redis) -> None:
    """50 threads on a 10-connection pool each hold one lock for 10 ms in turn: all 50 succeed."""
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=10, timeout=5)
    client = redis.Redis(connection_pool=pool)
    name = unique("plain-busy")
    holds: list[int] = []

    def work(index: int) -> None:
        with Lock(client, name, timeout=5, expire=10):
            time.sleep(0.01)
            holds.append(index)

    try:
        Workers(WORKERS, work).join()
    finally:
        client.close()
        pool.disconnect()
    assert sorted(holds) == list(range(WORKERS))


async def _dogpile_tasks(client: redis.asyncio.Redis, names: list[str]) -> Counter[str]:
    """The asyncio twin of :func:`_dogpile_threads`."""
    fills: Counter[str] = Counter()

    async def work(index: int) -> None:
        name = names[index % len(names)]
        async with AsyncLock(client, name, timeout=5, expire=10):
            if await client.get(f"value:{name}") is None:
                await asyncio.sleep(0.01)
                fills[name] += 1
                await client.set(f"value:{name}", b"computed")

    await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(WORKERS))), DEADLINE)
    return fills


@pytest.mark.asyncio
@pytest.mark.parametrize("locks", [1, 20])
async def test_bounded_pool_tasks_fill_each_cache_entry_once(
    redis_url: str, plain: redis.Redis, locks: int
) -> None:
    """50 tasks on a 10-connection asyncio pool all get their lock, and each value is computed exactly once."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=10, timeout=5)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        for run in range(DOGPILE_RUNS):
            names = [unique(f"dogpile-{run}-{i}") for i in range(locks)]
            assert await _dogpile_tasks(client, names) == Counter(dict.fromkeys(names, 1)), f"run {run}"
    finally:
        await client.aclose()
        await pool.disconnect()


@pytest.mark.asyncio
async def test_bounded_pool_tasks_all_take_one_busy_lock(redis_url: str, plain: redis.Redis) -> None:
    """50 tasks on a 10-connection asyncio pool each hold one lock for 10 ms in turn: all 50 succeed."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=10, timeout=5)
    client = redis.asyncio.Redis(connection_pool=pool)
    name = unique("plain-busy")
    holds: list[int] = []

    async def work(index: int) -> None:
        async with AsyncLock(client, name, timeout=5, expire=10):
            await asyncio.sleep(0.01)
            holds.append(index)

    try:
        await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(WORKERS))), DEADLINE)
    finally:
        await client.aclose()
        await pool.disconnect()
    assert sorted(holds) == list(range(WORKERS))


# ---------------------------------------------------------------------------
# One blocked connection per client, however many wait.

MANY_TASKS: Final = 1000
MANY_THREADS: Final = 200
MANY_LOCKS: Final = 20


class AsyncSide:
    """``MANY_TASKS`` tasks of one asyncio client, on an event loop of their own in a thread."""

    def __init__(self, redis_url: str, client_name: str, names: list[str]) -> None:
        self.url = redis_url
        self.client_name = client_name
        self.names = names
        #: The asyncio client, once its event loop made it.
        self.client: redis.asyncio.Redis | None = None
        self.results: list[BaseException | None] = []
        self.error: BaseException | None = None
        #: Set by the test once it has looked at the server after the waiters ended: the client may close.
        self.checked = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc

    async def _main(self) -> None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self.url, max_connections=50, timeout=30, socket_timeout=None, client_name=self.client_name
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        try:
            tasks = [asyncio.create_task(self._wait(client, i)) for i in range(MANY_TASKS)]
            self.client = client
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            self.results = await asyncio.wait_for(gathered, DEADLINE)
            await async_wait_for(self.checked.is_set, DEADLINE, "the test to look at the server")
        finally:
            await client.aclose()
            await pool.disconnect()

    async def _wait(self, client: redis.asyncio.Redis, index: int) -> None:
        lock = AsyncLock(client, self.names[index % len(self.names)])
        assert await lock.acquire(timeout=60), f"task {index} timed out"
        await lock.release()


def test_many_waiters_share_one_blocked_connection_per_client(redis_url: str, plain: redis.Redis) -> None:
    """1,000 tasks and 200 threads of two clients wait on 20 locks with at most one BLPOP per client."""
    names = [unique(f"many-{i}") for i in range(MANY_LOCKS)]
    holders = [Lock(plain, name) for name in names]
    for holder in holders:
        assert holder.acquire(blocking=False)
    sync_name, async_name = unique("waiters-sync"), unique("waiters-async")
    pool = redis.BlockingConnectionPool.from_url(
        redis_url, max_connections=50, timeout=30, socket_timeout=None, client_name=sync_name
    )
    client = redis.Redis(connection_pool=pool)

    def work(index: int) -> None:
        lock = Lock(client, names[index % MANY_LOCKS])
        assert lock.acquire(timeout=60), f"thread {index} timed out"
        lock.release()

    side = AsyncSide(redis_url, async_name, names)
    try:
        threads = Workers(MANY_THREADS, work)

        def all_waiting() -> bool:
            assert side.error is None, side.error
            return (
                side.client is not None
                and waiting_entries(side.client) == MANY_TASKS
                and waiting_entries(client) == MANY_THREADS
            )

        wait_for(all_waiting, DEADLINE, "every task and thread to wait")
        # Everybody waits now: each hub blocks (or is about to), never more than one connection each.
        wait_for(
            lambda: (
                blocked_in(plain, "blpop", sync_name) == 1 and blocked_in(plain, "blpop", async_name) == 1
            ),
            10,
            "each client's hub to block in BLPOP",
        )
        for _ in range(50):
            per_client = (blocked_in(plain, "blpop", sync_name), blocked_in(plain, "blpop", async_name))
            assert max(per_client) <= 1, f"blocked in BLPOP (sync, asyncio): {per_client}"
            assert blocked_in(plain, "blpop") <= 2
        for holder in holders:
            holder.release()
        threads.join(DEADLINE)
        wait_for(lambda: len(side.results) == MANY_TASKS, DEADLINE, "every task to finish")
        assert side.error is None, side.error
        failed = [r for r in side.results if r is not None]
        assert not failed, f"{len(failed)} tasks failed, first: {failed[0]!r}"
        wait_for(
            lambda: blocked_in(plain, "blpop", sync_name) + blocked_in(plain, "blpop", async_name) == 0,
            10,
            "both hubs to stop blocking",
        )
    finally:
        side.checked.set()
        side.thread.join(DEADLINE)
        client.close()
        pool.disconnect()
    assert not side.thread.is_alive()
    assert side.error is None, side.error


# ---------------------------------------------------------------------------
# Giving a signal back: another client (another process) gets it.


def test_a_signal_popped_by_a_hub_without_a_taker_reaches_another_clients_waiter(
    redis_url: str, make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """A's hub pops L's signal after A's waiter on L left; it gives it back and B's waiter gets L within 1 s."""
    lock_l, lock_m = unique("give-back-l"), unique("give-back-m")
    name_a, name_b = unique("hub-a"), unique("hub-b")
    # No socket timeout: a waiter re-checks only every 10 s, so only a signal wakes B within 1 s.
    client_a: redis.Redis = make_client(socket_timeout=None, client_name=name_a)
    client_b: redis.Redis = make_client(socket_timeout=None, client_name=name_b)
    holder_l, holder_m = Lock(plain, lock_l), Lock(plain, lock_m)  # no expire: only a release frees them
    assert holder_l.acquire(blocking=False)
    assert holder_m.acquire(blocking=False)
    outcomes: dict[str, tuple[bool, float]] = {}

    def waiter(key: str, client: redis.Redis, name: str, timeout: float) -> Workers:
        def work(_: int) -> None:
            lock = Lock(client, name)
            got = lock.acquire(timeout=timeout)
            outcomes[key] = (got, time.monotonic())
            if got:
                lock.release()

        return Workers(1, work)

    a_m = waiter("a_m", client_a, lock_m, 30)
    a_l = waiter("a_l", client_a, lock_l, 1.5)
    wait_for(
        lambda: (
            blocks_on(client_a, lock_l)
            and blocks_on(client_a, lock_m)
            and blocked_in(plain, "blpop", name_a) == 1
        ),
        10,
        "A's hub to block on L and M",
    )
    # B blocks on L after A: Redis serves A's BLPOP first.
    b_l = waiter("b_l", client_b, lock_l, 30)
    wait_for(
        lambda: blocks_on(client_b, lock_l) and blocked_in(plain, "blpop", name_b) == 1,
        10,
        "B's hub to block on L",
    )
    a_l.join(10)
    assert outcomes["a_l"][0] is False
    # A's waiter on M keeps A's hub blocking, on its old key set, L among them.
    assert blocks_on(client_a, lock_l)
    assert blocked_in(plain, "blpop", name_a) == 1
    released = time.monotonic()
    holder_l.release()
    b_l.join(DEADLINE)
    got, at = outcomes["b_l"]
    assert got
    assert at - released < HANDOFF_BOUND, f"B got L {at - released:.3f} s after its release"
    holder_m.release()
    a_m.join(DEADLINE)
    assert outcomes["a_m"][0]


class HeldReply(redis.Redis):
    """A real redis-py client that holds back one script reply of one thread until ``gate`` is set.

    The armed thread's waiter is then between "its acquire script ran" and "it saw
    the reply": it is not asleep, but still in line, so a signal can be handed to it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The thread whose next script reply is held (None: none).
        self.armed: int | None = None
        self.entered = threading.Event()
        self.gate = threading.Event()

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        reply = super().evalsha(sha, numkeys, *keys_and_args)
        if self.armed is not None and threading.get_ident() == self.armed:
            self.armed = None
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return reply


@pytest.mark.parametrize("next_waiter", ["same-client", "other-client"])
def test_a_waiter_timing_out_with_an_unused_signal_passes_it_on(
    redis_url: str, make_client: Callable[..., Any], plain: redis.Redis, next_waiter: str
) -> None:
    """A waiter handed the signal during its last attempt times out: the next waiter (here, or in another client) gets it."""
    name = unique("handed")
    name_a = unique("hub-a")
    pool = redis.ConnectionPool.from_url(redis_url, socket_timeout=None, client_name=name_a)
    client_a = HeldReply(connection_pool=pool)
    client_b: redis.Redis = make_client(socket_timeout=None)
    other = client_a if next_waiter == "same-client" else client_b
    holder = Lock(plain, name)  # no expire: only the release frees it
    assert holder.acquire(blocking=False)
    outcomes: dict[str, tuple[bool, float]] = {}

    def waiter(key: str, client: redis.Redis, timeout: float) -> Workers:
        def work(_: int) -> None:
            lock = Lock(client, name)
            got = lock.acquire(timeout=timeout)
            outcomes[key] = (got, time.monotonic())
            if got:
                lock.release()

        return Workers(1, work)

    try:
        leaver = waiter("leaver", client_a, 1.5)
        wait_for(lambda: blocks_on(client_a, name), 10, "A's hub to block")
        entry = first_waiter(client_a, name)
        assert entry is not None
        client_a.armed = leaver.threads[0].ident  # its next script: the attempt at its deadline
        # The next waiter lines up (and, in another client, blocks after A): Redis serves A first.
        follower = waiter("follower", other, 30)
        wait_for(lambda: waiting_entries(other) == (2 if other is client_a else 1), 10, "the next waiter")
        wait_for(lambda: blocks_on(other, name), 10, "the next waiter's hub to block")
        assert client_a.entered.wait(10), "the leaver never made its last attempt"
        holder.release()
        if next_waiter == "same-client":
            wait_for(lambda: entry.signalled, 10, "A's hub to hand the signal to the leaver")
        else:
            # The leaver blocked in Redis itself (a lone thread: Hub.lead) and its BLPOP has ended, so
            # A has none in flight during this last attempt: the signal goes to B's hub directly.
            wait_for(lambda: not plain.exists(f"lock-signal:{name}"), 10, "a hub to pop the signal")
        opened = time.monotonic()
        client_a.gate.set()
        leaver.join(10)
        follower.join(DEADLINE)
    finally:
        client_a.gate.set()
        client_a.close()
        pool.disconnect()
    assert outcomes["leaver"][0] is False
    got, at = outcomes["follower"]
    assert got
    assert at - opened < HANDOFF_BOUND, (
        f"the next waiter got the lock {at - opened:.3f} s after the leaver left"
    )


class AsyncHeldReply(redis.asyncio.Redis):
    """The asyncio twin of :class:`HeldReply`: once armed, the next script reply is held until ``gate`` is set.

    Not by task: an attempt runs in a task of its own (``_engine.Guarded``), so the
    test arms it when only one waiter can make the next attempt.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.armed = False
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        reply = await super().evalsha(sha, numkeys, *keys_and_args)
        if self.armed:
            self.armed = False
            self.entered.set()
            await self.gate.wait()
        return reply


@pytest.mark.asyncio
async def test_a_task_cancelled_with_an_unused_signal_passes_it_on(
    redis_url: str, plain: redis.Redis
) -> None:
    """A task handed the signal during an attempt is cancelled: the next task in line gets the lock within 1 s."""
    name = unique("handed-cancel")
    pool = redis.asyncio.ConnectionPool.from_url(redis_url, socket_timeout=None)
    client = AsyncHeldReply(connection_pool=pool)
    holder = Lock(plain, name)  # no expire: only the release frees it
    assert holder.acquire(blocking=False)

    async def wait(timeout: float) -> float:
        lock = AsyncLock(client, name)
        assert await lock.acquire(timeout=timeout)
        got = time.monotonic()
        await lock.release()
        return got

    try:
        # Its attempt at the deadline is the one held; it is cancelled before it sees the reply.
        leaver = asyncio.create_task(wait(1.5))
        await async_wait_for(lambda: blocks_on(client, name), 10, "the hub to block")
        entry = first_waiter(client, name)
        assert entry is not None
        follower = asyncio.create_task(wait(30))
        await async_wait_for(lambda: waiting_entries(client) == 2, 10, "the next waiter")
        # Both sleep, the BLPOP covers the lock: the next script is the leaver's, at its deadline.
        client.armed = True
        await asyncio.wait_for(client.entered.wait(), 10)
        holder.release()
        await async_wait_for(lambda: entry.signalled, 10, "the hub to hand the signal to the leaver")
        # Cancelled during its attempt, the leaver lets the attempt finish (``_engine.Guarded``), then leaves:
        # the cancellation lands first (both wake-ups are queued in this order), then the reply comes.
        leaver.cancel()
        opened = time.monotonic()
        client.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(leaver), 10)
        got = await asyncio.wait_for(follower, DEADLINE)
    finally:
        client.gate.set()
        await client.aclose()
        await pool.disconnect()
    assert got - opened < HANDOFF_BOUND, (
        f"the next task got the lock {got - opened:.3f} s after the leaver left"
    )


# ---------------------------------------------------------------------------
# No lost wake-up: waiters leaving (cancelled, timed out) just as the lock is released.

#: The waiters start, then the lock is released this long after; leaves are drawn around it.
SETTLE: Final = 0.15
LEAVE_OFFSETS: Final = st.integers(min_value=-40, max_value=40)


def check_handoffs(holds: list[Hold]) -> None:
    """No two holds overlap, and each release reaches the next waiter within :data:`HANDOFF_BOUND`."""
    check_history(holds)
    ordered = sorted(holds, key=lambda h: h.acquired)
    for before, after in itertools.pairwise(ordered):
        gap = after.acquired - max(before.released, after.requested)
        assert gap <= HANDOFF_BOUND, (
            f"{after.worker} got the lock {gap:.3f} s after {before.worker} released it"
        )


async def _task_episode(url: str, plans: list[tuple[str, int]], hold_ms: int) -> tuple[list[Hold], list[str]]:
    """Waiters of one asyncio client; some are cancelled or time out around the release. History and outcomes."""
    client = redis.asyncio.Redis.from_url(url, socket_timeout=None)
    name = unique("no-lost-tasks")
    holds: list[Hold] = []
    acquired = [False] * len(plans)
    try:
        holder = AsyncLock(client, name)
        assert await holder.acquire(blocking=False)
        held = time.monotonic()
        loop = asyncio.get_running_loop()

        async def waiter(index: int, kind: str, offset_ms: int) -> str:
            lock = AsyncLock(client, name)
            timeout = SETTLE + offset_ms / 1000 if kind == "timeout" else 30.0
            requested = time.monotonic()
            if not await lock.acquire(timeout=max(0.0, timeout)):
                return "timed out"
            acquired[index] = True
            got = time.monotonic()
            await asyncio.sleep(hold_ms / 1000)
            holds.append(Hold(name, f"{kind}-{index}", requested, got, time.monotonic()))
            await lock.release()
            return "acquired"

        tasks = [asyncio.create_task(waiter(i, kind, offset)) for i, (kind, offset) in enumerate(plans)]

        def cancel(index: int) -> None:
            if not acquired[index]:  # a holder is never cancelled: its release must run
                tasks[index].cancel()

        for index, (kind, offset) in enumerate(plans):
            if kind == "cancel":
                loop.call_later(max(0.0, SETTLE + offset / 1000), cancel, index)
        await asyncio.sleep(SETTLE)  # the scenario's release time, not a synchronisation
        holds.append(Hold(name, "holder", held, held, time.monotonic()))
        await holder.release()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DEADLINE)
    finally:
        await client.aclose()
    outcomes = [r if isinstance(r, str) else type(r).__name__ for r in results]
    return holds, outcomes


@settings(PROFILE, max_examples=min(PROFILE.max_examples, 15))
@given(
    plans=st.lists(
        st.tuples(st.sampled_from(["stay", "cancel", "timeout"]), LEAVE_OFFSETS), min_size=2, max_size=8
    ),
    hold_ms=st.integers(min_value=0, max_value=5),
)
def test_no_lost_wake_up_when_tasks_leave_around_a_release(
    redis_url: str, plans: list[tuple[str, int]], hold_ms: int
) -> None:
    """Tasks cancelled or timing out as the lock is released never strand the others: each hand-off within 1 s."""
    holds, outcomes = asyncio.run(_task_episode(redis_url, plans, hold_ms))
    for (kind, _), outcome in zip(plans, outcomes, strict=True):
        assert outcome in {"acquired", "timed out", "CancelledError"}, outcome
        if kind == "stay":
            assert outcome == "acquired"
    check_handoffs(holds)


def _thread_episode(url: str, plans: list[tuple[str, int]], hold_ms: int) -> tuple[list[Hold], list[bool]]:
    """The sync twin of :func:`_task_episode`: threads that stay or time out around the release."""
    client = redis.Redis.from_url(url, socket_timeout=None)
    name = unique("no-lost-threads")
    holds: list[Hold] = []
    outcomes = [False] * len(plans)
    try:
        holder = Lock(client, name)
        assert holder.acquire(blocking=False)
        held = time.monotonic()

        def work(index: int) -> None:
            kind, offset_ms = plans[index]
            lock = Lock(client, name)
            timeout = SETTLE + offset_ms / 1000 if kind == "timeout" else 30.0
            requested = time.monotonic()
            if lock.acquire(timeout=max(0.0, timeout)):
                got = time.monotonic()
                time.sleep(hold_ms / 1000)
                holds.append(Hold(name, f"{kind}-{index}", requested, got, time.monotonic()))
                lock.release()
                outcomes[index] = True

        workers = Workers(len(plans), work)
        time.sleep(SETTLE)  # the scenario's release time, not a synchronisation
        holds.append(Hold(name, "holder", held, held, time.monotonic()))
        holder.release()
        workers.join()
    finally:
        client.close()
    return holds, outcomes


@settings(PROFILE, max_examples=min(PROFILE.max_examples, 10))
@given(
    plans=st.lists(st.tuples(st.sampled_from(["stay", "timeout"]), LEAVE_OFFSETS), min_size=2, max_size=8),
    hold_ms=st.integers(min_value=0, max_value=5),
)
def test_no_lost_wake_up_when_threads_time_out_around_a_release(
    redis_url: str, plans: list[tuple[str, int]], hold_ms: int
) -> None:
    """Threads timing out as the lock is released never strand the others: each hand-off within 1 s."""
    holds, outcomes = _thread_episode(redis_url, plans, hold_ms)
    for (kind, _), got in zip(plans, outcomes, strict=True):
        if kind == "stay":
            assert got
    check_handoffs(holds)


# ---------------------------------------------------------------------------
# The hub gives its connection back and ends.


def test_the_hub_thread_returns_its_connection_and_ends_after_an_episode(
    make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """After contended waits end, the pool has no connection in use and the hub thread ends after LINGER."""
    client: redis.Redis = make_client(socket_timeout=None)
    pool: Any = client.connection_pool
    name = unique("episode")
    holder = Lock(plain, name)
    assert holder.acquire(blocking=False)

    def work(_: int) -> None:
        lock = Lock(client, name)
        assert lock.acquire(timeout=30)
        lock.release()

    workers = Workers(5, work)
    wait_for(lambda: waiting_entries(client) == 5, 10, "five waiters")
    wait_for(lambda: blocks_on(client, name), 10, "the hub to block")
    # A lone waiter blocks in Redis itself (Hub.lead); the hub's thread serves the others after it.
    assert len(hub_threads(client)) <= 1
    holder.release()
    workers.join()
    wait_for(lambda: not pool._in_use_connections, 10, "the pool to get every connection back")
    wait_for(lambda: not hub_threads(client), LINGER + 5, "the hub thread to end")
    assert not hubs_of(client)


@pytest.mark.asyncio
async def test_the_hub_task_returns_its_connection_and_ends_after_an_episode(
    redis_url: str, plain: redis.Redis
) -> None:
    """After contended waits end, the asyncio pool has no connection in use and the hub task ends at once."""
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=None)
    pool: Any = client.connection_pool
    name = unique("episode")
    holder = Lock(plain, name)
    assert holder.acquire(blocking=False)

    async def work() -> None:
        lock = AsyncLock(client, name)
        assert await lock.acquire(timeout=30)
        await lock.release()

    try:
        waiters = asyncio.gather(*(work() for _ in range(5)))
        await async_wait_for(lambda: waiting_entries(client) == 5, 10, "five waiters")
        await async_wait_for(lambda: blocks_on(client, name), 10, "the hub to block")
        assert len(hub_tasks()) == 1
        holder.release()
        await asyncio.wait_for(waiters, DEADLINE)
        await async_wait_for(
            lambda: not pool._in_use_connections, 10, "the pool to get every connection back"
        )
        await async_wait_for(lambda: not hubs_of(client) and not hub_tasks(), 5, "the hub task to end")
    finally:
        await client.aclose()


# ---------------------------------------------------------------------------
# The client closed under its waiters.


def test_waiters_finish_when_their_client_is_closed_under_them(
    make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """Waiters whose client is closed while its hub blocks either get the lock or raise a redis error: none hangs."""
    client_name = unique("closed")
    client: redis.Redis = make_client(socket_timeout=None, client_name=client_name)
    name = unique("closed-under")
    holder = Lock(plain, name)
    assert holder.acquire(blocking=False)
    outcomes: list[object] = []

    def work(_: int) -> None:
        lock = Lock(client, name)
        try:
            got = lock.acquire(timeout=30)
        except redis.RedisError as exc:
            outcomes.append(exc)
            return
        outcomes.append(got)
        if got:
            lock.release()

    workers = Workers(5, work)
    wait_for(lambda: waiting_entries(client) == 5, 10, "five waiters")
    wait_for(lambda: blocked_in(plain, "blpop", client_name) == 1, 10, "the hub to block")
    client.close()
    released = time.monotonic()
    holder.release()
    workers.join(25)
    assert len(outcomes) == 5
    assert all(o is True or isinstance(o, redis.RedisError) for o in outcomes), outcomes
    # The waiters outlive the close: redis-py reconnects on their next command.
    assert outcomes.count(True) == 5, outcomes
    assert time.monotonic() - released < 10, "the waiters needed a re-check chunk: the close stranded them"


# ---------------------------------------------------------------------------
# Fork: the child starts hubs of its own.

_FORK_PROGRAM = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import redis, redis_lock

    url, tag = sys.argv[1], sys.argv[2]
    client = redis.Redis.from_url(url, socket_timeout=None, client_name=tag)
    holder = redis.Redis.from_url(url)

    def blocked():
        return sum(1 for c in holder.client_list() if c["cmd"] == "blpop" and "b" in c["flags"] and c["name"] == tag)

    def wait_until(predicate, what):
        deadline = time.monotonic() + 20
        while not predicate():
            if time.monotonic() > deadline:
                sys.exit("timed out waiting for " + what)
            time.sleep(0.002)

    parents, childs = redis_lock.Lock(holder, tag + "-parent"), redis_lock.Lock(holder, tag + "-child")
    assert parents.acquire(blocking=False) and childs.acquire(blocking=False)
    parent_result = []

    def parent_waiter():
        lock = redis_lock.Lock(client, tag + "-parent")
        parent_result.append(lock.acquire(timeout=30))
        lock.release()

    waiter = threading.Thread(target=parent_waiter)
    waiter.start()
    wait_until(lambda: blocked() == 1, "the parent's hub to block")

    pid = os.fork()
    if pid == 0:
        # The child: its copy of the parent's hub has no thread; a wait here starts a hub of its own.
        code = 1
        try:
            lock = redis_lock.Lock(client, tag + "-child")
            if lock.acquire(timeout=20):
                lock.release()
                code = 0
        finally:
            os._exit(code)

    wait_until(lambda: blocked() == 2, "the child's hub to block next to the parent's")
    released = time.monotonic()
    childs.release()
    deadline = released + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            sys.exit("the child hung")
        time.sleep(0.002)
    handoff = time.monotonic() - released
    parents.release()
    waiter.join(30)
    print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status), "handoff": handoff, "parent": parent_result}))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_waits_through_a_hub_of_its_own(redis_url: str, plain: redis.Redis) -> None:
    """A child forked while the parent's hub blocks gets a lock the parent's side releases, through a signal."""
    out = subprocess.run(
        [sys.executable, "-c", _FORK_PROGRAM, redis_url, unique("fork")],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["child_exit"] == 0, "the child did not get its lock"
    assert result["handoff"] < 5, f"the child took {result['handoff']:.3f} s: no signal reached it"
    assert result["parent"] == [True]


# ---------------------------------------------------------------------------
# Redis Cluster: one hub per slot.


def test_cluster_waiters_block_one_connection_per_slot(cluster_deployment: RedisClusterDeployment) -> None:
    """Waiters on three slots from one cluster client all get their locks, with one BLPOP per slot at most."""
    client_name = unique("cluster-waiters")
    client: redis.cluster.RedisCluster = cluster_deployment.client(
        socket_timeout=None, client_name=client_name
    )
    holder_client: redis.cluster.RedisCluster = cluster_deployment.client()
    nodes = [redis.Redis(unix_socket_path=node.unix_path) for node in cluster_deployment.nodes]
    names: list[str] = []
    slots: list[int] = []
    while len(names) < 3:
        name = unique("cluster-wait")
        slot = _keys.key_slot(_keys.keys_for(name, cluster=True)[0])
        if slot not in slots:
            names.append(name)
            slots.append(slot)
    # How many of our slots each node serves: its bound on blocked connections.
    ports = [cluster_deployment.node_for_slot(slot).port for slot in slots]
    bound = [ports.count(node.port) for node in cluster_deployment.nodes]

    def blocked_per_node() -> list[int]:
        return [blocked_in(node, "blpop", client_name) for node in nodes]

    holders = [Lock(holder_client, name) for name in names]
    try:
        for holder in holders:
            assert holder.acquire(blocking=False)

        def work(index: int) -> None:
            lock = Lock(client, names[index % 3])
            assert lock.acquire(timeout=30)
            lock.release()

        workers = Workers(12, work)
        wait_for(lambda: waiting_entries(client) == 12, 10, "twelve waiters")
        wait_for(lambda: sum(blocked_per_node()) == 3, 10, "one BLPOP per slot")
        for _ in range(20):
            per_node = blocked_per_node()
            assert all(b <= limit for b, limit in zip(per_node, bound, strict=True)), (per_node, bound)
        assert len(hubs_of(client)) == 3
        for holder in holders:
            holder.release()
        workers.join()
        wait_for(lambda: sum(blocked_per_node()) == 0, 10, "the hubs to stop blocking")
    finally:
        client.close()
        holder_client.close()
        for node in nodes:
            node.close()
