"""Shrunk counterexamples of the state machine, replayed as plain step-by-step tests.

Each test is a failure Hypothesis found and shrank (against a deliberately broken
build during the mutation check, see ``README.rst``), written out so that the
behaviour it pins is checked on every run, quickly and readably, whatever examples
the machine happens to draw.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

import redis_lock
from redis_lock import AlreadyAcquired, NotAcquired, NotExpirable


def test_release_by_another_id_is_refused(conn: Any, plain: redis.Redis) -> None:
    """Releasing a lock held by another id raises NotAcquired and leaves the holder's key alone."""
    holder = redis_lock.Lock(conn, "a")
    other = redis_lock.Lock(conn, "a")
    assert holder.acquire(blocking=False)
    with pytest.raises(NotAcquired):
        other.release()
    assert plain.get("lock:a") == holder.id.encode()
    assert holder.owned()


def test_extend_by_another_id_is_refused(conn: Any, plain: redis.Redis) -> None:
    """Extending a lock held by another id raises NotAcquired and leaves its TTL alone."""
    holder = redis_lock.Lock(conn, "a", expire=30)
    other = redis_lock.Lock(conn, "a", expire=100)
    assert holder.acquire(blocking=False)
    with pytest.raises(NotAcquired):
        other.extend()
    assert 0 < plain.pttl("lock:a") <= 30_000


def test_acquire_of_a_held_lock_fails_and_keeps_the_owner(conn: Any, plain: redis.Redis) -> None:
    """A second id's non-blocking acquire of a held lock returns False; the same id's raises AlreadyAcquired."""
    holder = redis_lock.Lock(conn, "a", expire=30)
    assert holder.acquire(blocking=False)
    assert not redis_lock.Lock(conn, "a").acquire(blocking=False)
    assert plain.get("lock:a") == holder.id.encode()
    twin = redis_lock.Lock(conn, "a", id=holder.id)
    with pytest.raises(AlreadyAcquired):
        twin.acquire(blocking=False)


def test_handles_sharing_an_id_share_the_lock(conn: Any, plain: redis.Redis) -> None:
    """A handle with the same id (given as bytes) owns, extends and releases the lock another handle took."""
    first = redis_lock.Lock(conn, "a", id="id-1", expire=30)
    second = redis_lock.Lock(conn, "a", id=b"id-1", expire=20)
    assert first.acquire(blocking=False)
    assert second.owned()
    second.extend()
    assert 0 < plain.pttl("lock:a") <= 20_000
    second.release()
    assert not first.locked()
    with pytest.raises(NotAcquired):
        first.release()


def test_extend_of_a_lock_without_expiry(conn: Any, plain: redis.Redis) -> None:
    """extend(seconds) on a held lock that never expires raises NotExpirable and adds no TTL."""
    lock = redis_lock.Lock(conn, "a")
    assert lock.acquire(blocking=False)
    with pytest.raises(NotExpirable):
        lock.extend(20)
    assert plain.pttl("lock:a") == -1


def test_script_flush_between_acquire_and_release(conn: Any, plain: redis.Redis) -> None:
    """After SCRIPT FLUSH the next release and acquire reload their scripts and work."""
    lock = redis_lock.Lock(conn, "a", expire=30)
    assert lock.acquire(blocking=False)
    plain.script_flush()
    lock.release()
    plain.script_flush()
    assert lock.acquire(blocking=False)
    assert redis_lock.reset_all(conn) == 1
    assert plain.keys("lock:*") == []


def test_waiter_gets_the_lock_when_the_holder_expires(conn: Any, plain: redis.Redis) -> None:
    """A blocking acquire on a lock whose holder's key runs out in 20 ms succeeds at once, not at its timeout."""
    holder = redis_lock.Lock(conn, "a", expire=30)
    assert holder.acquire(blocking=False)
    plain.pexpire("lock:a", 20)
    waiter = redis_lock.Lock(conn, "a")
    started = time.monotonic()
    assert waiter.acquire(timeout=10)
    assert time.monotonic() - started < 2.0
    assert waiter.owned()


def test_release_wakes_a_blocked_waiter(make_client: Any, plain: redis.Redis) -> None:
    """A waiter blocked on a lock without expiry gets it as soon as the holder releases."""
    holder = redis_lock.Lock(make_client(), "a")
    assert holder.acquire()
    waiter_client = make_client(socket_timeout=None)  # a 10 s wait chunk: only the signal wakes it
    acquired: list[float] = []

    def wait() -> None:
        if redis_lock.Lock(waiter_client, "a").acquire(timeout=8):
            acquired.append(time.monotonic())

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not any(c["cmd"] == "blpop" and "b" in c["flags"] for c in plain.client_list()):
        assert time.monotonic() < deadline, "the waiter never blocked"
        time.sleep(0.001)
    released = time.monotonic()
    holder.release()
    thread.join(timeout=10)
    assert len(acquired) == 1
    assert acquired[0] - released < 1.0


def test_extend_of_a_foreign_lock_without_expiry(conn: Any, plain: redis.Redis) -> None:
    """Extending a lock another client holds without expiry raises NotAcquired (not NotExpirable) and adds no TTL."""
    plain.set("lock:a", "foreign-owner")
    lock = redis_lock.Lock(conn, "a", expire=30)
    with pytest.raises(NotAcquired):
        lock.extend(20)
    assert plain.pttl("lock:a") == -1
    assert plain.get("lock:a") == b"foreign-owner"


def test_acquire_twice_by_one_handle(conn: Any, plain: redis.Redis) -> None:
    """A handle that holds the lock gets AlreadyAcquired from a second acquire, blocking or not, and keeps its TTL."""
    lock = redis_lock.Lock(conn, "a", expire=30)
    assert lock.acquire(blocking=False)
    plain.pexpire("lock:a", 10_000)
    with pytest.raises(AlreadyAcquired):
        lock.acquire(blocking=False)
    with pytest.raises(AlreadyAcquired):
        lock.acquire(timeout=0.01)
    assert 0 < plain.pttl("lock:a") <= 10_000
