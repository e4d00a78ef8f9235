"""Uncontended cycle: acquire and release a free lock, as fast as one client can.

pytest-benchmark times each cycle (calibrated rounds); the table shows cycles
per second from the median. The PING round trip and the hand-written limit
(two round trips) are measured in the same run, on the same server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from ._peers import LIBRARIES, LIMIT, OURS_FENCING, Peer


@pytest.mark.benchmark(group="round trip")
def test_ping(benchmark: Any, clients: Callable[[], redis.Redis]) -> None:
    """One PING round trip: the unit every other figure is made of."""
    client = clients()
    assert client.ping()
    benchmark(client.ping)
    benchmark.extra_info.update(metric="ping", peer="ping")


@pytest.mark.benchmark(group="uncontended cycle")
@pytest.mark.parametrize("peer", [*LIBRARIES, OURS_FENCING, LIMIT], ids=lambda peer: peer.id)
def test_uncontended_cycle(benchmark: Any, clients: Callable[[], redis.Redis], peer: Peer) -> None:
    """Acquire and release a free lock; every cycle must succeed."""
    client = clients()
    lock = peer.make(client, "bench-uncontended", 10.0)

    def cycle() -> None:
        acquired = lock.acquire()
        lock.release()
        assert acquired

    cycle()  # loads the scripts and opens the connection
    benchmark(cycle)
    assert not client.exists(peer.key("bench-uncontended"))
    benchmark.extra_info.update(metric="uncontended", peer=peer.id)


@pytest.mark.benchmark(group="uncontended cycle, a new lock object per cycle")
@pytest.mark.parametrize("peer", [*LIBRARIES, OURS_FENCING, LIMIT], ids=lambda peer: peer.id)
def test_uncontended_cycle_fresh_object(
    benchmark: Any, clients: Callable[[], redis.Redis], peer: Peer
) -> None:
    """The ``with Lock(conn, name):`` idiom: build the lock, acquire and release it, every cycle."""
    client = clients()

    def cycle() -> None:
        lock = peer.make(client, "bench-fresh", 10.0)
        acquired = lock.acquire()
        lock.release()
        assert acquired

    cycle()
    benchmark(cycle)
    assert not client.exists(peer.key("bench-fresh"))
    benchmark.extra_info.update(metric="uncontended-fresh", peer=peer.id)
