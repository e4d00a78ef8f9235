"""Fault injection on a real server of the test's own: crashes, restarts, lost scripts and connections, pauses.

Each test breaks the server or the network the way production does (SIGKILL, an AOF
restart, SCRIPT FLUSH, CLIENT KILL, CLIENT PAUSE) and checks that the lock either
keeps its promise or reports that it could not, within a bounded time, never by
hanging or by silently claiming a lock it no longer has. Every test runs on a Redis
and on a Valkey server (``server_family``, see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

import redis_lock
from redis_lock import _core

from ._server import SERVER_FAMILIES, RedisServer
from ._topology import blocked_in, wait_for

#: Generous bound for anything that should take well under a second on an idle machine.
SLACK = 3.0

pytestmark = pytest.mark.parametrize("server_family", SERVER_FAMILIES)


@pytest.fixture
def clients(own_server: RedisServer) -> Iterator[Callable[..., redis.Redis]]:
    """A factory of redis-py clients to ``own_server``, closed after the test."""
    made: list[redis.Redis] = []

    def make(**kwargs: Any) -> redis.Redis:
        client: redis.Redis = redis.Redis.from_url(own_server.url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_server_crash_fails_blocked_waiters(
    own_server: RedisServer, clients: Callable[..., redis.Redis]
) -> None:
    """Waiters blocked in acquire when the server is SIGKILLed get a ConnectionError within seconds, not a hang."""
    admin = clients()
    holder = redis_lock.Lock(clients(), "crash")
    assert holder.acquire()
    results: dict[int, BaseException | bool] = {}

    def wait(index: int) -> None:
        client = clients(socket_timeout=None, retry=Retry(NoBackoff(), 2))
        try:
            results[index] = redis_lock.Lock(client, "crash").acquire()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=wait, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: blocked_in(admin, "blpop") == 3, what="three waiters blocked in BLPOP")
    killed_at = time.monotonic()
    own_server.kill()
    deadline = killed_at + 15
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "a waiter still hangs 15 s after the server died"
    assert sorted(results) == [0, 1, 2]
    for outcome in results.values():
        assert isinstance(outcome, redis.ConnectionError), outcome


@pytest.mark.parametrize("crash", [True, False], ids=["sigkill", "sigterm"])
def test_held_lock_survives_aof_restart(crash: bool, server_family: str) -> None:
    """With appendonly and fsync always, a held lock comes back after a restart with its id and TTL."""
    with RedisServer(appendonly=True, family=server_family) as server:
        client = redis.Redis.from_url(server.url)
        try:
            expiring = redis_lock.Lock(client, "aof-expiring", expire=30)
            forever = redis_lock.Lock(client, "aof-forever")
            assert expiring.acquire()
            assert forever.acquire()
            if crash:
                server.kill()
            else:
                server.stop()
            server.start()
            after = redis.Redis.from_url(server.url)
            try:
                assert after.get("lock:aof-expiring") == expiring.id.encode()
                assert 20_000 < after.pttl("lock:aof-expiring") <= 30_000
                assert after.get("lock:aof-forever") == forever.id.encode()
                assert after.pttl("lock:aof-forever") == -1
                # The old handles (whose client reconnects) still own and release them.
                assert expiring.owned()
                assert not redis_lock.Lock(after, "aof-expiring").acquire(blocking=False)
                expiring.release()
                forever.release()
                assert after.keys("lock:*") == []
            finally:
                after.close()
        finally:
            client.close()


def test_script_flush_mid_run(clients: Callable[..., redis.Redis]) -> None:
    """Acquire, extend and release keep working when the script cache is flushed between any two of them."""
    admin = clients()
    client = clients()
    lock = redis_lock.Lock(client, "flushed", expire=10)
    other = redis_lock.Lock(client, "flushed", expire=10)
    admin.config_resetstat()
    for turn in range(60):
        steps: list[Callable[[], object]] = [
            lambda: lock.acquire(blocking=False),
            lambda: other.acquire(blocking=False),
            lambda: lock.extend(5),
            lock.release,
            lambda: other.acquire(timeout=1),
            lambda: redis_lock.reset_all(client),
        ]
        results = []
        for index, step in enumerate(steps):
            if (turn >> (index % 3)) & 1:  # flush before a different subset of steps each turn
                admin.script_flush()
            results.append(step())
        assert results == [True, False, None, None, True, 1]
    stats = admin.info("commandstats")
    # Every script was reloaded many times: the NOSCRIPT path really ran.
    assert stats["cmdstat_script|load"]["calls"] >= 60
    assert admin.keys("lock:*") == []


def test_renewal_survives_killed_connection(
    own_server: RedisServer, clients: Callable[..., redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    """When the renewing connection is killed mid-command, renewal retries on a new one and the lock stays owned."""
    admin = clients()
    # No client-side retries: the killed command's error reaches the lock's own retry loop.
    client = clients(client_name="renewer", retry=Retry(NoBackoff(), 0))
    lock = redis_lock.Lock(client, "renewed", expire=1.5, auto_renewal=True)
    caplog.set_level(logging.WARNING, logger="redis_lock.refresh.thread")
    assert lock.acquire()
    try:
        # Hold writes so the renewal's EVALSHA is caught in flight, then kill its connection.
        admin.client_pause(3000, all=False)
        try:
            wait_for(lambda: blocked_in(admin, "evalsha", "renewer") == 1, what="the renewal in flight")
            victims = [c["id"] for c in admin.client_list() if c["name"] == "renewer"]
            for client_id in victims:
                admin.client_kill_filter(_id=client_id)
        finally:
            admin.client_unpause()
        wait_for(
            lambda: any("Renewing Lock" in r.getMessage() for r in caplog.records),
            what="the renewal failure to be logged",
        )
        # Survive two more renewal intervals (each 1 s) past the kill.
        renewed_at = time.monotonic()
        wait_for(lambda: time.monotonic() - renewed_at > 2.2 or lock.lost, timeout=5)
        assert not lock.lost
        assert lock.owned()
        assert 0 < admin.pttl("lock:renewed") <= 1500
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        lock.release()
    assert not admin.exists("lock:renewed")


def test_pause_longer_than_expiry_loses_the_lock(
    clients: Callable[..., redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    """A server pause longer than the lease makes renewal report the lock lost, not keep it silently."""
    admin = clients()
    lock = redis_lock.Lock(clients(), "paused", expire=0.5, auto_renewal=True)
    caplog.set_level(logging.DEBUG, logger="redis_lock")
    assert lock.acquire()
    admin.client_pause(1500, all=True)
    wait_for(lambda: lock.lost, timeout=10, what="the lock to be reported lost")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.name for r in errors] == ["redis_lock.refresh.thread"]
    assert "Lost Lock" in errors[0].getMessage()
    assert lock.id not in caplog.text  # ids are never logged
    with pytest.raises(redis_lock.LockLost):
        lock.release()
    # The lock really is free: someone else gets it at once.
    assert redis_lock.Lock(admin, "paused").acquire(blocking=False)


class GatedRedis(redis.Redis):
    """A real redis-py client whose BLPOP first waits for a gate: the waiters' hub is 'paused' before blocking."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def blpop(self, keys: Any, timeout: Any = 0) -> Any:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return super().blpop(keys, timeout)


@pytest.mark.parametrize(
    ("socket_timeout", "holder_expire"),
    [(1.0, None), (None, 1.0)],
    ids=["bounded-by-wait-chunk", "bounded-by-holder-ttl"],
)
def test_waiter_paused_past_signal_expiry_still_acquires(
    own_server: RedisServer,
    clients: Callable[..., redis.Redis],
    socket_timeout: float | None,
    holder_expire: float | None,
) -> None:
    """A waiter that misses the release signal (it expired before its BLPOP) still acquires within the design's bound."""
    admin = clients()
    holder = redis_lock.Lock(clients(), "window", expire=holder_expire, signal_expire=10)
    assert holder.acquire()
    waiter_client = GatedRedis(unix_socket_path=own_server.unix_path, socket_timeout=socket_timeout)
    try:
        waiter = redis_lock.Lock(waiter_client, "window")
        result: list[float | BaseException] = []

        def wait() -> None:
            try:
                assert waiter.acquire(timeout=30)
                result.append(time.monotonic())
            except BaseException as exc:
                result.append(exc)

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        assert waiter_client.entered.wait(10)  # failed its attempt; its hub is about to BLPOP
        holder_pttl = admin.pttl("lock:window")
        planned_at = time.monotonic()
        holder.release()
        wait_for(lambda: not admin.exists("lock-signal:window"), what="the wake-up signal to expire")
        waiter_client.gate.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert len(result) == 1
        acquired_at = result[0]
        assert isinstance(acquired_at, float), acquired_at
        # The waiter planned its wait before the release: bounded by the socket-safe chunk,
        # or by the holder's TTL when that is shorter; it sleeps on a local timer.
        bound = _core.plan_wait(0.0, None, holder_pttl, _core.wait_chunk(socket_timeout)).until
        assert bound < 2.0  # the test's premise: the design bound is short here
        assert acquired_at - planned_at <= bound + SLACK
        assert waiter.owned()
        waiter.release()
    finally:
        waiter_client.close()


#: A script that keeps the server busy (no other client is served) for ARGV[1] milliseconds.
#: Since Redis 7.2, and so in Valkey, TIME inside a script returns the time the script started
#: (redis/redis#10300), so a loop on TIME would only end once the server starts answering BUSY
#: (busy-reply-threshold, 5 s) and refreshes its clock. Where ``os.clock`` exists (Valkey 9.1 has
#: it) the loop counts the server's CPU time instead, which a busy loop spends at the wall clock's
#: pace or slower. Redis 7.0 has no ``os`` (reading it raises, hence pcall) but a live TIME.
STALL_SCRIPT = """
local ms = tonumber(ARGV[1])
local has_clock, clock = pcall(function() return os.clock end)
if has_clock and clock then
    local start = clock()
    repeat until (clock() - start) * 1000 >= ms
    return 1
end
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
    local now = redis.call('TIME')
until now[1] * 1000000 + now[2] - start >= ms * 1000
return 1
"""


def _stall_server(admin: redis.Redis, url: str, milliseconds: int) -> threading.Thread:
    """Run STALL_SCRIPT from a thread; return once the server has stopped answering."""
    thread = threading.Thread(target=admin.eval, args=(STALL_SCRIPT, 0, milliseconds), daemon=True)
    thread.start()

    def stalled() -> bool:
        probe = redis.Redis.from_url(url, socket_timeout=0.05, retry=Retry(NoBackoff(), 0))
        try:
            probe.ping()
        except redis.TimeoutError:
            return True
        finally:
            probe.close()
        return False

    wait_for(stalled, what="the server to stall")
    return thread


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_retried_acquire_takes_the_lock_once(own_server: RedisServer, flavour: str) -> None:
    """The client retries an acquire whose reply timed out, but the first copy ran: the lock is ours.

    The server stalls (a busy script) while the acquire script waits in its socket
    buffer; the client's socket timeout fires and redis-py sends the script again on
    a new connection. When the server resumes it runs both copies: the first takes
    the lock, the second finds it held by the same id. acquire() must return True,
    not raise AlreadyAcquired and leave a lock that nobody will release."""
    admin = redis.Redis.from_url(own_server.url)
    retrying: dict[str, Any] = {"socket_timeout": 0.25, "retry": Retry(NoBackoff(), 20)}
    try:
        if flavour == "sync":
            client = redis.Redis.from_url(own_server.url, **retrying)
            lock: Any = redis_lock.Lock(client, "retried")
            lock.acquire()
            lock.release()  # the acquire script is now cached
            admin.config_resetstat()
            stall = _stall_server(admin, own_server.url, 800)
            assert lock.acquire(blocking=False) is True
            assert lock.owned()
            stall.join(timeout=10)
            lock.release()
            client.close()
        else:

            async def scenario() -> None:
                client = redis.asyncio.Redis.from_url(
                    own_server.url, socket_timeout=0.25, retry=AsyncRetry(NoBackoff(), 20)
                )
                lock = redis_lock.AsyncLock(client, "retried")
                await lock.acquire()
                await lock.release()
                admin.config_resetstat()
                stall = await asyncio.to_thread(_stall_server, admin, own_server.url, 800)
                assert await lock.acquire(blocking=False) is True
                assert await lock.owned()
                await asyncio.to_thread(stall.join, 10)
                await lock.release()
                await client.aclose()

            asyncio.run(scenario())
        # The acquire script really ran twice (the first copy took the lock, the retry found it owned).
        assert admin.info("commandstats")["cmdstat_evalsha"]["calls"] >= 3  # 2 acquires + 1 release
        assert admin.exists("lock:retried") == 0
    finally:
        admin.close()


@pytest.mark.parametrize("how", ["release", "with", "async-release", "async-with"])
def test_a_retried_release_does_not_report_a_loss(own_server: RedisServer, how: str) -> None:
    """The client retries a release whose reply timed out, but the first copy ran: the release succeeded.

    The server stalls while the unlock script waits in its socket buffer; redis-py
    sends it again; when the server resumes it runs both copies: the first deletes
    the key, the second finds it gone. The second copy recognises the first by the
    call's receipt, so release() returns normally instead of raising NotAcquired."""
    admin = redis.Redis.from_url(own_server.url)
    try:
        if how in ("release", "with"):
            client = redis.Redis.from_url(own_server.url, socket_timeout=0.25, retry=Retry(NoBackoff(), 20))
            lock: Any = redis_lock.Lock(client, "released", expire=30)
            lock.acquire()
            lock.release()  # the scripts are now cached
            admin.config_resetstat()
            if how == "release":
                assert lock.acquire()
                stall = _stall_server(admin, own_server.url, 800)
                lock.release()
            else:
                with lock:
                    stall = _stall_server(admin, own_server.url, 800)
            stall.join(timeout=10)
            client.close()
        else:

            async def scenario() -> None:
                client = redis.asyncio.Redis.from_url(
                    own_server.url, socket_timeout=0.25, retry=AsyncRetry(NoBackoff(), 20)
                )
                lock = redis_lock.AsyncLock(client, "released", expire=30)
                await lock.acquire()
                await lock.release()
                admin.config_resetstat()
                if how == "async-release":
                    assert await lock.acquire()
                    stall = await asyncio.to_thread(_stall_server, admin, own_server.url, 800)
                    await lock.release()
                else:
                    async with lock:
                        stall = await asyncio.to_thread(_stall_server, admin, own_server.url, 800)
                await asyncio.to_thread(stall.join, 10)
                await client.aclose()

            asyncio.run(scenario())
        # The unlock script really ran more than once after the acquire (the retry found the key gone).
        assert admin.info("commandstats")["cmdstat_evalsha"]["calls"] >= 3
        assert admin.exists("lock:released") == 0
    finally:
        admin.close()


def test_a_release_of_a_lock_reset_meanwhile_still_reports_the_loss(own_server: RedisServer) -> None:
    """The receipt belongs to the call: a lock reset during the hold still makes release() raise NotAcquired."""
    client = redis.Redis.from_url(own_server.url)
    try:
        lock = redis_lock.Lock(client, "reset-meanwhile", expire=30)
        assert lock.acquire()
        lock.release()  # leaves a receipt of that call
        assert lock.acquire()
        redis_lock.Lock(client, "reset-meanwhile").reset()
        with pytest.raises(redis_lock.NotAcquired):
            lock.release()
    finally:
        client.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_partitioned_holder_learns_it_lost_the_lock_when_its_lease_ends(
    own_server: RedisServer, flavour: str
) -> None:
    """A holder cut off from Redis reports ``lost`` when its lease ends, though its renewal is stuck in retries.

    The holder's client has redis-py's defaults (5 s socket timeout, 10 retries), so
    its renewal would wait about a minute; the lease (1 s) must bound the answer."""
    from ._proxy import PartitionProxy

    proxy = PartitionProxy("127.0.0.1", own_server.port)
    other = redis.Redis.from_url(own_server.tcp_url)
    expire = 1.0
    try:
        if flavour == "sync":
            holder = redis.Redis.from_url(proxy.url)
            lock: Any = redis_lock.Lock(holder, "partitioned", expire=expire, auto_renewal=True)
            assert lock.acquire()
            acquired = time.monotonic()
            proxy.freeze()
            wait_for(lambda: lock.lost, timeout=expire + SLACK, what="the holder to see its loss")
            lost_after = time.monotonic() - acquired
            # Another client takes the lock once the key expires on the server.
            assert redis_lock.Lock(other, "partitioned").acquire(timeout=SLACK)
            proxy.thaw()
            with pytest.raises(redis_lock.LockLost):
                lock.release()
            holder.close()
        else:

            async def scenario() -> float:
                holder = redis.asyncio.Redis.from_url(proxy.url)
                lock = redis_lock.AsyncLock(holder, "partitioned", expire=expire, auto_renewal=True)
                assert await lock.acquire()
                acquired = time.monotonic()
                proxy.freeze()
                while not lock.lost:
                    assert time.monotonic() - acquired < expire + SLACK, "the holder never saw its loss"
                    await asyncio.sleep(0.01)
                lost_after = time.monotonic() - acquired
                assert await asyncio.to_thread(redis_lock.Lock(other, "partitioned").acquire, timeout=SLACK)
                proxy.thaw()
                with pytest.raises(redis_lock.LockLost):
                    await lock.release()
                await holder.aclose()
                return lost_after

            lost_after = asyncio.run(scenario())
        # Lost no later than the lease (counted from before the acquire was sent) plus a margin.
        assert lost_after <= expire + 0.25
    finally:
        proxy.close()
        other.close()
