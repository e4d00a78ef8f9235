"""Asyncio flavour: :class:`redis_lock.AsyncLock` against :class:`redis.asyncio.lock.Lock` and an asyncio limit.

The same rows as the synchronous suite, with the asyncio contenders of
``_workers.ASYNC_PEERS``: ours, ``redis.asyncio.lock.Lock`` with its default
``sleep=0.1`` and with ``sleep=0.001``, and the hand-written limit's protocol
awaited on ``redis.asyncio`` (the ``x limit`` column of these rows divides by it).

- Uncontended cycle: a batch of ``BATCH`` acquire/release cycles per
  ``run_until_complete`` call, so the event loop's entry cost is spread out;
  the table divides by ``BATCH``.
- Hand-off latency: two processes, each running one event loop with its own
  client (``_workers.async_party``), driven by the sync suite's coordinator
  (``_workers.hand_over``). Not two tasks on one loop: there, the woken
  waiter's task cannot run before the holder's task yields after its
  ``release()`` returned, and both replies are read by the same selector, so the
  sample would measure the loop's scheduling (and the coordinator could not
  check from outside that the waiter is blocked before releasing). Two tasks of
  one process would share an :class:`asyncio.Lock`, not a Redis lock.
- Expiry wake-up: as ``test_expiry``, in one event loop of the coordinator
  (holder, monitor and waiter on three clients; the holder is abandoned, so
  nothing else runs in the loop while the waiter waits).
- Contended: N processes (``_workers.contend_async``), each running one event
  loop with its own counting client and one task looping acquire /
  ``await asyncio.sleep(hold)`` / release; same totals as ``test_contended``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from ._peers import monotonic
from ._stats import expiry_instant, summary
from ._workers import (
    ASYNC_LIBRARIES,
    ASYNC_LIMIT,
    ASYNC_PEERS,
    AsyncPeer,
    Party,
    contend_async,
    hand_over,
    make_async_client,
    run_contention,
)
from .conftest import Sizes

BATCH = 100
NAME = "bench-async"
HANDOFF_NAME = "bench-handoff-async"
CONTENDED_NAME = "bench-contended-async"
#: As test_expiry: the abandoned holder's key lives 0.25 s.
EXPIRE = 0.25
#: As test_contended: the hold times a full run measures (a quick run only those in ``Sizes.hold_times``).
HOLD_TIMES = (0.001, 0.01)

ALL_PEERS = list(ASYNC_PEERS.values())


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A private event loop (pytest-asyncio is not used here: the benchmark fixture is synchronous)."""
    running = asyncio.new_event_loop()
    yield running
    running.close()


# -- uncontended ------------------------------------------------------------------


@pytest.mark.benchmark(group="uncontended cycle (asyncio)")
@pytest.mark.parametrize("peer", ALL_PEERS, ids=lambda peer: peer.id)
def test_async_uncontended_cycle(
    benchmark: Any,
    clients: Callable[[], redis.Redis],
    url: str,
    loop: asyncio.AbstractEventLoop,
    sizes: Sizes,
    peer: AsyncPeer,
) -> None:
    """Acquire and release a free lock ``BATCH`` times per round; every cycle must succeed."""
    monitor = clients()
    client = make_async_client(url)
    lock = peer.make(client, NAME, 10.0)

    async def batch() -> int:
        done = 0
        for _ in range(BATCH):
            if await lock.acquire():
                done += 1
            await lock.release()
        return done

    try:
        assert loop.run_until_complete(batch()) == BATCH  # warm-up: connection and scripts
        done = benchmark.pedantic(
            lambda: loop.run_until_complete(batch()), rounds=sizes.async_rounds, warmup_rounds=1
        )
        assert done == BATCH
    finally:
        loop.run_until_complete(client.aclose())
    assert not monitor.exists(peer.key(NAME))
    benchmark.extra_info.update(metric="uncontended-async", peer=peer.id, batch=BATCH)


# -- hand-off ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def async_parties(url: str) -> Iterator[tuple[Party, Party]]:
    """Two asyncio party processes, shared by every asyncio hand-off benchmark."""
    pair = (Party(url, use_asyncio=True), Party(url, use_asyncio=True))
    try:
        yield pair
    finally:
        for party in pair:
            party.stop()


@pytest.mark.benchmark(group="hand-off (asyncio)")
@pytest.mark.parametrize("peer", [*ASYNC_LIBRARIES, ASYNC_LIMIT], ids=lambda peer: peer.id)
def test_async_handoff(
    benchmark: Any,
    clients: Callable[[], redis.Redis],
    async_parties: tuple[Party, Party],
    sizes: Sizes,
    peer: AsyncPeer,
) -> None:
    """Every hand-off completes and the lock is free at the end; latencies go to extra_info."""
    monitor = clients()
    samples = benchmark.pedantic(
        hand_over, args=(peer, monitor, async_parties, sizes.handoffs, HANDOFF_NAME), rounds=1, iterations=1
    )
    assert len(samples) == sizes.handoffs
    assert not monitor.exists(peer.key(HANDOFF_NAME))
    benchmark.extra_info.update(metric="handoff-async", peer=peer.id, **summary(samples))


# -- expiry wake-up ----------------------------------------------------------------


async def expiry_wakeups(peer: AsyncPeer, url: str, count: int) -> list[float]:
    """Let ``count`` abandoned holders expire under a waiting waiter; the wake-up latencies in seconds."""
    monitor, holder_client, waiter_client = made = [make_async_client(url) for _ in range(3)]
    samples: list[float] = []
    try:
        for number in range(count):
            name = f"bench-expiry-async-{number}"
            holder = peer.make(holder_client, name, EXPIRE)
            assert await holder.acquire()
            sent = monotonic()
            pttl = int(await monitor.pttl(peer.key(name)))
            answered = monotonic()
            assert pttl > 0, f"{peer.key(name)} has no TTL: {pttl}"
            expires_at = expiry_instant(sent, answered, pttl)
            waiter = peer.make(waiter_client, name, EXPIRE)
            assert await waiter.acquire()
            samples.append(monotonic() - expires_at)
            await waiter.release()
    finally:
        for client in made:
            await client.aclose()
    return samples


@pytest.mark.benchmark(group="expiry wake-up (asyncio)")
@pytest.mark.parametrize("peer", ASYNC_LIBRARIES, ids=lambda peer: peer.id)
def test_async_expiry_wakeup(
    benchmark: Any,
    clients: Callable[[], redis.Redis],
    url: str,
    loop: asyncio.AbstractEventLoop,
    sizes: Sizes,
    peer: AsyncPeer,
) -> None:
    """A waiter gets every abandoned lock, never before its key expired (beyond clock error)."""
    clients()  # flushes the database

    def measure() -> list[float]:
        return loop.run_until_complete(expiry_wakeups(peer, url, sizes.expiry_samples))

    samples = benchmark.pedantic(measure, rounds=1, iterations=1)
    assert len(samples) == sizes.expiry_samples
    assert min(samples) > -0.002, "a waiter got the lock before the holder's key expired"
    benchmark.extra_info.update(metric="expiry-async", peer=peer.id, **summary(samples))


# -- contended -----------------------------------------------------------------------


@pytest.mark.benchmark(group="contended (asyncio)")
@pytest.mark.parametrize("hold", HOLD_TIMES, ids=lambda hold: f"hold{hold * 1000:g}ms")
@pytest.mark.parametrize("peer", [*ASYNC_LIBRARIES, ASYNC_LIMIT], ids=lambda peer: peer.id)
def test_async_contended(
    benchmark: Any, clients: Callable[[], redis.Redis], url: str, sizes: Sizes, peer: AsyncPeer, hold: float
) -> None:
    """Processes, one event loop each, take turns on one lock and two of them are never inside at once."""
    if hold not in sizes.hold_times:
        pytest.skip(f"hold time {hold} s is not measured in a quick run")
    result = benchmark.pedantic(
        run_contention,
        args=(
            contend_async,
            peer.id,
            url,
            CONTENDED_NAME,
            clients(),
            sizes.processes,
            hold,
            sizes.contended_seconds,
        ),
        rounds=1,
        iterations=1,
    )
    assert result["violations"] == 0, "two processes held the lock at once"
    assert result["acquisitions"] >= sizes.processes
    benchmark.extra_info.update(metric="contended-async", peer=peer.id, **result)
