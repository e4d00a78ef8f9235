"""Renewal scale: how many auto-renewed locks one process can hold, and at what cost.

A fresh process acquires ``count`` locks with ``auto_renewal=True`` and
``expire=2`` (renewed every 1.33 s), then holds them for 1.5 x ``expire`` after
the last acquisition, so every lock must have been renewed at least once, and
counts how many keys still live. It reports the time to acquire, live threads,
peak RSS, the server's connected clients, and the first error. Everything runs
under a time budget (the process is killed 15 s after budget and hold); hitting it
is a result, not a failure: the last phase reached is reported. The limit row keeps
its locks with one renewal thread and one pipeline per interval.

A full run measures 1,000 and 10,000 locks for ``Lock`` (``redis_lock``),
``AsyncLock`` (``redis_lock-async``: one event loop, one client), python-redis-lock
4.0.1 and the limit; a quick run only 1,000 locks with ``Lock`` and ``AsyncLock``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import pytest
import redis.asyncio

import redis_lock

from ._peers import make_client, monotonic
from ._workers import CONTEXT, _count_live, _rss_mb, hold_many
from .conftest import Sizes

EXPIRE = 2.0
COUNTS = (1000, 10_000)


def hold_many_async(peer_id: str, url: str, count: int, expire: float, budget: float, results: Any) -> None:
    """The AsyncLock twin of :func:`benchmarks._workers.hold_many`: the same phases and report, on one loop."""
    asyncio.run(_hold_many_async(peer_id, url, count, expire, budget, results))


async def _hold_many_async(
    peer_id: str, url: str, count: int, expire: float, budget: float, results: Any
) -> None:
    client = redis.asyncio.Redis.from_url(url)
    inspect = make_client(url)
    report: dict[str, Any] = {
        "peer": peer_id,
        "count": count,
        "expire": expire,
        "error": None,
        "phase": "start",
    }
    locks: list[redis_lock.AsyncLock] = []
    rss_before = _rss_mb()
    started = monotonic()
    try:
        for number in range(count):
            if monotonic() > started + budget:
                report["error"] = "the time budget ran out while acquiring"
                break
            lock = redis_lock.AsyncLock(client, f"bench-renew-{number}", expire=expire, auto_renewal=True)
            if not await lock.acquire():
                report["error"] = f"could not acquire bench-renew-{number}"
                break
            locks.append(lock)
            if len(locks) % 500 == 0:
                results.put(dict(report, phase="acquiring", acquired=len(locks)))
    except Exception as exc:
        report["error"] = f"after {len(locks)} locks: {exc!r}"
    acquired_at = monotonic()
    peak_rss = _rss_mb()
    report.update(
        phase="acquired",
        acquired=len(locks),
        acquire_seconds=acquired_at - started,
        threads=threading.active_count(),
        tasks=len(asyncio.all_tasks()),
        rss_mb=peak_rss,
        rss_delta_mb=peak_rss - rss_before,
    )
    results.put(dict(report))
    hold_until = acquired_at + 1.5 * expire
    tasks = report["tasks"]
    while (now := monotonic()) < hold_until:
        await asyncio.sleep(min(0.25, hold_until - now))
        peak_rss = max(peak_rss, _rss_mb())
        tasks = max(tasks, len(asyncio.all_tasks()))
    report.update(
        phase="held",
        held_after_expiry=_count_live(inspect, [f"lock:bench-renew-{n}" for n in range(len(locks))]),
        hold_seconds=monotonic() - acquired_at,
        rss_mb=peak_rss,
        rss_delta_mb=peak_rss - rss_before,
        threads=max(report["threads"], threading.active_count()),
        tasks=tasks,
        # Minus the inspecting client's own connection.
        connected_clients=int(inspect.info("clients")["connected_clients"]) - 1,
        renewal_failures=sum(1 for lock in locks if lock.lost),
    )
    results.put(dict(report))
    released_from = monotonic()
    release_errors = 0
    for lock in locks:
        try:
            await lock.release()
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
    await client.aclose()
    inspect.close()


def renewal_scale(peer_id: str, url: str, count: int, budget: float) -> dict[str, Any]:
    """Run :func:`hold_many` (or its asyncio twin) in a fresh process; its last report before the time limit."""
    results = CONTEXT.Queue()
    target = hold_many_async if peer_id == "redis_lock-async" else hold_many
    process = CONTEXT.Process(target=target, args=(peer_id, url, count, EXPIRE, budget, results), daemon=True)
    process.start()
    report: dict[str, Any] = {"peer": peer_id, "count": count, "acquired": 0, "phase": "none", "error": None}
    limit = budget + 1.5 * EXPIRE + 15
    deadline = monotonic() + limit
    try:
        while report["phase"] != "released":
            left = deadline - monotonic()
            if left <= 0:
                report["error"] = (
                    f"stopped after {limit:g} s in phase {report['phase']!r}; first error: {report['error']}"
                )
                break
            try:
                report = results.get(timeout=left)
            except queue.Empty:
                continue
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
    report["exitcode"] = process.exitcode
    return report


def measured(sizes: Sizes, peer_id: str, count: int) -> bool:
    """Whether this run measures ``peer_id`` with ``count`` locks."""
    peers = sizes.renewal_peers
    return count in sizes.renewal_counts and (
        peer_id in peers or (peer_id == "redis_lock-async" and "redis_lock" in peers)
    )


@pytest.mark.timeout(600)
@pytest.mark.benchmark(group="renewal scale")
@pytest.mark.parametrize("count", COUNTS, ids=lambda count: f"{count}locks")
@pytest.mark.parametrize("peer_id", ["redis_lock", "redis_lock-async", "prl401", "limit"])
def test_renewal_scale(benchmark: Any, url: str, sizes: Sizes, peer_id: str, count: int) -> None:
    """One process tries to hold ``count`` auto-renewed locks past their expiry; the limit keeps them all."""
    if not measured(sizes, peer_id, count):
        pytest.skip(f"{peer_id} with {count} locks is not measured in a quick run")
    report = benchmark.pedantic(
        renewal_scale, args=(peer_id, url, count, sizes.renewal_budget), rounds=1, iterations=1
    )
    benchmark.extra_info.update(metric="renewal", **report)
    if peer_id == "limit":
        # The harness itself must be able to keep every lock; libraries are measured, not judged, here.
        assert report["held_after_expiry"] == count, report
