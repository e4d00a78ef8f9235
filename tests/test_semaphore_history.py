"""The semaphore's history checker: thousands of holds from several processes, never more than ``limit`` valid.

Worker processes loop on one semaphore: acquire, hold briefly, release; now and
then a worker "crashes" in the critical section (it never releases, and its
permit must come back when its lease runs out). Every hold is recorded on one
clock (``time.monotonic()``, ``CLOCK_MONOTONIC``, shared by every process on
Linux). A checker then verifies:

- safety: at no instant do more than ``limit`` holds with a valid lease overlap.
  A hold counts from ``acquire()`` returning to ``release()`` being called, or
  to ``requested + expire`` if that is earlier (a crashed worker, or one paused
  past its lease): its permit cannot expire before (the server scored it
  ``expire`` after the grant, which came after the request);
- no lost wake-up: while a worker waits, the semaphore never has a free permit
  for long (:data:`FREE_GAP_BOUND`). For this check a crashed hold counts until
  ``acquired + expire``, after its permit has surely expired, so the free time
  is never overstated;
- no starvation: every acquire succeeds within :data:`STARVATION_BOUND`.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
import redis

import redis_lock

#: How long a waiter may see a free permit before getting one (a lost wake-up leaves it
#: free until the waiter's next re-check, 10 s later: the workers' clients have no socket timeout).
FREE_GAP_BOUND = 1.0
STARVATION_BOUND = 20.0


@dataclass(frozen=True)
class Hold:
    """One worker's turn: asked, got, and the end of its hold (as early and as late as it can be)."""

    worker: str
    requested: float
    acquired: float
    #: The earliest the permit can have been given up: release() called, or requested + expire if earlier.
    end_early: float
    #: The latest: release() returned, or acquired + expire.
    end_late: float


def _peak(intervals: list[tuple[float, float]]) -> tuple[int, float]:
    """The most intervals covering one instant, and that instant (ends before starts at a tie)."""
    events = sorted([(s, 1) for s, e in intervals if e > s] + [(e, -1) for s, e in intervals if e > s])
    count = peak = 0
    when = 0.0
    for at, delta in events:
        count += delta
        if count > peak:
            peak, when = count, at
    return peak, when


def _free_time(intervals: list[tuple[float, float]], limit: int, start: float, end: float) -> float:
    """The time within [start, end] during which fewer than ``limit`` of ``intervals`` are open."""
    near = [(s, e) for s, e in intervals if e > start and s < end]
    points = sorted({start, end} | {p for s, e in near for p in (s, e) if start < p < end})
    free = 0.0
    for a, b in itertools.pairwise(points):
        middle = (a + b) / 2
        if sum(1 for s, e in near if s <= middle < e) < limit:
            free += b - a
    return free


def check_history(holds: list[Hold], limit: int) -> None:
    """Assert that no more than ``limit`` holds overlap, that no waiter waits by a free permit, and no starvation."""
    for hold in holds:
        assert hold.requested <= hold.acquired
        assert hold.end_early <= hold.end_late
    peak, when = _peak([(h.acquired, h.end_early) for h in holds])
    inside = [h for h in holds if h.acquired <= when < h.end_early]
    assert peak <= limit, f"{peak} holders at {when:.6f}, limit {limit}: {inside}"
    late = [(h.acquired, h.end_late) for h in holds]
    for index, hold in enumerate(holds):
        waited = hold.acquired - hold.requested
        assert waited <= STARVATION_BOUND, f"{hold.worker} waited {waited:.3f} s"
        if waited <= FREE_GAP_BOUND:
            continue  # it cannot have waited longer than that by a free permit
        others = late[:index] + late[index + 1 :]
        free = _free_time(others, limit, hold.requested, hold.acquired)
        assert free <= FREE_GAP_BOUND, (
            f"{hold.worker} waited {free:.3f} s while a permit was free (lost wake-up)"
        )


_WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    import redis, redis_lock

    url, worker, count, processes, limit, expire = sys.argv[1:7]
    count, processes, limit, expire = int(count), int(processes), int(limit), float(expire)
    client = redis.Redis.from_url(url, socket_timeout=None)
    client.incr("ready")
    deadline = time.monotonic() + 60
    while int(client.get("ready")) < processes:
        if time.monotonic() > deadline:
            sys.exit("the other processes never became ready")
        time.sleep(0.001)
    rng = random.Random(worker)
    holds = []
    crashes = 0
    for turn in range(count):
        semaphore = redis_lock.Semaphore(client, "history", limit, expire=expire)
        requested = time.monotonic()
        # No timeout (one above expire needs auto-renewal): a stuck waiter fails the test by its deadline.
        if not semaphore.acquire():
            sys.exit("acquire() returned False")
        acquired = time.monotonic()
        # The lease surely lasts until requested + expire (the server scored it expire after the grant,
        # in whole ms of its clock: 2 ms of margin), and surely ended at acquired + expire.
        valid = requested + expire - 0.002
        if rng.random() < 0.02:  # crash: never release; the permit comes back when its lease ends
            crashes += 1
            holds.append((requested, acquired, valid, acquired + expire))
            continue
        if rng.random() < 0.3:
            time.sleep(rng.random() / 1000)
        released = time.monotonic()
        try:
            semaphore.release()
        except redis_lock.NotAcquired:
            pass  # this process was paused past its lease (a loaded machine): the permit had expired
        holds.append((requested, acquired, min(released, valid), time.monotonic()))
    print(json.dumps({"file": redis_lock.__file__, "holds": holds, "crashes": crashes}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(("processes", "limit"), [(4, 2), (5, 3)])
def test_processes_never_exceed_the_limit(
    redis_url: str, plain: redis.Redis, processes: int, limit: int
) -> None:
    """Thousands of holds by several processes (some crashing) never have more than ``limit`` valid holders."""
    count, expire = 2400 // processes, 0.25
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                redis_url,
                str(i),
                str(count),
                str(processes),
                str(limit),
                str(expire),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        for i in range(processes)
    ]
    holds: list[Hold] = []
    crashed = 0
    for i, child in enumerate(children):
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode(errors="replace")
        report = json.loads(out)
        assert report["file"] == redis_lock.__file__
        holds.extend(Hold(f"process-{i}", *times) for times in report["holds"])
        crashed += int(report["crashes"])
    assert len(holds) == processes * count
    check_history(holds, limit)
    assert crashed >= 5, "too few crashes to test the reclaim of expired permits"


def test_checker_catches_too_many_holders_a_lost_wake_up_and_starvation() -> None:
    """The checker rejects limit + 1 overlapping holds, a waiter left by a free permit, and a starved waiter."""
    good = [Hold("a", 0.0, 0.0, 1.0, 1.0), Hold("b", 0.0, 0.5, 1.5, 1.5), Hold("c", 0.2, 1.0, 2.0, 2.0)]
    check_history(good, 2)
    with pytest.raises(AssertionError, match="3 holders"):
        check_history([*good, Hold("d", 0.0, 0.6, 0.9, 0.9)], 2)
    with pytest.raises(AssertionError, match="lost wake-up"):
        check_history(
            [Hold("a", 0.0, 0.0, 1.0, 1.0), Hold("b", 0.5, 1.0 + FREE_GAP_BOUND + 0.1, 9.0, 9.0)], 1
        )
    with pytest.raises(AssertionError, match="waited"):
        check_history([Hold("a", 0.0, 0.0, 100.0, 100.0), Hold("b", 0.5, 100.0, 101.0, 101.0)], 1)
