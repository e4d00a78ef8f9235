"""Hand-off latency: from the holder's ``release()`` returning to a blocked waiter's ``acquire()`` returning.

Two processes (see ``_workers.party``), each with its own client and lock
object, pass the lock back and forth; a coordinator tells them what to do.
Before each release it makes sure the waiter is really waiting: for a library
that parks in ``BLPOP`` it polls ``INFO clients`` until the server reports a
blocked client; for one that polls, it releases after a random pause in
``[0, poll interval)`` once the waiter has started, so the release lands at a
random phase of the polling. Fair mode (``redis_lock-fair``) parks too: its
waiter queues with one script, then blocks in ``BLPOP`` on its own wake list,
and the release hands it the lock there. Each timestamp is ``time.monotonic()`` taken in the
process that made the call, right after the call returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from ._peers import LIBRARIES, LIMIT, OURS_FAIR, TOKEN, Peer
from ._stats import summary
from ._workers import Party, hand_over
from .conftest import Sizes

NAME = "bench-handoff"


@pytest.fixture(scope="module")
def parties(url: str) -> Iterator[tuple[Party, Party]]:
    """Two party processes, shared by every hand-off benchmark (spawning them costs about a second)."""
    pair = (Party(url), Party(url))
    try:
        yield pair
    finally:
        for party in pair:
            party.stop()


def handoffs(peer: Peer, monitor: redis.Redis, parties: tuple[Party, Party], count: int) -> list[float]:
    """Hand the lock over ``count`` times, alternating directions; the latencies in seconds."""
    peer.prepare(monitor, NAME)
    return hand_over(peer, monitor, parties, count, NAME)


@pytest.mark.benchmark(group="hand-off")
@pytest.mark.parametrize("peer", [*LIBRARIES, OURS_FAIR, LIMIT, TOKEN], ids=lambda peer: peer.id)
def test_handoff(
    benchmark: Any,
    clients: Callable[[], redis.Redis],
    parties: tuple[Party, Party],
    sizes: Sizes,
    peer: Peer,
) -> None:
    """Every hand-off completes and the lock is free at the end; latencies go to extra_info."""
    monitor = clients()
    samples = benchmark.pedantic(
        handoffs, args=(peer, monitor, parties, sizes.handoffs), rounds=1, iterations=1
    )
    assert len(samples) == sizes.handoffs
    if peer is not TOKEN:
        assert not monitor.exists(peer.key(NAME))
    benchmark.extra_info.update(metric="handoff", peer=peer.id, **summary(samples))
