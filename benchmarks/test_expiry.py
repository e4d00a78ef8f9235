"""Expiry wake-up latency: the holder never releases; how long after its key expires does a waiter hold the lock?

The holder acquires with a short ``expire`` and is abandoned. Right after, a
monitor client reads the key's ``PTTL``; the expiry instant is the midpoint of
that round trip plus the TTL (error well under a millisecond). A waiter, in the
coordinator's process and on its own client, then calls ``acquire()``; the
sample is the moment it returns minus the expiry instant. The waiter uses the
same ``expire`` as the holder. python-redis-lock 4.0.1 only takes whole seconds,
so it gets ``expire=1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from ._peers import LIBRARIES, PRL401, Peer, monotonic
from ._stats import expiry_instant, summary
from .conftest import Sizes

EXPIRE = 0.25


def expiry_wakeups(peer: Peer, clients: Callable[[], redis.Redis], count: int) -> list[float]:
    """Let ``count`` abandoned holders expire under a waiting waiter; the wake-up latencies in seconds."""
    monitor, holder_client, waiter_client = clients(), clients(), clients()
    expire = 1.0 if peer is PRL401 else EXPIRE
    samples: list[float] = []
    for number in range(count):
        name = f"bench-expiry-{number}"
        holder = peer.make(holder_client, name, expire)
        assert holder.acquire()
        sent = monotonic()
        pttl = int(monitor.pttl(peer.key(name)))
        answered = monotonic()
        assert pttl > 0, f"{peer.key(name)} has no TTL: {pttl}"
        expires_at = expiry_instant(sent, answered, pttl)
        # Same settings as the holder, as when every process runs the same code (4.0.1's waiter
        # blocks for its own ``expire``, so a longer one would wait longer).
        waiter = peer.make(waiter_client, name, expire)
        assert waiter.acquire()
        samples.append(monotonic() - expires_at)
        waiter.release()
    return samples


@pytest.mark.benchmark(group="expiry wake-up")
@pytest.mark.parametrize("peer", LIBRARIES, ids=lambda peer: peer.id)
def test_expiry_wakeup(benchmark: Any, clients: Callable[[], redis.Redis], sizes: Sizes, peer: Peer) -> None:
    """A waiter gets every abandoned lock, never before its key expired (beyond clock error)."""
    samples = benchmark.pedantic(
        expiry_wakeups, args=(peer, clients, sizes.expiry_samples), rounds=1, iterations=1
    )
    assert len(samples) == sizes.expiry_samples
    assert min(samples) > -0.002, "a waiter got the lock before the holder's key expired"
    benchmark.extra_info.update(metric="expiry", peer=peer.id, **summary(samples))
