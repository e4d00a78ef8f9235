"""Mutual exclusion and liveness under real contention: threads and processes against one Redis.

Workers take a lock with blocking acquires, hold it briefly and release it, and
record every hold on one clock (``time.monotonic()``, which is ``CLOCK_MONOTONIC``
and shared by every process on a Linux machine). A checker then verifies:

- safety: no two holds of one name overlap;
- no lost wake-up: while a waiter waits, the lock is never free for longer than
  :data:`FREE_GAP_BOUND` (a release that woke nobody would leave it free until the
  waiter's next re-check, seconds later);
- no starvation: every acquire succeeds within :data:`STARVATION_BOUND`, far more
  than all the workers' holds put together, so only a stuck waiter can exceed it.

The recorded hold runs from ``acquire()`` returning to ``release()`` being called,
which lies inside the real hold, so non-overlap of recorded holds is a sound check.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import redis_lock

#: How long a waiter may see the lock free before getting it. Holds are a few ms;
#: a lost wake-up leaves the lock free until the waiter's next BLPOP chunk ends.
FREE_GAP_BOUND = 1.0
#: How long any single acquire may take. A schedule below holds the lock for well
#: under a second in total, so only a stuck waiter can reach this.
STARVATION_BOUND = 8.0


@dataclass(frozen=True)
class Hold:
    """One worker's turn: when it asked for the lock, got it, and gave it back."""

    name: str
    worker: str
    requested: float
    acquired: float
    released: float


def check_history(holds: list[Hold]) -> None:
    """Assert mutual exclusion, no lost wake-up and no starvation over a recorded history."""
    by_name: dict[str, list[Hold]] = defaultdict(list)
    for hold in holds:
        assert hold.requested <= hold.acquired <= hold.released
        by_name[hold.name].append(hold)
    for name, name_holds in by_name.items():
        name_holds.sort(key=lambda h: h.acquired)
        for before, after in itertools.pairwise(name_holds):
            assert after.acquired >= before.released, (
                f"{name!r}: {after.worker} acquired at {after.acquired:.6f} while {before.worker} "
                f"held it until {before.released:.6f}"
            )
        for hold in name_holds:
            waited = hold.acquired - hold.requested
            assert waited <= STARVATION_BOUND, f"{hold.worker} waited {waited:.3f} s for {name!r}"
            free = _free_time(name_holds, hold.requested, hold.acquired)
            assert free <= FREE_GAP_BOUND, (
                f"{hold.worker} waited for {name!r} while it was free for {free:.3f} s (lost wake-up)"
            )


def _free_time(holds: list[Hold], start: float, end: float) -> float:
    """The time within [start, end] not covered by any hold (holds sorted, non-overlapping)."""
    free, cursor = 0.0, start
    for hold in holds:
        if hold.released <= cursor or hold.acquired >= end:
            continue
        free += max(0.0, hold.acquired - cursor)
        cursor = max(cursor, hold.released)
    return free + max(0.0, end - cursor)


def run_thread_workers(
    make_client: Callable[..., Any],
    *,
    workers: int,
    iterations: int,
    hold_ms: float,
    names: list[str],
    expire: float | None,
) -> list[Hold]:
    """Run ``workers`` threads, each taking every name in turn ``iterations`` times; return the history."""
    holds: list[Hold] = []
    errors: list[BaseException] = []
    record = threading.Lock()
    start = threading.Barrier(workers)

    def work(index: int, client: redis.Redis) -> None:
        try:
            start.wait(timeout=10)
            for turn in range(iterations):
                name = names[(index + turn) % len(names)]
                lock = redis_lock.Lock(client, name, expire=expire)
                requested = time.monotonic()
                assert lock.acquire(timeout=STARVATION_BOUND), f"worker {index} starved on {name!r}"
                acquired = time.monotonic()
                time.sleep(hold_ms / 1000)
                released = time.monotonic()
                lock.release()
                with record:
                    holds.append(Hold(name, f"thread-{index}", requested, acquired, released))
        except BaseException as exc:
            errors.append(exc)

    # No socket timeout: a waiter's BLPOP chunk is then the longest (10 s), so a lost
    # wake-up shows up as a long free gap instead of being papered over by re-checks.
    clients = [make_client(socket_timeout=None) for _ in range(workers)]
    threads = [threading.Thread(target=work, args=(i, clients[i]), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=STARVATION_BOUND * iterations + 10)
        assert not thread.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]
    assert len(holds) == workers * iterations
    return holds


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    workers=st.integers(2, 4),
    iterations=st.integers(2, 8),
    hold_ms=st.sampled_from([0.0, 1.0, 5.0]),
    name_count=st.integers(1, 2),
    expire=st.sampled_from([None, 10.0]),
)
def test_threads_exclude_and_wake_each_other(
    make_client: Callable[..., Any],
    plain: redis.Redis,
    workers: int,
    iterations: int,
    hold_ms: float,
    name_count: int,
    expire: float | None,
) -> None:
    """Threads contending for shared names never overlap, and each waiter gets the lock soon after it is free."""
    plain.flushdb()
    names = ["contended", "other {x}"][:name_count]
    holds = run_thread_workers(
        make_client, workers=workers, iterations=iterations, hold_ms=hold_ms, names=names, expire=expire
    )
    check_history(holds)
    assert plain.keys("lock:*") == []


_PROCESS_WORKER = textwrap.dedent(
    """
    import json, sys, time
    import redis, redis_lock

    url, worker, count, processes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = redis.Redis.from_url(url, socket_timeout=None)
    # Start together: announce readiness, then wait until every process has.
    client.incr("ready")
    deadline = time.monotonic() + 60
    while int(client.get("ready")) < processes:
        if time.monotonic() > deadline:
            sys.exit("the other processes never became ready")
        time.sleep(0.001)
    holds = []
    for _ in range(count):
        lock = redis_lock.Lock(client, "counter", expire=60)
        requested = time.monotonic()
        if not lock.acquire(timeout=30):
            sys.exit("starved")
        acquired = time.monotonic()
        value = int(client.get("count") or 0)  # read-modify-write, safe only under the lock
        client.set("count", value + 1)
        released = time.monotonic()
        lock.release()
        holds.append((requested, acquired, released))
    print(json.dumps({"file": redis_lock.__file__, "holds": holds}))
    """
)


@pytest.mark.slow
def test_processes_increment_a_shared_counter(redis_url: str, plain: redis.Redis) -> None:
    """Four processes doing 200 unsynchronised GET-then-SET increments under the lock end at exactly 800."""
    processes, count = 4, 200
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS_WORKER, redis_url, str(i), str(count), str(processes)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        for i in range(processes)
    ]
    holds: list[Hold] = []
    for i, child in enumerate(children):
        out, err = child.communicate(timeout=100)
        assert child.returncode == 0, err.decode(errors="replace")
        report = json.loads(out)
        assert report["file"] == redis_lock.__file__  # the children test the same build
        holds.extend(Hold("counter", f"process-{i}", *times) for times in report["holds"])
    assert int(plain.get("count") or 0) == processes * count
    check_history(holds)
    assert not plain.exists("lock:counter")


def test_checker_catches_overlap_and_lost_wakeup() -> None:
    """The history checker rejects overlapping holds, a lock left free while someone waits, and starvation."""
    good = [Hold("n", "a", 0.0, 0.0, 1.0), Hold("n", "b", 0.5, 1.01, 2.0)]
    check_history(good)
    with pytest.raises(AssertionError, match="while a held it"):
        check_history([Hold("n", "a", 0.0, 0.0, 1.0), Hold("n", "b", 0.5, 0.9, 2.0)])
    with pytest.raises(AssertionError, match="lost wake-up"):
        check_history([Hold("n", "a", 0.0, 0.0, 1.0), Hold("n", "b", 0.5, 1.0 + FREE_GAP_BOUND + 0.1, 9.0)])
    with pytest.raises(AssertionError, match="waited"):
        check_history([Hold("n", "a", 0.0, 0.0, 100.0), Hold("n", "b", 0.5, 100.0, 101.0)])
