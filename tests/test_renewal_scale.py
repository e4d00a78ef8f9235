"""Auto-renewal at scale: thousands of locks per process, few threads, pipelined extends.

One scheduler per client object (a daemon thread for Lock, a task per event loop
for AsyncLock) renews every auto-renewed lock of that client; these tests hold
thousands of locks past several expiries and check what that costs (threads,
tasks, connections, requests), that per-lock outcomes stay per lock, that one
stalled server does not hold up another client's renewals, that collected locks
leave the schedule, and that a forked child renews its own locks.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio

import redis_lock

from ._clients import Delegating
from ._server import RedisServer
from ._topology import async_wait_for, wait_for
from .conftest import MakeClient

# Short leases renewed in bulk: a CPU shared with other tests would make them miss
# their renewals, so scripts/test.sh runs this module alone, after the parallel run.
pytestmark = pytest.mark.serial

REFRESH_LOGGER = "redis_lock.refresh.thread"
#: Locks held at once by the scale tests.
MANY = 2000
#: Their expiry: renewed every 0.5 s, so a 2.1 s hold spans nearly three expiries.
EXPIRE = 0.75
HOLD = 2.1


def live_keys(client: redis.Redis, keys: list[str]) -> int:
    """How many of ``keys`` exist with a TTL (pipelined PTTL)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
    return sum(1 for ttl in pipe.execute() if int(ttl) > 0)


def named_connections(admin: redis.Redis, name: str) -> int:
    return sum(1 for entry in admin.client_list() if entry["name"] == name)


def renewal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("redis_lock.refresh")]


_SEND_UNIX: Any = redis.UnixDomainSocketConnection.send_packed_command


class CountingConnection(redis.UnixDomainSocketConnection):
    """A unix-socket connection that counts its requests (a pipeline is one request)."""

    requests = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).requests += 1
        _SEND_UNIX(self, command, check_health)


@pytest.fixture
def admin(redis_url: str, plain: redis.Redis) -> redis.Redis:
    """A client for inspecting the server (the database was flushed by ``plain``)."""
    return plain


@pytest.fixture
def counting(redis_url: str, plain: redis.Redis) -> Iterator[redis.Redis]:
    """A client named ``scale`` whose requests are counted."""
    CountingConnection.requests = 0
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection, client_name="scale")
    client = redis.Redis(connection_pool=pool)
    yield client
    client.close()


# Coverage tracing slows the scheduler enough that 2,000 short leases run out: measure it untraced.
@pytest.mark.no_cover
def test_thousands_of_locks_renewed_by_one_thread_with_pipelined_extends(
    counting: redis.Redis, admin: redis.Redis
) -> None:
    """2,000 locks outlive three expiries with one renewal thread, two connections and pipelined extends."""
    threads_before = threading.active_count()
    locks = [redis_lock.Lock(counting, f"scale-{n}", expire=EXPIRE, auto_renewal=True) for n in range(MANY)]
    keys = [f"lock:scale-{n}" for n in range(MANY)]
    for lock in locks:
        assert lock.acquire(blocking=False)
    requests_at_start = CountingConnection.requests
    held_from = time.monotonic()
    most_threads = most_connections = 0
    while time.monotonic() - held_from < HOLD:
        time.sleep(0.3)
        assert live_keys(admin, keys) == MANY
        most_threads = max(most_threads, threading.active_count())
        most_connections = max(most_connections, named_connections(admin, "scale"))
    renewal_requests = CountingConnection.requests - requests_at_start
    assert not any(lock.lost for lock in locks)
    # One scheduler thread, whatever the number of locks (a thread per lock would add 2,000).
    assert most_threads <= threads_before + 1
    assert len(renewal_threads()) == 1
    # The acquiring thread's connection and the scheduler's.
    assert most_connections <= 2
    # Each lock was renewed at least three times: 6,000 extends, in a few dozen pipelines.
    assert renewal_requests < MANY / 20
    for lock in locks:
        lock.release()
    assert live_keys(admin, keys) == 0
    wait_for(lambda: not renewal_threads(), timeout=5, what="the scheduler thread to end")


# Twenty 0.4 s leases renewed every 0.27 s: timing under test, measured untraced.
@pytest.mark.no_cover
@pytest.mark.parametrize(
    ("kind", "decode"), [("redis", True), ("valkey", False)], ids=["redis-str", "valkey-bytes"]
)
def test_a_lock_taken_over_is_lost_while_its_siblings_renew_on(
    make_client: MakeClient, admin: redis.Redis, caplog: pytest.LogCaptureFixture, kind: str, decode: bool
) -> None:
    """Renewal outcomes are per lock: the one whose key was taken is lost (ERROR, LockLost), the rest renew on."""
    conn = make_client(kind, decode)
    locks = [redis_lock.Lock(conn, f"sibling-{n}", expire=0.4, auto_renewal=True) for n in range(20)]
    victim = locks[7]
    with caplog.at_level(logging.ERROR, logger=REFRESH_LOGGER):
        for lock in locks:
            assert lock.acquire()
        admin.set("lock:sibling-7", "somebody-else")
        wait_for(lambda: victim.lost, timeout=5, what="the renewal to notice the loss")
        time.sleep(0.8)  # the behaviour under test: three more renewal intervals of the others
    assert [r.getMessage() for r in caplog.records] == [
        "Lost Lock('lock:sibling-7'): another client holds it, or it expired or was reset."
    ]
    assert victim._lock_renewal_thread is not None
    assert not victim._lock_renewal_thread.is_alive()
    for lock in locks:
        if lock is not victim:
            assert not lock.lost
            assert 0 < admin.pttl(lock._name) <= 400
            lock.release()
    with pytest.raises(redis_lock.LockLost):
        victim.release()
    assert admin.get("lock:sibling-7") == b"somebody-else"


def test_the_scheduler_ends_when_its_last_lock_is_lost(plain: redis.Redis) -> None:
    """A scheduler whose only lock was lost (its own decision, no release) ends its thread."""
    lock = redis_lock.Lock(plain, "last", expire=0.2, auto_renewal=True)
    assert lock.acquire()
    renewal = lock._lock_renewal_thread
    assert renewal is not None
    redis_lock.Lock(plain, "last").reset()
    wait_for(lambda: lock.lost, timeout=5, what="the loss")
    wait_for(
        lambda: all(t.ident != renewal.ident for t in renewal_threads()), timeout=5, what="the thread to end"
    )
    with pytest.raises(redis_lock.LockLost):
        lock.release()


@pytest.mark.parametrize("fault", ["paused", "killed"])
def test_a_stalled_server_does_not_delay_renewals_on_another_client(
    own_server: RedisServer, admin: redis.Redis, redis_url: str, fault: str
) -> None:
    """While one client's server is stopped (SIGSTOP) or killed, another client's locks are renewed on time."""
    stalled = redis.Redis.from_url(own_server.url, socket_timeout=2.5, socket_connect_timeout=2.5)
    healthy = redis.Redis.from_url(redis_url)
    stuck = [redis_lock.Lock(stalled, f"stuck-{n}", expire=0.5, auto_renewal=True) for n in range(5)]
    fine = [redis_lock.Lock(healthy, f"fine-{n}", expire=0.5, auto_renewal=True) for n in range(50)]
    for lock in stuck + fine:
        assert lock.acquire()
    assert own_server.process is not None
    pid = own_server.process.pid
    try:
        if fault == "paused":
            own_server.process.send_signal(signal.SIGSTOP)
        else:
            own_server.kill()
        stalled_at = time.monotonic()
        # Three expiries of the healthy locks, while the stalled client's renewals hang or fail.
        while time.monotonic() - stalled_at < 1.5:
            time.sleep(0.1)
            assert live_keys(admin, [lock._name for lock in fine]) == 50
        assert not any(lock.lost for lock in fine)
    finally:
        if fault == "paused":
            subprocess.run(["kill", "-CONT", str(pid)], check=True)
    for lock in fine:
        lock.release()
    for lock in stuck:
        with pytest.raises((redis_lock.LockLost, redis.RedisError)):  # LockLost, or the server is gone
            lock.release()
    stalled.close()
    healthy.close()


def test_collected_locks_leave_the_schedule(conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Locks garbage-collected while renewed leave the schedule at once, and the idle scheduler thread ends."""
    locks = [redis_lock.Lock(conn, f"gone-{n}", expire=60, auto_renewal=True) for n in range(200)]
    for lock in locks:
        assert lock.acquire()
    renewals = [lock._lock_renewal_thread for lock in locks]
    idents = {renewal.ident for renewal in renewals if renewal is not None}
    assert len(idents) == 1  # one thread for the client's 200 locks
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        del lock, locks
        gc.collect()
        for renewal in renewals:
            assert renewal is not None
            renewal.join(5)  # the interval is 40 s: only the collection can end it
            assert not renewal.is_alive()
    collected = [r for r in caplog.records if r.getMessage().endswith("was garbage collected.")]
    assert len(collected) == 200
    wait_for(lambda: all(t.ident not in idents for t in renewal_threads()), what="the idle thread to end")


class RefusingPipelines(redis.Redis):
    """A client whose pipelines refuse EVALSHA before sending anything, as cluster pipelines do."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        raise redis.RedisError("Calling pipelined function evalsha is blocked")


def test_renewal_one_call_per_lock_when_it_cannot_pipeline(
    plain: redis.Redis, admin: redis.Redis, redis_url: str
) -> None:
    """Without pipeline(), with pipelines that refuse EVALSHA, or under a subclass's extend(), renewal goes lock by lock.

    A subclass's ``extend`` is what renewal calls, as in 4.x.
    """
    extended: list[str] = []

    class Audited(redis_lock.Lock):
        def extend(self, expire: float | None = None) -> None:
            extended.append(self._name)
            super().extend(expire)

    refusing = RefusingPipelines.from_url(redis_url)
    locks = [
        *(
            redis_lock.Lock(Delegating(plain), f"minimal-{n}", expire=0.4, auto_renewal=True, strict=False)
            for n in range(10)
        ),
        *(redis_lock.Lock(refusing, f"refusing-{n}", expire=0.4, auto_renewal=True) for n in range(10)),
        *(Audited(plain, f"audited-{n}", expire=0.4, auto_renewal=True) for n in range(10)),
    ]
    for lock in locks:
        assert lock.acquire()
    time.sleep(1.0)  # the behaviour under test: 2.5 expiries
    for lock in locks:
        assert not lock.lost
        assert 0 < admin.pttl(lock._name) <= 400
        lock.release()
    assert set(extended) == {f"lock:audited-{n}" for n in range(10)}
    assert len(extended) >= 30
    refusing.close()


class FailingFor(Delegating):
    """A client whose scripts on one key fail with a connection error, as during an outage of its node."""

    def __init__(self, inner: redis.Redis, key: str) -> None:
        super().__init__(inner)
        self.key = key

    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        if keys_and_args[0] == self.key:
            raise redis.ConnectionError("simulated outage")
        return super().evalsha(sha, numkeys, *keys_and_args)


def test_a_lost_lock_does_not_keep_its_batch_alive(
    plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The error a lost lock keeps (its ``__cause__`` on release) holds no reference to the other locks renewed with it."""
    client = FailingFor(plain, "lock:failing")
    failing = redis_lock.Lock(client, "failing", expire=0.3, auto_renewal=True, strict=False)
    other = redis_lock.Lock(client, "other", expire=0.3, auto_renewal=True, strict=False)
    assert other.acquire()
    client.key = "never"  # let the acquire through
    assert failing.acquire()
    client.key = "lock:failing"
    wait_for(lambda: failing.lost, timeout=5, what="the lease to run out")
    renewal = other._lock_renewal_thread
    assert renewal is not None
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        del other
        gc.collect()
        renewal.join(5)
    assert not renewal.is_alive(), "the lost lock's error kept the other lock alive, and renewed"
    client.key = "never"  # the outage is over
    with pytest.raises(redis_lock.LockLost) as raised:
        failing.release()
    assert isinstance(raised.value.__cause__, redis.ConnectionError)


def test_renewal_survives_script_flush(own_server: RedisServer) -> None:
    """After SCRIPT FLUSH the pipelined extends get NOSCRIPT: the script is loaded again and every lock kept."""
    client = redis.Redis.from_url(own_server.url)
    admin = redis.Redis.from_url(own_server.url)
    locks = [redis_lock.Lock(client, f"flushed-{n}", expire=0.4, auto_renewal=True) for n in range(50)]
    for lock in locks:
        assert lock.acquire()
    admin.config_resetstat()
    admin.script_flush()
    time.sleep(0.8)  # three renewal intervals
    assert live_keys(admin, [lock._name for lock in locks]) == 50
    assert not any(lock.lost for lock in locks)
    assert admin.info("commandstats")["cmdstat_script|load"]["calls"] >= 1
    for lock in locks:
        lock.release()
    client.close()
    admin.close()


FORK_PROGRAM = """
import os, sys, threading, time, traceback
import redis, redis_lock

client = redis.Redis.from_url({url!r})
held = redis_lock.Lock(client, "fork-parent", expire=0.5, auto_renewal=True)
assert held.acquire()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        # The parent's scheduler thread did not survive the fork: the child does not renew that lock.
        assert not held._lock_renewal_thread.is_alive()
        # A lock of the child, on the very client object whose scheduler the parent runs, is renewed.
        mine = redis_lock.Lock(client, "fork-child", expire=0.5, auto_renewal=True)
        assert mine.acquire()
        time.sleep(1.0)
        assert mine.owned() and not mine.lost, "the child's lock was not renewed"
        assert threading.active_count() == 2, threading.enumerate()
        mine.release()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, "the child failed"
assert held.owned() and not held.lost, "the parent's lock was not renewed"
held.release()
print("ok")
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_renews_its_own_locks(redis_url: str) -> None:
    """A child forked while the parent renews starts its own scheduler; the parent's keeps running."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORK_PROGRAM.format(url=redis_url))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == "ok\n", done.stdout + done.stderr


# -- AsyncLock ----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def aclient(redis_url: str, plain: redis.Redis) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, client_name="ascale")
    yield client
    await client.aclose()


def renewal_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("redis_lock.refresh")]


# Coverage tracing slows the scheduler enough that 2,000 short leases run out: measure it untraced.
@pytest.mark.no_cover
@pytest.mark.asyncio
async def test_thousands_of_async_locks_renewed_by_one_task(
    aclient: redis.asyncio.Redis, admin: redis.Redis
) -> None:
    """2,000 AsyncLocks outlive three expiries with one renewal task and at most two connections."""
    locks = [
        redis_lock.AsyncLock(aclient, f"ascale-{n}", expire=EXPIRE, auto_renewal=True) for n in range(MANY)
    ]
    keys = [f"lock:ascale-{n}" for n in range(MANY)]
    for lock in locks:
        assert await lock.acquire(blocking=False)
    held_from = time.monotonic()
    most_tasks = most_connections = 0
    while time.monotonic() - held_from < HOLD:
        await asyncio.sleep(0.3)
        assert live_keys(admin, keys) == MANY
        most_tasks = max(most_tasks, len(renewal_tasks()))
        most_connections = max(most_connections, named_connections(admin, "ascale"))
    assert not any(lock.lost for lock in locks)
    assert most_tasks == 1  # a task per lock would make it 2,000
    # 2,000 concurrent extends would need 2,000 connections (redis-py's pool stops at 100).
    assert most_connections <= 2
    for lock in locks:
        await lock.release()
    assert live_keys(admin, keys) == 0
    # With no lock left to renew, the one task ends (at its next turn).
    await async_wait_for(lambda: not renewal_tasks(), timeout=5, what="the renewal task to end")


@pytest.mark.asyncio
async def test_async_lock_taken_over_is_lost_while_its_siblings_renew_on(
    aclient: redis.asyncio.Redis, admin: redis.Redis
) -> None:
    """Renewal outcomes are per lock: the one whose key was taken is lost, the rest renew on."""
    locks = [redis_lock.AsyncLock(aclient, f"asibling-{n}", expire=0.4, auto_renewal=True) for n in range(20)]
    for lock in locks:
        assert await lock.acquire()
    victim = locks[3]
    admin.set("lock:asibling-3", "somebody-else")
    assert victim._lock_renewal_task is not None
    await asyncio.wait((victim._lock_renewal_task,), timeout=5)
    assert victim.lost
    await asyncio.sleep(0.8)  # the behaviour under test: three more renewal intervals of the others
    for lock in locks:
        if lock is not victim:
            assert not lock.lost
            assert 0 < admin.pttl(lock._name) <= 400
            await lock.release()
    with pytest.raises(redis_lock.LockLost):
        await victim.release()
    await async_wait_for(lambda: not renewal_tasks(), what="the idle renewal task to end")


@pytest.mark.asyncio
async def test_the_async_scheduler_ends_when_its_last_lock_is_lost(aclient: redis.asyncio.Redis) -> None:
    """A scheduler task whose only lock was lost (its own decision, no release) ends."""
    lock = redis_lock.AsyncLock(aclient, "alast", expire=0.2, auto_renewal=True)
    assert await lock.acquire()
    assert len(renewal_tasks()) == 1
    await redis_lock.AsyncLock(aclient, "alast").reset()
    assert lock._lock_renewal_task is not None
    await asyncio.wait((lock._lock_renewal_task,), timeout=5)
    assert lock.lost
    await async_wait_for(lambda: not renewal_tasks(), what="the idle renewal task to end")
    with pytest.raises(redis_lock.LockLost):
        await lock.release()


@pytest.mark.asyncio
async def test_a_stalled_server_does_not_delay_async_renewals_on_another_client(
    own_server: RedisServer, admin: redis.Redis, redis_url: str
) -> None:
    """While one client's server is stopped (SIGSTOP), another client's AsyncLocks on the same loop are renewed."""
    stalled = redis.asyncio.Redis.from_url(own_server.url, socket_timeout=2.5, socket_connect_timeout=2.5)
    healthy = redis.asyncio.Redis.from_url(redis_url)
    stuck = [redis_lock.AsyncLock(stalled, f"astuck-{n}", expire=0.5, auto_renewal=True) for n in range(5)]
    fine = [redis_lock.AsyncLock(healthy, f"afine-{n}", expire=0.5, auto_renewal=True) for n in range(50)]
    for lock in stuck + fine:
        assert await lock.acquire()
    assert own_server.process is not None
    pid = own_server.process.pid
    own_server.process.send_signal(signal.SIGSTOP)
    try:
        stalled_at = time.monotonic()
        while time.monotonic() - stalled_at < 1.5:
            await asyncio.sleep(0.1)
            assert live_keys(admin, [lock._name for lock in fine]) == 50
        assert not any(lock.lost for lock in fine)
    finally:
        subprocess.run(["kill", "-CONT", str(pid)], check=True)
    for lock in fine:
        await lock.release()
    for lock in stuck:
        with pytest.raises((redis_lock.LockLost, redis.RedisError)):  # LockLost, or a timeout
            await lock.release()
    await stalled.aclose()
    await healthy.aclose()


@pytest.mark.asyncio
async def test_collected_async_locks_leave_the_schedule(aclient: redis.asyncio.Redis) -> None:
    """AsyncLocks garbage-collected while renewed end their renewal at once; the idle task ends."""
    locks = [redis_lock.AsyncLock(aclient, f"agone-{n}", expire=60, auto_renewal=True) for n in range(200)]
    for lock in locks:
        assert await lock.acquire()
    futures = [lock._lock_renewal_task for lock in locks]
    assert len(renewal_tasks()) == 1
    del lock, locks
    gc.collect()
    done, pending = await asyncio.wait([f for f in futures if f is not None], timeout=5)
    assert len(done) == 200
    assert not pending
    await async_wait_for(lambda: not renewal_tasks(), what="the idle renewal task to end")
