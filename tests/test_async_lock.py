"""What only redis_lock.AsyncLock has: asyncio cancellation, tasks sharing a lock, asyncio clients.

The behaviour both flavours share is written once, in ``test_behaviour.py``.
Tests named ``test_cancel*`` cover asyncio cancellation, which has no sync
counterpart.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio
import valkey.asyncio

import redis_lock
from redis_lock._scripts import ACQUIRE, UNLOCK

from ._clients import AsyncDelegating
from ._topology import async_wait_for
from .conftest import CLIENT_KINDS, ClientKind, _kind_id

pytestmark = pytest.mark.asyncio

AsyncMakeClient = Callable[..., Any]


@pytest_asyncio.fixture
async def amake(redis_url: str) -> AsyncIterator[AsyncMakeClient]:
    """A factory of asyncio clients to the test server; every client it made is closed after the test."""
    made: list[Any] = []

    def make(
        kind: str = "redis", decode_responses: bool = False, url: str | None = None, **kwargs: Any
    ) -> Any:
        factory: Any = redis.asyncio.Redis if kind == "redis" else valkey.asyncio.Valkey
        client = factory.from_url(url or redis_url, decode_responses=decode_responses, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture(params=CLIENT_KINDS, ids=_kind_id)
def akind(request: pytest.FixtureRequest) -> ClientKind:
    """The asyncio client flavour under test: library and decode_responses."""
    kind: ClientKind = request.param
    return kind


@pytest.fixture
def aconn(akind: ClientKind, amake: AsyncMakeClient, plain: redis.Redis) -> Any:
    """The asyncio client under test: redis-py or valkey-py, with decode_responses off or on."""
    return amake(*akind)


def blocked_clients(client: redis.Redis) -> int:
    clients: int = client.info("clients")["blocked_clients"]
    return clients


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()
    }


class Gated(AsyncDelegating):
    """A hand-written asyncio client, not a redis.asyncio.Redis, over a real one.

    Every command goes to the real client, but the reply of one script (by SHA1)
    is held back until ``gate`` is set; ``ran`` is set once that script has run in
    Redis. This puts a cancellation exactly between "the script ran" and "the
    caller saw its reply".
    """

    def __init__(self, inner: Any, sha: str) -> None:
        super().__init__(inner)
        self.sha = sha
        self.ran = asyncio.Event()
        self.gate = asyncio.Event()

    async def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        reply: object = await self.inner.evalsha(sha, numkeys, *keys_and_args)
        if sha == self.sha:
            self.ran.set()
            await self.gate.wait()
        return reply


# -- acquire and release ---------------------------------------------------------


async def test_the_id_belongs_to_the_instance_not_the_task(aconn: Any) -> None:
    """A lock acquired in one task is owned, extended and released from another task."""
    lock = redis_lock.AsyncLock(aconn, "cross-task", expire=10)
    assert await asyncio.create_task(lock.acquire())
    assert await asyncio.create_task(lock.owned())
    await asyncio.create_task(lock.extend(20))
    await asyncio.create_task(lock.release())
    assert not await lock.locked()


async def test_sync_and_async_locks_exclude_each_other(aconn: Any, plain: redis.Redis) -> None:
    """A Lock and an AsyncLock on the same name use the same keys, so each sees the other as the holder."""
    sync_lock = redis_lock.Lock(plain, "mixed")
    assert sync_lock.acquire()
    assert await redis_lock.AsyncLock(aconn, "mixed").acquire(blocking=False) is False
    sync_lock.release()
    async_lock = redis_lock.AsyncLock(aconn, "mixed")
    assert await async_lock.acquire(blocking=False)
    assert redis_lock.Lock(plain, "mixed").acquire(blocking=False) is False
    await async_lock.release()


# -- many tasks ---------------------------------------------------------------------


@pytest.mark.serial  # its wake-up latencies are measured: not beside other test workers
async def test_many_tasks_contend_with_exact_mutual_exclusion_and_no_polling(
    aconn: Any, plain: redis.Redis
) -> None:
    """100 tasks contending on one name through one client each hold it once, one at a time, woken by releases.

    No polling: BLPOPs stay within 3 per acquisition, and a waiter gets the lock
    within milliseconds of the previous release.
    """
    tasks = 100
    inside = 0
    overlaps = 0
    spans: list[tuple[float, float]] = []

    async def worker() -> None:
        nonlocal inside, overlaps
        lock = redis_lock.AsyncLock(aconn, "crowd")
        assert await lock.acquire()
        acquired = time.monotonic()
        inside += 1
        overlaps += inside > 1
        await asyncio.sleep(0)  # let every other task run while this one holds the lock
        inside -= 1
        released = time.monotonic()
        await lock.release()
        spans.append((acquired, released))

    warm = redis_lock.AsyncLock(aconn, "crowd")
    await warm.acquire()  # loads the scripts
    await warm.release()
    plain.config_resetstat()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(tasks))), 60)
    stats = commandstats(plain)
    assert overlaps == 0
    assert len(spans) == tasks
    spans.sort()
    gaps = [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(spans)]
    assert min(gaps) > 0  # each acquisition followed the previous release
    assert stats["blpop"] <= 3 * tasks
    assert stats["evalsha"] <= 5 * tasks
    # Woken by the signal, not by a BLPOP timing out (a chunk here is 0.9 s or more).
    assert statistics.median(gaps) < 0.05
    assert max(gaps) < 0.85
    assert plain.exists("lock:crowd") == 0


# -- cancellation -------------------------------------------------------------------


async def test_cancel_while_waiting_holds_nothing(aconn: Any, plain: redis.Redis) -> None:
    """A task cancelled while waiting in acquire re-raises CancelledError and holds nothing; the instance is reusable."""
    holder = redis_lock.AsyncLock(aconn, "cancel-wait")
    await holder.acquire()
    waiter = redis_lock.AsyncLock(aconn, "cancel-wait")
    task = asyncio.create_task(waiter.acquire())
    await async_wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block in BLPOP")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await holder.owned()
    await holder.release()
    assert not await waiter.owned()
    assert plain.exists("lock:cancel-wait") == 0
    assert blocked_clients(plain) == 0  # the cancelled BLPOP is gone from the server too
    assert await waiter.acquire(blocking=False)
    await waiter.release()


async def test_cancel_by_wait_for_timeout_holds_nothing(aconn: Any, plain: redis.Redis) -> None:
    """asyncio.wait_for around a blocking acquire raises TimeoutError and leaves the waiter holding nothing."""
    holder = redis_lock.AsyncLock(aconn, "cancel-wait-for", expire=0.5)
    await holder.acquire()
    waiter = redis_lock.AsyncLock(aconn, "cancel-wait-for")
    # asyncio.TimeoutError: on Python 3.10 it is not yet the builtin TimeoutError.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(waiter.acquire(), 0.1)
    await async_wait_for(lambda: plain.exists("lock:cancel-wait-for") == 0, what="the holder to expire")
    assert blocked_clients(plain) == 0
    assert not await waiter.owned()


async def test_cancel_after_the_acquire_script_ran_releases_the_lock(aconn: Any, plain: redis.Redis) -> None:
    """Cancelled after the acquire script took the lock but before acquire returned, the lock is released again."""
    gated = Gated(aconn, ACQUIRE.sha1)
    lock = redis_lock.AsyncLock(gated, "cancel-late", strict=False)
    task = asyncio.create_task(lock.acquire())
    await asyncio.wait_for(gated.ran.wait(), 5)
    assert plain.get("lock:cancel-late") == lock.id.encode()  # taken in Redis, reply held back
    task.cancel()
    gated.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert plain.exists("lock:cancel-late") == 0
    assert plain.lrange("lock-signal:cancel-late", 0, -1) == [b"1"]  # a waiter would be woken
    assert await lock.acquire()  # the instance is reusable
    await lock.release()


async def test_cancel_after_an_owned_reply_keeps_the_other_instances_lock(
    aconn: Any, plain: redis.Redis
) -> None:
    """A cancelled acquire whose script found the lock held by its own id (another instance) releases nothing."""
    holder = redis_lock.AsyncLock(aconn, "cancel-owned", id="shared")
    await holder.acquire()
    gated = Gated(aconn, ACQUIRE.sha1)
    task = asyncio.create_task(
        redis_lock.AsyncLock(gated, "cancel-owned", id="shared", strict=False).acquire()
    )
    await asyncio.wait_for(gated.ran.wait(), 5)
    task.cancel()
    gated.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert plain.get("lock:cancel-owned") == b"shared"
    await holder.release()


async def test_cancel_during_release_leaves_redis_and_the_instance_agreeing(
    aconn: Any, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A release cancelled while its script is in flight completes: key gone, renewal stopped, nothing lost, reusable."""
    gated = Gated(aconn, UNLOCK.sha1)
    lock = redis_lock.AsyncLock(gated, "cancel-release", expire=0.3, auto_renewal=True, strict=False)
    with caplog.at_level(logging.WARNING, logger="redis_lock"):
        await lock.acquire()
        renewal = lock._lock_renewal_task
        assert renewal is not None
        task = asyncio.create_task(lock.release())
        await asyncio.wait_for(gated.ran.wait(), 5)
        task.cancel()
        await asyncio.sleep(0.5)  # the behaviour under test: nothing renews (and fails) meanwhile
        gated.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert plain.exists("lock:cancel-release") == 0
    assert renewal.done()
    assert not lock.lost
    assert caplog.records == []
    assert not await lock.owned()
    with pytest.raises(redis_lock.NotAcquired) as raised:
        await lock.release()  # Redis and the instance agree: nothing is held
    assert not isinstance(raised.value, redis_lock.LockLost)
    assert await lock.acquire()
    await lock.release()


# -- the with statement and errors --------------------------------------------------------


async def test_cancelled_body_releases_the_lock(aconn: Any, plain: redis.Redis) -> None:
    """A task cancelled inside the async with body releases the lock and re-raises CancelledError."""
    entered = asyncio.Event()

    async def body() -> None:
        async with redis_lock.AsyncLock(aconn, "cancel-body"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await asyncio.wait_for(entered.wait(), 5)
    assert plain.exists("lock:cancel-body") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert plain.exists("lock:cancel-body") == 0


# -- clients ---------------------------------------------------------------------------------


async def test_sync_client_is_rejected(plain: redis.Redis) -> None:
    """A synchronous client is rejected with a TypeError pointing to Lock, even with strict=False."""
    with pytest.raises(
        TypeError, match=r"redis_client is a synchronous client \(Redis\); use redis_lock.Lock"
    ):
        redis_lock.AsyncLock(plain, "sync", strict=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"redis_lock\.Lock"):
        await redis_lock.async_reset_all(plain)  # type: ignore[arg-type]


async def test_constructor_validates_like_lock(aconn: Any) -> None:
    """The constructor rejects what Lock rejects, with the same exception types and messages."""
    cases: list[dict[str, Any]] = [
        {"name": ""},
        {"expire": -1},
        {"auto_renewal": True},
        {"timeout": 1, "blocking": False},
        {"timeout": 5, "expire": 1},
        {"id": 5},
        {"signal_expire": 0},
    ]
    for kwargs in cases:
        arguments = {"name": "validate", **kwargs}
        with pytest.raises(redis_lock.RedisLockError) as sync_error:
            redis_lock.Lock(redis.Redis(), **arguments)
        with pytest.raises(redis_lock.RedisLockError) as async_error:
            redis_lock.AsyncLock(aconn, **arguments)
        assert type(async_error.value) is type(sync_error.value)
        assert str(async_error.value) == str(sync_error.value)
