"""Code that runs in the benchmark's child processes (imported by name there: keep it importable),
and the coordinator's side of them.

Processes, not threads, because a waiter woken by Redis must not queue for the
GIL behind the thread that just released: real contenders are other processes
or other hosts. ``time.monotonic()`` is system-wide, so timestamps taken in
different processes can be subtracted.

The asyncio contenders (:data:`ASYNC_PEERS`) run the same way: each child
process runs one event loop with its own ``redis.asyncio`` client, so a
hand-off crosses processes exactly as a synchronous one does, and what differs
is the library and the asyncio client, not the scheduling of two tasks in one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import random
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import redis
import redis.asyncio
import redis.asyncio.lock
from tests._prl401 import prl401

import redis_lock

from ._peers import (
    _EXTEND_SOURCE,
    _RELEASE_SOURCE,
    PEERS,
    REQUESTS,
    BenchLock,
    HandWrittenLock,
    _sha1,
    make_client,
    monotonic,
)
from ._stats import percentile


def _context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """Fresh child processes: forked from a server that imported this module once, else spawned.

    A forkserver child starts in about 10 ms where a spawned one re-imports
    redis, redis_lock and 4.0.1 (about a second for four on two cores): quick
    runs start some sixty processes. Neither inherits the coordinator's threads
    or connections.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["benchmarks._workers", "benchmarks.test_renewal"])
        return context
    return multiprocessing.get_context("spawn")


CONTEXT: Final = _context()

# -- asyncio contenders ------------------------------------------------------------


class AsyncBenchLock(Protocol):
    """What the suite awaits on every asyncio contender."""

    async def acquire(self) -> bool: ...

    async def release(self) -> None: ...


# redis-py leaves these unannotated; calling them through Any keeps mypy strict elsewhere.
_ASYNC_SEND_TCP: Any = redis.asyncio.Connection.send_packed_command
_ASYNC_SEND_UNIX: Any = redis.asyncio.UnixDomainSocketConnection.send_packed_command


class CountingAsyncConnection(redis.asyncio.Connection):
    """An asyncio TCP connection that counts the requests it sends in :data:`REQUESTS`."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REQUESTS.add()
        await _ASYNC_SEND_TCP(self, command, check_health)


class CountingAsyncUnixConnection(redis.asyncio.UnixDomainSocketConnection):
    """An asyncio unix-socket connection that counts the requests it sends in :data:`REQUESTS`."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REQUESTS.add()
        await _ASYNC_SEND_UNIX(self, command, check_health)


def make_async_client(url: str, *, counting: bool = False) -> redis.asyncio.Redis:
    """A bytes ``redis.asyncio`` client for ``url`` (as :func:`make_client`, for one event loop)."""
    if not counting:
        return redis.asyncio.Redis.from_url(url)
    connection_class: type[redis.asyncio.Connection] | type[redis.asyncio.UnixDomainSocketConnection] = (
        CountingAsyncUnixConnection if url.startswith("unix://") else CountingAsyncConnection
    )
    pool = redis.asyncio.ConnectionPool.from_url(url, connection_class=connection_class)
    return redis.asyncio.Redis(connection_pool=pool)


class AsyncHandWrittenLock:
    """The practical limit on asyncio: :class:`HandWrittenLock`'s protocol, awaited on ``redis.asyncio``."""

    def __init__(self, client: redis.asyncio.Redis, name: str, expire: float) -> None:
        self.client = client
        self.key = f"limit:{name}"
        self.signal = f"limit-signal:{name}"
        self.px = round(expire * 1000)
        self.token = uuid.uuid4().hex

    async def acquire(self) -> bool:
        while not await self.client.set(self.key, self.token, nx=True, px=self.px):
            # The holder's TTL is unknown here: re-check at least every 100 ms.
            await self.client.blpop([self.signal], 0.1)
        return True

    async def release(self) -> None:
        sha = _sha1(_RELEASE_SOURCE)
        try:
            done = await self.client.evalsha(sha, 2, self.key, self.signal, self.token)
        except redis.exceptions.NoScriptError:
            await self.client.script_load(_RELEASE_SOURCE)
            done = await self.client.evalsha(sha, 2, self.key, self.signal, self.token)
        if not done:
            raise RuntimeError(f"{self.key} was not held")


def _make_async_ours(client: redis.asyncio.Redis, name: str, expire: float) -> AsyncBenchLock:
    return redis_lock.AsyncLock(client, name, expire=expire)


def _make_async_redis_py(sleep: float) -> Callable[[redis.asyncio.Redis, str, float], AsyncBenchLock]:
    def make(client: redis.asyncio.Redis, name: str, expire: float) -> AsyncBenchLock:
        lock: AsyncBenchLock = redis.asyncio.lock.Lock(client, name, timeout=expire, sleep=sleep)
        return lock

    return make


@dataclass(frozen=True)
class AsyncPeer:
    """One asyncio contender: how to make it, where its key lives, and how it waits (as ``_peers.Peer``)."""

    id: str
    label: str
    make: Callable[[redis.asyncio.Redis, str, float], AsyncBenchLock]
    key: Callable[[str], str]
    #: True when a waiter parks in a blocking command on the server (BLPOP); False when it polls.
    parks: bool
    #: For a polling waiter, the longest pause between two attempts, in seconds.
    poll_interval: float = 0.0


ASYNC_OURS: Final = AsyncPeer(
    "redis_lock-async", "redis_lock 5 AsyncLock (ours)", _make_async_ours, lambda n: f"lock:{n}", parks=True
)
ASYNC_REDIS_PY_DEFAULT: Final = AsyncPeer(
    "redis-py-async-0.1",
    "redis.asyncio Lock sleep=0.1",
    _make_async_redis_py(0.1),
    lambda n: n,
    parks=False,
    poll_interval=0.1,
)
ASYNC_REDIS_PY_FAST: Final = AsyncPeer(
    "redis-py-async-0.001",
    "redis.asyncio Lock sleep=0.001",
    _make_async_redis_py(0.001),
    lambda n: n,
    parks=False,
    poll_interval=0.001,
)
ASYNC_LIMIT: Final = AsyncPeer(
    "limit-async",
    "limit on asyncio: SET NX PX + Lua CAD",
    AsyncHandWrittenLock,
    lambda n: f"limit:{n}",
    parks=True,
)
#: The asyncio libraries compared everywhere (the limit joins them where the sync limit does).
ASYNC_LIBRARIES: Final = (ASYNC_OURS, ASYNC_REDIS_PY_DEFAULT, ASYNC_REDIS_PY_FAST)
ASYNC_PEERS: Final = {peer.id: peer for peer in (*ASYNC_LIBRARIES, ASYNC_LIMIT)}


class Contender(Protocol):
    """What the coordinator needs to know of a contender, sync (``_peers.Peer``) or asyncio (:class:`AsyncPeer`)."""

    @property
    def id(self) -> str: ...

    @property
    def parks(self) -> bool: ...

    @property
    def poll_interval(self) -> float: ...


# -- hand-off parties --------------------------------------------------------------

_L = TypeVar("_L")


def _serve(
    conn: multiprocessing.connection.Connection,
    make: Callable[[str, str, float], _L],
    acquire: Callable[[_L], float],
    release: Callable[[_L], float],
) -> None:
    """Answer ``make``/``acquire``/``release`` requests until ``stop``; ``acquire``/``release`` return their timestamp."""
    lock: _L | None = None
    while True:
        request = conn.recv()
        if request[0] == "stop":
            break
        try:
            if request[0] == "make":
                _, peer_id, name, expire = request
                lock = make(peer_id, name, expire)
                conn.send(("ok", 0.0))
            elif request[0] == "acquire":
                assert lock is not None
                conn.send(("entering", monotonic()))
                conn.send(("ok", acquire(lock)))
            elif request[0] == "release":
                assert lock is not None
                conn.send(("ok", release(lock)))
            else:
                raise ValueError(f"unknown request {request!r}")
        except Exception as exc:
            conn.send(("error", repr(exc)))


def _acquired(lock: BenchLock) -> float:
    if not lock.acquire():
        raise RuntimeError("acquire() returned False")
    return monotonic()


def _released(lock: BenchLock) -> float:
    lock.release()
    return monotonic()


def party(url: str, conn: multiprocessing.connection.Connection) -> None:
    """Serve ``make``/``acquire``/``release`` requests from the coordinator, timestamping each completion."""
    client = make_client(url)
    try:
        _serve(
            conn,
            lambda peer_id, name, expire: PEERS[peer_id].make(client, name, expire),
            _acquired,
            _released,
        )
    finally:
        client.close()


async def _acquired_async(lock: AsyncBenchLock) -> float:
    if not await lock.acquire():
        raise RuntimeError("acquire() returned False")
    return monotonic()


async def _released_async(lock: AsyncBenchLock) -> float:
    await lock.release()
    return monotonic()


def async_party(url: str, conn: multiprocessing.connection.Connection) -> None:
    """:func:`party` for an asyncio contender: one event loop and one ``redis.asyncio`` client.

    Each request runs to completion in the loop (``run_until_complete``); the
    timestamp is taken inside the coroutine, right after the lock's ``acquire()``
    or ``release()`` returned, so the loop's entry and exit are not in it.
    """
    loop = asyncio.new_event_loop()
    client = make_async_client(url)

    def run(
        coroutine: Callable[[AsyncBenchLock], Coroutine[Any, Any, float]],
    ) -> Callable[[AsyncBenchLock], float]:
        return lambda lock: loop.run_until_complete(coroutine(lock))

    try:
        _serve(
            conn,
            lambda peer_id, name, expire: ASYNC_PEERS[peer_id].make(client, name, expire),
            run(_acquired_async),
            run(_released_async),
        )
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


class Party:
    """The coordinator's handle on a :func:`party` (or, with ``asyncio``, an :func:`async_party`) process."""

    def __init__(self, url: str, *, use_asyncio: bool = False) -> None:
        self.conn, child = CONTEXT.Pipe()
        target = async_party if use_asyncio else party
        self.process = CONTEXT.Process(target=target, args=(url, child), daemon=True)
        self.process.start()
        child.close()

    def send(self, *request: object) -> None:
        self.conn.send(request)

    def expect(self, kind: str, timeout: float = 60.0) -> float:
        """The timestamp of the next reply, which must be of ``kind``; raises the party's error."""
        if not self.conn.poll(timeout):
            raise TimeoutError(f"no {kind!r} reply within {timeout} s")
        reply, value = self.conn.recv()
        if reply == "error":
            raise RuntimeError(f"party failed: {value}")
        if reply != kind:
            raise RuntimeError(f"expected {kind!r}, got {reply!r}")
        assert isinstance(value, float)
        return value

    def call(self, *request: object) -> float:
        """Send ``request`` and wait for it to complete; its completion timestamp."""
        self.send(*request)
        if request[0] == "acquire":
            self.expect("entering")
        return self.expect("ok")

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.send("stop")
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


#: How long a waiter may take to block on the server before a hand-off is abandoned.
PARK_TIMEOUT: Final = 5.0


def wait_until_waiting(monitor: redis.Redis, peer: Contender, waiter: Party) -> None:
    """Return once ``waiter`` waits: blocked on the server, or a random part of its poll interval later."""
    waiter.expect("entering", timeout=PARK_TIMEOUT)
    if not peer.parks:
        threading.Event().wait(random.uniform(0.0, peer.poll_interval))
        return
    deadline = monotonic() + PARK_TIMEOUT
    while int(monitor.info("clients")["blocked_clients"]) < 1:
        if monotonic() > deadline:
            raise RuntimeError("the waiter never blocked on the server")


def hand_over(
    peer: Contender, monitor: redis.Redis, parties: tuple[Party, Party], count: int, name: str
) -> list[float]:
    """Hand the lock ``name`` over ``count`` times, alternating directions; the latencies in seconds.

    Each sample runs from the holder's ``release()`` returning to the waiter's
    ``acquire()`` returning, both timestamped in their own process.
    """
    for party in parties:
        party.call("make", peer.id, name, 60.0)
    samples: list[float] = []
    parties[0].call("acquire")
    for turn in range(count):
        holder, waiter = parties[turn % 2], parties[(turn + 1) % 2]
        waiter.send("acquire")
        wait_until_waiting(monitor, peer, waiter)
        released = holder.call("release")
        acquired = waiter.expect("ok")
        samples.append(acquired - released)
    parties[count % 2].call("release")
    return samples


# -- contended throughput ------------------------------------------------------


class _Inside:
    """The critical section's check: ``owner`` (shared) says who is inside; two at once is a violation."""

    __slots__ = ("me", "owner", "violations")

    def __init__(self, owner: Any, index: int) -> None:
        self.owner = owner
        self.me = index + 1
        self.violations = 0

    def enter(self) -> None:
        if self.owner.value != 0:
            self.violations += 1
        self.owner.value = self.me

    def leave(self) -> None:
        if self.owner.value != self.me:
            self.violations += 1
        self.owner.value = 0


@dataclass
class _Log:
    """One process's acquisitions: when each ``acquire()`` returned, ``release()`` was called and returned,
    and the requests the releases sent."""

    acquired: list[float]
    releasing: list[float]
    released: list[float]
    #: Requests sent while ``release()`` ran (counted around the call: the contender's one thread sends them).
    release_requests: int = 0

    @classmethod
    def new(cls) -> _Log:
        return cls([], [], [])


def _contention_report(index: int, log: _Log, inside: _Inside, began: float) -> dict[str, Any]:
    return {
        "index": index,
        "acquisitions": len(log.acquired),
        "violations": inside.violations,
        "requests": REQUESTS.count,
        "release_requests": log.release_requests,
        "acquired": log.acquired,
        "releasing": log.releasing,
        "released": log.released,
        "began": began,
        "finished": monotonic(),
    }


def owner_changes(reports: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """The hand-offs of a contended run, wherever the next holder is another process (a process taking the
    lock again is no hand-off): from the old holder's ``release()`` returning, and from its call, to the new
    holder's ``acquire()`` returning. The first is negative when the new holder's ``acquire()`` returned
    before the old holder's ``release()`` did (fair mode hands the lock over inside the release script);
    the second never is."""
    grants = sorted(
        (acquired, releasing, released, int(report["index"]))
        for report in reports
        for acquired, releasing, released in zip(
            report["acquired"], report["releasing"], report["released"], strict=True
        )
    )
    return [
        (now[0] - before[2], now[0] - before[1])
        for before, now in itertools.pairwise(grants)
        if now[3] != before[3]
    ]


def contend(
    peer_id: str,
    url: str,
    name: str,
    index: int,
    hold: float,
    duration: float,
    owner: Any,
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    """Loop acquire / critical section / release for ``duration`` seconds after ``start`` is set.

    ``owner`` is a shared integer: the critical section checks that nobody else
    is inside (a mutual-exclusion violation otherwise) and marks itself. The
    result (acquisitions, violations, requests sent, window) goes to ``results``.
    """
    client = make_client(url, counting=True)
    peer = PEERS[peer_id]
    lock = peer.make(client, name, 60.0)
    warm = peer.make(client, f"{name}-warm-{index}", 60.0)
    warm.acquire()  # opens the connection and loads the scripts before the stats are reset
    warm.release()
    ready.put(index)
    start.wait()
    REQUESTS.reset()
    inside = _Inside(owner, index)
    log = _Log.new()
    began = monotonic()
    end = began + duration
    while monotonic() < end:
        if not lock.acquire():
            raise RuntimeError("acquire() returned False")
        log.acquired.append(monotonic())
        inside.enter()
        if hold:
            time.sleep(hold)
        inside.leave()
        sent = REQUESTS.count
        log.releasing.append(monotonic())
        lock.release()
        log.released.append(monotonic())
        log.release_requests += REQUESTS.count - sent
    results.put(_contention_report(index, log, inside, began))
    client.close()


def contend_async(
    peer_id: str,
    url: str,
    name: str,
    index: int,
    hold: float,
    duration: float,
    owner: Any,
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    """:func:`contend` for an asyncio contender: one event loop, one ``redis.asyncio`` client, one task.

    The critical section waits with ``await asyncio.sleep(hold)``, as asyncio code
    does. The loop is entered once for the warm-up and once for the whole window.
    """
    loop = asyncio.new_event_loop()
    client = make_async_client(url, counting=True)
    peer = ASYNC_PEERS[peer_id]
    lock = peer.make(client, name, 60.0)
    warm = peer.make(client, f"{name}-warm-{index}", 60.0)

    async def warm_up() -> None:
        await warm.acquire()  # opens the connection and loads the scripts before the stats are reset
        await warm.release()

    async def loop_for(duration: float) -> dict[str, Any]:
        inside = _Inside(owner, index)
        log = _Log.new()
        began = monotonic()
        end = began + duration
        while monotonic() < end:
            if not await lock.acquire():
                raise RuntimeError("acquire() returned False")
            log.acquired.append(monotonic())
            inside.enter()
            if hold:
                await asyncio.sleep(hold)
            inside.leave()
            sent = REQUESTS.count
            log.releasing.append(monotonic())
            await lock.release()
            log.released.append(monotonic())
            log.release_requests += REQUESTS.count - sent
        return _contention_report(index, log, inside, began)

    try:
        loop.run_until_complete(warm_up())
        ready.put(index)
        start.wait()
        REQUESTS.reset()
        results.put(loop.run_until_complete(loop_for(duration)))
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def server_commands(admin: redis.Redis) -> dict[str, int]:
    """Calls per command since the last ``CONFIG RESETSTAT`` (script-internal calls included)."""
    stats: dict[str, Any] = admin.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    calls.pop("config|resetstat", None)
    calls.pop("config", None)
    return calls


def run_workers(
    worker: Callable[..., None],
    arguments: Callable[[int], tuple[Any, ...]],
    admin: redis.Redis,
    processes: int,
    duration: float,
) -> list[dict[str, Any]]:
    """Run ``worker(*arguments(index), ready, start, results)`` in ``processes`` processes; their reports.

    Each process puts its index on ``ready`` once connected and warmed up, waits
    for ``start``, and puts its report on ``results``. The server's stats are
    reset just before ``start`` is set; a process that hangs is killed.
    """
    ready, results, start = CONTEXT.Queue(), CONTEXT.Queue(), CONTEXT.Event()
    workers = [
        CONTEXT.Process(target=worker, args=(*arguments(index), ready, start, results), daemon=True)
        for index in range(processes)
    ]
    for process in workers:
        process.start()
    try:
        for _ in workers:
            ready.get(timeout=60)
        admin.config_resetstat()
        start.set()
        reports: list[dict[str, Any]] = [results.get(timeout=duration + 60) for _ in workers]
        for process in workers:
            process.join(timeout=10)
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
                process.join()
    return reports


def run_contention(
    worker: Callable[..., None],
    peer_id: str,
    url: str,
    name: str,
    admin: redis.Redis,
    processes: int,
    hold: float,
    duration: float,
) -> dict[str, Any]:
    """Run ``worker`` (:func:`contend` or :func:`contend_async`) in ``processes`` processes; the totals.

    The server's stats are reset once every process has connected and loaded its
    scripts, just before they all start.
    """
    owner = CONTEXT.RawValue("i", 0)
    reports = run_workers(
        worker, lambda index: (peer_id, url, name, index, hold, duration, owner), admin, processes, duration
    )
    commands = server_commands(admin)
    acquisitions = [int(report["acquisitions"]) for report in reports]
    total = sum(acquisitions)
    window = max(report["finished"] for report in reports) - min(report["began"] for report in reports)
    requests = sum(int(report["requests"]) for report in reports)
    release_requests = sum(int(report["release_requests"]) for report in reports)
    handoffs = owner_changes(reports)
    from_return = [returned for returned, _ in handoffs]
    from_call = [called for _, called in handoffs]
    return {
        "processes": processes,
        "hold": hold,
        "acquisitions": total,
        "window": window,
        "per_second": total / window,
        "min_share": min(acquisitions) / total,
        "max_share": max(acquisitions) / total,
        "shares": sorted(count / total for count in acquisitions),
        "violations": sum(int(report["violations"]) for report in reports),
        # Every request of the window, the releases' included (the figure the report has always shown) ...
        "requests_per_acquisition": requests / total,
        # ... and without the requests sent inside release(): what taking the lock costs.
        "requests_per_acquisition_without_release": (requests - release_requests) / total,
        "commands_per_acquisition": sum(commands.values()) / total,
        "commands": commands,
        # The lock passing to another process: how often, and the time from release() to that acquire().
        "owner_changes": len(handoffs),
        "owner_changes_per_second": len(handoffs) / window,
        "handoff_p50": percentile(from_return, 0.50) if handoffs else None,
        "handoff_p99": percentile(from_return, 0.99) if handoffs else None,
        # The same from the old holder's release() call: never negative, so it always has a ratio.
        "handoff_from_call_p50": percentile(from_call, 0.50) if handoffs else None,
        "handoff_from_call_p99": percentile(from_call, 0.99) if handoffs else None,
    }


# -- renewal scale ---------------------------------------------------------------


def _rss_mb() -> float:
    """This process's resident set size, in MiB (from /proc; 0 where there is none)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _OneRenewer:
    """The practical limit for renewal: one thread extends every held lock with one pipeline per interval."""

    def __init__(self, client: Any, locks: list[Any], interval: float) -> None:
        self.client = client
        self.locks = locks
        self.interval = interval
        self.stop = threading.Event()
        self.failures = 0
        self.thread = threading.Thread(target=self._run, name="one-renewer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            held = list(self.locks)  # the acquiring thread appends meanwhile
            for first in range(0, len(held), 1000):
                pipe = self.client.pipeline(transaction=False)
                for lock in held[first : first + 1000]:
                    pipe.evalsha(lock_extend_sha(), 1, lock.key, lock.token, lock.px)
                try:
                    replies = pipe.execute(raise_on_error=False)
                except Exception:
                    self.failures += 1
                    continue
                self.failures += sum(1 for reply in replies if reply != 1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def lock_extend_sha() -> str:
    return _sha1(_EXTEND_SOURCE)


def _acquire_many(
    peer_id: str,
    client: Any,
    locks: list[Any],
    count: int,
    expire: float,
    deadline: float,
    progress: Callable[[], None],
) -> str | None:
    """Acquire up to ``count`` auto-renewed locks into ``locks`` before ``deadline``; the first error."""

    try:
        for number in range(count):
            if monotonic() > deadline:
                return "the time budget ran out while acquiring"
            name = f"bench-renew-{number}"
            lock: Any
            if peer_id == "redis_lock":
                lock = redis_lock.Lock(client, name, expire=expire, auto_renewal=True)
            elif peer_id == "prl401":
                lock = prl401().Lock(client, name, expire=round(expire), auto_renewal=True)
            else:
                lock = HandWrittenLock(client, name, expire)
            if not lock.acquire():
                return f"could not acquire {name}"
            locks.append(lock)
            if len(locks) % 500 == 0:
                progress()
    except Exception as exc:
        return f"after {len(locks)} locks: {exc!r}"
    return None


def _count_live(client: Any, keys: list[str]) -> int:
    """How many of ``keys`` exist with a TTL (pipelined PTTL, 1000 at a time)."""
    live = 0
    for first in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[first : first + 1000]:
            pipe.pttl(key)
        live += sum(1 for ttl in pipe.execute() if int(ttl) > 0)
    return live


def hold_many(peer_id: str, url: str, count: int, expire: float, budget: float, results: Any) -> None:
    """Hold ``count`` auto-renewed locks for longer than ``expire``; report after each phase.

    Phases: ``acquired`` (how many and how fast, live threads, RSS), ``held``
    (peak RSS, the server's connected clients, how many keys outlived their
    first expiry), ``released``. The parent keeps the last report it received
    within its time budget and kills this process after that, so a process
    that thrashes still yields what it reached.
    """

    client = make_client(url)
    client.script_load(_EXTEND_SOURCE)
    report: dict[str, Any] = {
        "peer": peer_id,
        "count": count,
        "expire": expire,
        "error": None,
        "phase": "start",
    }
    locks: list[Any] = []
    renewer = _OneRenewer(client, locks, expire * 2 / 3) if peer_id == "limit" else None
    rss_before = _rss_mb()
    started = monotonic()

    def progress() -> None:
        results.put(dict(report, phase="acquiring", acquired=len(locks), threads=threading.active_count()))

    report["error"] = _acquire_many(peer_id, client, locks, count, expire, started + budget, progress)
    acquired_at = monotonic()
    peak_rss = _rss_mb()
    report.update(
        phase="acquired",
        acquired=len(locks),
        acquire_seconds=acquired_at - started,
        threads=threading.active_count(),
        rss_mb=peak_rss,
        rss_delta_mb=peak_rss - rss_before,
    )
    results.put(dict(report))
    # Every lock must now outlive its first expiry: hold 1.5 x expire after the last acquisition.
    hold_until = acquired_at + 1.5 * expire
    while (now := monotonic()) < hold_until:
        time.sleep(min(0.25, hold_until - now))
        peak_rss = max(peak_rss, _rss_mb())
    prefix = "limit:" if peer_id == "limit" else "lock:"
    report.update(
        phase="held",
        held_after_expiry=_count_live(client, [f"{prefix}bench-renew-{n}" for n in range(len(locks))]),
        hold_seconds=monotonic() - acquired_at,
        rss_mb=peak_rss,
        rss_delta_mb=peak_rss - rss_before,
        threads=max(report["threads"], threading.active_count()),
        connected_clients=int(client.info("clients")["connected_clients"]),
        renewal_failures=renewer.failures if renewer is not None else None,
    )
    results.put(dict(report))
    released_from = monotonic()
    release_errors = 0
    for lock in locks:
        try:
            lock.release()
        except Exception as exc:
            release_errors += 1
            report["error"] = report["error"] or f"release: {exc!r}"
    if renewer is not None:
        renewer.close()  # after the releases: 10,000 of them can take longer than a lock's expiry
    report.update(
        phase="released",
        release_seconds=monotonic() - released_from,
        release_errors=release_errors,
        threads_after_release=threading.active_count(),
    )
    results.put(dict(report))
    client.close()
