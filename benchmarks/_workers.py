"""Code that runs in the benchmark's child processes (imported by name there: keep it importable).

Processes, not threads, because a waiter woken by Redis must not queue for the
GIL behind the thread that just released: real contenders are other processes
or other hosts. ``time.monotonic()`` is system-wide, so timestamps taken in
different processes can be subtracted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import threading
import time
from collections.abc import Callable
from typing import Any

import redis_lock

from ._peers import (
    _EXTEND_SOURCE,
    PEERS,
    REQUESTS,
    BenchLock,
    HandWrittenLock,
    _sha1,
    make_client,
    monotonic,
    prl401,
)

CONTEXT = multiprocessing.get_context("spawn")


def party(url: str, conn: multiprocessing.connection.Connection) -> None:
    """Serve ``make``/``acquire``/``release`` requests from the coordinator, timestamping each completion."""
    client = make_client(url)
    lock: BenchLock | None = None
    while True:
        request = conn.recv()
        if request[0] == "stop":
            break
        try:
            if request[0] == "make":
                _, peer_id, name, expire = request
                lock = PEERS[peer_id].make(client, name, expire)
                conn.send(("ok", 0.0))
            elif request[0] == "acquire":
                assert lock is not None
                conn.send(("entering", monotonic()))
                if not lock.acquire():
                    raise RuntimeError("acquire() returned False")
                conn.send(("ok", monotonic()))
            elif request[0] == "release":
                assert lock is not None
                lock.release()
                conn.send(("ok", monotonic()))
            else:
                raise ValueError(f"unknown request {request!r}")
        except Exception as exc:
            conn.send(("error", repr(exc)))
    client.close()


class Party:
    """The coordinator's handle on a :func:`party` process."""

    def __init__(self, url: str) -> None:
        self.conn, child = CONTEXT.Pipe()
        self.process = CONTEXT.Process(target=party, args=(url, child), daemon=True)
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


# -- contended throughput ------------------------------------------------------


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
    me = index + 1
    acquisitions = violations = 0
    began = monotonic()
    end = began + duration
    while monotonic() < end:
        if not lock.acquire():
            raise RuntimeError("acquire() returned False")
        if owner.value != 0:
            violations += 1
        owner.value = me
        if hold:
            time.sleep(hold)
        if owner.value != me:
            violations += 1
        owner.value = 0
        lock.release()
        acquisitions += 1
    finished = monotonic()
    results.put(
        {
            "index": index,
            "acquisitions": acquisitions,
            "violations": violations,
            "requests": REQUESTS.count,
            "began": began,
            "finished": finished,
        }
    )
    client.close()


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
    if renewer is not None:
        renewer.close()
    released_from = monotonic()
    release_errors = 0
    for lock in locks:
        try:
            lock.release()
        except Exception as exc:
            release_errors += 1
            report["error"] = report["error"] or f"release: {exc!r}"
    report.update(
        phase="released",
        release_seconds=monotonic() - released_from,
        release_errors=release_errors,
        threads_after_release=threading.active_count(),
    )
    results.put(dict(report))
    client.close()
