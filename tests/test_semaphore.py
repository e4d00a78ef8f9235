"""Semaphore and AsyncSemaphore against a real Redis: permits, leases, waiting, limits, renewal, sharing.

The history checker over several processes is in ``test_semaphore_history.py``,
the bad-input table in ``test_semaphore_bad_input.py`` and the state machine in
``property/test_semaphore_machine.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster

import redis_lock
from redis_lock import LimitMismatch, _keys, _scripts, _semcore

from ._cluster import RedisClusterDeployment
from ._topology import async_wait_for, blocked_in, wait_for

LUA_DIR = Path(_scripts.__file__).parent / "lua"
#: A bound for things that take milliseconds on an idle machine.
SLACK = 3.0
WEEK_MS = 7 * 24 * 3600 * 1000


def evalsha_calls(plain: redis.Redis) -> int:
    """EVALSHA calls the server ran since the last CONFIG RESETSTAT."""
    stats: dict[str, Any] = plain.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def members(plain: redis.Redis, name: str) -> dict[bytes, float]:
    """The permits of semaphore ``name``: holder id -> expiry (server-time ms, inf without expiry)."""
    reply: Any = plain.zrange(f"sem:{name}", 0, -1, withscores=True)
    return {member: float(score) for member, score in reply}


class Workers:
    """Threads running ``work(index)``; ``join`` re-raises the first error."""

    def __init__(self, count: int, work: Callable[[int], None]) -> None:
        self.errors: list[BaseException] = []

        def run(index: int) -> None:
            try:
                work(index)
            except BaseException as exc:
                self.errors.append(exc)

        self.threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float = 60) -> None:
        for thread in self.threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a worker hung"
        if self.errors:
            raise self.errors[0]


# ---------------------------------------------------------------------------
# Permits, keys, queries.


def test_at_most_limit_holders_and_the_key_layout(conn: Any, plain: redis.Redis) -> None:
    """Two of three objects get a permit with limit 2; the keys hold the ids, the expiries and the limit."""
    a, b, c = (redis_lock.Semaphore(conn, "pool", 2, expire=30) for _ in range(3))
    assert a.acquire(blocking=False)
    assert b.acquire(blocking=False)
    assert not c.acquire(blocking=False)
    assert set(members(plain, "pool")) == {a.id.encode(), b.id.encode()}
    now_ms = plain.time()[0] * 1000
    for score in members(plain, "pool").values():
        assert now_ms + 25_000 < score <= now_ms + 31_000
    assert 25_000 < plain.pttl("sem:pool") <= 30_000
    assert plain.get("sem-limit:pool") == b"2"
    assert WEEK_MS - 10_000 < plain.pttl("sem-limit:pool") <= WEEK_MS
    assert sorted(c.holders()) == sorted([a.id, b.id])
    assert c.available() == 0
    assert a.owned()
    assert not c.owned()
    a.release()
    assert c.available() == 1
    assert not a.owned()
    assert plain.llen("sem-signal:pool") == 1
    assert 0 < plain.pttl("sem-signal:pool") <= 1000
    assert c.acquire(blocking=False)
    assert plain.llen("sem-signal:pool") == 0, "the grant that took the last permit drops the stale signal"
    b.release()
    c.release()
    assert not plain.exists("sem:pool"), "no permit left: no key"
    assert WEEK_MS - 10_000 < plain.pttl("sem-limit:pool") <= WEEK_MS
    with pytest.raises(redis_lock.NotAcquired, match="no permit"):
        c.release()
    assert repr(c) == "<redis_lock.Semaphore 'pool' limit=2>"
    assert (c.name, c.limit) == ("pool", 2)


def test_permits_without_expiry_keep_the_keys_until_released(plain: redis.Redis, conn: Any) -> None:
    """A permit without expiry is scored +inf: the keys have no TTL while it is held, and get one after."""
    forever = redis_lock.Semaphore(conn, "forever", 2)
    timed = redis_lock.Semaphore(conn, "forever", 2, expire=10)
    assert forever.acquire()
    assert timed.acquire()
    assert members(plain, "forever")[forever.id.encode()] == float("inf")
    assert plain.pttl("sem:forever") == -1
    assert plain.pttl("sem-limit:forever") == -1
    with pytest.raises(redis_lock.NotExpirable):
        forever.extend(5)
    with pytest.raises(redis_lock.InvalidArgumentType):
        forever.extend()
    forever.release()
    assert 0 < plain.pttl("sem:forever") <= 10_000
    assert plain.pttl("sem-limit:forever") > 10_000
    timed.release()
    assert not plain.exists("sem:forever")


def test_same_id_is_already_acquired_and_a_generated_id_retry_is_ours(conn: Any, plain: redis.Redis) -> None:
    """A chosen id held elsewhere gives AlreadyAcquired; the same thread acquiring twice does too."""
    a = redis_lock.Semaphore(conn, "ids", 3, id="worker-1", expire=30)
    b = redis_lock.Semaphore(conn, "ids", 3, id=b"worker-1", expire=30)
    assert a.acquire()
    with pytest.raises(redis_lock.AlreadyAcquired):
        b.acquire()
    with pytest.raises(redis_lock.AlreadyAcquired):
        a.acquire()
    assert b.owned()  # one permit, shared by the id
    assert len(members(plain, "ids")) == 1
    a.release()
    # A generated id's "owned" reply is this call's own earlier copy (a client retry): it takes the permit.
    mine = redis_lock.Semaphore(conn, "ids", 3, expire=30)
    plain.zadd("sem:ids", {mine.id: plain.time()[0] * 1000 + 5_000})
    assert mine.acquire(blocking=False)
    assert members(plain, "ids")[mine.id.encode()] > plain.time()[0] * 1000 + 20_000  # re-scored
    mine.release()


def test_context_manager_and_its_errors(conn: Any, plain: redis.Redis) -> None:
    """``with`` takes and gives back a permit; a busy semaphore raises NotAcquired or AcquireTimeout."""
    holder = redis_lock.Semaphore(conn, "ctx", 1, expire=30)
    with redis_lock.Semaphore(conn, "ctx", 1, expire=30) as inside:
        assert inside.owned()
        with pytest.raises(redis_lock.NotAcquired, match="busy") as raised:  # noqa: SIM117
            with redis_lock.Semaphore(conn, "ctx", 1, blocking=False):
                pass
        assert not isinstance(raised.value, redis_lock.AcquireTimeout)
        with pytest.raises(redis_lock.AcquireTimeout, match=r"within 0\.05"):  # noqa: SIM117
            with redis_lock.Semaphore(conn, "ctx", 1, timeout=0.05):
                pass
        with pytest.raises(redis_lock.AcquireTimeout, match="timeout=0"):  # noqa: SIM117
            with redis_lock.Semaphore(conn, "ctx", 1, timeout=0):
                pass
    assert not plain.exists("sem:ctx")
    with pytest.raises(ZeroDivisionError):  # noqa: SIM117
        with holder:
            holder.reset()  # the release at the end then fails; the body's error wins
            raise ZeroDivisionError
    assert holder.acquire()
    holder.release()


# ---------------------------------------------------------------------------
# The limit.


def test_a_different_limit_is_refused_and_set_limit_changes_it(conn: Any, plain: redis.Redis) -> None:
    """An object made with another limit gets LimitMismatch and changes nothing; set_limit stores a new one."""
    two = redis_lock.Semaphore(conn, "lim", 2, expire=30)
    assert two.acquire()
    three = redis_lock.Semaphore(conn, "lim", 3, expire=30)
    before = members(plain, "lim")
    with pytest.raises(LimitMismatch) as raised:
        three.acquire()
    assert (raised.value.limit, raised.value.stored, raised.value.name) == (3, 2, "lim")
    assert "limit=3" in str(raised.value)
    assert "stored limit is 2" in str(raised.value)
    with pytest.raises(LimitMismatch):
        three.available()
    assert members(plain, "lim") == before
    assert three.set_limit(3) == 2
    assert three.limit == 3
    assert plain.get("sem-limit:lim") == b"3"
    assert three.acquire(blocking=False)
    assert three.available() == 1
    with pytest.raises(LimitMismatch):
        redis_lock.Semaphore(conn, "lim", 2).acquire(blocking=False)
    # Lowering the limit keeps the holders; nobody new gets in until fewer are held.
    assert three.set_limit(1) == 3
    assert len(members(plain, "lim")) == 2
    one = redis_lock.Semaphore(conn, "lim", 1, expire=30)
    assert not one.acquire(blocking=False)
    assert one.available() == 0
    two.release()
    assert not one.acquire(blocking=False)
    three.release()
    assert one.acquire(blocking=False)
    one.release()
    assert redis_lock.Semaphore(conn, "fresh", 4).set_limit(5) is None


def test_set_limit_tells_every_waiter_with_the_old_limit_at_once(
    make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """Waiters blocked with the old limit raise LimitMismatch as soon as set_limit runs, not at their re-check."""
    holder = redis_lock.Semaphore(make_client(), "grow", 1, expire=60)
    assert holder.acquire()
    client = make_client(socket_timeout=None)  # a re-check every 10 s: only a wake-up ends the wait sooner
    errors: list[BaseException] = []

    def wait(index: int) -> None:
        try:
            redis_lock.Semaphore(client, "grow", 1, expire=60).acquire(timeout=30)
        except LimitMismatch as exc:
            errors.append(exc)

    workers = Workers(3, wait)
    wait_for(lambda: blocked_in(plain, "blpop") == 1, SLACK, "the waiters blocked")
    time.sleep(0.05)  # let every waiter reach its sleep (they share the one BLPOP)
    started = time.monotonic()
    assert holder.set_limit(4) == 1
    workers.join()
    assert time.monotonic() - started < SLACK
    assert [(e.limit, e.stored) for e in errors] == [(1, 4)] * 3  # type: ignore[attr-defined]
    newcomers = [redis_lock.Semaphore(client, "grow", 4, expire=60) for _ in range(3)]
    assert all(n.acquire(blocking=False) for n in newcomers)
    assert len(members(plain, "grow")) == 4


# ---------------------------------------------------------------------------
# Waiting: woken by a release, by two releases, by an expiry; never spinning.


def test_a_release_wakes_a_waiter_that_does_not_spin(
    make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """A waiter blocked for half a second runs the acquire script at most twice, and gets the released permit."""
    holders = [redis_lock.Semaphore(make_client(), "spin", 2, expire=60) for _ in range(2)]
    for holder in holders:
        assert holder.acquire()
    plain.config_resetstat()
    waiter = redis_lock.Semaphore(make_client(socket_timeout=None), "spin", 2, expire=60)
    got: list[float] = []

    def wait(index: int) -> None:
        assert waiter.acquire(timeout=30)
        got.append(time.monotonic())

    workers = Workers(1, wait)
    wait_for(lambda: blocked_in(plain, "blpop") == 1, SLACK, "the waiter blocked")
    time.sleep(0.5)
    assert evalsha_calls(plain) <= 2, "the waiter polled while every permit was held"
    released = time.monotonic()
    holders[0].release()
    workers.join()
    assert got[0] - released < 1.0
    assert waiter.owned()


def test_two_releases_wake_two_waiters(make_client: Callable[..., Any], plain: redis.Redis) -> None:
    """Two permits released at once wake two waiters, though the signal list holds one wake-up at most."""
    holders = [redis_lock.Semaphore(make_client(), "two", 2, expire=60) for _ in range(2)]
    for holder in holders:
        assert holder.acquire()
    client = make_client(socket_timeout=None)
    waiters = [redis_lock.Semaphore(client, "two", 2, expire=60) for _ in range(2)]
    times: list[float] = []

    def wait(index: int) -> None:
        assert waiters[index].acquire(timeout=30)
        times.append(time.monotonic())

    workers = Workers(2, wait)
    wait_for(lambda: blocked_in(plain, "blpop") == 1, SLACK, "the waiters blocked")
    time.sleep(0.05)
    released = time.monotonic()
    plain.script_load(_scripts.SEMAPHORE_RELEASE.source)
    pipe = plain.pipeline(transaction=False)  # both releases land before anyone pops
    for holder in holders:
        pipe.evalsha(
            _scripts.SEMAPHORE_RELEASE.sha1,
            3,
            "sem:two",
            "sem-signal:two",
            "sem-limit:two",
            holder.id,
            1000,
            1000,
        )
    assert pipe.execute() == [0, 0]
    workers.join()
    assert len(times) == 2
    assert max(times) - released < 2.0, "the second waiter slept until its re-check: a lost wake-up"
    assert sorted(waiters[0].holders()) == sorted(w.id for w in waiters)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_waiter_wakes_when_the_earliest_permit_expires(
    make_client: Callable[..., Any], redis_url: str, plain: redis.Redis, flavour: str
) -> None:
    """With nobody releasing, a waiter gets the permit when the earliest lease runs out, not at its timeout."""
    long = redis_lock.Semaphore(make_client(), "exp", 2, expire=60)
    short = redis_lock.Semaphore(make_client(), "exp", 2, expire=0.4)
    assert long.acquire()
    started = time.monotonic()
    assert short.acquire()
    plain.config_resetstat()
    if flavour == "sync":
        waiter = redis_lock.Semaphore(make_client(socket_timeout=None), "exp", 2, expire=5, auto_renewal=True)
        assert waiter.acquire(timeout=20)
        waiter.release()
    else:

        async def wait() -> None:
            client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=None)
            waiter = redis_lock.AsyncSemaphore(client, "exp", 2, expire=5, auto_renewal=True)
            assert await waiter.acquire(timeout=20)
            await waiter.release()
            await client.aclose()

        asyncio.run(wait())
    elapsed = time.monotonic() - started
    assert 0.35 < elapsed < 0.4 + 1.5
    assert evalsha_calls(plain) <= 6, "the waiter polled instead of sleeping until the expiry"


# ---------------------------------------------------------------------------
# Extend and auto-renewal.


def test_a_release_sent_twice_is_recognised_by_its_receipt(conn: Any, plain: redis.Redis) -> None:
    """The client may send the release script again after losing its reply: the copy answers "released"."""
    holders = [redis_lock.Semaphore(conn, "receipt", 2, expire=60) for _ in range(2)]
    for holder in holders:
        assert holder.acquire()
    keys = ("sem:receipt", "sem-signal:receipt", "sem-limit:receipt", "sem-released:receipt")

    def release(holder: redis_lock.Semaphore, nonce: str) -> object:
        args = (holder.id, "1000", "604800000", nonce, "72000")
        return _scripts.evalsha(plain, _scripts.SEMAPHORE_RELEASE, keys, args)

    assert release(holders[0], "first") == 0
    assert release(holders[1], "second") == 0, "another holder's release keeps the first receipt"
    assert release(holders[0], "first") == 2, "the copy of the first call: released by it"
    assert release(holders[0], "other") == 1, "another call of the same id: not held"
    assert 0 < plain.pttl("sem-released:receipt") <= 72_000
    assert holders[0].acquire()
    holders[0].release()  # the library's own release, with a fresh nonce
    with pytest.raises(redis_lock.NotAcquired):
        holders[0].release()


def test_extend_and_renewal_keep_the_stored_limit_beyond_every_permit(
    make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """A permit renewed past the limit's retention must not outlive the stored limit (and its check)."""
    client = make_client()
    held = redis_lock.Semaphore(client, "kept", 2, expire=60)
    assert held.acquire()
    plain.pexpire("sem-limit:kept", 1000)  # as if the retention were about to run out
    held.extend(120)
    assert plain.pttl("sem-limit:kept") > 120_000, "extend() keeps the limit at least as long as the permit"
    renewed = redis_lock.Semaphore(client, "kept", 2, expire=0.3, auto_renewal=True)
    assert renewed.acquire()
    plain.pexpire("sem-limit:kept", 1000)
    plain.pexpire("sem:kept", 1000)
    held.release()
    wait_for(lambda: plain.pttl("sem-limit:kept") > 10_000, SLACK, "the pipelined renewal to keep the limit")
    renewed.release()


def test_extend_never_resurrects_an_expired_permit(conn: Any, plain: redis.Redis) -> None:
    """An expired permit cannot be extended back (its place was given to another holder meanwhile)."""
    early = redis_lock.Semaphore(conn, "res", 1, expire=0.05)
    assert early.acquire()
    early.extend(0.1)
    wait_for(lambda: redis_lock.Semaphore(conn, "res", 1).available() == 1, SLACK, "the permit to expire")
    with pytest.raises(redis_lock.NotAcquired):
        early.extend(30)
    assert members(plain, "res") == {}
    late = redis_lock.Semaphore(conn, "res", 1, expire=30)
    assert late.acquire(blocking=False)
    with pytest.raises(redis_lock.NotAcquired):
        early.extend(30)
    assert list(members(plain, "res")) == [late.id.encode()]
    late.extend(2)
    assert 0 < plain.pttl("sem:res") <= 2000
    late.release()


def test_auto_renewal_keeps_the_permit_alongside_a_lock(
    make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """One client renews a semaphore permit and a lock together (pipelined by script): both outlive ``expire``."""
    client = make_client()
    semaphore = redis_lock.Semaphore(client, "renewed", 1, expire=0.3, auto_renewal=True)
    lock = redis_lock.Lock(client, "renewed-lock", expire=0.3, auto_renewal=True)
    assert semaphore.acquire()
    assert lock.acquire()
    time.sleep(1.0)
    assert semaphore.owned()
    assert not semaphore.lost
    assert lock.owned()
    assert not redis_lock.Semaphore(client, "renewed", 1).acquire(blocking=False)
    semaphore.release()
    lock.release()
    assert not plain.exists("sem:renewed")


def test_a_permit_reset_under_renewal_is_lost(make_client: Callable[..., Any], plain: redis.Redis) -> None:
    """Renewal notices a permit that is gone: ``lost`` turns True, on_lost runs once, release raises LockLost."""
    seen: list[object] = []
    called = threading.Event()

    def on_lost(semaphore: object) -> None:
        seen.append(semaphore)
        called.set()

    semaphore = redis_lock.Semaphore(make_client(), "gone", 2, expire=0.3, auto_renewal=True, on_lost=on_lost)
    assert semaphore.acquire()
    assert redis_lock.Semaphore(plain, "gone", 2).reset() == 1
    assert called.wait(SLACK)
    assert seen == [semaphore]
    wait_for(lambda: semaphore.lost, SLACK, "the loss")
    with pytest.raises(redis_lock.LockLost, match="lost"):
        semaphore.release()
    assert not semaphore.lost
    assert semaphore.acquire()  # reusable
    semaphore.release()


def test_max_hold_ends_renewal(make_client: Callable[..., Any]) -> None:
    """With max_hold, renewal stops and the permit expires when the hold reaches it."""
    semaphore = redis_lock.Semaphore(make_client(), "capped", 1, expire=0.5, auto_renewal=True, max_hold=1.0)
    assert semaphore.acquire()
    # Renewed for ever without the cap: the permit must be gone once max_hold (and a little) has passed.
    wait_for(lambda: not semaphore.owned(), 1.0 + SLACK, "the permit to expire")
    wait_for(lambda: semaphore.lost, SLACK, "the loss to be seen")


def test_a_renewal_subclass_is_renewed_through_its_extend(make_client: Callable[..., Any]) -> None:
    """A subclass overriding extend() is renewed one call at a time, through it."""
    calls: list[float | None] = []

    class Counting(redis_lock.Semaphore):
        def extend(self, expire: float | None = None) -> None:
            calls.append(expire)
            super().extend(expire)

    semaphore = Counting(make_client(), "sub", 1, expire=0.15, auto_renewal=True)
    assert semaphore.acquire()
    wait_for(lambda: len(calls) >= 2, SLACK, "two renewals")
    assert semaphore.owned()
    semaphore.release()
    assert set(calls) == {0.15}


# ---------------------------------------------------------------------------
# reset and reset_all.


def test_reset_and_reset_all_touch_only_semaphores(conn: Any, plain: redis.Redis) -> None:
    """reset drops one semaphore; reset_all_semaphores drops them all (locks stay); reset_all leaves them."""
    a = redis_lock.Semaphore(conn, "r1", 2, expire=30)
    b = redis_lock.Semaphore(conn, "r2{x}", 1)
    idle = redis_lock.Semaphore(conn, "idle", 3, expire=30)
    lock = redis_lock.Lock(conn, "r1", expire=30)
    plain.set("semantic", "unrelated")
    assert a.acquire()
    assert b.acquire()
    assert idle.acquire()
    idle.release()
    assert lock.acquire()
    assert redis_lock.reset_all(conn) == 1
    assert plain.exists("sem:r1", "sem:r2{x}") == 2
    assert lock.acquire()
    assert a.reset() == 1
    assert not plain.exists("sem:r1")
    assert not plain.exists("sem-limit:r1")
    assert plain.llen("sem-signal:r1") == 1
    assert a.acquire()
    assert redis_lock.reset_all_semaphores(conn) == 2
    assert plain.keys("sem:*") == []
    assert plain.keys("sem-limit:*") == []
    assert plain.llen("sem-signal:idle") == 1
    assert plain.get("semantic") == b"unrelated"
    assert lock.owned()
    with pytest.raises(redis_lock.NotAcquired):
        a.release()
    assert redis_lock.reset_all_semaphores(conn, 500) == 0


def test_reset_all_walks_many_pages(plain: redis.Redis) -> None:
    """More semaphores than one SCAN page are all reset."""
    count = 1200
    pipe = plain.pipeline(transaction=False)
    for index in range(count):
        pipe.zadd(f"sem:bulk-{index}", {"holder": "+inf"})
    pipe.execute()
    assert redis_lock.reset_all_semaphores(plain) == count
    assert plain.keys("sem:*") == []


# ---------------------------------------------------------------------------
# Threads and tasks sharing one object; a bounded pool.


def test_threads_sharing_one_object_take_turns(make_client: Callable[..., Any], plain: redis.Redis) -> None:
    """Eight threads share one Semaphore (one permit): they never hold it two at once, and a second permit stays free."""
    semaphore = redis_lock.Semaphore(make_client(), "shared", 2, expire=30)
    other = redis_lock.Semaphore(make_client(), "shared", 2, expire=30)
    inside = [0]
    counts: list[int] = []
    mutex = threading.Lock()

    def work(index: int) -> None:
        for _ in range(25):
            assert semaphore.acquire(timeout=20)
            with mutex:
                inside[0] += 1
                counts.append(inside[0])
            time.sleep(0)
            with mutex:
                inside[0] -= 1
            semaphore.release()

    workers = Workers(8, work)
    workers.join()
    assert max(counts) == 1
    assert len(counts) == 200
    assert other.acquire(blocking=False), "the shared object held two permits"
    other.release()
    assert not plain.exists("sem:shared")


def test_a_bounded_pool_serves_many_waiters(redis_url: str, plain: redis.Redis) -> None:
    """Forty threads with limit 3 on a pool of 6 connections all get a permit in turn, never more than 3 at once."""
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=6, timeout=30)
    client = redis.Redis(connection_pool=pool)
    inside = [0]
    peak = [0]
    mutex = threading.Lock()

    def work(index: int) -> None:
        semaphore = redis_lock.Semaphore(client, "pool", 3, expire=30)
        assert semaphore.acquire(timeout=30)
        with mutex:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.005)
        with mutex:
            inside[0] -= 1
        semaphore.release()

    try:
        Workers(40, work).join()
    finally:
        client.close()
    assert 1 <= peak[0] <= 3
    assert not plain.exists("sem:pool")


@pytest.mark.asyncio
async def test_tasks_sharing_one_object_take_turns(redis_url: str, plain: redis.Redis) -> None:
    """Tasks sharing one AsyncSemaphore hold its permit one at a time."""
    client = redis.asyncio.Redis.from_url(redis_url)
    semaphore = redis_lock.AsyncSemaphore(client, "tasks", 3, expire=30)
    inside = 0
    peak = 0

    async def work() -> None:
        nonlocal inside, peak
        for _ in range(10):
            assert await semaphore.acquire(timeout=20)
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0)
            inside -= 1
            await semaphore.release()

    await asyncio.gather(*(work() for _ in range(6)))
    assert peak == 1
    with pytest.raises(redis_lock.AlreadyAcquired):
        async with semaphore:
            await semaphore.acquire()
    assert not plain.exists("sem:tasks")
    await client.aclose()


@pytest.mark.asyncio
async def test_async_api(redis_url: str, plain: redis.Redis) -> None:
    """AsyncSemaphore does what Semaphore does, awaited."""
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    a = redis_lock.AsyncSemaphore(client, "async", 2, expire=30)
    b = redis_lock.AsyncSemaphore(client, "async", 2, expire=30)
    async with a:
        assert await b.acquire(blocking=False)
        assert await a.available() == 0
        assert sorted(await a.holders()) == sorted([a.id, b.id])
        assert await b.owned()
        await b.extend(5)
        assert not await redis_lock.AsyncSemaphore(client, "async", 2).acquire(timeout=0.05)
        with pytest.raises(LimitMismatch):
            await redis_lock.AsyncSemaphore(client, "async", 1).acquire()
        c = redis_lock.AsyncSemaphore(client, "async", 3)
        assert await c.set_limit(3) == 2
        async with c:
            assert await c.available() == 0
        assert await c.set_limit(2) == 3
        with pytest.raises(redis_lock.AcquireTimeout):
            async with redis_lock.AsyncSemaphore(client, "async", 2, timeout=0.01):
                pass
    await b.release()
    assert await b.reset() == 0
    assert await redis_lock.async_reset_all_semaphores(client) == 0
    renewed = redis_lock.AsyncSemaphore(client, "async", 1, expire=0.2, auto_renewal=True)
    assert await renewed.acquire()
    await asyncio.sleep(0.5)
    assert await renewed.owned()
    assert await redis_lock.AsyncSemaphore(client, "async", 1).reset() == 1
    await async_wait_for(lambda: renewed.lost, SLACK, "the loss")
    with pytest.raises(redis_lock.LockLost):
        await renewed.release()
    assert not plain.exists("sem:async")
    await client.aclose()


@pytest.mark.parametrize("when", ["waiting", "turns-0", "turns-1", "turns-3"])
@pytest.mark.asyncio
async def test_a_cancelled_waiting_acquire_leaks_nothing(
    redis_url: str, plain: redis.Redis, when: str
) -> None:
    """Cancelling acquire() (waiting, or with its script in flight) leaves no permit taken and loses none."""
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=None)
    holder = redis_lock.AsyncSemaphore(client, "cancel", 1, expire=30)
    assert await holder.acquire()
    waiter = redis_lock.AsyncSemaphore(client, "cancel", 1, expire=30)
    task = asyncio.ensure_future(waiter.acquire(timeout=20))
    if when == "waiting":
        await async_wait_for(lambda: blocked_in(plain, "blpop") == 1, SLACK, "the waiter blocked")
    else:
        # The holder's permit ends just now: the waiter's next script may take it as the cancellation lands.
        await holder.release()
        for _ in range(int(when.split("-")[1])):
            await asyncio.sleep(0)
    task.cancel()
    try:
        took = await task
    except asyncio.CancelledError:
        took = False  # cancelled: whatever its script took was given back before this
    if took:
        await waiter.release()  # it had finished before the cancellation
    assert waiter.id.encode() not in members(plain, "cancel")
    if when == "waiting":
        await holder.release()
    other = redis_lock.AsyncSemaphore(client, "cancel", 1, expire=30)
    assert await other.acquire(timeout=5), "a permit was lost"
    await other.release()
    await async_wait_for(lambda: blocked_in(plain, "blpop") == 0, SLACK, "the hub to stop blocking")
    assert not plain.exists("sem:cancel")
    assert waiter.lost is False
    assert await waiter.acquire(timeout=5), "the object stays usable after a cancellation"
    await waiter.release()
    await client.aclose()


# ---------------------------------------------------------------------------
# Redis Cluster.


@pytest.fixture
def cluster(cluster_deployment: RedisClusterDeployment) -> Iterator[redis.cluster.RedisCluster]:
    client: redis.cluster.RedisCluster = cluster_deployment.client(socket_timeout=None)
    client.flushall()
    yield client
    client.close()


def test_cluster_keys_share_a_slot_and_everything_works(cluster: redis.cluster.RedisCluster) -> None:
    """On a cluster the three keys carry the name's hash tag; acquire, wait, renew, query and reset_all work."""
    name = "cl{us}ter"
    permits, signal, limit = _keys.semaphore_keys(name, cluster=True)
    assert permits == "sem:{cl{us\\x7dter}"
    assert (
        cluster.cluster_keyslot(permits) == cluster.cluster_keyslot(signal) == cluster.cluster_keyslot(limit)
    )
    a = redis_lock.Semaphore(cluster, name, 2, expire=0.3, auto_renewal=True)
    b = redis_lock.Semaphore(cluster, name, 2, expire=30)
    assert a.acquire()
    assert b.acquire()
    assert cluster.zcard(permits) == 2
    assert cluster.get(limit) == b"2"
    got: list[bool] = []
    workers = Workers(1, lambda i: got.append(redis_lock.Semaphore(cluster, name, 2).acquire(timeout=20)))
    time.sleep(0.8)  # past two renewals (one call per permit on a cluster)
    assert got == []
    assert a.owned()
    b.release()
    workers.join()
    assert got == [True]
    stored: Any = cluster.zrange(permits, 0, -1)
    assert sorted(a.holders()) == sorted(member.decode() for member in stored)
    cluster.script_flush()  # EVAL on NOSCRIPT, on the key's node
    others = [f"other-{i}" for i in range(20)]
    for other in others:
        assert redis_lock.Semaphore(cluster, other, 1).acquire()
    assert redis_lock.reset_all_semaphores(cluster) == 21
    assert cluster.exists(permits) == 0
    assert not a.owned()


# ---------------------------------------------------------------------------
# Scripts and the public surface.


def test_semaphore_scripts_are_registered_and_documented(plain: redis.Redis) -> None:
    """Each semaphore_*.lua is in the registry with its SHA1, documents KEYS, ARGV and returns, and loads."""
    files = {path.stem: path.read_bytes() for path in LUA_DIR.glob("semaphore_*.lua")}
    assert set(files) == {script.name for script in _scripts.SEMAPHORE_SCRIPTS}
    for script in _scripts.SEMAPHORE_SCRIPTS:
        assert _scripts.SCRIPTS[script.name] is script
        assert script.source == files[script.name]
        assert script.sha1 == hashlib.sha1(files[script.name]).hexdigest() == plain.script_load(script.source)
        header = re.match(r"(?:--[^\n]*\n)+", script.source.decode())
        assert header is not None
        assert all(word in header.group(0) for word in ("KEYS", "ARGV", "Returns"))
        for match in re.finditer(r"redis\.p?call\(\s*'(\w+)'\s*,\s*([^,)]+)", script.source.decode()):
            assert re.fullmatch(r"KEYS\[[^\]]+\]", match.group(2).strip()), (script.name, match.group(0))


def test_a_call_after_script_flush_works(conn: Any, plain: redis.Redis) -> None:
    """Every operation loads its script again after SCRIPT FLUSH."""
    semaphore = redis_lock.Semaphore(conn, "flush", 1, expire=30)
    for operation in (
        semaphore.acquire,
        semaphore.extend,
        semaphore.owned,
        semaphore.holders,
        semaphore.available,
        semaphore.release,
        lambda: semaphore.set_limit(1),
        semaphore.reset,
        lambda: redis_lock.reset_all_semaphores(conn),
    ):
        plain.script_flush()
        operation()


def test_sync_and_async_are_twins() -> None:
    """Semaphore and AsyncSemaphore have the same public names and signatures; async's I/O methods are coroutines."""
    names = {n for n in dir(redis_lock.Semaphore) if not n.startswith("_")}
    assert names == {n for n in dir(redis_lock.AsyncSemaphore) if not n.startswith("_")}
    io = {"acquire", "release", "extend", "owned", "holders", "available", "set_limit", "reset"}
    assert names == io | {"id", "lost", "name", "limit"}
    for name in sorted(names | {"__init__"}):
        sync_member = getattr(redis_lock.Semaphore, name)
        async_member = getattr(redis_lock.AsyncSemaphore, name)
        if isinstance(inspect.getattr_static(redis_lock.Semaphore, name), property):
            continue
        sync_sig, async_sig = inspect.signature(sync_member), inspect.signature(async_member)
        assert [(p.name, p.default) for p in sync_sig.parameters.values()] == [
            (p.name, p.default) for p in async_sig.parameters.values()
        ]
        assert inspect.iscoroutinefunction(async_member) == (name in io)
    assert [p.name for p in inspect.signature(redis_lock.reset_all_semaphores).parameters.values()] == [
        p.name for p in inspect.signature(redis_lock.async_reset_all_semaphores).parameters.values()
    ]
    assert issubclass(LimitMismatch, redis_lock.RedisLockError)
    assert _semcore.LimitMismatch is LimitMismatch


def test_limit_mismatch_pickles() -> None:
    """LimitMismatch crosses process boundaries with its attributes."""
    import pickle

    error = pickle.loads(pickle.dumps(LimitMismatch("n", 3, 2)))
    assert (error.name, error.limit, error.stored) == ("n", 3, 2)


def test_unexpected_replies_and_unhashable_arguments() -> None:
    """Replies the scripts never send raise RedisLockError; an unhashable argument is still validated."""
    for reply in ("junk", [9, 0], [0, "x"], [True, 0]):
        with pytest.raises(redis_lock.RedisLockError, match="Unexpected reply"):
            _semcore.parse_acquire_reply(reply)
    with pytest.raises(redis_lock.RedisLockError, match="semaphore_query"):
        _semcore.parse_query_reply(None)
    with pytest.raises(redis_lock.RedisLockError, match="Unsupported code 7"):
        _semcore._check_release_reply(7, "n")
    with pytest.raises(redis_lock.RedisLockError, match="Unsupported code 7"):
        _semcore._check_extend_reply(7, "n")
    with pytest.raises(redis_lock.InvalidArgumentType, match="expire"):
        redis_lock.Semaphore(redis.Redis(), "n", 2, expire=[1])  # type: ignore[arg-type]
    assert _semcore.parse_query_reply([-1, 0, -2, b"a", "b"]).holders == ("a", "b")


def test_a_renewed_permit_lost_in_the_background_is_reported(make_client: Callable[..., Any]) -> None:
    """A renewed permit whose lease ran out unconfirmed reads as lost before renewal says so."""
    semaphore = redis_lock.Semaphore(make_client(), "bg", 1, expire=30, auto_renewal=True)
    assert semaphore.acquire()
    semaphore._lease.deadline = time.monotonic() - 1  # the last confirmed renewal's lease has ended
    assert semaphore.lost
    with pytest.raises(redis_lock.LockLost):
        semaphore.release()
