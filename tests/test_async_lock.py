"""Behaviour of redis_lock.AsyncLock against a real Redis, with every asyncio client flavour.

The mirror of ``test_lock.py``: where a test exists in both, it has the same name
and docstring. Tests named ``test_cancel*`` cover asyncio cancellation, which has
no sync counterpart.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio
import valkey.asyncio

import redis_lock
from redis_lock._scripts import ACQUIRE, EXTEND, UNLOCK

from ._topology import async_wait_for
from .conftest import CLIENT_KINDS, ClientKind, _kind_id

pytestmark = pytest.mark.asyncio

REFRESH_LOGGER = "redis_lock.refresh.thread"
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


def is_lost(lock: redis_lock.AsyncLock) -> bool:
    # A function, not the property, so that mypy does not narrow ``lock.lost`` across awaits.
    return lock.lost


def blocked_clients(client: redis.Redis) -> int:
    clients: int = client.info("clients")["blocked_clients"]
    return clients


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()
    }


class Gated:
    """A hand-written asyncio client, not a redis.asyncio.Redis, over a real one.

    Every command goes to the real client, but the reply of one script (by SHA1)
    is held back until ``gate`` is set; ``ran`` is set once that script has run in
    Redis. This puts a cancellation exactly between "the script ran" and "the
    caller saw its reply".
    """

    def __init__(self, inner: Any, sha: str) -> None:
        self.inner = inner
        self.sha = sha
        self.ran = asyncio.Event()
        self.gate = asyncio.Event()

    async def execute_command(self, *args: Any) -> object:
        reply: object = await self.inner.execute_command(*args)
        return reply

    async def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        reply: object = await self.inner.evalsha(sha, numkeys, *keys_and_args)
        if sha == self.sha:
            self.ran.set()
            await self.gate.wait()
        return reply

    async def script_load(self, script: bytes, /) -> object:
        reply: object = await self.inner.script_load(script)
        return reply

    async def get(self, name: str, /) -> object:
        reply: object = await self.inner.get(name)
        return reply

    async def exists(self, *names: str) -> object:
        reply: object = await self.inner.exists(*names)
        return reply

    async def blpop(self, keys: list[str], timeout: Any, /) -> object:
        reply: object = await self.inner.blpop(keys, timeout)
        return reply

    async def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> object:
        reply: object = await self.inner.scan(cursor=cursor, match=match, count=count)
        return reply

    async def __aenter__(self) -> Gated:
        return self


# -- acquire and release ---------------------------------------------------------


async def test_acquire_release(aconn: Any, plain: redis.Redis) -> None:
    """A free lock is acquired, stored under lock:<name> with the lock's id, and deleted on release."""
    lock = redis_lock.AsyncLock(aconn, "basic")
    assert await lock.acquire()
    assert plain.get("lock:basic") == lock.id.encode()
    assert await lock.locked()
    assert await lock.owned()
    assert await lock.get_owner_id() == lock.id
    await lock.release()
    assert plain.exists("lock:basic") == 0
    assert not await lock.locked()
    assert not await lock.owned()
    assert await lock.get_owner_id() is None


async def test_non_blocking_acquire_of_a_busy_lock_returns_false(
    aconn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-blocking acquire of a held lock returns False at once and logs the 4.x warning."""
    holder = redis_lock.AsyncLock(aconn, "busy")
    assert await holder.acquire()
    other = redis_lock.AsyncLock(aconn, "busy")
    with caplog.at_level(logging.WARNING, logger="redis_lock.acquire"):
        assert await other.acquire(blocking=False) is False
    assert (
        "redis_lock.acquire",
        logging.WARNING,
        "Failed to acquire Lock('lock:busy').",
    ) in caplog.record_tuples
    assert await holder.owned()
    assert not await other.owned()


async def test_owned_by_its_own_generated_id_means_this_call_took_it(aconn: Any, plain: redis.Redis) -> None:
    """As ``test_lock``'s twin: "owned" by this instance's generated id, not held by it, is its own write."""
    lock = redis_lock.AsyncLock(aconn, "retried-write", expire=30)
    plain.set("lock:retried-write", lock.id, px=30_000)
    assert await lock.acquire(blocking=False) is True
    assert await lock.owned()
    with pytest.raises(redis_lock.AlreadyAcquired):
        await lock.acquire(blocking=False)
    await lock.release()
    chosen = redis_lock.AsyncLock(aconn, "retried-write", id="chosen")
    plain.set("lock:retried-write", "chosen")
    with pytest.raises(redis_lock.AlreadyAcquired):
        await chosen.acquire(blocking=False)


async def test_acquire_twice_raises_already_acquired(aconn: Any) -> None:
    """Acquiring again with the same id, on the same or another instance, raises AlreadyAcquired."""
    lock = redis_lock.AsyncLock(aconn, "twice", id="me")
    assert await lock.acquire()
    with pytest.raises(redis_lock.AlreadyAcquired, match=r"Already acquired from this Lock instance\."):
        await lock.acquire()
    with pytest.raises(redis_lock.AlreadyAcquired):
        await redis_lock.AsyncLock(aconn, "twice", id="me").acquire(blocking=False)
    assert await lock.owned()


async def test_release_of_a_lock_not_held_raises_not_acquired(aconn: Any) -> None:
    """Releasing a free lock, or one another id holds, raises NotAcquired and changes nothing."""
    lock = redis_lock.AsyncLock(aconn, "foreign")
    with pytest.raises(
        redis_lock.NotAcquired, match=r"Lock\(lock:foreign\) is not acquired or it already expired."
    ):
        await lock.release()
    holder = redis_lock.AsyncLock(aconn, "foreign")
    await holder.acquire()
    with pytest.raises(redis_lock.NotAcquired):
        await lock.release()
    assert await holder.owned()


async def test_release_with_the_owner_id_from_another_instance(aconn: Any) -> None:
    """As documented since 4.x, a lock acquired in one place is released by a lock given the same id."""
    first = redis_lock.AsyncLock(aconn, "handover")
    await first.acquire()
    await redis_lock.AsyncLock(aconn, "handover", id=first.id).release()
    assert not await first.locked()


async def test_the_id_belongs_to_the_instance_not_the_task(aconn: Any) -> None:
    """A lock acquired in one task is owned, extended and released from another task."""
    lock = redis_lock.AsyncLock(aconn, "cross-task", expire=10)
    assert await asyncio.create_task(lock.acquire())
    assert await asyncio.create_task(lock.owned())
    await asyncio.create_task(lock.extend(20))
    await asyncio.create_task(lock.release())
    assert not await lock.locked()


@pytest.mark.parametrize(
    ("given", "stored"),
    [("host-1", "host-1"), (b"host-1", "host-1"), (b"\xff\xfe", "//4="), ("n\u00e9e", "n\u00e9e")],
    ids=["str", "ascii-bytes", "binary-bytes", "non-ascii-str"],
)
async def test_ids_as_str_or_bytes(aconn: Any, given: str | bytes, stored: str) -> None:
    """An id given as str is kept; bytes are decoded as ASCII or else base64-encoded, as in 4.x."""
    lock = redis_lock.AsyncLock(aconn, "ids", id=given)
    assert lock.id == stored
    assert await lock.acquire()
    assert await lock.get_owner_id() == stored
    assert await lock.owned()
    await lock.release()


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


# -- expiry and extend -------------------------------------------------------------


async def test_fixes_4x_millisecond_expiry(aconn: Any, plain: redis.Redis) -> None:
    """expire=0.25 sets a 250 ms TTL (4.x truncated it to 0, a server error) and the lock expires."""
    lock = redis_lock.AsyncLock(aconn, "ms", expire=0.25)
    assert await lock.acquire()
    assert 0 < plain.pttl("lock:ms") <= 250
    await async_wait_for(lambda: plain.exists("lock:ms") == 0, timeout=3, what="the lock to expire")


async def test_extend_resets_the_ttl(aconn: Any, plain: redis.Redis) -> None:
    """extend() sets the TTL to the given seconds, or to the constructor's expire by default."""
    lock = redis_lock.AsyncLock(aconn, "extend", expire=10)
    await lock.acquire()
    await lock.extend(100)
    assert 99_000 < plain.pttl("lock:extend") <= 100_000
    await lock.extend()
    assert 9_000 < plain.pttl("lock:extend") <= 10_000
    await lock.extend(0.5)
    assert 0 < plain.pttl("lock:extend") <= 500


async def test_extend_errors(aconn: Any) -> None:
    """extend() raises NotAcquired for a lock it does not hold, NotExpirable for a key without TTL."""
    lock = redis_lock.AsyncLock(aconn, "extend-errors")
    with pytest.raises(TypeError, match="To extend a lock 'expire' must be provided"):
        await lock.extend()
    with pytest.raises(redis_lock.NotAcquired, match="Lock lock:extend-errors is not acquired"):
        await lock.extend(10)
    await lock.acquire()
    with pytest.raises(
        redis_lock.NotExpirable, match="Lock lock:extend-errors has no assigned expiration time"
    ):
        await lock.extend(10)


# -- waiting -----------------------------------------------------------------------


async def test_waiter_wakes_on_release(
    akind: ClientKind, amake: AsyncMakeClient, aconn: Any, plain: redis.Redis
) -> None:
    """A blocked waiter is woken by the release signal within a fraction of a second."""
    holder = redis_lock.AsyncLock(aconn, "handoff")
    await holder.acquire()
    # No socket timeout: a waiter that missed the signal would sleep ~10 s.
    waiter = redis_lock.AsyncLock(amake(*akind, socket_timeout=None), "handoff")
    task = asyncio.create_task(waiter.acquire())
    await async_wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block in BLPOP")
    released = time.monotonic()
    await holder.release()
    assert await asyncio.wait_for(task, 10) is True
    assert time.monotonic() - released < 0.5
    assert await waiter.owned()


async def test_fixes_4x_waiter_wakes_when_the_holder_expires(
    akind: ClientKind, amake: AsyncMakeClient, aconn: Any
) -> None:
    """A waiter wakes when the holder's key expires, not at the end of its own timeout (4.x waited it out)."""
    holder = redis_lock.AsyncLock(aconn, "expiry", expire=0.3)
    await holder.acquire()
    started = time.monotonic()
    waiter = redis_lock.AsyncLock(amake(*akind, socket_timeout=None), "expiry")
    assert await waiter.acquire(timeout=10)
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_fixes_4x_sub_second_timeout(aconn: Any) -> None:
    """acquire(timeout=0.3) on a busy lock returns False after about 0.3 s (4.x waited forever)."""
    await redis_lock.AsyncLock(aconn, "subsecond").acquire()
    started = time.monotonic()
    assert await redis_lock.AsyncLock(aconn, "subsecond").acquire(timeout=0.3) is False
    assert 0.25 <= time.monotonic() - started < 1.5


@pytest.mark.parametrize("kind", ["redis", "valkey"])
async def test_fixes_4x_wait_survives_the_socket_timeout(
    kind: str, amake: AsyncMakeClient, plain: redis.Redis
) -> None:
    """A 3 s wait through a client with socket_timeout=1 returns False, raising no TimeoutError."""
    holder = redis_lock.AsyncLock(amake(kind), "socket")
    await holder.acquire()
    client = amake(kind, socket_timeout=1)
    plain.config_resetstat()
    started = time.monotonic()
    assert await redis_lock.AsyncLock(client, "socket").acquire(timeout=3) is False
    assert 2.9 <= time.monotonic() - started < 6
    # The wait was split into BLPOPs below the socket timeout, not a poll.
    assert 4 <= commandstats(plain)["blpop"] <= 12


async def test_constructor_timeout_applies_to_the_with_statement(aconn: Any) -> None:
    """AsyncLock(timeout=...) bounds the async with statement's wait and raises AcquireTimeout (a NotAcquired)."""
    await redis_lock.AsyncLock(aconn, "with-timeout").acquire()
    started = time.monotonic()
    with pytest.raises(redis_lock.AcquireTimeout):
        async with redis_lock.AsyncLock(aconn, "with-timeout", timeout=0.2):
            pytest.fail("the body must not run")
    assert 0.19 <= time.monotonic() - started < 1.5


async def test_with_statement_non_blocking(aconn: Any) -> None:
    """With blocking=False the async with statement raises NotAcquired at once on a busy lock."""
    await redis_lock.AsyncLock(aconn, "with-nb").acquire()
    with pytest.raises(redis_lock.NotAcquired) as raised:
        async with redis_lock.AsyncLock(aconn, "with-nb", blocking=False):
            pytest.fail("the body must not run")
    assert not isinstance(raised.value, redis_lock.AcquireTimeout)


async def test_with_statement_acquires_and_releases(aconn: Any) -> None:
    """The async with statement holds the lock in its body and releases it after."""
    lock = redis_lock.AsyncLock(aconn, "with")
    async with lock as entered:
        assert entered is lock
        assert await lock.owned()
    assert not await lock.locked()


async def test_fixes_4x_uncontended_acquire_is_one_round_trip(aconn: Any, plain: redis.Redis) -> None:
    """A free lock is taken with one EVALSHA and released with one (4.x sent GET, then SET)."""
    lock = redis_lock.AsyncLock(aconn, "one-rt")
    await lock.acquire()  # loads the script on first use
    await lock.release()
    plain.config_resetstat()
    await lock.acquire()
    stats = commandstats(plain)
    assert stats["evalsha"] == 1
    assert not {"get", "exists", "blpop", "script|load"} & set(stats)
    await lock.release()
    assert commandstats(plain)["evalsha"] == 2


# -- many tasks ---------------------------------------------------------------------


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
    assert max(gaps) < 0.5
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


# -- reset ---------------------------------------------------------------------------


async def test_reset_deletes_any_holder_and_wakes_a_waiter(
    akind: ClientKind, amake: AsyncMakeClient, aconn: Any, plain: redis.Redis
) -> None:
    """reset() deletes the lock whoever holds it, and a blocked waiter then gets it."""
    holder = redis_lock.AsyncLock(aconn, "reset")
    await holder.acquire()
    waiter = redis_lock.AsyncLock(amake(*akind, socket_timeout=None), "reset")
    task = asyncio.create_task(waiter.acquire())
    await async_wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    reset_at = time.monotonic()
    await redis_lock.AsyncLock(aconn, "reset").reset()
    assert await asyncio.wait_for(task, 10) is True
    assert time.monotonic() - reset_at < 0.5
    assert await waiter.owned()


async def test_fixes_4x_reset_all_uses_scan(aconn: Any, plain: redis.Redis) -> None:
    """async_reset_all deletes every lock over several SCAN pages, never calls KEYS, and spares other keys."""
    locks = [redis_lock.AsyncLock(aconn, f"many-{n}", expire=100 if n % 2 else None) for n in range(1200)]
    for lock in locks:
        await lock.acquire()
    plain.set("unrelated", "x")
    plain.config_resetstat()
    assert await redis_lock.async_reset_all(aconn) == 1200
    stats = commandstats(plain)
    assert "keys" not in stats
    assert stats["scan"] >= 2
    assert plain.keys("lock:*") == []
    assert plain.get("unrelated") == b"x"
    assert len(plain.keys("lock-signal:*")) == 1200


async def test_reset_all_wakes_waiters(aconn: Any, plain: redis.Redis) -> None:
    """A waiter blocked on a lock acquires it after async_reset_all."""
    await redis_lock.AsyncLock(aconn, "reset-all-wait").acquire()
    task = asyncio.create_task(redis_lock.AsyncLock(aconn, "reset-all-wait").acquire())
    await async_wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    assert await redis_lock.async_reset_all(aconn, signal_expire=500) == 1
    assert await asyncio.wait_for(task, 10) is True


# -- auto-renewal ----------------------------------------------------------------------


async def test_auto_renewal_keeps_the_lock(aconn: Any, plain: redis.Redis) -> None:
    """With auto_renewal the lock outlives several expiries, and release stops the task."""
    lock = redis_lock.AsyncLock(aconn, "renew", expire=0.3, auto_renewal=True)
    await lock.acquire()
    task = lock._lock_renewal_task
    assert task is not None
    await asyncio.sleep(0.8)  # the behaviour under test: the key survives 2.5 expiries
    assert await lock.owned()
    assert 0 < plain.pttl("lock:renew") <= 300
    await lock.release()
    assert task.done()
    assert plain.exists("lock:renew") == 0
    assert not lock.lost


async def test_auto_renewal_interval_subclass_hook(aconn: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The 4.x hook works: a subclass setting _lock_renewal_interval after __init__ renews at that pace."""

    class FastLock(redis_lock.AsyncLock):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._lock_renewal_interval = 0.05

    lock = FastLock(aconn, "hook", expire=30, auto_renewal=True)
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        await lock.acquire()
        await async_wait_for(
            lambda: sum(r.getMessage() == "Refreshing Lock('lock:hook')." for r in caplog.records) >= 5,
            timeout=5,
            what="five renewals",
        )
        await lock.release()


async def test_auto_renewal_stops_when_the_lock_is_collected(
    aconn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal task whose lock was garbage-collected ends at once, leaving nothing running on the loop."""
    lock = redis_lock.AsyncLock(aconn, "collected", expire=60, auto_renewal=True)
    await lock.acquire()
    task = lock._lock_renewal_task
    assert task is not None
    await asyncio.sleep(0)  # one loop turn, so the renewal task has started and waits its interval
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        del lock
        gc.collect()
        await asyncio.wait((task,), timeout=5)
    assert task.done()  # its interval is 40 s: only the collection can have ended it
    assert (
        REFRESH_LOGGER,
        logging.DEBUG,
        "Exiting renewal thread for Lock('lock:collected').",
    ) in caplog.record_tuples


async def test_fixes_4x_renewal_failure_is_surfaced(
    aconn: Any, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """When another client takes the key, renewal marks the lock lost, logs at ERROR, release raises LockLost.

    The instance stays reusable (4.x: the thread died silently and the next acquire raised AlreadyStarted).
    """
    lock = redis_lock.AsyncLock(aconn, "lost", expire=0.3, auto_renewal=True)
    with caplog.at_level(logging.ERROR, logger=REFRESH_LOGGER):
        await lock.acquire()
        task = lock._lock_renewal_task
        assert task is not None
        plain.set("lock:lost", "somebody-else")
        await asyncio.wait((task,), timeout=5)
    assert is_lost(lock)
    assert task.done()
    errors = [r for r in caplog.records if r.name == REFRESH_LOGGER and r.levelno == logging.ERROR]
    assert [e.getMessage() for e in errors] == [
        "Lost Lock('lock:lost'): another client holds it, or it expired or was reset."
    ]
    with pytest.raises(redis_lock.LockLost) as raised:
        await lock.release()
    assert isinstance(raised.value.__cause__, redis_lock.NotAcquired)
    assert plain.get("lock:lost") == b"somebody-else"
    assert not lock.lost
    plain.delete("lock:lost")
    assert await lock.acquire()
    assert await lock.owned()
    await lock.release()


class FailingExtend(Gated):
    """A client whose extend script always fails with a connection error, as during an outage."""

    async def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        if sha == self.sha:
            raise redis.ConnectionError("simulated outage")
        return await super().evalsha(sha, numkeys, *keys_and_args)


async def test_renewal_retries_connection_errors_until_the_lease_runs_out(
    aconn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """With renewal failing, it retries (WARNING), marks the lock lost once the lease ends (ERROR), release raises LockLost."""
    lock = redis_lock.AsyncLock(
        FailingExtend(aconn, EXTEND.sha1), "outage", expire=0.3, auto_renewal=True, strict=False
    )
    with caplog.at_level(logging.WARNING, logger=REFRESH_LOGGER):
        started = time.monotonic()
        await lock.acquire()
        task = lock._lock_renewal_task
        assert task is not None
        await asyncio.wait((task,), timeout=5)
        lost_after = time.monotonic() - started
    assert is_lost(lock)
    levels = [r.levelno for r in caplog.records if r.name == REFRESH_LOGGER]
    assert levels.count(logging.WARNING) >= 2
    assert levels[-1] == logging.ERROR
    assert "renewal kept failing until its lease ran out" in caplog.records[-1].getMessage()
    assert 0.25 <= lost_after < 2
    with pytest.raises(redis_lock.LockLost):
        await lock.release()
    assert await lock.acquire()
    await lock.release()


# -- the with statement and errors --------------------------------------------------------


async def test_fixes_4x_release_error_does_not_hide_the_body_exception(
    aconn: Any, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """If the body raises and the release fails too, the body's exception propagates; the other is logged."""
    with caplog.at_level(logging.WARNING, logger="redis_lock.release"), pytest.raises(KeyError) as raised:
        async with redis_lock.AsyncLock(aconn, "body"):
            plain.delete("lock:body")
            raise KeyError("from the body")
    assert raised.value.args == ("from the body",)
    assert any("Releasing Lock('lock:body') failed" in r.getMessage() for r in caplog.records)
    if sys.version_info >= (3, 11):
        assert any("NotAcquired" in note for note in raised.value.__notes__)


async def test_release_error_without_body_exception_propagates(aconn: Any, plain: redis.Redis) -> None:
    """If the body succeeds but the lock was lost, leaving the async with statement raises NotAcquired."""
    with pytest.raises(redis_lock.NotAcquired):
        async with redis_lock.AsyncLock(aconn, "body-ok"):
            plain.delete("lock:body-ok")


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


async def test_strict_rejects_other_clients_and_strict_false_accepts_them(aconn: Any) -> None:
    """strict=True rejects a non-Redis client with 4.x's ValueError; strict=False lets it work."""
    client = Gated(aconn, "no-such-sha")
    with pytest.raises(
        ValueError, match=r"redis_client must be a redis\.asyncio\.Redis or valkey\.asyncio\.Valkey"
    ) as raised:
        redis_lock.AsyncLock(client, "strict")
    assert "Gated" in str(raised.value)
    lock = redis_lock.AsyncLock(client, "strict", strict=False)
    assert await lock.acquire()
    assert await lock.owned()
    await lock.release()
    assert await redis_lock.async_reset_all(client) == 0


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


async def test_constructor_does_no_io(aconn: Any, plain: redis.Redis) -> None:
    """Constructing an AsyncLock sends nothing to Redis."""
    plain.config_resetstat()
    redis_lock.AsyncLock(aconn, "no-io", expire=5, auto_renewal=True, timeout=1)
    assert set(commandstats(plain)) <= {"config|resetstat", "info"}


# -- logging ------------------------------------------------------------------------------------


async def test_log_messages_match_4x_and_never_carry_the_id(
    aconn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Acquire, renewal and release log 4.x's messages on 4.x's loggers, and no record contains the id."""
    lock = redis_lock.AsyncLock(aconn, "logs", id="secret-id-123", expire=30, auto_renewal=True)
    with caplog.at_level(logging.DEBUG, logger="redis_lock"):
        await lock.acquire()
        await lock.release()
    assert caplog.record_tuples == [
        ("redis_lock.acquire", logging.DEBUG, "Acquiring Lock('lock:logs') ..."),
        ("redis_lock.acquire", logging.INFO, "Acquired Lock('lock:logs')."),
        (
            "redis_lock.refresh.start",
            logging.DEBUG,
            "Starting renewal thread for Lock('lock:logs'). Refresh interval: 20.0 seconds.",
        ),
        (
            "redis_lock.refresh.shutdown",
            logging.DEBUG,
            "Signaling renewal thread for Lock('lock:logs') to exit.",
        ),
        ("redis_lock.refresh.thread", logging.DEBUG, "Exiting renewal thread for Lock('lock:logs')."),
        ("redis_lock.refresh.exit", logging.DEBUG, "Renewal thread for Lock('lock:logs') exited."),
        ("redis_lock.release", logging.DEBUG, "Releasing Lock('lock:logs')."),
    ]
    assert all("secret-id-123" not in r.getMessage() for r in caplog.records)
