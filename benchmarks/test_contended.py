"""Contended throughput, fairness, mutual exclusion and server cost.

N processes (``--bench-processes``, default 4) loop on one lock: acquire, a
short critical section (``time.sleep(hold)``), release. Each process counts its
acquisitions and the requests its client sent (round trips); inside the
critical section it checks a shared integer that says who is inside, so two
holders at once show up as violations. After every process has connected and
loaded its scripts, the server's stats are reset (``CONFIG RESETSTAT``); when all
have finished, ``INFO commandstats`` gives the commands Redis executed, counting
those run inside Lua scripts.

Each process also timestamps every ``acquire()`` and ``release()`` return and
counts the requests its ``release()`` sent, so a run also gives its hand-offs
(release returned -> another process's acquire returned) and its requests per
acquisition with and without the release.

Fair mode (``redis_lock-fair``) runs beside the others at ``--bench-processes``;
``test_contended_crowd`` runs it again at ``--bench-crowd`` processes (16) with
its yardsticks only (ours non-fair, python-redis-lock 4.0.1, the limit), so the
full run grows by eight runs rather than fourteen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from ._peers import LIBRARIES, LIMIT, OURS, OURS_FAIR, PRL401, Peer
from ._workers import contend, run_contention
from .conftest import Sizes

NAME = "bench-contended"
HOLD_TIMES = (0.001, 0.01)
#: The contenders of the crowded rows: fair mode and what it is judged against.
CROWD_PEERS = (OURS, OURS_FAIR, PRL401, LIMIT)


def contended(
    peer: Peer, url: str, admin: redis.Redis, processes: int, hold: float, duration: float
) -> dict[str, Any]:
    """Run the contention loop in ``processes`` processes; the totals."""
    return run_contention(contend, peer.id, url, NAME, admin, processes, hold, duration)


@pytest.mark.benchmark(group="contended")
@pytest.mark.parametrize("hold", HOLD_TIMES, ids=lambda hold: f"hold{hold * 1000:g}ms")
@pytest.mark.parametrize("peer", [*LIBRARIES, OURS_FAIR, LIMIT], ids=lambda peer: peer.id)
def test_contended(
    benchmark: Any, clients: Callable[[], redis.Redis], url: str, sizes: Sizes, peer: Peer, hold: float
) -> None:
    """Processes take turns on one lock and two of them are never inside at once."""
    if hold not in sizes.hold_times:
        pytest.skip(f"hold time {hold} s is not measured in a quick run")
    result = benchmark.pedantic(
        contended,
        args=(peer, url, clients(), sizes.processes, hold, sizes.contended_seconds),
        rounds=1,
        iterations=1,
    )
    assert result["violations"] == 0, "two processes held the lock at once"
    assert result["acquisitions"] >= sizes.processes
    benchmark.extra_info.update(metric="contended", peer=peer.id, **result)


@pytest.mark.benchmark(group="contended, crowd")
@pytest.mark.parametrize("hold", HOLD_TIMES, ids=lambda hold: f"hold{hold * 1000:g}ms")
@pytest.mark.parametrize("peer", CROWD_PEERS, ids=lambda peer: peer.id)
def test_contended_crowd(
    benchmark: Any, clients: Callable[[], redis.Redis], url: str, sizes: Sizes, peer: Peer, hold: float
) -> None:
    """As ``test_contended``, with ``--bench-crowd`` processes (16): fair mode and its yardsticks only."""
    if not sizes.crowd:
        pytest.skip("no crowded rows in a quick run (or with --bench-crowd 0)")
    if sizes.crowd == sizes.processes:
        pytest.skip("test_contended measures this many processes already")
    if hold not in sizes.hold_times:
        pytest.skip(f"hold time {hold} s is not measured in a quick run")
    result = benchmark.pedantic(
        contended,
        args=(peer, url, clients(), sizes.crowd, hold, sizes.contended_seconds),
        rounds=1,
        iterations=1,
    )
    assert result["violations"] == 0, "two processes held the lock at once"
    assert result["acquisitions"] >= sizes.crowd
    benchmark.extra_info.update(metric="contended-crowd", peer=peer.id, **result)
