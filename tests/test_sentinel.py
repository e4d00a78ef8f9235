"""Locks through Sentinel, what a failover does to them, and ``wait_replicas`` (Redis WAIT).

Every test here runs against a real deployment of :class:`~tests._sentinel.SentinelDeployment`
(one primary, one replica, one sentinel). Tests that only lock share one
deployment per module; tests that fail over or kill a node get their own.
The failover tests pin down the behaviour documented in ``docs/cluster.rst``
(section "Sentinel"): which node each command reaches, whether the lock key
survives, and where two holders can end up with the same lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.backoff
import redis.retry
import valkey
import valkey.asyncio

import redis_lock

from ._sentinel import SentinelDeployment
from ._server import RedisServer
from ._topology import Runner, wait_for

FLAVOURS = ["sync", "async"]
KINDS = [("redis", False), ("redis", True), ("valkey", False), ("valkey", True)]


def _kind_id(kind: tuple[str, bool]) -> str:
    return f"{kind[0]}-{'str' if kind[1] else 'bytes'}"


@pytest.fixture(scope="module")
def deployment() -> Iterator[SentinelDeployment]:
    """A healthy deployment shared by the tests that only lock (they may pause and resume the replica)."""
    with SentinelDeployment() as shared:
        yield shared


@pytest.fixture
def fresh() -> Iterator[SentinelDeployment]:
    """A deployment of this test's own, to fail over or kill."""
    with SentinelDeployment() as own:
        yield own


@pytest.fixture
def clean(deployment: SentinelDeployment) -> Iterator[SentinelDeployment]:
    """The shared deployment, flushed, with its replica in sync before and after the test."""
    with deployment.node_client(deployment.current_primary()) as primary:
        primary.flushall()
        assert primary.wait(1, 5000) == 1, "the replica did not catch up"
    yield deployment
    for node in deployment.nodes:
        deployment.resume(node)
    with deployment.node_client(deployment.current_primary()) as primary:
        assert primary.wait(1, 10_000) == 1, "the replica did not catch up after the test"


@pytest.fixture(params=FLAVOURS)
def runner(request: pytest.FixtureRequest) -> Iterator[Runner]:
    """Runs lock methods directly (``Lock``) or on a background event loop (``AsyncLock``)."""
    flavour_runner = Runner(request.param)
    yield flavour_runner
    flavour_runner.close()


class Clients:
    """Clients of one flavour made by ``make(kind, decode_responses, **kwargs)``, closed at the end of the test."""

    def __init__(
        self, runner: Runner, make: Callable[..., Any], deployment: SentinelDeployment | None = None
    ) -> None:
        self.runner = runner
        self._make = make
        self.made: list[Any] = []
        self._deployment = deployment

    @classmethod
    def of_sentinel(cls, deployment: SentinelDeployment, runner: Runner) -> Clients:
        def make(kind: str, decode_responses: bool, **kwargs: Any) -> Any:
            return deployment.master_for(kind, decode_responses, asyncio=runner.asyncio, **kwargs)

        return cls(runner, make, deployment)

    @classmethod
    def of_url(cls, url: str, runner: Runner) -> Clients:
        def make(kind: str, decode_responses: bool, **kwargs: Any) -> Any:
            if kind == "redis":
                factory: Any = redis.asyncio.Redis if runner.asyncio else redis.Redis
            else:
                factory = valkey.asyncio.Valkey if runner.asyncio else valkey.Valkey
            return factory.from_url(url, decode_responses=decode_responses, **kwargs)

        return cls(runner, make)

    @property
    def deployment(self) -> SentinelDeployment:
        assert self._deployment is not None
        return self._deployment

    def client(self, kind: str = "redis", decode_responses: bool = False, **kwargs: Any) -> Any:
        client = self._make(kind, decode_responses, **kwargs)
        self.made.append(client)
        return client

    def lock(self, client: Any, name: str, **kwargs: Any) -> Any:
        factory: Any = redis_lock.AsyncLock if self.runner.asyncio else redis_lock.Lock
        return factory(client, name, **kwargs)

    def close(self) -> None:
        for client in self.made:
            self.runner.close_client(client)


@pytest.fixture
def shared_clients(clean: SentinelDeployment, runner: Runner) -> Iterator[Clients]:
    made = Clients.of_sentinel(clean, runner)
    yield made
    made.close()


@pytest.fixture
def own_clients(fresh: SentinelDeployment, runner: Runner) -> Iterator[Clients]:
    made = Clients.of_sentinel(fresh, runner)
    yield made
    made.close()


@pytest.fixture
def standalone_clients(redis_url: str, plain: redis.Redis, runner: Runner) -> Iterator[Clients]:
    """Clients of the session's standalone server (flushed by ``plain``)."""
    made = Clients.of_url(redis_url, runner)
    yield made
    made.close()


def value(node: RedisServer, key: str) -> bytes | None:
    """GET ``key`` directly on one data node (a replica answers reads too)."""
    with redis.Redis(unix_socket_path=node.unix_path, socket_timeout=5) as client:
        reply: bytes | None = client.get(key)
        return reply


def blocked_in(node: RedisServer, command: str) -> int:
    """How many clients of ``node`` are blocked in ``command`` right now."""
    with redis.Redis(unix_socket_path=node.unix_path, socket_timeout=5, decode_responses=True) as client:
        return sum(1 for c in client.client_list() if c["cmd"] == command and "b" in c["flags"])


def role(node: RedisServer) -> str:
    with redis.Redis(unix_socket_path=node.unix_path, socket_timeout=5, decode_responses=True) as client:
        reply: str = client.info("replication")["role"]
        return reply


def cut_replication(primary: RedisServer) -> None:
    """Drop the primary's links to its replicas, so no later write reaches them (not even a kernel buffer).

    A paused (SIGSTOP) replica alone is not enough to lose a write: the kernel
    still accepts what the primary sends it, and the replica applies it when it
    resumes, even after the primary died. Cutting the link first, while the
    replica is paused (so it cannot reconnect), models the real window: the
    write was acknowledged to the client but never left the primary.
    """
    with redis.Redis(unix_socket_path=primary.unix_path, socket_timeout=5) as client:
        assert client.client_kill_filter(_type="replica") == 1


# ---------------------------------------------------------------------------
# Locking through Sentinel.master_for.


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_acquire_and_release_through_master_for(shared_clients: Clients, kind: tuple[str, bool]) -> None:
    """A lock taken through master_for lives on the primary, reaches the replica, and is released."""
    deployment, runner = shared_clients.deployment, shared_clients.runner
    lock = shared_clients.lock(shared_clients.client(*kind), "basic", expire=30)
    assert runner.run(lock.acquire) is True
    primary, replica = deployment.current_primary(), deployment.current_replica()
    assert value(primary, "lock:basic") == lock.id.encode()
    wait_for(lambda: value(replica, "lock:basic") == lock.id.encode(), what="the key on the replica")
    assert runner.run(lock.locked) is True
    runner.run(lock.release)
    assert value(primary, "lock:basic") is None


def test_release_wakes_a_waiter_through_master_for(shared_clients: Clients) -> None:
    """A waiter blocked through master_for is woken by the release, long before its timeout."""
    holder = shared_clients.lock(shared_clients.client(), "wake", expire=30)
    waiter = shared_clients.lock(shared_clients.client(), "wake", expire=30)
    assert shared_clients.runner.run(holder.acquire)
    result = shared_clients.runner.submit(waiter.acquire, timeout=30)
    primary = shared_clients.deployment.current_primary()
    wait_for(lambda: blocked_in(primary, "blpop") == 1, what="the waiter blocked in BLPOP")
    released = time.monotonic()
    shared_clients.runner.run(holder.release)
    assert result.result(timeout=30) is True
    assert time.monotonic() - released < 5
    assert value(primary, "lock:wake") == waiter.id.encode()


def test_expiry_wakes_a_waiter_through_master_for(shared_clients: Clients) -> None:
    """A waiter takes the lock when the holder's key expires, not at the end of its own timeout."""
    holder = shared_clients.lock(shared_clients.client(), "expiring", expire=0.5)
    waiter = shared_clients.lock(shared_clients.client(), "expiring", expire=30)
    assert shared_clients.runner.run(holder.acquire)
    started = time.monotonic()
    assert shared_clients.runner.run(waiter.acquire, timeout=20) is True
    assert 0.3 < time.monotonic() - started < 5


# ---------------------------------------------------------------------------
# wait_replicas on a healthy deployment, and with the replica paused.


def test_wait_replicas_waits_for_the_replica(shared_clients: Clients) -> None:
    """acquire() with wait_replicas returns only once the replica has the key: not while it is paused."""
    deployment = shared_clients.deployment
    replica = deployment.current_replica()
    # A long WAIT needs a longer socket timeout (at most half of it may be spent waiting).
    client = shared_clients.client(socket_timeout=60)
    lock = shared_clients.lock(client, "acked", expire=30, wait_replicas=1, wait_replicas_timeout=20)
    deployment.pause(replica)
    result = shared_clients.runner.submit(lock.acquire, blocking=False)
    wait_for(lambda: blocked_in(deployment.current_primary(), "wait") == 1, what="acquire blocked in WAIT")
    assert not result.done(), "acquire returned before the replica acknowledged the key"
    deployment.resume(replica)
    assert result.result(timeout=20) is True
    # Right after acquire returns, the replica already has the key.
    assert value(replica, "lock:acked") == lock.id.encode()


def test_wait_replicas_with_a_healthy_replica_costs_no_timeout(shared_clients: Clients) -> None:
    """With the replica in sync, acquire with wait_replicas returns long before its timeout, key on the replica."""
    client = shared_clients.client(socket_timeout=60)
    lock = shared_clients.lock(client, "fast", expire=30, wait_replicas=1, wait_replicas_timeout=20)
    started = time.monotonic()
    assert shared_clients.runner.run(lock.acquire) is True
    assert time.monotonic() - started < 5
    assert value(shared_clients.deployment.current_replica(), "lock:fast") == lock.id.encode()
    shared_clients.runner.run(lock.release)


def test_not_replicated_releases_the_lock(shared_clients: Clients) -> None:
    """Too few acknowledgements: acquire raises NotReplicated after the timeout and leaves no lock behind."""
    deployment = shared_clients.deployment
    lock = shared_clients.lock(
        shared_clients.client(), "lonely", expire=30, wait_replicas=1, wait_replicas_timeout=0.5
    )
    deployment.pause(deployment.current_replica())
    started = time.monotonic()
    with pytest.raises(redis_lock.NotReplicated) as caught:
        shared_clients.runner.run(lock.acquire, blocking=False)
    elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 5, elapsed
    error = caught.value
    assert isinstance(error, redis_lock.NotAcquired)
    assert (error.required, error.acknowledged) == (1, 0)
    assert "lock:lonely" in str(error)
    assert "0 of the 1" in str(error)
    primary = deployment.current_primary()
    assert value(primary, "lock:lonely") is None
    assert shared_clients.runner.run(lock.owned) is False
    # Released, not just forgotten: another client takes it at once.
    other = shared_clients.lock(shared_clients.client(), "lonely", expire=30)
    assert shared_clients.runner.run(other.acquire, blocking=False) is True


def test_busy_lock_with_wait_replicas_is_not_an_error(shared_clients: Clients) -> None:
    """A busy lock stays busy: the WAIT reply is ignored, even when no replica answers."""
    deployment = shared_clients.deployment
    holder = shared_clients.lock(shared_clients.client(), "taken", expire=30)
    assert shared_clients.runner.run(holder.acquire)
    other = shared_clients.lock(shared_clients.client(), "taken", wait_replicas=1, wait_replicas_timeout=0.3)
    deployment.pause(deployment.current_replica())
    assert shared_clients.runner.run(other.acquire, blocking=False) is False
    assert value(deployment.current_primary(), "lock:taken") == holder.id.encode()


def test_wait_replicas_reloads_flushed_scripts(shared_clients: Clients) -> None:
    """After SCRIPT FLUSH the pipelined EVALSHA gets NOSCRIPT, loads the script and retries once."""
    deployment = shared_clients.deployment
    with deployment.node_client(deployment.current_primary()) as primary:
        primary.script_flush()
    lock = shared_clients.lock(shared_clients.client(), "flushed", wait_replicas=1)
    assert shared_clients.runner.run(lock.acquire) is True
    assert value(deployment.current_replica(), "lock:flushed") == lock.id.encode()


# ---------------------------------------------------------------------------
# The double-grant window of asynchronous replication.


def test_failover_before_replication_grants_the_lock_twice(fresh: SentinelDeployment) -> None:
    """A lock the replica never received is gone after a failover, and a second client gets it too."""
    first_client = fresh.master_for()
    second_client = fresh.master_for()
    try:
        first = redis_lock.Lock(first_client, "job", expire=60)
        fresh.pause(fresh.replica)
        cut_replication(fresh.primary)
        assert first.acquire(blocking=False) is True  # acknowledged by the primary alone
        fresh.primary.kill()
        fresh.resume(fresh.replica)
        fresh.failover()
        assert value(fresh.replica, "lock:job") is None
        second = redis_lock.Lock(second_client, "job", expire=60)
        assert second.acquire(blocking=False) is True
        # Two holders; the first cannot tell until it looks.
        assert first.owned() is False
        assert second.owned() is True
    finally:
        first_client.close()
        second_client.close()


def test_wait_replicas_refuses_a_lock_the_replica_did_not_get(fresh: SentinelDeployment) -> None:
    """The same sequence with wait_replicas: acquire raises NotReplicated and leaves no lock anywhere."""
    first_client = fresh.master_for()
    second_client = fresh.master_for()
    try:
        first = redis_lock.Lock(first_client, "job", expire=60, wait_replicas=1, wait_replicas_timeout=0.5)
        fresh.pause(fresh.replica)
        cut_replication(fresh.primary)
        with pytest.raises(redis_lock.NotReplicated):
            first.acquire(blocking=False)
        assert value(fresh.primary, "lock:job") is None
        fresh.primary.kill()
        fresh.resume(fresh.replica)
        fresh.failover()
        second = redis_lock.Lock(second_client, "job", expire=60)
        assert second.acquire(blocking=False) is True
        assert first.owned() is False  # never a second holder: the first one never held it
    finally:
        first_client.close()
        second_client.close()


# ---------------------------------------------------------------------------
# A failover while a lock is held and waiters block.


def test_manual_failover_with_a_holder_and_waiters(own_clients: Clients) -> None:
    """SENTINEL FAILOVER with the old primary alive: the key survives, the waiters ride over, and two get the lock.

    The timeline, as measured (see docs/cluster.rst):

    1. The lock key was replicated, so it is on the new primary.
    2. The holder's pooled connection still reaches the old primary, which stays
       a primary until Sentinel demotes it (about 10 s later): the release runs
       there, and the new primary keeps the holder's key until it expires.
    3. That release wakes a waiter on the old primary, which takes the lock there.
    4. The other waiter tries again through Sentinel on the new primary (when
       the demotion drops its hub's BLPOP, or earlier: its retry at the holder's
       expiry may open a new connection, which Sentinel sends to the new
       primary, since the hub holds the old one) and takes the lock once the
       holder's key has expired there: two waiters hold the lock. The first
       finds out at its release.
    """
    deployment, runner = own_clients.deployment, own_clients.runner
    old, new = deployment.primary, deployment.replica
    holder = own_clients.lock(own_clients.client(), "job", expire=4)
    waiters = [own_clients.lock(own_clients.client(), "job", expire=60) for _ in range(2)]
    assert runner.run(holder.acquire, blocking=False)
    wait_for(lambda: value(new, "lock:job") == holder.id.encode(), what="the key on the replica")
    results = [runner.submit(waiter.acquire, timeout=60) for waiter in waiters]
    wait_for(lambda: blocked_in(old, "blpop") == 2, what="both waiters blocked in BLPOP")

    deployment.failover()
    assert value(new, "lock:job") == holder.id.encode()  # 1

    runner.run(holder.release)  # 2
    assert role(old) == "master"
    assert value(new, "lock:job") == holder.id.encode()

    wait_for(lambda: any(r.done() for r in results), timeout=20, what="a waiter woken on the old primary")
    first = next(i for i, r in enumerate(results) if r.done())
    second = 1 - first
    assert results[first].result() is True  # 3
    assert value(old, "lock:job") == waiters[first].id.encode()

    assert results[second].result(timeout=60) is True  # 4: no error, even if its hub's BLPOP was cut
    assert value(new, "lock:job") == waiters[second].id.encode()
    wait_for(lambda: role(old) == "slave", timeout=60, what="Sentinel to demote the old primary")
    with pytest.raises(redis_lock.NotAcquired):
        runner.run(waiters[first].release)


def test_manual_failover_wait_replicas_refuses_the_deposed_primary(own_clients: Clients) -> None:
    """With wait_replicas, a waiter woken on the deposed primary gets NotReplicated instead of a doomed lock."""
    deployment, runner = own_clients.deployment, own_clients.runner
    old, new = deployment.primary, deployment.replica
    holder = own_clients.lock(own_clients.client(), "job", expire=30, wait_replicas=1)
    waiter = own_clients.lock(
        own_clients.client(), "job", expire=30, wait_replicas=1, wait_replicas_timeout=0.5
    )
    assert runner.run(holder.acquire, blocking=False)
    assert value(new, "lock:job") == holder.id.encode()
    result = runner.submit(waiter.acquire, timeout=30)
    wait_for(lambda: blocked_in(old, "blpop") == 1, what="the waiter blocked in BLPOP")
    deployment.failover()
    runner.run(holder.release)  # lands on the old primary, which has no replica any more
    with pytest.raises(redis_lock.NotReplicated) as caught:
        result.result(timeout=30)
    assert caught.value.acknowledged == 0
    assert value(old, "lock:job") is None
    assert value(new, "lock:job") == holder.id.encode()  # the release never reached the new primary


def test_crash_with_client_retries_waiters_ride_over(own_clients: Clients) -> None:
    """The primary is killed while a lock is held: with client retries, waiters resume on the new primary.

    Their BLPOP fails when the connection drops; redis-py retries it on the old
    address (redis-py issue #3874) until its retries run out, then the acquire
    loop runs the script again on a fresh connection, which Sentinel points at
    the new primary.
    """
    deployment, runner = own_clients.deployment, own_clients.runner
    retry_class: Any = redis.asyncio.retry.Retry if runner.asyncio else redis.retry.Retry

    def retrying_client() -> Any:
        return own_clients.client(retry=retry_class(redis.backoff.ExponentialBackoff(cap=0.2, base=0.02), 30))

    holder = own_clients.lock(retrying_client(), "job", expire=60)
    waiters = [own_clients.lock(retrying_client(), "job", expire=60) for _ in range(2)]
    assert runner.run(holder.acquire, blocking=False)
    wait_for(
        lambda: value(deployment.replica, "lock:job") == holder.id.encode(), what="the key on the replica"
    )
    results = [runner.submit(waiter.acquire, timeout=60) for waiter in waiters]
    wait_for(lambda: blocked_in(deployment.primary, "blpop") == 2, what="both waiters blocked in BLPOP")

    deployment.primary.kill()
    deployment.failover()
    assert value(deployment.replica, "lock:job") == holder.id.encode()  # the key survived
    runner.run(holder.release)  # reconnects through Sentinel: reaches the new primary
    assert value(deployment.replica, "lock:job") != holder.id.encode()

    wait_for(lambda: any(r.done() for r in results), timeout=60, what="a waiter to take the lock")
    first = next(i for i, r in enumerate(results) if r.done())
    assert results[first].result() is True
    assert not results[1 - first].done()
    runner.run(waiters[first].release)
    assert results[1 - first].result(timeout=60) is True


def test_crash_without_client_retries_fails_waiters_fast(fresh: SentinelDeployment) -> None:
    """Without client retries, a waiter blocked when the primary dies gets a ConnectionError within seconds."""
    holder_client, waiter_client = fresh.master_for(), fresh.master_for()
    try:
        assert redis_lock.Lock(holder_client, "job", expire=60).acquire(blocking=False)
        outcome: list[BaseException | bool] = []

        def wait() -> None:
            try:
                outcome.append(redis_lock.Lock(waiter_client, "job").acquire(timeout=30))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        wait_for(lambda: blocked_in(fresh.primary, "blpop") == 1, what="the waiter blocked in BLPOP")
        fresh.primary.kill()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], redis.ConnectionError), outcome
    finally:
        holder_client.close()
        waiter_client.close()


# ---------------------------------------------------------------------------
# A wait force-unblocked by the server counts as a wake-up (standalone server).


def _blocked_ids(plain: redis.Redis) -> list[int]:
    return [int(c["id"]) for c in plain.client_list() if c["cmd"] == "blpop" and "b" in c["flags"]]


def _unblock_with_error(plain: redis.Redis, client_id: int) -> None:
    """What a demoted primary sends a blocked client: ``-UNBLOCKED`` (here through CLIENT UNBLOCK ... ERROR)."""
    admin: Any = plain  # execute_command is unannotated
    assert admin.execute_command("CLIENT", "UNBLOCK", client_id, "ERROR") == 1


def _unblock_scenario(plain: redis.Redis, runner: Runner, holder: Any, waiter: Any, *, twice: bool) -> Any:
    """Block ``waiter``, force-unblock it once (or twice in a row); return its acquire future."""
    assert runner.run(holder.acquire)
    result = runner.submit(waiter.acquire, timeout=30)
    wait_for(lambda: len(_blocked_ids(plain)) == 1, what="the waiter blocked in BLPOP")
    [blocked] = _blocked_ids(plain)
    _unblock_with_error(plain, blocked)
    # It runs the script again and blocks again, on the same connection.
    wait_for(lambda: _blocked_ids(plain) == [blocked], what="the waiter blocked again")
    if twice:
        _unblock_with_error(plain, blocked)
    return result


@pytest.mark.parametrize("kind", KINDS, ids=_kind_id)
def test_unblocked_wait_counts_as_a_wake_up(
    standalone_clients: Clients, plain: redis.Redis, kind: tuple[str, bool]
) -> None:
    """-UNBLOCKED (sent when a primary is demoted under a BLPOP) makes the waiter try again, not fail."""
    clients, runner = standalone_clients, standalone_clients.runner
    holder = clients.lock(clients.client(*kind), "unblocked")
    waiter = clients.lock(clients.client(*kind), "unblocked")
    result = _unblock_scenario(plain, runner, holder, waiter, twice=False)
    assert not result.done()
    runner.run(holder.release)
    assert result.result(timeout=30) is True


@pytest.mark.parametrize("kind", [("redis", False), ("valkey", True)], ids=_kind_id)
def test_a_second_interruption_in_a_row_propagates(
    standalone_clients: Clients, plain: redis.Redis, kind: tuple[str, bool]
) -> None:
    """Two interrupted waits with no good wait between: the second error propagates (no spinning)."""
    clients, runner = standalone_clients, standalone_clients.runner
    holder = clients.lock(clients.client(*kind), "unblocked")
    waiter = clients.lock(clients.client(*kind), "unblocked")
    result = _unblock_scenario(plain, runner, holder, waiter, twice=True)
    with pytest.raises(Exception, match=r"^UNBLOCKED") as caught:
        result.result(timeout=30)
    assert type(caught.value).__name__ == "ResponseError"


# ---------------------------------------------------------------------------
# Bad input for wait_replicas and wait_replicas_timeout: rejected before any I/O.

#: A client of a port nothing listens on: any I/O would raise ConnectionError.
UNREACHABLE: dict[str, Any] = {"host": "127.0.0.1", "port": 1, "socket_timeout": 5}


def _unreachable(flavour: str, **kwargs: Any) -> Any:
    return (redis.asyncio.Redis if flavour == "async" else redis.Redis)(**{**UNREACHABLE, **kwargs})


def _factory(flavour: str) -> Any:
    return redis_lock.AsyncLock if flavour == "async" else redis_lock.Lock


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("argument", "bad", "error"),
    [
        ("wait_replicas", True, redis_lock.InvalidArgumentType),
        ("wait_replicas", 1.0, redis_lock.InvalidArgumentType),
        ("wait_replicas", "1", redis_lock.InvalidArgumentType),
        ("wait_replicas", None, redis_lock.InvalidArgumentType),
        ("wait_replicas", -1, redis_lock.InvalidArgument),
        ("wait_replicas", 2**63, redis_lock.InvalidArgument),
        ("wait_replicas_timeout", 0, redis_lock.InvalidArgument),
        ("wait_replicas_timeout", 0.0, redis_lock.InvalidArgument),
        ("wait_replicas_timeout", -1, redis_lock.InvalidArgument),
        ("wait_replicas_timeout", math.nan, redis_lock.InvalidArgument),
        ("wait_replicas_timeout", math.inf, redis_lock.InvalidArgument),
        ("wait_replicas_timeout", 1e10, redis_lock.InvalidArgument),
        ("wait_replicas_timeout", True, redis_lock.InvalidArgumentType),
        ("wait_replicas_timeout", "1", redis_lock.InvalidArgumentType),
        ("wait_replicas_timeout", None, redis_lock.InvalidArgumentType),
    ],
)
def test_bad_wait_replicas_arguments(
    flavour: str, argument: str, bad: object, error: type[Exception]
) -> None:
    """Each bad value is rejected with an error naming the argument and the value, whatever wait_replicas is."""
    client = _unreachable(flavour)
    with pytest.raises(error) as caught:
        _factory(flavour)(client, "bad", **{argument: bad})
    assert type(caught.value) is error
    assert getattr(caught.value, "argument", None) == argument
    assert argument in str(caught.value)
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_wait_replicas_timeout_must_fit_in_the_socket_timeout(flavour: str) -> None:
    """A WAIT longer than half the client's socket timeout is refused: its read would time out and be retried."""
    client = _unreachable(flavour, socket_timeout=1)
    factory = _factory(flavour)
    with pytest.raises(redis_lock.InvalidArgument) as caught:
        factory(client, "bad", wait_replicas=1, wait_replicas_timeout=0.6)
    assert caught.value.argument == "wait_replicas_timeout"
    assert "0.6" in str(caught.value)
    assert "socket_timeout" in str(caught.value)
    factory(client, "fine", wait_replicas=1, wait_replicas_timeout=0.5)
    factory(client, "unused", wait_replicas=0, wait_replicas_timeout=0.6)  # no WAIT, nothing to fit


class NoPipeline:
    """Just the commands of redis_lock.typing.RedisClient, without pipeline()."""

    def evalsha(self, sha: str, numkeys: int, /, *keys_and_args: str) -> object:
        raise AssertionError("no I/O expected")

    def script_load(self, script: bytes, /) -> object:
        raise AssertionError("no I/O expected")

    def get(self, name: str, /) -> object:
        raise AssertionError("no I/O expected")

    def exists(self, *names: str) -> object:
        raise AssertionError("no I/O expected")

    def blpop(self, keys: list[str], timeout: Any, /) -> object:
        raise AssertionError("no I/O expected")

    def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> object:
        raise AssertionError("no I/O expected")

    def __enter__(self) -> Any:
        return self


def test_wait_replicas_needs_a_client_with_pipelines() -> None:
    """wait_replicas on a client without pipeline() is a type error about redis_client; 0 needs nothing."""
    with pytest.raises(redis_lock.InvalidArgumentType) as caught:
        redis_lock.Lock(NoPipeline(), "bad", strict=False, wait_replicas=1)
    assert caught.value.argument == "redis_client"
    assert "pipeline" in str(caught.value)
    assert "NoPipeline" in str(caught.value)
    redis_lock.Lock(NoPipeline(), "fine", strict=False)


def test_wait_replicas_is_refused_on_cluster_clients() -> None:
    """Cluster clients do not take wait_replicas yet (checked with the asyncio client, which connects lazily)."""
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=1)
    with pytest.raises(redis_lock.InvalidArgument) as caught:
        redis_lock.AsyncLock(client, "bad", wait_replicas=1)
    assert caught.value.argument == "wait_replicas"
    assert "not supported on cluster clients yet" in str(caught.value)
    redis_lock.AsyncLock(client, "fine", wait_replicas=0)
