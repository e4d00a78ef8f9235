"""Auto-renewal's failure and race paths, on a real server: faults injected, races pinned down.

Each test puts one lock (or two) in a situation the renewal scheduler
(``redis_lock._renewal``) must handle: a release or a garbage collection that
lands while the lock is due or while its extend is in flight, a pipeline that
answers with too few replies or with error replies, a server busy with a long
script, a client whose pipelines are refused, a subclass that releases its lock
from ``extend``, an event loop that ends, a release from another event loop.
Races are pinned down with the scheduler's own condition, ``CLIENT PAUSE``, or
a lock collected while its batch waits on the server, never with a sleep.

Leases are long (30 s) where renewal must keep the lock: the locks here are
renewed every ``RENEW_EVERY`` seconds (a subclass sets ``_lock_renewal_interval``,
the documented way), so a missed renewal never costs a lock under CPU load.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest
import pytest_asyncio
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

import redis_lock
from redis_lock._renewal import Renewal
from redis_lock._scripts import EXTEND

from ._clients import AsyncDelegating, Delegating
from ._server import RedisServer
from ._topology import Runner, async_wait_for, blocked_in, wait_for
from .test_faults import STALL_SCRIPT

REFRESH_LOGGER = "redis_lock.refresh.thread"
#: How often the locks of this module are renewed (their leases are much longer).
RENEW_EVERY = 0.3
#: Their lease, unless a test says otherwise: no renewal is ever late by that much.
LONG = 30.0
#: Generous bound for what should take well under a second on an idle machine.
SLACK = 5.0


class QuickLock(redis_lock.Lock):
    """A Lock renewed every ``RENEW_EVERY`` seconds, whatever its expire."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_renewal_interval = RENEW_EVERY


class QuickAsyncLock(redis_lock.AsyncLock):
    """An AsyncLock renewed every ``RENEW_EVERY`` seconds, whatever its expire."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_renewal_interval = RENEW_EVERY


def refresh_messages(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[str]:
    """The messages the renewal logger emitted at ``level`` or above."""
    return [r.getMessage() for r in caplog.records if r.name == REFRESH_LOGGER and r.levelno >= level]


def renewal_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("redis_lock.refresh")]


class _RecordingPipeline:
    """A real pipeline that notes the key of every extend it carries, then sends them."""

    def __init__(self, inner: Any, extended: list[str]) -> None:
        self.inner = inner
        self.extended = extended

    def execute_command(self, *args: Any, **options: Any) -> None:
        if args[:2] == ("EVALSHA", EXTEND.sha1):
            self.extended.append(str(args[3]))
        self.inner.execute_command(*args, **options)

    def execute(self, raise_on_error: bool = True) -> Any:
        return self.inner.execute(raise_on_error=raise_on_error)


class RecordingPipelines(redis.Redis):
    """A real client whose pipelines note which locks they extend (``extended``, by key)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extended: list[str] = []

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return _RecordingPipeline(super().pipeline(transaction, shard_hint), self.extended)


class ShortPipelines(redis.Redis):
    """A real client whose pipelines drop their last reply while ``short`` is above 0 (once per pipeline)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.short = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return _ShortPipeline(super().pipeline(transaction, shard_hint), self)


class _ShortPipeline:
    def __init__(self, inner: Any, client: ShortPipelines) -> None:
        self.inner = inner
        self.client = client

    def execute_command(self, *args: Any, **options: Any) -> None:
        self.inner.execute_command(*args, **options)

    def execute(self, raise_on_error: bool = True) -> Any:
        replies: list[Any] = self.inner.execute(raise_on_error=raise_on_error)
        if self.client.short > 0:
            self.client.short -= 1
            return replies[:-1]
        return replies


class RecordingDelegating(Delegating):
    """A hand-written client (no ``pipeline()``: one extend per lock) that notes the key of every extend."""

    def __init__(self, inner: redis.Redis) -> None:
        super().__init__(inner)
        self.extended: list[str] = []

    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        if sha == EXTEND.sha1:
            self.extended.append(keys_and_args[0])
        return super().evalsha(sha, numkeys, *keys_and_args)


class RecordingAsyncDelegating(AsyncDelegating):
    """The asyncio twin of :class:`RecordingDelegating`."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.extended: list[str] = []

    async def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        if sha == EXTEND.sha1:
            self.extended.append(keys_and_args[0])
        return await super().evalsha(sha, numkeys, *keys_and_args)


class RefusingAsyncPipelines(RecordingAsyncDelegating):
    """An asyncio client that has ``pipeline()``, but whose pipelines refuse EVALSHA before any I/O (as cluster ones do)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.refusals = 0

    def pipeline(self, transaction: bool = True) -> Any:
        self.refusals += 1
        raise redis.RedisError("Calling pipelined function evalsha is blocked")


@pytest.fixture
def recording(redis_url: str, plain: redis.Redis) -> Iterator[RecordingPipelines]:
    """A :class:`RecordingPipelines` client of the session's server (whose database ``plain`` flushed)."""
    pool = redis.ConnectionPool.from_url(redis_url)
    client = RecordingPipelines(connection_pool=pool)
    yield client
    client.close()
    pool.disconnect()


@pytest.fixture
def admin(own_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the test's own server, to pause, kill and inspect it."""
    client = redis.Redis.from_url(own_server.url)
    yield client
    client.client_unpause()
    client.close()


def renewer(server: RedisServer) -> redis.Redis:
    """A client named ``renewer`` without client-side retries: a killed command's error reaches renewal."""
    return redis.Redis(unix_socket_path=server.unix_path, client_name="renewer", retry=Retry(NoBackoff(), 0))


# -- Lock: races between the scheduler and the lock's owner ---------------------------------


def test_renewal_keeps_the_thread_name_4x_code_reads(plain: redis.Redis) -> None:
    """The renewal handle answers ``name`` as 4.x's renewal thread did: ``redis_lock.refresh <key>``."""
    lock = QuickLock(plain, "named", expire=LONG, auto_renewal=True)
    assert lock.acquire()
    renewal = lock._lock_renewal_thread
    assert renewal is not None
    assert renewal.name == "redis_lock.refresh lock:named"
    assert renewal.daemon
    lock.release()
    assert not renewal.is_alive()


def test_a_release_after_the_lock_fell_due_sends_no_extend(recording: RecordingPipelines) -> None:
    """A release that lands after the scheduler took the lock as due, but before it built the batch, wins.

    The test holds the scheduler's condition while the lock falls due: the scheduler
    has taken the lock's entry off its heap and waits to build its batch. The
    release ends the renewal meanwhile, so the scheduler must skip the entry, not
    extend a lock that was released."""
    lock = QuickLock(recording, "released-when-due", expire=LONG, auto_renewal=True)
    assert lock.acquire()
    renewal = lock._lock_renewal_thread
    assert renewal is not None
    scheduler = renewal._scheduler
    wait_for(lambda: bool(scheduler._heap), what="the lock to be scheduled")
    with scheduler.cond:
        wait_for(lambda: not scheduler._heap, what="the scheduler to take the lock as due")
        recording.extended.clear()
        lock.release()
    renewal.join(SLACK)
    assert not renewal.is_alive()
    wait_for(lambda: not scheduler.thread.is_alive(), what="the idle scheduler thread to end")
    assert recording.extended == [], "an extend was sent for a released lock"
    assert not recording.exists("lock:released-when-due")


def test_a_lock_collected_after_it_fell_due_is_dropped_without_an_extend(
    recording: RecordingPipelines, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock garbage-collected after the scheduler took it as due is dropped from the batch, not extended.

    Its weak reference's callback only posts to the scheduler's inbox, which the
    scheduler reads before it takes due locks: here the collection lands after that
    (the test holds the scheduler's condition), so the batch itself must notice."""
    caplog.set_level(logging.DEBUG, logger=REFRESH_LOGGER)
    lock = QuickLock(recording, "collected-when-due", expire=LONG, auto_renewal=True)
    assert lock.acquire()
    renewal = lock._lock_renewal_thread
    assert renewal is not None
    scheduler = renewal._scheduler
    wait_for(lambda: bool(scheduler._heap), what="the lock to be scheduled")
    with scheduler.cond:
        wait_for(lambda: not scheduler._heap, what="the scheduler to take the lock as due")
        recording.extended.clear()
        del lock
        gc.collect()
    renewal.join(SLACK)
    assert not renewal.is_alive()
    wait_for(lambda: not scheduler.thread.is_alive(), what="the idle scheduler thread to end")
    assert recording.extended == [], "an extend was sent for a collected lock"
    collected = [m for m in refresh_messages(caplog) if m.endswith("was garbage collected.")]
    assert collected == ["Stopping loop because Lock('lock:collected-when-due') was garbage collected."]
    recording.delete("lock:collected-when-due")


def test_a_lock_collected_while_its_extend_is_in_flight_is_dropped_quietly(
    own_server: RedisServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock collected while its extend waits on the server is dropped when the reply (an error) comes back.

    The extend is held by ``CLIENT PAUSE``, the lock collected, then the connection
    killed: the error is about a lock that no longer exists, so it is neither
    retried nor logged as a failure; the renewal just ends."""
    client = renewer(own_server)
    lock = QuickLock(client, "collected-in-flight", expire=LONG, auto_renewal=True)
    caplog.set_level(logging.DEBUG, logger=REFRESH_LOGGER)
    assert lock.acquire()
    renewal = lock._lock_renewal_thread
    assert renewal is not None
    admin.client_pause(10_000, all=False)
    try:
        wait_for(lambda: blocked_in(admin, "evalsha", "renewer") == 1, what="the extend in flight")
        del lock
        gc.collect()
        for entry in admin.client_list():
            if entry["name"] == "renewer":
                admin.client_kill_filter(_id=entry["id"])
    finally:
        admin.client_unpause()
    renewal.join(SLACK)
    assert not renewal.is_alive()
    assert refresh_messages(caplog, logging.WARNING) == [], "a collected lock's failed extend was reported"
    collected = [m for m in refresh_messages(caplog) if m.endswith("was garbage collected.")]
    assert collected == ["Stopping loop because Lock('lock:collected-in-flight') was garbage collected."]
    client.close()


def test_a_lock_collected_mid_batch_is_not_renewed_one_call_per_lock(
    own_server: RedisServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Renewing lock by lock (no pipelines), a lock collected while an earlier lock of its batch waits is skipped.

    Two locks fall due together; the first one's extend is held by ``CLIENT PAUSE``
    while the second is collected. No extend is sent for the second; the first is
    renewed as usual."""
    client = RecordingDelegating(renewer(own_server))
    # One batch: the two locks fall due within the batch window (a tenth of their interval).
    first = QuickLock(client, "first", expire=LONG, auto_renewal=True, strict=False)
    second = QuickLock(client, "second", expire=LONG, auto_renewal=True, strict=False)
    caplog.set_level(logging.DEBUG, logger=REFRESH_LOGGER)
    assert first.acquire()
    assert second.acquire()
    renewal = second._lock_renewal_thread
    assert renewal is not None
    admin.client_pause(10_000, all=False)
    try:
        wait_for(lambda: blocked_in(admin, "evalsha", "renewer") == 1, what="an extend in flight")
        assert client.extended[-1] == "lock:first"
        client.extended.clear()
        del second
        gc.collect()
    finally:
        admin.client_unpause()
    renewal.join(SLACK)
    assert not renewal.is_alive()
    wait_for(lambda: "lock:first" in client.extended, what="the first lock's next extend")
    assert "lock:second" not in client.extended, "a collected lock was extended"
    assert not first.lost
    assert refresh_messages(caplog, logging.WARNING) == []
    first.release()
    admin.delete("lock:second")
    client.inner.close()


# -- Lock: what the server or the client answers ---------------------------------------------


def test_a_pipeline_with_too_few_replies_fails_the_batch_then_renewal_recovers(
    redis_url: str, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A pipeline that returns fewer replies than it was sent extends fails every lock of it: retried, not lost.

    The replies cannot be matched to the locks any more, so none of them counts as
    extended; renewal retries (a WARNING each time) and keeps the lock once the
    pipelines answer in full again."""
    pool = redis.ConnectionPool.from_url(redis_url)
    client = ShortPipelines(connection_pool=pool)
    lock = QuickLock(client, "short", expire=LONG, auto_renewal=True)
    caplog.set_level(logging.WARNING, logger=REFRESH_LOGGER)
    client.short = 2
    assert lock.acquire()
    wait_for(lambda: client.short == 0, what="two short pipelines")
    # Renewed again once the pipelines answer in full: the TTL is back near the full lease.
    wait_for(lambda: len(refresh_messages(caplog)) == 2 and plain.pttl("lock:short") > (LONG - 0.2) * 1000)
    warnings = refresh_messages(caplog)
    assert all(m.startswith("Renewing Lock('lock:short') failed (") for m in warnings), warnings
    assert all("Unexpected reply from a pipeline: 0 replies to 1 commands" in m for m in warnings), warnings
    assert not lock.lost
    lock.release()
    client.close()
    pool.disconnect()


def test_renewal_rides_out_a_server_busy_with_a_script(
    own_server: RedisServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """While a long script runs, the server answers every extend with a BUSY error: renewal retries and keeps the lock.

    ``busy-reply-threshold`` is lowered to 100 ms, so the pipelined extends get
    BUSY error replies (not a timeout) for most of a 1 s script."""
    admin.config_set("busy-reply-threshold", 100)
    client = redis.Redis.from_url(own_server.url)
    staller = redis.Redis.from_url(own_server.url)
    lock = QuickLock(client, "busy", expire=LONG, auto_renewal=True)
    caplog.set_level(logging.WARNING, logger=REFRESH_LOGGER)
    assert lock.acquire()
    stall = threading.Thread(target=staller.eval, args=(STALL_SCRIPT, 0, 1000), daemon=True)
    stall.start()
    wait_for(lambda: bool(refresh_messages(caplog)), what="an extend answered BUSY")
    stall.join(SLACK)
    assert not stall.is_alive()
    # Renewed again after the script: the TTL is back near the full lease.
    wait_for(lambda: admin.pttl("lock:busy") > (LONG - 0.2) * 1000, what="the next extend")
    warnings = refresh_messages(caplog)
    assert all(m.startswith("Renewing Lock('lock:busy') failed (") for m in warnings), warnings
    # What was retried is the server's own error reply, not a reply the library failed to read.
    errors = [
        a
        for r in caplog.records
        if r.name == REFRESH_LOGGER
        for a in r.args or ()
        if isinstance(a, Exception)
    ]
    assert errors, warnings
    assert all(type(error) is redis.ResponseError for error in errors), errors
    assert not lock.lost
    assert refresh_messages(caplog, logging.ERROR) == []
    lock.release()
    client.close()
    staller.close()


class ReleasesItself(QuickLock):
    """A 4.x-style subclass whose ``extend`` (so renewal, on the scheduler's thread) releases the lock.

    After its second renewal it releases itself, then joins its renewal thread, as
    4.x code did after a release."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renewals = 0
        self.released = threading.Event()
        self.released_in: str | None = None

    def extend(self, expire: float | None = None) -> None:
        super().extend(expire)
        self.renewals += 1
        if self.renewals != 2:
            return
        self.released_in = threading.current_thread().name
        renewal = self._lock_renewal_thread
        try:
            self.release()
            if renewal is not None:
                renewal.join()
        finally:
            self.released.set()


def test_a_subclass_may_release_its_lock_from_extend(
    plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Releasing (and joining the renewal) from ``extend``, on the renewal thread itself, neither waits nor deadlocks.

    The release must not wait for the extend in flight (its own caller), and
    ``join()`` from the renewal thread returns at once, where 4.x's ``Thread.join``
    would raise."""
    caplog.set_level(logging.WARNING, logger=REFRESH_LOGGER)
    lock = ReleasesItself(plain, "releases-itself", expire=LONG, auto_renewal=True)
    assert lock.acquire()
    renewal = lock._lock_renewal_thread
    assert renewal is not None
    # The lease is 30 s: waiting for the extend in flight would take that long.
    assert lock.released.wait(SLACK), "the release from extend() blocked"
    assert lock.released_in is not None
    assert lock.released_in.startswith("redis_lock.refresh ")
    assert not plain.exists("lock:releases-itself")
    renewal.join(SLACK)
    assert not renewal.is_alive()
    scheduler = renewal._scheduler
    wait_for(lambda: not scheduler.thread.is_alive(), what="the idle scheduler thread to end")
    assert lock.renewals == 2
    assert refresh_messages(caplog) == []


# -- AsyncLock ----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def aclient(redis_url: str, plain: redis.Redis) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.mark.asyncio
async def test_async_renewal_one_call_per_lock_reports_a_takeover(
    aclient: redis.asyncio.Redis, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Renewing lock by lock (a client without pipelines), a lock taken by another client is lost with its cause.

    The extend's NotAcquired ends that lock's renewal (one ERROR: the loss), and
    ``release()`` raises LockLost caused by it. Its sibling, renewed in the same
    batches, is not touched by that error: it is kept."""
    caplog.set_level(logging.WARNING, logger=REFRESH_LOGGER)
    client = AsyncDelegating(aclient)
    lock = QuickAsyncLock(client, "taken", expire=LONG, auto_renewal=True, strict=False)
    sibling = QuickAsyncLock(client, "sibling", expire=LONG, auto_renewal=True, strict=False)
    # Acquired together, so that they fall due together (one batch).
    assert all(await asyncio.gather(lock.acquire(), sibling.acquire()))
    plain.set("lock:taken", "somebody-else")
    future = lock._lock_renewal_task
    assert future is not None
    await asyncio.wait((future,), timeout=SLACK)
    assert future.done()
    assert lock.lost
    assert refresh_messages(caplog) == [
        "Lost Lock('lock:taken'): another client holds it, or it expired or was reset."
    ]
    with pytest.raises(redis_lock.LockLost) as raised:
        await lock.release()
    assert isinstance(raised.value.__cause__, redis_lock.NotAcquired)
    assert plain.get("lock:taken") == b"somebody-else"
    assert not sibling.lost
    assert sibling._lock_renewal is not None
    assert sibling._lock_renewal.is_alive()
    await sibling.release()


@pytest.mark.asyncio
async def test_async_renewal_one_call_per_lock_gives_up_when_the_lease_ends(
    own_server: RedisServer, admin: redis.Redis
) -> None:
    """Renewing lock by lock, an extend stuck on a paused server is abandoned when the lease ends, not awaited.

    The server holds the extend (``CLIENT PAUSE`` of 10 s); the lease is 1 s, so the
    renewal must end (the lock lost) long before the server answers."""
    client = redis.asyncio.Redis.from_url(own_server.url)
    expire = 1.0
    lock = redis_lock.AsyncLock(
        AsyncDelegating(client), "stuck", expire=expire, auto_renewal=True, strict=False
    )
    assert await lock.acquire()
    acquired = time.monotonic()
    admin.client_pause(10_000, all=False)
    try:
        future = lock._lock_renewal_task
        assert future is not None
        await asyncio.wait((future,), timeout=expire + SLACK)
        assert future.done(), "renewal waited for an extend past the lease"
        assert time.monotonic() - acquired < 10.0  # the server is still paused
        assert lock.lost
    finally:
        admin.client_unpause()
    with pytest.raises(redis_lock.LockLost):
        await lock.release()
    await client.aclose()


class CountedRenew(QuickAsyncLock):
    """An AsyncLock subclass with its own ``_renew`` (so renewed one call per lock), which notes each call."""

    renewed: ClassVar[list[str]] = []

    async def _renew(self) -> None:
        self.renewed.append(self._name)
        await super()._renew()


@pytest.mark.asyncio
async def test_async_lock_collected_mid_batch_is_not_renewed(
    own_server: RedisServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock collected while the pipeline of its batch waits on the server is not renewed afterwards.

    One batch holds a pipelined lock and a lock renewed by its own ``_renew``; the
    pipeline (sent first) is held by ``CLIENT PAUSE`` while the second lock is
    collected: its ``_renew`` is not called, its renewal ends, the first lock is kept."""
    client = redis.asyncio.Redis(unix_socket_path=own_server.unix_path, client_name="renewer")
    caplog.set_level(logging.WARNING, logger=REFRESH_LOGGER)
    first = QuickAsyncLock(client, "afirst", expire=LONG, auto_renewal=True)
    second = CountedRenew(client, "asecond", expire=LONG, auto_renewal=True)
    assert await first.acquire()
    assert await second.acquire()
    future = second._lock_renewal_task
    assert future is not None
    admin.client_pause(10_000, all=False)
    try:
        await async_wait_for(
            lambda: blocked_in(admin, "evalsha", "renewer") == 1, what="the pipeline in flight"
        )
        CountedRenew.renewed.clear()
        del second
        gc.collect()
    finally:
        admin.client_unpause()
    await asyncio.wait((future,), timeout=SLACK)
    assert future.done()
    assert CountedRenew.renewed == [], "a collected lock was renewed"
    assert not first.lost
    assert refresh_messages(caplog) == []
    await first.release()
    await client.aclose()


@pytest.mark.asyncio
async def test_async_renewal_falls_back_when_pipelines_are_refused(
    aclient: redis.asyncio.Redis, plain: redis.Redis
) -> None:
    """A client whose pipelines refuse EVALSHA is renewed one call per lock, and asked for a pipeline only once."""
    client = RefusingAsyncPipelines(aclient)
    lock = QuickAsyncLock(client, "refused", expire=LONG, auto_renewal=True, strict=False)
    assert await lock.acquire()
    await async_wait_for(lambda: client.extended.count("lock:refused") >= 3, what="three renewals")
    assert client.refusals == 1
    assert not lock.lost
    assert plain.pttl("lock:refused") > (LONG - 2 * RENEW_EVERY - 1) * 1000
    await lock.release()


def test_async_renewal_ends_with_its_event_loop(
    redis_url: str, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """An AsyncLock still held when ``asyncio.run()`` ends stops being renewed: its renewal reports ended.

    The loop cancels the scheduler task at shutdown; every lock it renewed is marked
    ended (and logged as 4.x did), so nothing waits for it any more."""
    caplog.set_level(logging.DEBUG, logger=REFRESH_LOGGER)

    async def hold() -> redis_lock.AsyncLock:
        client = redis.asyncio.Redis.from_url(redis_url)
        lock = redis_lock.AsyncLock(client, "outlived", expire=LONG, auto_renewal=True)
        assert await lock.acquire()
        await client.aclose()
        return lock

    lock = asyncio.run(hold())
    renewal, future = lock._lock_renewal, lock._lock_renewal_task
    assert renewal is not None
    assert future is not None
    assert not renewal.is_alive()
    assert future.done()
    assert "Exiting renewal thread for Lock('lock:outlived')." in refresh_messages(caplog)
    assert plain.exists("lock:outlived")  # held (not released) until it expires
    plain.delete("lock:outlived")


class PerLoop:
    """An asyncio client that talks through a redis.asyncio client of whichever event loop runs the call (notes extends).

    redis-py's asyncio connections belong to one event loop; this lets one lock
    object be used from two loops (its gate supports that)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self.extended: list[str] = []

    def _here(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        if loop not in self.clients:
            self.clients[loop] = redis.asyncio.Redis.from_url(self.url)
        return self.clients[loop]

    async def close_here(self) -> None:
        client = self.clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def execute_command(self, *args: Any) -> object:
        client: Any = self._here()
        reply: object = await client.execute_command(*args)
        return reply

    async def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        if sha == EXTEND.sha1:
            self.extended.append(keys_and_args[0])
        reply: object = await self._here().evalsha(sha, numkeys, *keys_and_args)
        return reply

    async def script_load(self, script: bytes, /) -> object:
        reply: object = await self._here().script_load(script)
        return reply

    async def get(self, name: str, /) -> object:
        reply: object = await self._here().get(name)
        return reply

    async def exists(self, *names: str) -> object:
        reply: object = await self._here().exists(*names)
        return reply

    async def blpop(self, keys: list[str], timeout: Any, /) -> object:
        reply: object = await self._here().blpop(keys, timeout)
        return reply

    async def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> object:
        reply: object = await self._here().scan(cursor=cursor, match=match, count=count)
        return reply


def test_async_lock_released_from_another_event_loop_stops_its_renewal(
    redis_url: str, plain: redis.Redis
) -> None:
    """An AsyncLock acquired on one event loop and released from another ends its renewal on the first loop.

    The release runs on a second loop (``asyncio.run`` in this thread) while the
    renewal's scheduler task lives on the first (a background thread): the stop is
    handed to the first loop, whose scheduler then ends."""
    runner = Runner("async")
    client = PerLoop(redis_url)
    lock = QuickAsyncLock(client, "two-loops", expire=LONG, auto_renewal=True, strict=False)

    def tasks_on_first_loop() -> int:
        return len(renewal_tasks())

    try:
        assert runner.run(lock.acquire)
        renewal, future = lock._lock_renewal, lock._lock_renewal_task
        assert renewal is not None
        assert future is not None
        assert runner.run(tasks_on_first_loop) == 1

        async def release_here() -> None:
            await lock.release()
            await client.close_here()

        asyncio.run(release_here())
        assert not plain.exists("lock:two-loops")
        assert not renewal.is_alive()
        wait_for(future.done, timeout=SLACK, what="the first loop's renewal to end")
        wait_for(
            lambda: runner.run(tasks_on_first_loop) == 0, timeout=SLACK, what="the scheduler task to end"
        )
    finally:
        runner.run(client.close_here)
        runner.close()


#: How long after the scheduler's wake-up the loop is held (see ``hold_when_due``).
AFTER_WAKE_UP = 0.05


def hold_when_due(runner: Runner, due: float) -> tuple[threading.Event, threading.Event]:
    """Hold ``runner``'s event loop still right after its renewal scheduler was woken for a lock due at ``due``.

    The scheduler's wake-up is then queued on the held loop, and whatever the test
    does meanwhile (a release from another loop, a garbage collection) queues its
    own callback behind it. The loop is kept busy from just before ``due`` until the
    wake-up and the hold fall due in the same turn of the loop, in that order.

    :returns: ``held``, set once the loop is held, and ``resume``, to set to let it go.
    """
    loop = runner._loop
    assert loop is not None
    held, resume = threading.Event(), threading.Event()

    def busy_until_both_are_due() -> None:
        while time.monotonic() < due + 2 * AFTER_WAKE_UP:
            time.sleep(0.001)

    def hold() -> None:
        held.set()
        resume.wait(SLACK)

    def plan() -> None:
        loop.call_at(due - 0.1, busy_until_both_are_due)
        loop.call_at(due + AFTER_WAKE_UP, hold)

    loop.call_soon_threadsafe(plan)
    return held, resume


def test_a_release_from_another_loop_as_the_lock_falls_due_sends_no_extend(
    redis_url: str, plain: redis.Redis
) -> None:
    """A release from another event loop that lands as the scheduler wakes for the lock ends the renewal: no extend.

    The scheduler wakes for the due lock, finds it stopped (the stop from the other
    loop marked it), and has nothing to renew until the stop reaches it; then it ends."""
    runner = Runner("async")
    client = PerLoop(redis_url)
    lock = QuickAsyncLock(client, "due-and-released", expire=LONG, auto_renewal=True, strict=False)
    try:
        assert runner.run(lock.acquire)
        renewal, future = lock._lock_renewal, lock._lock_renewal_task
        assert renewal is not None
        assert future is not None
        held, resume = hold_when_due(runner, renewal.due)
        assert held.wait(SLACK)
        client.extended.clear()

        async def release_here() -> None:
            await lock.release()
            await client.close_here()

        asyncio.run(release_here())
        resume.set()
        wait_for(future.done, timeout=SLACK, what="the renewal to end")
        wait_for(lambda: runner.run(lambda: len(renewal_tasks())) == 0, timeout=SLACK, what="the task to end")
        assert client.extended == [], "a released lock was extended"
        assert not plain.exists("lock:due-and-released")
    finally:
        runner.run(client.close_here)
        runner.close()


def test_an_async_lock_collected_as_it_falls_due_is_dropped_without_an_extend(
    redis_url: str, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """An AsyncLock collected just as its scheduler wakes for it is dropped from the batch, not extended.

    The weak reference's callback reaches the scheduler only after its wake-up, so
    the batch itself finds the lock gone."""
    caplog.set_level(logging.DEBUG, logger=REFRESH_LOGGER)
    runner = Runner("async")
    client = PerLoop(redis_url)
    lock = QuickAsyncLock(client, "due-and-collected", expire=LONG, auto_renewal=True, strict=False)
    try:
        assert runner.run(lock.acquire)
        renewal, future = lock._lock_renewal, lock._lock_renewal_task
        assert renewal is not None
        assert future is not None
        held, resume = hold_when_due(runner, renewal.due)
        assert held.wait(SLACK)
        client.extended.clear()
        del lock
        gc.collect()
        resume.set()
        wait_for(future.done, timeout=SLACK, what="the renewal to end")
        wait_for(lambda: runner.run(lambda: len(renewal_tasks())) == 0, timeout=SLACK, what="the task to end")
        assert client.extended == [], "a collected lock was extended"
        collected = [m for m in refresh_messages(caplog) if m.endswith("was garbage collected.")]
        assert collected == ["Stopping loop because Lock('lock:due-and-collected') was garbage collected."]
        plain.delete("lock:due-and-collected")
    finally:
        runner.run(client.close_here)
        runner.close()


class StallsOnLoss(logging.Handler):
    """Holds the renewal thread inside its loss decision (its ERROR record) until ``releaser`` is inside ``stop()``."""

    def __init__(self) -> None:
        super().__init__()
        self.deciding = threading.Event()
        self.releaser: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:
            return
        self.deciding.set()
        deadline = time.monotonic() + SLACK
        while time.monotonic() < deadline and not self._releaser_in_stop():
            time.sleep(0.001)

    def _releaser_in_stop(self) -> bool:
        frame = sys._current_frames().get(self.releaser.ident or 0) if self.releaser else None
        while frame is not None:
            if frame.f_code is Renewal.stop.__code__:
                return True
            frame = frame.f_back
        return False


def test_a_release_racing_the_renewals_own_loss_decision_ends_the_renewal_once(
    plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A release that reaches ``stop()`` while the renewal decides the lock is lost finds it ended, and reports the loss.

    The renewal thread is held inside its decision (a log handler) until the
    releasing thread waits in ``stop()``: the renewal ends exactly once, so the idle
    scheduler thread still ends, and ``release()`` raises LockLost."""
    caplog.set_level(logging.WARNING, logger=REFRESH_LOGGER)
    handler = StallsOnLoss()
    logger = logging.getLogger(REFRESH_LOGGER)
    lock = QuickLock(plain, "lost-while-released", expire=LONG, auto_renewal=True)
    assert lock.acquire()
    renewal = lock._lock_renewal_thread
    assert renewal is not None
    outcome: list[BaseException | None] = []

    def release() -> None:
        assert handler.deciding.wait(SLACK)
        try:
            lock.release()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    releaser = threading.Thread(target=release, daemon=True)
    handler.releaser = releaser
    logger.addHandler(handler)
    try:
        releaser.start()
        plain.set("lock:lost-while-released", "somebody-else")
        releaser.join(SLACK)
    finally:
        logger.removeHandler(handler)
    assert not releaser.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], redis_lock.LockLost)
    assert not renewal.is_alive()
    scheduler = renewal._scheduler
    wait_for(lambda: not scheduler.thread.is_alive(), timeout=SLACK, what="the idle scheduler thread to end")
    assert refresh_messages(caplog) == [
        "Lost Lock('lock:lost-while-released'): another client holds it, or it expired or was reset."
    ]
    assert plain.get("lock:lost-while-released") == b"somebody-else"


def test_a_release_from_a_log_handler_on_the_loss_leaves_the_other_locks_renewed(
    redis_url: str, plain: redis.Redis
) -> None:
    """A handler releasing the lost lock as the loss is logged ends its renewal once: the client's other locks stay renewed."""
    client = redis.Redis.from_url(redis_url)
    lost = redis_lock.Lock(client, "a", expire=1, auto_renewal=True)
    kept = redis_lock.Lock(client, "b", expire=1, auto_renewal=True)
    kept._lock_renewal_interval = 0.2  # the 4.x hook: 0.8 s of slack for a CPU shared with other workers
    released = threading.Event()

    class ReleaseOnLoss(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Lost Lock('lock:a')"):
                with contextlib.suppress(redis_lock.NotAcquired):
                    lost.release()
                released.set()

    handler = ReleaseOnLoss()
    logging.getLogger("redis_lock.refresh.thread").addHandler(handler)
    try:
        assert lost.acquire()
        assert kept.acquire()
        plain.set("lock:a", "someone else")
        assert released.wait(10), "the loss was never logged"
        # Two more expiries of "b": its key lives only if renewal goes on.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert plain.get("lock:b") == kept.id.encode(), "lock b was not renewed"
            time.sleep(0.05)
        assert not kept.lost
        kept.release()
    finally:
        logging.getLogger("redis_lock.refresh.thread").removeHandler(handler)
        client.close()
