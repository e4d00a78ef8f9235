"""The lock's behaviour, written once and run for ``Lock`` and ``AsyncLock``, against a real Redis.

Each test takes ``flavour`` (a :class:`Flavour`: ``Lock`` or ``AsyncLock``) or
``env`` (a flavour with a client of each kind of ``conftest.CLIENT_KINDS``),
and drives the lock through :class:`~tests._topology.Runner`: a ``Lock`` method
is called, an ``AsyncLock`` coroutine runs on an event loop in a background
thread. What only one flavour has stays in ``test_lock.py`` (threads, gevent,
fork, rejecting an asyncio client) or ``test_async_lock.py`` (cancellation,
tasks, event loops, rejecting a synchronous client).

Tests named ``test_fixes_4x_*`` cover a python-redis-lock 4.x bug that 5.x fixes
on purpose (DESIGN.md section 3); each asserts what 4.x got wrong.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import inspect
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import valkey
import valkey.asyncio

import redis_lock

from ._clients import AsyncDelegating, Delegating
from ._server import RedisServer
from ._topology import RUN_TIMEOUT, Runner, wait_for
from .conftest import CLIENT_KINDS, ClientKind, _kind_id

REFRESH_LOGGER = "redis_lock.refresh.thread"
FLAVOURS = ["sync", "async"]


class _FastRenewal:
    """The 4.x hook: a subclass that sets ``_lock_renewal_interval`` after ``__init__``."""

    _lock_renewal_interval: float | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_renewal_interval = 0.05


class FastLock(_FastRenewal, redis_lock.Lock):
    pass


class AsyncFastLock(_FastRenewal, redis_lock.AsyncLock):
    pass


_STOP = object()


class TaskHost:
    """One task on a :class:`Runner`'s event loop that runs the test's calls in turn.

    ``AsyncLock`` tells tasks apart as ``Lock`` tells threads apart (a second
    acquire by the holding task raises AlreadyAcquired, another task's waits its
    turn), while ``Runner.run`` starts a new task per call. Calls sent here all
    run in this one task, as a ``Lock`` test's calls all run in its thread;
    :meth:`Flavour.submit` is then "another task", as it is "another thread".
    """

    def __init__(self, runner: Runner) -> None:
        assert runner._loop is not None
        self._loop = runner._loop
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._task = runner.submit(self._serve)

    async def _serve(self) -> None:
        while (item := await self._inbox.get()) is not _STOP:
            await self._call(*item)
            del item  # keep no reference to the call (and its lock) while waiting for the next

    @staticmethod
    async def _call(
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outcome: concurrent.futures.Future[Any],
    ) -> None:
        try:
            result = function(*args, **kwargs)
            outcome.set_result(await result if inspect.isawaitable(result) else result)
        except asyncio.CancelledError as exc:
            outcome.set_exception(exc)
            raise
        except BaseException as exc:  # pytest.fail() raises a BaseException: hand it to the test too
            outcome.set_exception(exc)

    def run(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._inbox.put_nowait, (function, args, kwargs, outcome))
        return outcome.result(RUN_TIMEOUT)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._inbox.put_nowait, _STOP)
        self._task.result(RUN_TIMEOUT)


class Flavour:
    """One test's flavour: its lock class, its clients (closed after the test) and its :class:`Runner`."""

    def __init__(self, name: str, redis_url: str) -> None:
        self.name = name
        self.url = redis_url
        self.runner = Runner(name)
        self.asyncio = self.runner.asyncio
        self._host = TaskHost(self.runner) if self.asyncio else None
        #: The client under test (set by the ``env`` fixture).
        self.client: Any = None
        self._made: list[Any] = []

    # -- clients and locks

    def make(
        self, kind: str = "redis", decode_responses: bool = False, url: str | None = None, **kwargs: Any
    ) -> Any:
        """A client of this flavour (redis-py or valkey-py) to the test server, closed after the test."""
        factory: Any
        if kind == "redis":
            factory = redis.asyncio.Redis if self.asyncio else redis.Redis
        else:
            factory = valkey.asyncio.Valkey if self.asyncio else valkey.Valkey
        return self.adopt(factory.from_url(url or self.url, decode_responses=decode_responses, **kwargs))

    def record(self, client: Any) -> list[str]:
        """The name of every command ``client`` sends from now on (one per round trip), as a growing list."""
        sent: list[str] = []
        send = client.execute_command
        if self.asyncio:

            async def execute_command(*args: Any, **options: Any) -> Any:
                sent.append(str(args[0]).upper())
                return await send(*args, **options)

            client.execute_command = execute_command
        else:

            def execute_command_sync(*args: Any, **options: Any) -> Any:
                sent.append(str(args[0]).upper())
                return send(*args, **options)

            client.execute_command = execute_command_sync
        return sent

    def adopt(self, client: Any) -> Any:
        self._made.append(client)
        return client

    def delegating(self, inner: Any) -> Any:
        """A hand-written client of this flavour (not a redis-py or valkey-py one) over ``inner``."""
        return AsyncDelegating(inner) if self.asyncio else Delegating(inner)

    def lock(self, name: str, client: Any = None, **kwargs: Any) -> Any:
        """A ``Lock`` or ``AsyncLock`` on ``client`` (by default the client under test)."""
        factory: Any = redis_lock.AsyncLock if self.asyncio else redis_lock.Lock
        return factory(self.client if client is None else client, name, **kwargs)

    def fast_lock(self, name: str, **kwargs: Any) -> Any:
        factory: Any = AsyncFastLock if self.asyncio else FastLock
        return factory(self.client, name, **kwargs)

    # -- running

    def run(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``function`` (awaiting it for ``AsyncLock``, in the test's one task) and return its result."""
        if self._host is None:
            return function(*args, **kwargs)
        return self._host.run(function, *args, **kwargs)

    def submit(
        self, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Start ``function`` concurrently (in a thread, or as a task); the future holds its result."""
        return self.runner.submit(function, *args, **kwargs)

    def reset_all(self, client: Any, **kwargs: Any) -> int:
        reset: Any = redis_lock.async_reset_all if self.asyncio else redis_lock.reset_all
        deleted: int = self.run(reset, client, **kwargs)
        return deleted

    def within(self, lock: Any, body: Callable[[Any], Any]) -> Any:
        """Run ``body(entered)`` inside ``with lock`` (``async with`` for ``AsyncLock``); its result, awaited."""
        if not self.asyncio:
            with lock as entered:
                return body(entered)

        async def enter() -> Any:
            async with lock as entered:
                result = body(entered)
                return await result if inspect.isawaitable(result) else result

        return self.run(enter)

    def renewal_ended(self, lock: Any) -> Callable[[], bool]:
        """Whether the renewal that ``lock`` has now (its thread, or its future) has ended."""
        if self.asyncio:
            future: Any = lock._lock_renewal_task
            assert future is not None
            done: Callable[[], bool] = future.done
            return done
        thread: Any = lock._lock_renewal_thread
        assert thread is not None
        return lambda: not thread.is_alive()

    def close(self) -> None:
        for client in self._made:
            if self.asyncio:
                # redis-py 4.6 has no aclose(); its asyncio close() is the coroutine.
                self.run(getattr(client, "aclose", None) or client.close)
            else:
                client.close()
        if self._host is not None:
            self._host.close()
        self.runner.close()


#: Test ids name the class, so that ``-k "not AsyncLock"`` runs the ``Lock`` half (as scripts/test.sh does with
#: the oldest redis-py).
@pytest.fixture(params=FLAVOURS, ids=["Lock", "AsyncLock"])
def flavour(request: pytest.FixtureRequest, redis_url: str, plain: redis.Redis) -> Iterator[Flavour]:
    """``Lock`` or ``AsyncLock``, on a flushed database."""
    chosen = Flavour(request.param, redis_url)
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture(params=CLIENT_KINDS, ids=_kind_id)
def env(request: pytest.FixtureRequest, flavour: Flavour) -> Flavour:
    """The flavour, with a client under test: redis-py or valkey-py, with decode_responses off or on."""
    kind: ClientKind = request.param
    flavour.client = flavour.make(*kind)
    return flavour


def blocked_clients(client: redis.Redis) -> int:
    clients: int = client.info("clients")["blocked_clients"]
    return clients


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()
    }


# -- acquire and release ---------------------------------------------------------


def test_acquire_release(env: Flavour, plain: redis.Redis) -> None:
    """A free lock is acquired, stored under lock:<name> with the lock's id, and deleted on release."""
    lock = env.lock("basic")
    assert env.run(lock.acquire)
    assert plain.get("lock:basic") == lock.id.encode()
    assert env.run(lock.locked)
    assert env.run(lock.owned)
    assert env.run(lock.get_owner_id) == lock.id
    env.run(lock.release)
    assert plain.exists("lock:basic") == 0
    assert not env.run(lock.locked)
    assert not env.run(lock.owned)
    assert env.run(lock.get_owner_id) is None


def test_non_blocking_acquire_of_a_busy_lock_returns_false(
    env: Flavour, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-blocking acquire of a held lock returns False at once and logs the 4.x warning."""
    holder = env.lock("busy")
    assert env.run(holder.acquire)
    other = env.lock("busy")
    with caplog.at_level(logging.WARNING, logger="redis_lock.acquire"):
        assert env.run(other.acquire, blocking=False) is False
    assert (
        "redis_lock.acquire",
        logging.WARNING,
        "Failed to acquire Lock('lock:busy').",
    ) in caplog.record_tuples
    assert env.run(holder.owned)
    assert not env.run(other.owned)


def test_acquire_twice_raises_already_acquired(env: Flavour) -> None:
    """Acquiring again with the same id, on the same or another instance, raises AlreadyAcquired."""
    lock = env.lock("twice", id="me")
    assert env.run(lock.acquire)
    with pytest.raises(redis_lock.AlreadyAcquired, match=r"Already acquired from this Lock instance\."):
        env.run(lock.acquire)
    with pytest.raises(redis_lock.AlreadyAcquired):
        env.run(env.lock("twice", id="me").acquire, blocking=False)
    assert env.run(lock.owned)


def test_owned_by_its_own_generated_id_means_this_call_took_it(env: Flavour, plain: redis.Redis) -> None:
    """ "Owned" by an instance's generated id that it does not hold can only be its own retried write.

    (What a client retry leaves behind: ``test_faults.test_a_retried_acquire_takes_the_lock_once``.)
    A chosen id may be shared, so there "owned" keeps meaning AlreadyAcquired, as in 4.x.
    """
    lock = env.lock("retried-write", expire=30)
    plain.set("lock:retried-write", lock.id, px=30_000)  # as if a first copy of acquire.lua had run
    assert env.run(lock.acquire, blocking=False) is True
    assert env.run(lock.owned)
    with pytest.raises(redis_lock.AlreadyAcquired):
        env.run(lock.acquire, blocking=False)  # now it holds it: a second acquire is an error
    env.run(lock.release)
    chosen = env.lock("retried-write", id="chosen")
    plain.set("lock:retried-write", "chosen")
    with pytest.raises(redis_lock.AlreadyAcquired):
        env.run(chosen.acquire, blocking=False)


def test_release_of_a_lock_not_held_raises_not_acquired(env: Flavour) -> None:
    """Releasing a free lock, or one another id holds, raises NotAcquired and changes nothing."""
    lock = env.lock("foreign")
    with pytest.raises(
        redis_lock.NotAcquired, match=r"Lock\(lock:foreign\) is not acquired or it already expired."
    ):
        env.run(lock.release)
    holder = env.lock("foreign")
    env.run(holder.acquire)
    with pytest.raises(redis_lock.NotAcquired):
        env.run(lock.release)
    assert env.run(holder.owned)


def test_release_with_the_owner_id_from_another_instance(env: Flavour) -> None:
    """As documented since 4.x, a lock acquired in one place is released by a lock given the same id."""
    first = env.lock("handover")
    env.run(first.acquire)
    env.run(env.lock("handover", id=first.id).release)
    assert not env.run(first.locked)


@pytest.mark.parametrize(
    ("given", "stored"),
    [("host-1", "host-1"), (b"host-1", "host-1"), (b"\xff\xfe", "//4="), ("n\u00e9e", "n\u00e9e")],
    ids=["str", "ascii-bytes", "binary-bytes", "non-ascii-str"],
)
def test_ids_as_str_or_bytes(env: Flavour, given: str | bytes, stored: str) -> None:
    """An id given as str is kept; bytes are decoded as ASCII or else base64-encoded, as in 4.x."""
    lock = env.lock("ids", id=given)
    assert lock.id == stored
    assert env.run(lock.acquire)
    assert env.run(lock.get_owner_id) == stored
    assert env.run(lock.owned)
    env.run(lock.release)


def test_default_ids_are_random(env: Flavour) -> None:
    """Each lock without an id gets its own random 24-character id."""
    ids = {env.lock("random").id for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 24 for i in ids)


# -- expiry and extend -------------------------------------------------------------


def test_fixes_4x_millisecond_expiry(env: Flavour, plain: redis.Redis) -> None:
    """expire=0.25 sets a 250 ms TTL (4.x truncated it to 0, a server error) and the lock expires."""
    lock = env.lock("ms", expire=0.25)
    assert env.run(lock.acquire)
    assert 0 < plain.pttl("lock:ms") <= 250
    wait_for(lambda: plain.exists("lock:ms") == 0, timeout=3, what="the lock to expire")
    assert not env.run(lock.locked)


def test_extend_resets_the_ttl(env: Flavour, plain: redis.Redis) -> None:
    """extend() sets the TTL to the given seconds, or to the constructor's expire by default."""
    lock = env.lock("extend", expire=10)
    env.run(lock.acquire)
    env.run(lock.extend, 100)
    assert 99_000 < plain.pttl("lock:extend") <= 100_000
    env.run(lock.extend)
    assert 9_000 < plain.pttl("lock:extend") <= 10_000
    env.run(lock.extend, 0.5)
    assert 0 < plain.pttl("lock:extend") <= 500


def test_extend_errors(env: Flavour) -> None:
    """extend() raises NotAcquired for a lock it does not hold, NotExpirable for a key without TTL."""
    lock = env.lock("extend-errors")
    with pytest.raises(TypeError, match="To extend a lock 'expire' must be provided"):
        env.run(lock.extend)
    with pytest.raises(redis_lock.NotAcquired, match="Lock lock:extend-errors is not acquired"):
        env.run(lock.extend, 10)
    env.run(lock.acquire)
    with pytest.raises(
        redis_lock.NotExpirable, match="Lock lock:extend-errors has no assigned expiration time"
    ):
        env.run(lock.extend, 10)


# -- waiting -----------------------------------------------------------------------


def test_waiter_wakes_on_release(env: Flavour, plain: redis.Redis) -> None:
    """A blocked waiter is woken by the release signal within a fraction of a second."""
    holder = env.lock("handoff")
    env.run(holder.acquire)
    # The client has no socket timeout: a waiter that missed the signal would sleep ~10 s.
    waiter = env.lock("handoff")
    acquired = env.submit(waiter.acquire)
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block in BLPOP")
    released = time.monotonic()
    env.run(holder.release)
    assert acquired.result(10) is True
    assert time.monotonic() - released < 0.5
    assert env.run(waiter.owned)


def test_fixes_4x_waiter_wakes_when_the_holder_expires(env: Flavour) -> None:
    """A waiter wakes when the holder's key expires, not at the end of its own timeout (4.x waited it out)."""
    holder = env.lock("expiry", expire=0.3)
    env.run(holder.acquire)
    started = time.monotonic()
    assert env.run(env.lock("expiry").acquire, timeout=10)
    assert 0.25 <= time.monotonic() - started < 1.5


def test_fixes_4x_sub_second_timeout(env: Flavour) -> None:
    """acquire(timeout=0.3) on a busy lock returns False after about 0.3 s (4.x waited forever)."""
    env.run(env.lock("subsecond").acquire)
    started = time.monotonic()
    assert env.run(env.lock("subsecond").acquire, timeout=0.3) is False
    assert 0.29 <= time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("flavour", "kind"),
    [("sync", "redis"), ("async", "redis"), ("async", "valkey")],
    ids=["Lock-redis", "AsyncLock-redis", "AsyncLock-valkey"],
    indirect=["flavour"],
)
def test_fixes_4x_wait_survives_the_socket_timeout(flavour: Flavour, kind: str, plain: redis.Redis) -> None:
    """A 3 s wait through a client with socket_timeout=1 returns False, raising no TimeoutError."""
    holder = flavour.lock("socket", flavour.make(kind))
    flavour.run(holder.acquire)
    client = flavour.make(kind, socket_timeout=1)
    plain.config_resetstat()
    started = time.monotonic()
    assert flavour.run(flavour.lock("socket", client).acquire, timeout=3) is False
    assert 2.9 <= time.monotonic() - started < 6
    # The wait was split into BLPOPs below the socket timeout, not a poll.
    assert 4 <= commandstats(plain)["blpop"] <= 12


def test_fixes_4x_wait_without_timeout_survives_the_socket_timeout(flavour: Flavour) -> None:
    """A blocking wait with no timeout, through socket_timeout=1, outlives several socket timeouts."""
    holder = flavour.lock("socket-forever", flavour.make())
    flavour.run(holder.acquire)
    acquired = flavour.submit(flavour.lock("socket-forever", flavour.make(socket_timeout=1)).acquire)
    done, _ = concurrent.futures.wait([acquired], timeout=2.5)
    assert not done  # still waiting, and no error ended the wait
    flavour.run(holder.release)
    assert acquired.result(10) is True


def test_constructor_timeout_applies_to_the_with_statement(env: Flavour) -> None:
    """Lock(timeout=...) bounds the with statement's wait and raises AcquireTimeout (a NotAcquired)."""
    env.run(env.lock("with-timeout").acquire)
    started = time.monotonic()
    with pytest.raises(redis_lock.AcquireTimeout) as raised:
        env.within(
            env.lock("with-timeout", timeout=0.2), lambda entered: pytest.fail("the body must not run")
        )
    assert 0.19 <= time.monotonic() - started < 1.5
    assert isinstance(raised.value, redis_lock.NotAcquired)


def test_with_statement_non_blocking(env: Flavour) -> None:
    """With blocking=False the with statement raises NotAcquired at once on a busy lock."""
    env.run(env.lock("with-nb").acquire)
    with pytest.raises(redis_lock.NotAcquired) as raised:
        env.within(env.lock("with-nb", blocking=False), lambda entered: pytest.fail("the body must not run"))
    assert not isinstance(raised.value, redis_lock.AcquireTimeout)


def test_with_statement_acquires_and_releases(env: Flavour) -> None:
    """The with statement holds the lock in its body and releases it after."""
    lock = env.lock("with")

    def body(entered: Any) -> Any:
        assert entered is lock
        return lock.owned()

    assert env.within(lock, body) is True
    assert not env.run(lock.locked)


# -- round trips ---------------------------------------------------------------------


def test_fixes_4x_uncontended_acquire_is_one_round_trip(env: Flavour, plain: redis.Redis) -> None:
    """A free lock is taken with one EVALSHA and released with one (4.x sent GET, then SET)."""
    lock = env.lock("one-rt")
    env.run(lock.acquire)  # loads the script on first use
    env.run(lock.release)
    sent = env.record(env.client)
    plain.config_resetstat()
    env.run(lock.acquire)
    assert sent == ["EVALSHA"]
    stats = commandstats(plain)
    assert stats["evalsha"] == 1
    assert not {"get", "exists", "blpop", "script|load"} & set(stats)
    sent.clear()
    env.run(lock.release)
    assert sent == ["EVALSHA"]
    assert commandstats(plain)["evalsha"] == 2


def test_contended_acquire_round_trips(flavour: Flavour, plain: redis.Redis) -> None:
    """A waiter woken by a release needs three requests: acquire, BLPOP, acquire."""
    holder = flavour.lock("contended", flavour.make())
    flavour.run(holder.acquire)
    client = flavour.make()
    sent = flavour.record(client)
    acquired = flavour.submit(flavour.lock("contended", client).acquire)
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    flavour.run(holder.release)
    assert acquired.result(10) is True
    assert sent in (
        ["EVALSHA", "BLPOP", "EVALSHA"],
        ["EVALSHA", "SCRIPT", "EVALSHA", "BLPOP", "EVALSHA"],
    )


# -- reset ---------------------------------------------------------------------------


def test_reset_deletes_any_holder_and_wakes_a_waiter(env: Flavour, plain: redis.Redis) -> None:
    """reset() deletes the lock whoever holds it, and a blocked waiter then gets it."""
    holder = env.lock("reset")
    env.run(holder.acquire)
    waiter = env.lock("reset")
    acquired = env.submit(waiter.acquire)
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    reset_at = time.monotonic()
    env.run(env.lock("reset").reset)
    assert acquired.result(10) is True
    assert time.monotonic() - reset_at < 0.5
    assert env.run(waiter.owned)


def test_fixes_4x_reset_all_uses_scan(env: Flavour, plain: redis.Redis) -> None:
    """reset_all deletes every lock over several SCAN pages, never calls KEYS, and spares other keys."""
    for n in range(1200):  # taken through a synchronous client: the setup is not under test, and faster so
        redis_lock.Lock(plain, f"many-{n}", expire=100 if n % 2 else None).acquire()
    plain.set("unrelated", "x")
    plain.config_resetstat()
    assert env.reset_all(env.client) == 1200
    stats = commandstats(plain)
    assert "keys" not in stats
    assert stats["scan"] >= 2
    assert plain.keys("lock:*") == []
    assert plain.get("unrelated") == b"x"
    signals = plain.keys("lock-signal:*")
    assert len(signals) == 1200
    assert all(0 < plain.pttl(key) <= 1000 for key in signals[:20])


def test_reset_all_wakes_waiters(env: Flavour, plain: redis.Redis) -> None:
    """A waiter blocked on a lock acquires it after reset_all."""
    env.run(env.lock("reset-all-wait").acquire)
    acquired = env.submit(env.lock("reset-all-wait").acquire)
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    assert env.reset_all(env.client, signal_expire=500) == 1
    assert acquired.result(10) is True


def test_release_leaves_only_a_short_lived_signal(env: Flavour, plain: redis.Redis) -> None:
    """After a release the signal list holds one element that expires after signal_expire ms."""
    lock = env.lock("signal", signal_expire=300)
    env.run(lock.acquire)
    env.run(lock.release)
    assert plain.lrange("lock-signal:signal", 0, -1) == [b"1"]
    assert 0 < plain.pttl("lock-signal:signal") <= 300


# -- auto-renewal ----------------------------------------------------------------------


def test_auto_renewal_keeps_the_lock(env: Flavour, plain: redis.Redis) -> None:
    """With auto_renewal the lock outlives several expiries, and release stops the renewal."""
    lock = env.lock("renew", expire=0.6, auto_renewal=True)
    # The 4.x hook: renewing every 0.15 s leaves 0.45 s of slack for a CPU shared with other test workers.
    lock._lock_renewal_interval = 0.15
    env.run(lock.acquire)
    ended = env.renewal_ended(lock)
    time.sleep(1.5)  # the behaviour under test: the key survives 2.5 expiries
    assert env.run(lock.owned)
    assert 0 < plain.pttl("lock:renew") <= 600
    env.run(lock.release)
    assert ended()
    assert plain.exists("lock:renew") == 0
    assert not env.run(lock.locked)
    assert not lock.lost


def test_auto_renewal_interval_subclass_hook(env: Flavour, caplog: pytest.LogCaptureFixture) -> None:
    """The 4.x hook works: a subclass setting _lock_renewal_interval after __init__ renews at that pace."""
    lock = env.fast_lock("hook", expire=30, auto_renewal=True)
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        env.run(lock.acquire)
        wait_for(
            lambda: sum(r.getMessage() == "Refreshing Lock('lock:hook')." for r in caplog.records) >= 5,
            timeout=5,
            what="five renewals",
        )
        env.run(lock.release)


def test_auto_renewal_stops_when_the_lock_is_collected(
    env: Flavour, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal whose lock was garbage-collected ends at once, as logged since 4.x."""
    lock = env.lock("collected", expire=60, auto_renewal=True)
    env.run(lock.acquire)
    ended = env.renewal_ended(lock)
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        del lock
        gc.collect()
        wait_for(
            ended, timeout=5, what="the renewal to end"
        )  # its interval is 40 s: only the collection ends it
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == REFRESH_LOGGER] == [
        (
            REFRESH_LOGGER,
            logging.DEBUG,
            "Stopping loop because Lock('lock:collected') was garbage collected.",
        ),
        (REFRESH_LOGGER, logging.DEBUG, "Exiting renewal thread for Lock('lock:collected')."),
    ]


def test_fixes_4x_renewal_failure_is_surfaced(
    env: Flavour, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """When another client takes the key, renewal marks the lock lost, logs at ERROR, release raises LockLost.

    The instance stays reusable (4.x: the thread died silently and the next acquire raised AlreadyStarted).
    """
    lock = env.lock("lost", expire=0.3, auto_renewal=True)
    with caplog.at_level(logging.ERROR, logger=REFRESH_LOGGER):
        env.run(lock.acquire)
        ended = env.renewal_ended(lock)
        plain.set("lock:lost", "somebody-else")
        wait_for(ended, timeout=5, what="the renewal to notice the loss")
    assert lock.lost
    errors = [r for r in caplog.records if r.name == REFRESH_LOGGER and r.levelno == logging.ERROR]
    assert [e.getMessage() for e in errors] == [
        "Lost Lock('lock:lost'): another client holds it, or it expired or was reset."
    ]
    with pytest.raises(redis_lock.LockLost) as raised:
        env.run(lock.release)
    assert isinstance(raised.value, redis_lock.NotAcquired)
    assert isinstance(raised.value.__cause__, redis_lock.NotAcquired)
    assert plain.get("lock:lost") == b"somebody-else"
    assert not lock.lost
    plain.delete("lock:lost")
    assert env.run(lock.acquire)
    assert env.run(lock.owned)
    env.run(lock.release)


def test_renewal_retries_connection_errors_until_the_lease_runs_out(
    flavour: Flavour, own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server gone, renewal retries (WARNING), marks the lock lost once the lease ends (ERROR)."""
    client = flavour.make(url=own_server.url, socket_timeout=1, socket_connect_timeout=1)
    lock = flavour.lock("outage", client, expire=0.6, auto_renewal=True)
    with caplog.at_level(logging.WARNING, logger=REFRESH_LOGGER):
        started = time.monotonic()
        flavour.run(lock.acquire)
        ended = flavour.renewal_ended(lock)
        own_server.kill()
        # The renewal, not a look at `lost`, sees the lease run out (whoever sees it first logs it).
        wait_for(ended, timeout=10, what="the lease to run out")
        lost_after = time.monotonic() - started
    assert lock.lost
    records = [r for r in caplog.records if r.name == REFRESH_LOGGER]
    levels = [r.levelno for r in records]
    assert levels.count(logging.WARNING) >= 2
    assert levels[-1] == logging.ERROR
    assert "renewal kept failing until its lease ran out" in records[-1].getMessage()
    assert 0.55 <= lost_after < 2
    own_server.start()
    with pytest.raises(redis_lock.LockLost):
        flavour.run(lock.release)
    assert flavour.run(lock.acquire)
    flavour.run(lock.release)


def test_a_failed_release_keeps_reporting_the_loss(flavour: Flavour, own_server: RedisServer) -> None:
    """A release that fails on a connection error leaves `lost` set, so the retried release raises LockLost."""
    client = flavour.make(url=own_server.url, socket_timeout=1, socket_connect_timeout=1)
    lock = flavour.lock("lost-retry", client, expire=0.3, auto_renewal=True)
    flavour.run(lock.acquire)
    with redis.Redis.from_url(own_server.url) as other:
        other.set("lock:lost-retry", "somebody-else")
    wait_for(lambda: lock.lost, timeout=5, what="the renewal to notice the loss")
    own_server.stop()
    with pytest.raises(redis.ConnectionError):
        flavour.run(lock.release)
    assert lock.lost
    own_server.start()
    with pytest.raises(redis_lock.LockLost):
        flavour.run(lock.release)


# -- the with statement and errors --------------------------------------------------------


def test_fixes_4x_release_error_does_not_hide_the_body_exception(
    env: Flavour, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """If the body raises and the release fails too, the body's exception propagates; the other is logged."""

    def body(entered: Any) -> None:
        plain.delete("lock:body")
        raise KeyError("from the body")

    with caplog.at_level(logging.WARNING, logger="redis_lock.release"), pytest.raises(KeyError) as raised:
        env.within(env.lock("body"), body)
    assert raised.value.args == ("from the body",)
    assert any("Releasing Lock('lock:body') failed" in r.getMessage() for r in caplog.records)
    if sys.version_info >= (3, 11):
        assert any("NotAcquired" in note for note in raised.value.__notes__)


def test_release_error_without_body_exception_propagates(env: Flavour, plain: redis.Redis) -> None:
    """If the body succeeds but the lock was lost, leaving the with statement raises NotAcquired."""
    with pytest.raises(redis_lock.NotAcquired):
        env.within(env.lock("body-ok"), lambda entered: plain.delete("lock:body-ok"))


# -- clients ---------------------------------------------------------------------------------


def test_strict_rejects_other_clients_and_strict_false_accepts_them(env: Flavour) -> None:
    """strict=True rejects a non-Redis client with 4.x's ValueError; strict=False lets it work."""
    client = env.delegating(env.client)
    expected = (
        r"redis\.asyncio\.Redis or valkey\.asyncio\.Valkey"
        if env.asyncio
        else r"redis\.Redis or valkey\.Valkey"
    )
    with pytest.raises(ValueError, match=r"redis_client must be a " + expected) as raised:
        env.lock("strict", client)
    assert type(client).__name__ in str(raised.value)
    lock = env.lock("strict", client, strict=False)
    assert env.run(lock.acquire)
    assert env.run(lock.owned)
    env.run(lock.release)
    assert env.reset_all(client) == 0


def test_constructor_does_no_io(env: Flavour, plain: redis.Redis) -> None:
    """Constructing a lock sends nothing to Redis."""
    plain.config_resetstat()
    env.lock("no-io", expire=5, auto_renewal=True, timeout=1)
    assert set(commandstats(plain)) <= {"config|resetstat", "info"}


# -- logging ------------------------------------------------------------------------------------


def test_log_messages_match_4x_and_never_carry_the_id(env: Flavour, caplog: pytest.LogCaptureFixture) -> None:
    """Acquire, renewal and release log 4.x's messages on 4.x's loggers, and no record contains the id."""
    lock = env.lock("logs", id="secret-id-123", expire=30, auto_renewal=True)
    with caplog.at_level(logging.DEBUG, logger="redis_lock"):
        env.run(lock.acquire)
        env.run(lock.release)
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
