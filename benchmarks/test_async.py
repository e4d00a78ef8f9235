"""Asyncio flavour: :class:`redis_lock.AsyncLock` against :class:`redis.asyncio.lock.Lock`, uncontended.

One round of the benchmark runs a batch of ``BATCH`` acquire/release cycles in
one ``run_until_complete`` call, so the event loop's entry cost is spread out;
the table divides by ``BATCH``. (TODO, follow-up of issue 7: async hand-off and contention rows; the
sync rows cover the protocol, these cover the asyncio client's overhead.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio
import redis.asyncio.lock

import redis_lock

BATCH = 100
NAME = "bench-async"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A private event loop (pytest-asyncio is not used here: the benchmark fixture is synchronous)."""
    running = asyncio.new_event_loop()
    yield running
    running.close()


def _ours(client: redis.asyncio.Redis) -> Any:
    return redis_lock.AsyncLock(client, NAME, expire=10)


def _redis_py(client: redis.asyncio.Redis) -> Any:
    return redis.asyncio.lock.Lock(client, NAME, timeout=10, sleep=0.1)


ASYNC_PEERS: dict[str, Callable[[redis.asyncio.Redis], Any]] = {
    "redis_lock-async": _ours,
    "redis-py-async": _redis_py,
}


@pytest.mark.benchmark(group="uncontended cycle (asyncio)")
@pytest.mark.parametrize("peer_id", list(ASYNC_PEERS))
def test_async_uncontended_cycle(
    benchmark: Any, url: str, loop: asyncio.AbstractEventLoop, peer_id: str
) -> None:
    """Acquire and release a free lock ``BATCH`` times per round; every cycle must succeed."""
    client = redis.asyncio.Redis.from_url(url)
    lock = ASYNC_PEERS[peer_id](client)

    async def batch() -> int:
        done = 0
        for _ in range(BATCH):
            if await lock.acquire():
                done += 1
            await lock.release()
        return done

    try:
        assert loop.run_until_complete(batch()) == BATCH  # warm-up: connection and scripts
        done = benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=20, warmup_rounds=1)
        assert done == BATCH
    finally:
        loop.run_until_complete(client.aclose())
    benchmark.extra_info.update(metric="uncontended-async", peer=peer_id, batch=BATCH)
