"""The local gate's hand-off races, and what the library reads off a client object without I/O.

The gate (``redis_lock._local``) lets one thread or task at a time through a shared
lock object; these tests pin down its two races on a real server: a holder's second
acquire racing a release from another thread, and a waiter cancelled just as the
gate was handed to it (on another event loop). The client checks
(``redis_lock._clients``) read only the client's class and settings: which client
libraries are imported, the socket timeout its connections default to, the name a
subclass shows in ``repr()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio

import redis_lock
from redis_lock import _clients
from redis_lock._scripts import ACQUIRE, UNLOCK

from ._clients import Delegating
from ._topology import Runner, async_wait_for

#: Generous bound for what should take well under a second on an idle machine.
SLACK = 10.0


# -- the gate ----------------------------------------------------------------------------


class GatedScripts(Delegating):
    """A hand-written client whose next run of a script in ``gates`` (by SHA1) waits for that gate before it is sent."""

    def __init__(self, inner: redis.Redis) -> None:
        super().__init__(inner)
        self.gates: dict[str, threading.Event] = {}
        self.arrived = {ACQUIRE.sha1: threading.Event(), UNLOCK.sha1: threading.Event()}

    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        gate = self.gates.pop(sha, None)
        if gate is not None:
            self.arrived[sha].set()
            assert gate.wait(SLACK), "the test never opened the gate"
        return super().evalsha(sha, numkeys, *keys_and_args)


def test_a_second_acquire_racing_a_release_gives_back_what_it_took(plain: redis.Redis) -> None:
    """A holder's second acquire that succeeds in Redis while another thread releases the object returns False.

    The hold ended in Redis (a reset), so the holder's second ``acquire()`` takes the
    key again; meanwhile another thread has started releasing the object (its
    unlock is held back). That release wins: the acquire gives back what it took
    (the key is deleted) and returns False, and the object is free afterwards."""
    client = GatedScripts(plain)
    lock = redis_lock.Lock(client, "again", expire=30, strict=False)
    held, again = threading.Event(), threading.Event()
    acquired: list[object] = []
    released: list[BaseException | None] = []

    def holder() -> None:
        try:
            assert lock.acquire()
            held.set()
            assert again.wait(SLACK)
            acquired.append(lock.acquire(blocking=False))
        except BaseException as exc:
            acquired.append(exc)

    def releaser() -> None:
        try:
            lock.release()
            released.append(None)
        except BaseException as exc:
            released.append(exc)

    holding = threading.Thread(target=holder, daemon=True)
    holding.start()
    assert held.wait(SLACK)
    redis_lock.Lock(plain, "again").reset()  # the hold ends in Redis, as by expiry
    acquire_gate, unlock_gate = threading.Event(), threading.Event()
    client.gates[ACQUIRE.sha1] = acquire_gate
    again.set()
    assert client.arrived[ACQUIRE.sha1].wait(SLACK)  # the second acquire is on its way to Redis
    client.gates[UNLOCK.sha1] = unlock_gate
    releasing = threading.Thread(target=releaser, daemon=True)
    releasing.start()
    assert client.arrived[UNLOCK.sha1].wait(SLACK)  # the release has begun: its unlock is on its way
    acquire_gate.set()
    holding.join(SLACK)
    assert not holding.is_alive()
    assert acquired == [False]
    assert not plain.exists("lock:again"), "the racing acquire left a key nobody holds"
    unlock_gate.set()
    releasing.join(SLACK)
    assert not releasing.is_alive()
    assert len(released) == 1
    assert isinstance(released[0], redis_lock.NotAcquired)  # the key was gone: reset, then given back
    assert lock.acquire(blocking=False)  # the object is free again
    lock.release()


@pytest_asyncio.fixture
async def aclient(redis_url: str, plain: redis.Redis) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def other_loop() -> Iterator[Runner]:
    """A second event loop, running in a thread of its own."""
    runner = Runner("async")
    yield runner
    runner.close()


@pytest.mark.asyncio
async def test_a_waiter_cancelled_as_the_gate_is_handed_to_it_passes_it_on(
    aclient: redis.asyncio.Redis, plain: redis.Redis, other_loop: Runner
) -> None:
    """A waiting task cancelled after the gate was handed to it, but before it ran, hands it to the next waiter.

    The first waiter waits on another event loop, which the test holds still while
    the holder releases (the gate is handed to that waiter) and the waiter is
    cancelled. The cancelled waiter must not keep the gate: the second waiter, on
    this loop, gets the lock."""
    lock = redis_lock.AsyncLock(aclient, "handover", expire=30)
    gate = lock._gate
    assert await lock.acquire()
    first = other_loop.submit(lock.acquire)  # waits in the gate, on the other loop
    await async_wait_for(lambda: len(gate._waiters) == 1, what="the first waiter")
    second = asyncio.ensure_future(lock.acquire())
    await async_wait_for(lambda: len(gate._waiters) == 2, what="the second waiter")
    held_still, resume = threading.Event(), threading.Event()

    def hold_still() -> None:
        held_still.set()
        resume.wait(SLACK)

    loop = other_loop._loop
    assert loop is not None
    loop.call_soon_threadsafe(hold_still)
    await async_wait_for(held_still.is_set, what="the other loop to be held")
    await lock.release()  # hands the gate to the first waiter; it runs once its loop resumes
    assert first.cancel()  # ... and this cancellation reaches it first
    resume.set()
    assert await asyncio.wait_for(second, SLACK), "the gate stayed with the cancelled waiter"
    with pytest.raises(concurrent.futures.CancelledError):
        first.result(SLACK)
    assert await lock.owned()
    await lock.release()
    assert not plain.exists("lock:handover")


# -- clients -------------------------------------------------------------------------------


class AuditedLock(redis_lock.Lock):
    """A user's subclass: shown under its own module and name."""


def test_repr_names_the_public_class_or_the_subclass(plain: redis.Redis) -> None:
    """``repr()`` shows ``redis_lock.Lock`` (not the private module), and a subclass by its own module."""
    assert repr(redis_lock.Lock(plain, "shown")) == "<redis_lock.Lock 'lock:shown'>"
    assert repr(AuditedLock(plain, "shown")) == f"<{__name__}.AuditedLock 'lock:shown'>"


def _expected_types(error: BaseException) -> list[str]:
    """The client classes a strict-check error lists as accepted."""
    listed = str(error).split("Expected one of: ", 1)[1].split("; got ", 1)[0]
    return listed.split(", ")


VALKEY_MODULES = ("valkey", "valkey.cluster", "valkey.asyncio", "valkey.asyncio.cluster")


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_the_strict_check_looks_only_at_imported_client_libraries(
    monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    """With valkey-py not imported, a rejected client's error lists redis-py's classes only, and valkey stays unimported.

    The check reads ``sys.modules`` only: it never imports a library the program does not use."""
    lock_class: Any = redis_lock.Lock if flavour == "sync" else redis_lock.AsyncLock

    class NotAClient:
        pass

    with pytest.raises(redis_lock.InvalidArgument) as with_valkey:
        lock_class(NotAClient(), "strict")
    assert any(name.startswith("valkey.") for name in _expected_types(with_valkey.value))
    for module in VALKEY_MODULES:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(redis_lock.InvalidArgument) as without_valkey:
        lock_class(NotAClient(), "strict")
    expected = _expected_types(without_valkey.value)
    assert expected == (
        ["redis.client.Redis", "redis.cluster.RedisCluster"]
        if flavour == "sync"
        else ["redis.asyncio.client.Redis", "redis.asyncio.cluster.RedisCluster"]
    )
    assert not any(module in sys.modules for module in VALKEY_MODULES)


#: redis-py's connection ``__init__`` (untyped), called through ``Any``.
_INIT_UNIX: Any = redis.UnixDomainSocketConnection.__init__


class TwoSecondConnection(redis.UnixDomainSocketConnection):
    """A connection class whose own default socket timeout is 2 s."""

    def __init__(self, *, socket_timeout: float | None = 2.0, **kwargs: Any) -> None:
        _INIT_UNIX(self, socket_timeout=socket_timeout, **kwargs)


class InheritedTwoSeconds(TwoSecondConnection):
    """A subclass with no ``__init__`` of its own: the 2 s default is its parent's."""


class FixedTimeout(redis.UnixDomainSocketConnection):
    """A connection class that sets the socket timeout itself (2 s), so that no keyword argument can change it."""

    def __init__(self, path: str = "", db: int = 0) -> None:
        _INIT_UNIX(self, path=path, db=db, socket_timeout=2.0)


class Forwarding:
    """A connection class (say, an instrumented wrapper) that forwards every keyword argument: no default to read."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


def _client_of(connection_class: type, url: str | None = None) -> redis.Redis:
    """A client whose pool makes ``connection_class`` connections (to ``url``), passing no socket timeout."""
    if url is None:
        pool = redis.ConnectionPool(connection_class=connection_class)
    else:
        pool = redis.ConnectionPool.from_url(url, connection_class=connection_class)
    assert "socket_timeout" not in pool.connection_kwargs
    return redis.Redis.from_pool(pool)


def test_socket_timeout_default_is_read_through_subclasses(redis_url: str, plain: redis.Redis) -> None:
    """A connection class without an ``__init__`` of its own has its parent's default socket timeout (not redis-py's).

    The client works as usual with it (a lock is taken and released through it)."""
    client = _client_of(InheritedTwoSeconds, redis_url)
    assert _clients.client_socket_timeout(client) == 2.0
    assert _clients.client_socket_timeout(_client_of(TwoSecondConnection)) == 2.0
    assert _clients.client_socket_timeout(_client_of(redis.UnixDomainSocketConnection)) == 5
    lock = redis_lock.Lock(client, "inherited")
    assert lock.acquire(timeout=1)
    assert plain.exists("lock:inherited")
    lock.release()
    client.close()


def test_socket_timeout_is_unknown_when_an_init_sets_it_itself() -> None:
    """An ``__init__`` that takes no ``socket_timeout`` (nor ``**kwargs``) hides the timeout: it is unknown.

    Reading on up the class's parents would report redis-py's 5 s, but the class
    really uses 2 s; unknown makes a waiting lock use its conservative wait chunk."""
    assert _clients.client_socket_timeout(_client_of(FixedTimeout)) is _clients.UNKNOWN


def test_socket_timeout_is_unknown_when_no_init_declares_it() -> None:
    """A connection class whose every ``__init__`` forwards ``**kwargs``, none naming ``socket_timeout``, leaves it unknown.

    Not None ("no timeout"): that would let a lock wait on the socket for as long as it likes."""
    assert _clients.client_socket_timeout(_client_of(Forwarding)) is _clients.UNKNOWN
