"""Behaviour of redis_lock.Lock against a real Redis, with every client flavour.

Tests named ``test_fixes_4x_*`` cover a python-redis-lock 4.x bug that 5.x fixes
on purpose (DESIGN.md section 3); each asserts what 4.x got wrong.
"""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import redis_lock

from ._clients import Delegating
from ._server import RedisServer
from ._topology import wait_for
from .conftest import MakeClient

REFRESH_LOGGER = "redis_lock.refresh.thread"


def blocked_clients(client: redis.Redis) -> int:
    clients: int = client.info("clients")["blocked_clients"]
    return clients


class Waiter(threading.Thread):
    """Runs ``lock.acquire(**kwargs)`` in a thread and records when it returned and what."""

    def __init__(self, lock: redis_lock.Lock, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.lock = lock
        self.kwargs = kwargs
        self.result: bool | None = None
        self.error: BaseException | None = None
        self.returned_at = 0.0

    def run(self) -> None:
        try:
            self.result = self.lock.acquire(**self.kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            self.returned_at = time.monotonic()

    def finish(self, timeout: float = 10.0) -> bool | None:
        self.join(timeout)
        assert not self.is_alive(), "the waiter is still blocked"
        if self.error is not None:
            raise self.error
        return self.result


class CountingRedis(redis.Redis):
    """A real redis-py client that records the name of every command it sends (one per round trip)."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        # redis-py leaves execute_command unannotated.
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


@pytest.fixture
def counting(redis_url: str, plain: redis.Redis) -> Iterator[CountingRedis]:
    client = CountingRedis(connection_pool=redis.ConnectionPool.from_url(redis_url))
    client.sent = []
    yield client
    client.close()


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()
    }


# -- acquire and release ---------------------------------------------------------


def test_acquire_release(conn: Any, plain: redis.Redis) -> None:
    """A free lock is acquired, stored under lock:<name> with the lock's id, and deleted on release."""
    lock = redis_lock.Lock(conn, "basic")
    assert lock.acquire()
    assert plain.get("lock:basic") == lock.id.encode()
    assert lock.locked()
    assert lock.owned()
    assert lock.get_owner_id() == lock.id
    lock.release()
    assert plain.exists("lock:basic") == 0
    assert not lock.locked()
    assert not lock.owned()
    assert lock.get_owner_id() is None


def test_non_blocking_acquire_of_a_busy_lock_returns_false(
    conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-blocking acquire of a held lock returns False at once and logs the 4.x warning."""
    holder = redis_lock.Lock(conn, "busy")
    assert holder.acquire()
    other = redis_lock.Lock(conn, "busy")
    with caplog.at_level(logging.WARNING, logger="redis_lock.acquire"):
        assert other.acquire(blocking=False) is False
    assert (
        "redis_lock.acquire",
        logging.WARNING,
        "Failed to acquire Lock('lock:busy').",
    ) in caplog.record_tuples
    assert holder.owned()
    assert not other.owned()


def test_acquire_twice_raises_already_acquired(conn: Any) -> None:
    """Acquiring again with the same id, on the same or another instance, raises AlreadyAcquired."""
    lock = redis_lock.Lock(conn, "twice", id="me")
    assert lock.acquire()
    with pytest.raises(redis_lock.AlreadyAcquired, match=r"Already acquired from this Lock instance\."):
        lock.acquire()
    with pytest.raises(redis_lock.AlreadyAcquired):
        redis_lock.Lock(conn, "twice", id="me").acquire(blocking=False)
    assert lock.owned()


def test_owned_by_its_own_generated_id_means_this_call_took_it(conn: Any, plain: redis.Redis) -> None:
    """ "Owned" by an instance's generated id that it does not hold can only be its own retried write.

    (What a client retry leaves behind: ``test_faults.test_a_retried_acquire_takes_the_lock_once``.)
    A chosen id may be shared, so there "owned" keeps meaning AlreadyAcquired, as in 4.x.
    """
    lock = redis_lock.Lock(conn, "retried-write", expire=30)
    plain.set("lock:retried-write", lock.id, px=30_000)  # as if a first copy of acquire.lua had run
    assert lock.acquire(blocking=False) is True
    assert lock.owned()
    with pytest.raises(redis_lock.AlreadyAcquired):
        lock.acquire(blocking=False)  # now it holds it: a second acquire is an error
    lock.release()
    chosen = redis_lock.Lock(conn, "retried-write", id="chosen")
    plain.set("lock:retried-write", "chosen")
    with pytest.raises(redis_lock.AlreadyAcquired):
        chosen.acquire(blocking=False)


def test_release_of_a_lock_not_held_raises_not_acquired(conn: Any) -> None:
    """Releasing a free lock, or one another id holds, raises NotAcquired and changes nothing."""
    lock = redis_lock.Lock(conn, "foreign")
    with pytest.raises(
        redis_lock.NotAcquired, match=r"Lock\(lock:foreign\) is not acquired or it already expired."
    ):
        lock.release()
    holder = redis_lock.Lock(conn, "foreign")
    holder.acquire()
    with pytest.raises(redis_lock.NotAcquired):
        lock.release()
    assert holder.owned()


def test_release_with_the_owner_id_from_another_instance(conn: Any) -> None:
    """As documented since 4.x, a lock acquired in one place is released by a Lock given the same id."""
    first = redis_lock.Lock(conn, "handover")
    first.acquire()
    redis_lock.Lock(conn, "handover", id=first.id).release()
    assert not first.locked()


@pytest.mark.parametrize(
    ("given", "stored"),
    [("host-1", "host-1"), (b"host-1", "host-1"), (b"\xff\xfe", "//4="), ("n\u00e9e", "n\u00e9e")],
    ids=["str", "ascii-bytes", "binary-bytes", "non-ascii-str"],
)
def test_ids_as_str_or_bytes(conn: Any, given: str | bytes, stored: str) -> None:
    """An id given as str is kept; bytes are decoded as ASCII or else base64-encoded, as in 4.x."""
    lock = redis_lock.Lock(conn, "ids", id=given)
    assert lock.id == stored
    assert lock.acquire()
    assert lock.get_owner_id() == stored
    assert lock.owned()
    lock.release()


def test_default_ids_are_random(conn: Any) -> None:
    """Each Lock without an id gets its own random 24-character id."""
    ids = {redis_lock.Lock(conn, "random").id for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 24 for i in ids)


# -- expiry and extend -------------------------------------------------------------


def test_fixes_4x_millisecond_expiry(conn: Any, plain: redis.Redis) -> None:
    """expire=0.25 sets a 250 ms TTL (4.x truncated it to 0, a server error) and the lock expires."""
    lock = redis_lock.Lock(conn, "ms", expire=0.25)
    assert lock.acquire()
    assert 0 < plain.pttl("lock:ms") <= 250
    wait_for(lambda: not lock.locked(), timeout=3, what="the lock to expire")


def test_extend_resets_the_ttl(conn: Any, plain: redis.Redis) -> None:
    """extend() sets the TTL to the given seconds, or to the constructor's expire by default."""
    lock = redis_lock.Lock(conn, "extend", expire=10)
    lock.acquire()
    lock.extend(100)
    assert 99_000 < plain.pttl("lock:extend") <= 100_000
    lock.extend()
    assert 9_000 < plain.pttl("lock:extend") <= 10_000
    lock.extend(0.5)
    assert 0 < plain.pttl("lock:extend") <= 500


def test_extend_errors(conn: Any) -> None:
    """extend() raises NotAcquired for a lock it does not hold, NotExpirable for a key without TTL."""
    lock = redis_lock.Lock(conn, "extend-errors")
    with pytest.raises(TypeError, match="To extend a lock 'expire' must be provided"):
        lock.extend()
    with pytest.raises(redis_lock.NotAcquired, match="Lock lock:extend-errors is not acquired"):
        lock.extend(10)
    lock.acquire()
    with pytest.raises(
        redis_lock.NotExpirable, match="Lock lock:extend-errors has no assigned expiration time"
    ):
        lock.extend(10)


# -- waiting -----------------------------------------------------------------------


def test_waiter_wakes_on_release(conn: Any, plain: redis.Redis) -> None:
    """A blocked waiter is woken by the release signal within a fraction of a second."""
    holder = redis_lock.Lock(conn, "handoff")
    holder.acquire()
    waiter = Waiter(redis_lock.Lock(conn, "handoff"))
    waiter.start()
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block in BLPOP")
    released = time.monotonic()
    holder.release()
    assert waiter.finish() is True
    assert waiter.returned_at - released < 0.5
    assert waiter.lock.owned()


def test_fixes_4x_waiter_wakes_when_the_holder_expires(conn: Any) -> None:
    """A waiter wakes when the holder's key expires, not at the end of its own timeout (4.x waited it out)."""
    holder = redis_lock.Lock(conn, "expiry", expire=0.4)
    holder.acquire()
    started = time.monotonic()
    assert redis_lock.Lock(conn, "expiry").acquire(timeout=10)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0


def test_fixes_4x_sub_second_timeout(conn: Any) -> None:
    """acquire(timeout=0.3) on a busy lock returns False after about 0.3 s (4.x waited forever)."""
    redis_lock.Lock(conn, "subsecond").acquire()
    started = time.monotonic()
    assert redis_lock.Lock(conn, "subsecond").acquire(timeout=0.3) is False
    assert 0.29 <= time.monotonic() - started < 1.5


def test_fixes_4x_wait_survives_the_socket_timeout(make_client: MakeClient, plain: redis.Redis) -> None:
    """A 3 s wait through a client with socket_timeout=1 returns False, raising no TimeoutError."""
    holder = redis_lock.Lock(make_client(), "socket")
    holder.acquire()
    client = make_client(socket_timeout=1)
    started = time.monotonic()
    assert redis_lock.Lock(client, "socket").acquire(timeout=3) is False
    assert 2.9 <= time.monotonic() - started < 6


def test_fixes_4x_wait_without_timeout_survives_the_socket_timeout(
    make_client: MakeClient, plain: redis.Redis
) -> None:
    """A blocking wait with no timeout, through socket_timeout=1, outlives several socket timeouts."""
    holder = redis_lock.Lock(make_client(), "socket-forever")
    holder.acquire()
    waiter = Waiter(redis_lock.Lock(make_client(socket_timeout=1), "socket-forever"))
    waiter.start()
    waiter.join(2.5)
    assert waiter.is_alive()
    assert waiter.error is None
    holder.release()
    assert waiter.finish() is True


def test_constructor_timeout_applies_to_the_with_statement(conn: Any) -> None:
    """Lock(timeout=...) bounds the with statement's wait and raises AcquireTimeout (a NotAcquired)."""
    redis_lock.Lock(conn, "with-timeout").acquire()
    started = time.monotonic()
    with (
        pytest.raises(redis_lock.AcquireTimeout),
        redis_lock.Lock(conn, "with-timeout", timeout=0.2),
    ):
        pytest.fail("the body must not run")
    assert 0.19 <= time.monotonic() - started < 1.5
    assert issubclass(redis_lock.AcquireTimeout, redis_lock.NotAcquired)


def test_with_statement_non_blocking(conn: Any) -> None:
    """With blocking=False the with statement raises NotAcquired at once on a busy lock."""
    redis_lock.Lock(conn, "with-nb").acquire()
    with pytest.raises(redis_lock.NotAcquired), redis_lock.Lock(conn, "with-nb", blocking=False):
        pytest.fail("the body must not run")


def test_with_statement_acquires_and_releases(conn: Any) -> None:
    """The with statement holds the lock in its body and releases it after."""
    lock = redis_lock.Lock(conn, "with")
    with lock as entered:
        assert entered is lock
        assert lock.owned()
    assert not lock.locked()


# -- round trips ---------------------------------------------------------------------


def test_fixes_4x_uncontended_acquire_is_one_round_trip(counting: CountingRedis, plain: redis.Redis) -> None:
    """A free lock is taken with one EVALSHA and released with one (4.x sent GET, then SET)."""
    lock = redis_lock.Lock(counting, "one-rt")
    lock.acquire()  # loads the script on first use
    lock.release()
    counting.sent.clear()
    plain.config_resetstat()
    lock.acquire()
    assert counting.sent == ["EVALSHA"]
    stats = commandstats(plain)
    assert stats["evalsha"] == 1
    assert "get" not in stats
    assert "exists" not in stats
    counting.sent.clear()
    lock.release()
    assert counting.sent == ["EVALSHA"]


def test_contended_acquire_round_trips(counting: CountingRedis, plain: redis.Redis) -> None:
    """A waiter woken by a release needs three requests: acquire, BLPOP, acquire."""
    holder = redis_lock.Lock(plain, "contended")
    holder.acquire()
    waiter = Waiter(redis_lock.Lock(counting, "contended"))
    counting.sent.clear()
    waiter.start()
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    holder.release()
    assert waiter.finish() is True
    assert counting.sent in (
        ["EVALSHA", "BLPOP", "EVALSHA"],
        ["EVALSHA", "SCRIPT", "EVALSHA", "BLPOP", "EVALSHA"],
    )


# -- reset ---------------------------------------------------------------------------


def test_reset_deletes_any_holder_and_wakes_a_waiter(conn: Any, plain: redis.Redis) -> None:
    """reset() deletes the lock whoever holds it, and a blocked waiter then gets it."""
    holder = redis_lock.Lock(conn, "reset")
    holder.acquire()
    waiter = Waiter(redis_lock.Lock(conn, "reset"))
    waiter.start()
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    redis_lock.Lock(conn, "reset").reset()
    assert waiter.finish() is True
    assert waiter.lock.owned()


def test_fixes_4x_reset_all_uses_scan(conn: Any, plain: redis.Redis) -> None:
    """reset_all deletes every lock over several SCAN pages, never calls KEYS, and spares other keys."""
    for n in range(1200):
        redis_lock.Lock(conn, f"many-{n}", expire=100 if n % 2 else None).acquire()
    plain.set("unrelated", "x")
    plain.config_resetstat()
    assert redis_lock.reset_all(conn) == 1200
    stats = commandstats(plain)
    assert "keys" not in stats
    assert stats["scan"] >= 2
    assert plain.keys("lock:*") == []
    assert plain.get("unrelated") == b"x"
    signals = plain.keys("lock-signal:*")
    assert len(signals) == 1200
    assert all(0 < plain.pttl(key) <= 1000 for key in signals[:20])


def test_reset_all_wakes_waiters(conn: Any, plain: redis.Redis) -> None:
    """A waiter blocked on a lock acquires it after reset_all."""
    redis_lock.Lock(conn, "reset-all-wait").acquire()
    waiter = Waiter(redis_lock.Lock(conn, "reset-all-wait"))
    waiter.start()
    wait_for(lambda: blocked_clients(plain) == 1, what="the waiter to block")
    redis_lock.reset_all(conn)
    assert waiter.finish() is True


def test_release_leaves_only_a_short_lived_signal(conn: Any, plain: redis.Redis) -> None:
    """After a release the signal list holds one element that expires after signal_expire ms."""
    lock = redis_lock.Lock(conn, "signal", signal_expire=300)
    lock.acquire()
    lock.release()
    assert plain.lrange("lock-signal:signal", 0, -1) == [b"1"]
    assert 0 < plain.pttl("lock-signal:signal") <= 300


# -- auto-renewal ----------------------------------------------------------------------


def test_auto_renewal_keeps_the_lock(conn: Any, plain: redis.Redis) -> None:
    """With auto_renewal the lock outlives several expiries, and release stops the thread."""
    lock = redis_lock.Lock(conn, "renew", expire=0.6, auto_renewal=True)
    lock.acquire()
    thread = lock._lock_renewal_thread
    assert thread is not None
    assert thread.daemon
    time.sleep(1.5)  # the behaviour under test: the key survives 2.5 expiries
    assert lock.owned()
    assert 0 < plain.pttl("lock:renew") <= 600
    lock.release()
    assert not thread.is_alive()
    assert not lock.locked()


def test_auto_renewal_interval_subclass_hook(conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The 4.x hook works: a subclass setting _lock_renewal_interval after __init__ renews at that pace."""

    class FastLock(redis_lock.Lock):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._lock_renewal_interval = 0.05

    lock = FastLock(conn, "hook", expire=30, auto_renewal=True)
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        lock.acquire()
        wait_for(
            lambda: sum(r.getMessage() == "Refreshing Lock('lock:hook')." for r in caplog.records) >= 5,
            timeout=5,
            what="five renewals",
        )
        lock.release()


def test_auto_renewal_stops_when_the_lock_is_collected(conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A renewal thread whose lock was garbage-collected exits at once, as logged since 4.x."""
    lock = redis_lock.Lock(conn, "collected", expire=60, auto_renewal=True)
    lock.acquire()
    thread = lock._lock_renewal_thread
    assert thread is not None
    with caplog.at_level(logging.DEBUG, logger=REFRESH_LOGGER):
        del lock
        gc.collect()
        thread.join(5)
    assert not thread.is_alive()
    assert (
        REFRESH_LOGGER,
        logging.DEBUG,
        "Stopping loop because Lock('lock:collected') was garbage collected.",
    ) in caplog.record_tuples


def test_auto_renewal_never_keeps_the_process_alive(redis_url: str) -> None:
    """A process that exits while holding a renewed lock exits promptly: the renewal thread is a daemon."""
    code = textwrap.dedent(
        f"""
        import redis, redis_lock
        lock = redis_lock.Lock(redis.Redis.from_url({redis_url!r}), "daemon", expire=60, auto_renewal=True)
        assert lock.acquire()
        print("held", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "held\n"


def test_fixes_4x_renewal_failure_is_surfaced(
    conn: Any, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """When another client takes the key, renewal marks the lock lost, logs at ERROR, release raises LockLost.

    The instance stays reusable (4.x: the thread died silently and the next acquire raised AlreadyStarted).
    """
    lock = redis_lock.Lock(conn, "lost", expire=0.3, auto_renewal=True)
    with caplog.at_level(logging.ERROR, logger=REFRESH_LOGGER):
        lock.acquire()
        plain.set("lock:lost", "somebody-else")
        wait_for(lambda: lock.lost, timeout=5, what="the renewal to notice the loss")
    errors = [r for r in caplog.records if r.name == REFRESH_LOGGER and r.levelno == logging.ERROR]
    assert errors
    assert "Lost Lock('lock:lost')" in errors[0].getMessage()
    with pytest.raises(redis_lock.LockLost) as raised:
        lock.release()
    assert isinstance(raised.value, redis_lock.NotAcquired)
    assert isinstance(raised.value.__cause__, redis_lock.NotAcquired)
    assert plain.get("lock:lost") == b"somebody-else"
    assert not lock.lost
    plain.delete("lock:lost")
    assert lock.acquire()
    assert lock.owned()
    lock.release()


def test_renewal_retries_connection_errors_until_the_lease_runs_out(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server gone, renewal retries (WARNING), marks the lock lost once the lease ends (ERROR)."""
    client = redis.Redis.from_url(own_server.url, socket_timeout=1, socket_connect_timeout=1)
    lock = redis_lock.Lock(client, "outage", expire=0.6, auto_renewal=True)
    with caplog.at_level(logging.WARNING, logger=REFRESH_LOGGER):
        lock.acquire()
        started = time.monotonic()
        own_server.kill()
        wait_for(lambda: lock.lost, timeout=10, what="the lease to run out")
        lost_after = time.monotonic() - started
    levels = [r.levelno for r in caplog.records if r.name == REFRESH_LOGGER]
    assert logging.WARNING in levels
    assert levels[-1] == logging.ERROR
    assert lost_after < 5
    own_server.start()
    with pytest.raises(redis_lock.LockLost):
        lock.release()
    assert lock.acquire()
    lock.release()
    client.close()


def test_a_failed_release_keeps_reporting_the_loss(own_server: RedisServer) -> None:
    """A release that fails on a connection error leaves `lost` set, so the retried release raises LockLost."""
    client = redis.Redis.from_url(own_server.url, socket_timeout=1, socket_connect_timeout=1)
    other = redis.Redis.from_url(own_server.url)
    lock = redis_lock.Lock(client, "lost-retry", expire=0.3, auto_renewal=True)
    lock.acquire()
    other.set("lock:lost-retry", "somebody-else")
    other.close()
    wait_for(lambda: lock.lost, timeout=5, what="the renewal to notice the loss")
    own_server.stop()
    with pytest.raises(redis.ConnectionError):
        lock.release()
    assert lock.lost
    own_server.start()
    with pytest.raises(redis_lock.LockLost):
        lock.release()
    client.close()


# -- the with statement and errors --------------------------------------------------------


def test_fixes_4x_release_error_does_not_hide_the_body_exception(
    conn: Any, plain: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """If the body raises and the release fails too, the body's exception propagates; the other is logged."""
    with (
        caplog.at_level(logging.WARNING, logger="redis_lock.release"),
        pytest.raises(KeyError) as raised,
        redis_lock.Lock(conn, "body"),
    ):
        plain.delete("lock:body")
        raise KeyError("from the body")
    assert raised.value.args == ("from the body",)
    assert any("Releasing Lock('lock:body') failed" in r.getMessage() for r in caplog.records)
    if sys.version_info >= (3, 11):
        assert any("NotAcquired" in note for note in raised.value.__notes__)


def test_release_error_without_body_exception_propagates(conn: Any, plain: redis.Redis) -> None:
    """If the body succeeds but the lock was lost, leaving the with statement raises NotAcquired."""
    with pytest.raises(redis_lock.NotAcquired), redis_lock.Lock(conn, "body-ok"):
        plain.delete("lock:body-ok")


# -- scripts are module data --------------------------------------------------------------


def test_fixes_4x_subclass_instantiated_first(redis_url: str) -> None:
    """Instantiating a subclass first does not break the base class (4.x left Lock's scripts as None)."""
    code = textwrap.dedent(
        f"""
        import redis, redis_lock
        client = redis.Redis.from_url({redis_url!r})
        class Sub(redis_lock.Lock):
            pass
        Sub(client, "sub-first")
        lock = redis_lock.Lock(client, "sub-first")
        assert lock.acquire()
        lock.release()
        redis_lock.reset_all(client)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout == "ok\n", done.stderr


# -- clients ---------------------------------------------------------------------------------


def test_strict_rejects_other_clients_and_strict_false_accepts_them(plain: redis.Redis) -> None:
    """strict=True rejects a non-Redis client with 4.x's ValueError; strict=False lets it work."""
    client = Delegating(plain)
    with pytest.raises(ValueError, match=r"redis_client must be a redis\.Redis or valkey\.Valkey") as raised:
        redis_lock.Lock(client, "strict")
    assert "Delegating" in str(raised.value)
    lock = redis_lock.Lock(client, "strict", strict=False)
    assert lock.acquire()
    assert lock.owned()
    lock.release()
    assert redis_lock.reset_all(client) == 0


def test_asyncio_client_is_rejected(redis_url: str) -> None:
    """An asyncio client is rejected with a TypeError pointing to AsyncLock, even with strict=False."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    with pytest.raises(TypeError, match="AsyncLock"):
        redis_lock.Lock(client, "async", strict=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncLock"):
        redis_lock.reset_all(client)  # type: ignore[arg-type]


def test_constructor_does_no_io(conn: Any, plain: redis.Redis) -> None:
    """Constructing a Lock sends nothing to Redis."""
    plain.config_resetstat()
    redis_lock.Lock(conn, "no-io", expire=5, auto_renewal=True, timeout=1)
    assert set(commandstats(plain)) <= {"config|resetstat", "info"}


# -- logging ------------------------------------------------------------------------------------


def test_log_messages_match_4x_and_never_carry_the_id(conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Acquire, renewal and release log 4.x's messages on 4.x's loggers, and no record contains the id."""
    lock = redis_lock.Lock(conn, "logs", id="secret-id-123", expire=30, auto_renewal=True)
    with caplog.at_level(logging.DEBUG, logger="redis_lock"):
        lock.acquire()
        lock.release()
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


# -- gevent and eventlet --------------------------------------------------------------------------

GREEN_PROGRAM = """
import time
import redis, redis_lock
url = {url!r}
lock = redis_lock.Lock(redis.Redis.from_url(url), "green", expire=0.3, auto_renewal=True)
assert lock.acquire()
order = []
def contender():
    other = redis_lock.Lock(redis.Redis.from_url(url), "green")
    assert other.acquire(timeout=10)
    order.append("contender")
    other.release()
waiter = spawn(contender)
sleep(0.8)  # the holder keeps the lock past two expiries thanks to renewal
assert lock.owned(), "renewal did not run under monkey-patching"
order.append("holder")
lock.release()
waiter.wait() if hasattr(waiter, "wait") else waiter.join()
assert order == ["holder", "contender"], order
print("ok")
"""


@pytest.mark.parametrize(
    "prelude",
    [
        "from gevent import monkey; monkey.patch_all()\nfrom gevent import spawn, sleep\n",
        "import eventlet; eventlet.monkey_patch()\nfrom eventlet import spawn, sleep\n",
    ],
    ids=["gevent", "eventlet"],
)
def test_works_under_monkey_patching(redis_url: str, prelude: str) -> None:
    """Under gevent and eventlet monkey-patching, blocking waits and auto-renewal work."""
    code = prelude + GREEN_PROGRAM.format(url=redis_url)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip().endswith("ok"), done.stdout + done.stderr
