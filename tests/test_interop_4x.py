"""redis_lock beside python-redis-lock 4.0.1 on one standalone server: what a rolling upgrade relies on.

The real 4.0.1 is loaded under the module name ``prl401`` (``_prl401.py``;
``scripts/test.sh`` installs it, and without it these tests fail rather than
skip). Both libraries keep the owner id in ``lock:<name>`` and wake waiters by
pushing onto ``lock-signal:<name>``, so a lock held through either must exclude
the other, and either's release, ``reset()`` or ``reset_all()`` must wake the
other's waiters.

Waiters use clients without a socket timeout. A 4.x waiter needs that (its
``BLPOP 30`` would trip redis-py 8's default 5 s), and it makes our waiter
re-check on its own only every :data:`redis_lock._core.MAX_WAIT_CHUNK` (10 s),
so one that wakes well within that was woken by the other library's signal.

Not covered, because 4.x does not do it: 4.x waiters waking when a lock expires,
sub-second durations in 4.x (it truncates them), and clusters (4.x has no
cluster support).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio

import redis_lock
from redis_lock import _core

from ._prl401 import prl401
from ._topology import async_wait_for, blocked_in, wait_for
from .conftest import MakeClient

NAME = "interop"
LOCK_KEY = f"lock:{NAME}"
#: Longest a woken waiter may take to return after the wake-up; well under MAX_WAIT_CHUNK.
WAKE_BOUND = 5.0
#: How long a waiter waits at most: far longer than any bound below.
WAIT = 30
AsyncMakeClient = Callable[..., Any]


@pytest.fixture(scope="module")
def v4() -> ModuleType:
    """python-redis-lock 4.0.1 (an error, not a skip, when it is not installed)."""
    return prl401()


@pytest_asyncio.fixture
async def amake(redis_url: str) -> AsyncIterator[AsyncMakeClient]:
    """A factory of redis-py asyncio clients to the test server, closed after the test."""
    made: list[redis.asyncio.Redis] = []

    def make(decode_responses: bool = False, **kwargs: Any) -> redis.asyncio.Redis:
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=decode_responses, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def waiter_client(make_client: MakeClient, name: str, decode_responses: bool = False) -> redis.Redis:
    """A client named ``name`` (to find it in CLIENT LIST) with no socket timeout (see the module docstring)."""
    client: redis.Redis = make_client(
        decode_responses=decode_responses, socket_timeout=None, client_name=name
    )
    return client


class Waiter(threading.Thread):
    """Runs ``acquire()`` in a thread and records what it returned and when."""

    def __init__(self, acquire: Callable[[], bool]) -> None:
        super().__init__(daemon=True)
        self.acquire = acquire
        self.result: bool | None = None
        self.error: BaseException | None = None
        self.returned_at = 0.0

    def run(self) -> None:
        try:
            self.result = self.acquire()
        except BaseException as exc:
            self.error = exc
        self.returned_at = time.monotonic()

    def outcome(self, timeout: float = WAIT) -> bool | None:
        """Wait for the thread, failing the test if it is still blocked or raised."""
        self.join(timeout)
        assert not self.is_alive(), f"the waiter is still blocked after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result


# -- exclusion ---------------------------------------------------------------------


@pytest.mark.parametrize("decode", [False, True], ids=["ours-bytes", "ours-str"])
def test_4x_holder_excludes_our_lock(
    v4: ModuleType, make_client: MakeClient, plain: redis.Redis, decode: bool
) -> None:
    """A lock held through 4.x is busy for ours, which sees 4.x's id as the owner, and free once 4.x releases."""
    theirs = v4.Lock(make_client(decode_responses=not decode), NAME, expire=30)
    assert theirs.acquire(blocking=False) is True
    ours = redis_lock.Lock(make_client(decode_responses=decode), NAME)

    assert ours.acquire(blocking=False) is False
    assert ours.acquire(timeout=0.2) is False
    assert ours.locked() is True
    assert ours.get_owner_id() == theirs.id
    assert ours.owned() is False
    assert plain.get(LOCK_KEY) == theirs.id.encode()

    theirs.release()
    assert ours.locked() is False
    assert ours.acquire(blocking=False) is True
    assert plain.get(LOCK_KEY) == ours.id.encode()
    ours.release()


@pytest.mark.parametrize("decode", [False, True], ids=["ours-bytes", "ours-str"])
def test_our_holder_excludes_4x_lock(
    v4: ModuleType, make_client: MakeClient, plain: redis.Redis, decode: bool
) -> None:
    """A lock held through ours is busy for 4.x, which sees our id as the owner, and free once ours releases."""
    ours = redis_lock.Lock(make_client(decode_responses=decode), NAME, expire=30)
    assert ours.acquire(blocking=False) is True
    theirs = v4.Lock(make_client(decode_responses=not decode), NAME)

    assert theirs.acquire(blocking=False) is False
    assert theirs.acquire(timeout=1) is False
    assert theirs.locked() is True
    assert theirs.get_owner_id() == ours.id

    ours.release()
    assert theirs.locked() is False
    assert theirs.acquire(blocking=False) is True
    assert ours.get_owner_id() == theirs.id
    theirs.release()
    assert plain.exists(LOCK_KEY) == 0


@pytest.mark.asyncio
async def test_async_lock_and_4x_exclude_each_other(
    v4: ModuleType, make_client: MakeClient, amake: AsyncMakeClient, plain: redis.Redis
) -> None:
    """AsyncLock and 4.x's Lock each see the other's lock as busy and its id as the owner."""
    theirs = v4.Lock(make_client(), NAME)
    ours = redis_lock.AsyncLock(amake(decode_responses=True), NAME, expire=30)

    assert theirs.acquire(blocking=False) is True
    assert await ours.acquire(blocking=False) is False
    assert await ours.acquire(timeout=0.2) is False
    assert await ours.locked() is True
    assert await ours.get_owner_id() == theirs.id
    theirs.release()

    assert await ours.acquire(blocking=False) is True
    assert theirs.acquire(blocking=False) is False
    assert theirs.locked() is True
    assert theirs.get_owner_id() == ours.id
    await ours.release()
    assert plain.exists(LOCK_KEY) == 0


def test_ids_cross_versions(v4: ModuleType, make_client: MakeClient, plain: redis.Redis) -> None:
    """A lock taken by one library can be extended and released by the other given its id (the 4.x idiom)."""
    client = make_client()
    theirs = v4.Lock(client, NAME, expire=10)
    assert theirs.acquire(blocking=False) is True
    ours = redis_lock.Lock(client, NAME, id=theirs.id)
    assert ours.owned() is True
    ours.extend(100)
    assert 90_000 < plain.pttl(LOCK_KEY) <= 100_000
    ours.release()
    assert plain.exists(LOCK_KEY) == 0
    with pytest.raises(v4.NotAcquired):
        theirs.release()

    ours = redis_lock.Lock(client, NAME, expire=10.5)
    assert ours.acquire(blocking=False) is True
    theirs = v4.Lock(client, NAME, id=ours.id)
    theirs.extend(100)
    assert 90 < plain.ttl(LOCK_KEY) <= 100
    theirs.release()
    assert plain.exists(LOCK_KEY) == 0
    with pytest.raises(redis_lock.NotAcquired):
        ours.release()


# -- wake-ups ----------------------------------------------------------------------


def test_4x_release_wakes_our_waiter(v4: ModuleType, make_client: MakeClient, plain: redis.Redis) -> None:
    """Our waiter blocked behind a 4.x holder gets the lock promptly when 4.x releases it."""
    theirs = v4.Lock(make_client(), NAME)
    assert theirs.acquire(blocking=False) is True
    ours = redis_lock.Lock(waiter_client(make_client, "ours-waiter"), NAME)
    waiter = Waiter(lambda: ours.acquire(timeout=WAIT))
    waiter.start()
    wait_for(lambda: blocked_in(plain, "blpop", "ours-waiter") >= 1, what="our waiter to block in BLPOP")

    released_at = time.monotonic()
    theirs.release()
    assert waiter.outcome() is True
    assert waiter.returned_at - released_at < WAKE_BOUND
    assert ours.owned() is True
    ours.release()


@pytest.mark.asyncio
async def test_4x_release_wakes_our_async_waiter(
    v4: ModuleType, make_client: MakeClient, amake: AsyncMakeClient, plain: redis.Redis
) -> None:
    """Our AsyncLock waiter blocked behind a 4.x holder gets the lock promptly when 4.x releases it."""
    theirs = v4.Lock(make_client(), NAME)
    assert theirs.acquire(blocking=False) is True
    ours = redis_lock.AsyncLock(amake(socket_timeout=None, client_name="ours-waiter"), NAME)
    waiter = asyncio.create_task(ours.acquire(timeout=WAIT))
    await async_wait_for(
        lambda: blocked_in(plain, "blpop", "ours-waiter") >= 1, what="our waiter to block in BLPOP"
    )

    released_at = time.monotonic()
    theirs.release()
    assert await asyncio.wait_for(waiter, WAIT) is True
    assert time.monotonic() - released_at < WAKE_BOUND
    assert await ours.owned() is True
    await ours.release()


def test_our_release_wakes_4x_waiter(v4: ModuleType, make_client: MakeClient, plain: redis.Redis) -> None:
    """A 4.x waiter blocked behind our holder gets the lock promptly when ours releases it."""
    ours = redis_lock.Lock(make_client(decode_responses=True), NAME, expire=30)
    assert ours.acquire(blocking=False) is True
    theirs = v4.Lock(waiter_client(make_client, "4x-waiter"), NAME)
    waiter = Waiter(lambda: theirs.acquire(timeout=WAIT))
    waiter.start()
    wait_for(lambda: blocked_in(plain, "blpop", "4x-waiter") >= 1, what="the 4.x waiter to block in BLPOP")

    released_at = time.monotonic()
    ours.release()
    assert waiter.outcome() is True
    assert waiter.returned_at - released_at < WAKE_BOUND
    assert ours.get_owner_id() == theirs.id
    theirs.release()


@pytest.mark.asyncio
async def test_our_async_release_wakes_4x_waiter(
    v4: ModuleType, make_client: MakeClient, amake: AsyncMakeClient, plain: redis.Redis
) -> None:
    """A 4.x waiter blocked behind our AsyncLock holder gets the lock promptly when ours releases it."""
    ours = redis_lock.AsyncLock(amake(), NAME, expire=30)
    assert await ours.acquire(blocking=False) is True
    theirs = v4.Lock(waiter_client(make_client, "4x-waiter"), NAME)
    waiter = Waiter(lambda: theirs.acquire(timeout=WAIT))
    waiter.start()
    await async_wait_for(
        lambda: blocked_in(plain, "blpop", "4x-waiter") >= 1, what="the 4.x waiter to block in BLPOP"
    )

    released_at = time.monotonic()
    await ours.release()
    assert await asyncio.to_thread(waiter.outcome) is True
    assert waiter.returned_at - released_at < WAKE_BOUND
    assert await ours.get_owner_id() == theirs.id
    theirs.release()


def test_our_reset_wakes_4x_waiter(v4: ModuleType, make_client: MakeClient, plain: redis.Redis) -> None:
    """Our reset() of a 4.x lock wakes a 4.x waiter, which then holds it; the old holder has lost it."""
    holder = v4.Lock(make_client(), NAME)
    assert holder.acquire(blocking=False) is True
    theirs = v4.Lock(waiter_client(make_client, "4x-waiter"), NAME)
    waiter = Waiter(lambda: theirs.acquire(timeout=WAIT))
    waiter.start()
    wait_for(lambda: blocked_in(plain, "blpop", "4x-waiter") >= 1, what="the 4.x waiter to block in BLPOP")

    reset_at = time.monotonic()
    redis_lock.Lock(make_client(decode_responses=True), NAME).reset()
    assert waiter.outcome() is True
    assert waiter.returned_at - reset_at < WAKE_BOUND
    assert holder.get_owner_id() == theirs.id
    with pytest.raises(v4.NotAcquired):
        holder.release()
    theirs.release()


def test_4x_reset_wakes_our_waiter(v4: ModuleType, make_client: MakeClient, plain: redis.Redis) -> None:
    """4.x's reset() of our lock wakes our waiter, which then holds it; our old holder has lost it."""
    holder = redis_lock.Lock(make_client(), NAME)
    assert holder.acquire(blocking=False) is True
    ours = redis_lock.Lock(waiter_client(make_client, "ours-waiter"), NAME)
    waiter = Waiter(lambda: ours.acquire(timeout=WAIT))
    waiter.start()
    wait_for(lambda: blocked_in(plain, "blpop", "ours-waiter") >= 1, what="our waiter to block in BLPOP")

    reset_at = time.monotonic()
    v4.Lock(make_client(), NAME).reset()
    assert waiter.outcome() is True
    assert waiter.returned_at - reset_at < WAKE_BOUND
    assert ours.owned() is True
    with pytest.raises(redis_lock.NotAcquired):
        holder.release()
    ours.release()


def test_4x_reset_all_clears_our_locks(v4: ModuleType, make_client: MakeClient, plain: redis.Redis) -> None:
    """4.x's reset_all deletes our locks and wakes our waiter."""
    client = make_client(decode_responses=True)
    held = redis_lock.Lock(client, NAME, expire=30)
    other = redis_lock.Lock(client, "other")
    assert held.acquire(blocking=False) is True
    assert other.acquire(blocking=False) is True
    ours = redis_lock.Lock(waiter_client(make_client, "ours-waiter"), NAME)
    waiter = Waiter(lambda: ours.acquire(timeout=WAIT))
    waiter.start()
    wait_for(lambda: blocked_in(plain, "blpop", "ours-waiter") >= 1, what="our waiter to block in BLPOP")

    reset_at = time.monotonic()
    v4.reset_all(make_client())
    assert waiter.outcome() is True
    assert waiter.returned_at - reset_at < WAKE_BOUND
    assert other.locked() is False
    with pytest.raises(redis_lock.NotAcquired):
        held.release()
    with pytest.raises(redis_lock.NotAcquired):
        other.release()
    ours.release()
    assert plain.keys("lock:*") == []


def test_our_reset_all_clears_4x_locks(v4: ModuleType, make_client: MakeClient, plain: redis.Redis) -> None:
    """Our reset_all deletes 4.x's locks (and counts them) and wakes a 4.x waiter."""
    client = make_client()
    held = v4.Lock(client, NAME, expire=30)
    other = v4.Lock(client, "other")
    assert held.acquire(blocking=False) is True
    assert other.acquire(blocking=False) is True
    theirs = v4.Lock(waiter_client(make_client, "4x-waiter"), NAME)
    waiter = Waiter(lambda: theirs.acquire(timeout=WAIT))
    waiter.start()
    wait_for(lambda: blocked_in(plain, "blpop", "4x-waiter") >= 1, what="the 4.x waiter to block in BLPOP")

    reset_at = time.monotonic()
    assert redis_lock.reset_all(make_client(decode_responses=True)) == 2
    assert waiter.outcome() is True
    assert waiter.returned_at - reset_at < WAKE_BOUND
    assert other.locked() is False
    with pytest.raises(v4.NotAcquired):
        held.release()
    with pytest.raises(v4.NotAcquired):
        other.release()
    theirs.release()
    assert plain.keys("lock:*") == []


# -- expiry ------------------------------------------------------------------------


def test_expired_4x_holder_is_taken_over_by_our_waiter(
    v4: ModuleType, make_client: MakeClient, plain: redis.Redis
) -> None:
    """Our waiter takes over a 4.x lock (expire=1) soon after the key expires, with no release to wake it."""
    ours = redis_lock.Lock(waiter_client(make_client, "ours-waiter"), NAME)
    theirs = v4.Lock(make_client(), NAME, expire=1)
    taken_at = time.monotonic()
    assert theirs.acquire(blocking=False) is True
    waiter = Waiter(lambda: ours.acquire(timeout=WAIT))
    waiter.start()

    assert waiter.outcome() is True
    # Not before the key expired (1 s after 4.x's SET, itself after taken_at), and long before the
    # 10 s re-check: the waiter slept until the holder's TTL ran out.
    assert 0.9 <= waiter.returned_at - taken_at < 1 + 2.0
    assert ours.owned() is True
    with pytest.raises(v4.NotAcquired):
        theirs.release()
    ours.release()


@pytest.mark.asyncio
async def test_expired_4x_holder_is_taken_over_by_our_async_waiter(
    v4: ModuleType, make_client: MakeClient, amake: AsyncMakeClient
) -> None:
    """Our AsyncLock waiter takes over a 4.x lock (expire=1) soon after the key expires."""
    ours = redis_lock.AsyncLock(amake(socket_timeout=None), NAME)
    theirs = v4.Lock(make_client(), NAME, expire=1)
    taken_at = time.monotonic()
    assert theirs.acquire(blocking=False) is True

    assert await asyncio.wait_for(ours.acquire(timeout=WAIT), WAIT) is True
    assert 0.9 <= time.monotonic() - taken_at < 1 + 2.0
    assert await ours.owned() is True
    await ours.release()


# -- contention --------------------------------------------------------------------


class Counter:
    """A deliberately non-atomic counter in Redis (GET, pause, SET) and a check that nobody overlaps."""

    def __init__(self, plain: redis.Redis) -> None:
        self.plain = plain
        self.guard = threading.Lock()
        self.inside = 0
        self.most_inside = 0

    def enter(self) -> None:
        with self.guard:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)

    def leave(self) -> None:
        with self.guard:
            self.inside -= 1

    def increment(self, client: redis.Redis) -> None:
        self.enter()
        try:
            value = int(client.get("counter") or 0)
            time.sleep(0.001)  # widens the race window a broken lock would let through
            client.set("counter", value + 1)
        finally:
            self.leave()


def test_mixed_contention_is_mutually_exclusive(
    v4: ModuleType, make_client: MakeClient, redis_url: str, plain: redis.Redis
) -> None:
    """4.x Locks, our Locks and an AsyncLock contending for one lock never overlap: no increment is lost."""
    rounds = 25
    counter = Counter(plain)
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def run(body: Callable[[], None]) -> threading.Thread:
        def target() -> None:
            try:
                start.wait(10)
                body()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    def with_4x() -> None:
        client = waiter_client(make_client, "4x-contender")
        lock = v4.Lock(client, NAME)
        for _ in range(rounds):
            assert lock.acquire() is True
            try:
                counter.increment(client)
            finally:
                lock.release()

    def with_ours(decode: bool) -> Callable[[], None]:
        def body() -> None:
            client = waiter_client(make_client, "ours-contender", decode_responses=decode)
            lock = redis_lock.Lock(client, NAME, expire=30)
            for _ in range(rounds):
                with lock:
                    counter.increment(client)

        return body

    def with_async() -> None:
        async def main() -> None:
            client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=None)
            sync_client = make_client()
            try:
                lock = redis_lock.AsyncLock(client, NAME, expire=30)
                for _ in range(rounds):
                    async with lock:
                        # The counter's GET/SET go through a sync client: this thread has only this task.
                        counter.increment(sync_client)
            finally:
                await client.aclose()

        asyncio.run(main())

    threads = [run(with_4x), run(with_4x), run(with_ours(False)), run(with_ours(True)), run(with_async)]
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a contender is still blocked after 60 s"
    assert errors == []
    assert counter.most_inside == 1
    assert int(plain.get("counter") or 0) == 5 * rounds
    assert plain.exists(LOCK_KEY) == 0


def test_wait_chunk_without_socket_timeout_exceeds_wake_bound() -> None:
    """The wake-up tests above prove a signal woke the waiter only if it would not have re-checked sooner."""
    assert _core.wait_chunk(None) >= 2 * WAKE_BOUND
