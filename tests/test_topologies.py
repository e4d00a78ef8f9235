"""The lock's behaviour, the same on a standalone server, a Redis Cluster and Sentinel.

Every test runs on each topology, on Redis and, for standalone and Cluster, on
Valkey too (Sentinel differs from standalone only in how the client finds the
primary); for ``Lock`` and ``AsyncLock`` (one body drives both through
:class:`~tests._topology.Runner`); each with two clients of ``CLIENTS``. On the
cluster the keys carry a hash tag (``lock:{name}``); elsewhere they are the 4.x
names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import redis_lock
from redis_lock import _keys

from ._topology import ClusterTopology, Runner, SentinelTopology, StandaloneTopology, Topology, wait_for

#: A topology on Redis, or on Valkey with the ``-valkey`` suffix.
TOPOLOGIES = ["standalone", "cluster", "sentinel", "standalone-valkey", "cluster-valkey"]
FLAVOURS = ["sync", "async"]
#: Per flavour, two (library, decode_responses, protocol) clients: each flavour meets both libraries,
#: both decode settings and both protocols, and each protocol meets both libraries and both decode
#: settings, in four runs per topology. (redis-py decodes nothing and valkey-py decodes, as before; the
#: ``conn`` tests of ``conftest.py`` cross those two.)
CLIENTS = {
    "sync": [("redis", False, 2), ("valkey", True, 3)],
    "async": [("redis", False, 3), ("valkey", True, 2)],
}


class Env:
    """One test's topology, flavour and client."""

    def __init__(self, topology: Topology, runner: Runner, client: Any) -> None:
        self.topology = topology
        self.runner = runner
        self.client = client
        self.inspector = topology.inspector()

    def lock(self, name: str, **kwargs: Any) -> Any:
        factory: Any = redis_lock.AsyncLock if self.runner.asyncio else redis_lock.Lock
        return factory(self.client, name, **kwargs)

    def run(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self.runner.run(function, *args, **kwargs)

    def reset_all(self) -> int:
        reset: Any = redis_lock.async_reset_all if self.runner.asyncio else redis_lock.reset_all
        deleted: int = self.run(reset, self.client)
        return deleted

    def keys(self, name: str) -> tuple[str, str]:
        return _keys.keys_for(name, cluster=self.topology.cluster)

    def lock_keys(self) -> list[bytes]:
        return sorted(self.inspector.scan_iter(match="lock:*"))


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest, redis_url: str) -> Topology:
    name = request.param
    if name == "standalone":
        return StandaloneTopology(redis_url)
    if name == "standalone-valkey":
        return StandaloneTopology(request.getfixturevalue("valkey_server").url, family="valkey")
    if name == "cluster":
        return ClusterTopology(request.getfixturevalue("cluster_deployment"))
    if name == "cluster-valkey":
        return ClusterTopology(request.getfixturevalue("valkey_cluster_deployment"))
    return SentinelTopology(request.getfixturevalue("sentinel_deployment"))


@pytest.fixture(
    params=[(f, c) for f in FLAVOURS for c in CLIENTS[f]],
    ids=lambda p: f"{p[0]}-{p[1][0]}-{'str' if p[1][1] else 'bytes'}-resp{p[1][2]}",
)
def env(request: pytest.FixtureRequest, topology: Topology) -> Iterator[Env]:
    flavour, (kind, decode, protocol) = request.param
    topology.flush()
    runner = Runner(flavour)
    client = topology.client(kind, decode, asyncio=runner.asyncio, protocol=protocol)
    if topology.cluster and runner.asyncio:
        # redis-py's asyncio cluster client can fail, or run a command twice, when
        # several tasks send their first command at once (docs/cluster.rst).
        runner.run(client.initialize)
    environment = Env(topology, runner, client)
    try:
        # The parametrisation is honest only if the connection really negotiated the protocol (HELLO 3).
        assert int(runner.run(client.client_info)["resp"]) == protocol
        yield environment
    finally:
        runner.close_client(client)
        environment.inspector.close()
        runner.close()


def test_acquire_release_with_the_documented_keys(env: Env) -> None:
    """Acquire stores the id in the documented lock key; release deletes it and pushes one expiring signal."""
    lock = env.lock("basic")
    lock_key, signal_key = env.keys("basic")
    assert (lock._name, lock._signal) == (lock_key, signal_key)
    if env.topology.cluster:
        assert lock_key == "lock:{basic}"
    else:
        assert lock_key == "lock:basic"
    assert env.run(lock.acquire)
    assert env.inspector.get(lock_key) == lock.id.encode()
    assert env.inspector.pttl(lock_key) == -1
    env.run(lock.release)
    assert env.inspector.exists(lock_key) == 0
    assert env.inspector.lrange(signal_key, 0, -1) == [b"1"]
    assert 0 < env.inspector.pttl(signal_key) <= 1000


def test_a_busy_lock_is_not_acquired_and_shows_its_owner(env: Env) -> None:
    """A busy lock is not acquired without blocking, shows its holder, and cannot be released by another id."""
    holder = env.lock("busy", expire=30)
    other = env.lock("busy")
    assert env.run(holder.acquire)
    assert env.run(other.acquire, blocking=False) is False
    assert env.run(other.locked) is True
    assert env.run(other.get_owner_id) == holder.id
    with pytest.raises(redis_lock.NotAcquired):
        env.run(other.release)
    env.run(holder.release)
    assert env.run(other.locked) is False


def test_release_wakes_a_blocked_waiter(env: Env) -> None:
    """A release wakes a waiter blocked in BLPOP, which then holds the lock."""
    holder = env.lock("wake")
    waiter = env.lock("wake")
    assert env.run(holder.acquire)
    result = env.runner.submit(waiter.acquire, timeout=30)
    wait_for(lambda: env.topology.blocked_clients() >= 1, what="the waiter blocked in BLPOP")
    assert not result.done()
    released = time.monotonic()
    env.run(holder.release)
    assert result.result(timeout=30) is True
    assert time.monotonic() - released < 5, "the release did not wake the waiter"
    assert env.inspector.get(waiter._name) == waiter.id.encode()
    env.run(waiter.release)


def test_a_waiter_wakes_when_the_holder_expires(env: Env) -> None:
    """A waiter takes the lock soon after the holder's key expires, without a release."""
    holder = env.lock("expiring", expire=0.5)
    assert env.run(holder.acquire)
    started = time.monotonic()
    waiter = env.lock("expiring")
    assert env.run(waiter.acquire, timeout=20) is True
    waited = time.monotonic() - started
    assert 0.3 < waited < 5, f"took the expired lock after {waited:.3f} s"
    env.run(waiter.release)


def test_sub_second_timeout(env: Env) -> None:
    """A sub-second timeout on a busy lock gives up on time."""
    holder = env.lock("short", expire=30)
    assert env.run(holder.acquire)
    started = time.monotonic()
    assert env.run(env.lock("short").acquire, timeout=0.3) is False
    assert 0.25 < time.monotonic() - started < 3
    env.run(holder.release)


def test_extend_and_auto_renewal(env: Env) -> None:
    """extend() resets the expiry, and auto-renewal keeps a lock past its expire."""
    extended = env.lock("extend", expire=1)
    assert env.run(extended.acquire)
    env.run(extended.extend, 100)
    assert 90_000 < env.inspector.pttl(extended._name) <= 100_000
    env.run(extended.release)

    renewed = env.lock("renewed", expire=1.0, auto_renewal=True)
    # The 4.x hook: renewing every 0.1 s leaves 0.9 s of slack for a CPU shared with other test workers.
    renewed._lock_renewal_interval = 0.1
    assert env.run(renewed.acquire)
    deadline = time.monotonic() + 1.5
    # One and a half lease lengths: without renewal the key would be gone; it must never be missing.
    while time.monotonic() < deadline:
        assert env.inspector.get(renewed._name) == renewed.id.encode()
        time.sleep(0.02)
    assert not renewed.lost
    env.run(renewed.release)
    assert env.inspector.exists(renewed._name) == 0


def test_fencing_tokens_increase_with_every_grant(env: Env) -> None:
    """Each grant mints a larger token: after a release, an expiry, reset(), reset_all() and a lost counter key."""
    lock_key = env.keys("fenced")[0]
    fence = _keys.fence_key(lock_key)
    long = env.lock("fenced", expire=10, fencing=True)
    short = env.lock("fenced", expire=0.2, fencing=True)
    tokens: list[int] = []

    def token_of(lock: Any) -> int | None:
        token: int | None = lock.fencing_token
        return token

    def take(lock: Any) -> None:
        assert env.run(lock.acquire)
        token = token_of(lock)
        assert isinstance(token, int)
        assert 0 < token < 2**53
        assert env.inspector.get(fence) == str(token).encode()
        tokens.append(token)

    assert token_of(long) is None
    take(long)
    env.run(long.extend, 20)  # extending keeps the token
    assert token_of(long) == tokens[-1]
    env.run(long.release)
    assert token_of(long) is None
    take(short)  # left to expire
    wait_for(lambda: env.inspector.exists(lock_key) == 0, timeout=5, what="the lock key to expire")
    assert token_of(short) == tokens[-1]  # the object cannot tell until it releases
    with pytest.raises(redis_lock.NotAcquired):
        env.run(short.release)
    assert token_of(short) is None
    take(long)
    env.run(long.reset)
    assert token_of(long) is None
    take(short)
    assert env.reset_all() == 1
    assert env.inspector.exists(fence) == 1  # neither reset nor reset_all forgets the counter
    with pytest.raises(redis_lock.NotAcquired):
        env.run(short.release)  # its hold ended in Redis; the object learns it here
    take(long)
    env.run(long.release)
    env.inspector.delete(fence)  # lost (DEL, eviction, expiry): the next token starts from the server clock
    take(short)
    env.run(short.release)
    assert tokens == sorted(set(tokens)), tokens
    assert len(tokens) == 6


def test_reset_wakes_a_waiter(env: Env) -> None:
    """reset() deletes the holder's lock and wakes a waiter, which takes it."""
    holder = env.lock("reset")
    assert env.run(holder.acquire)
    waiter = env.lock("reset")
    result = env.runner.submit(waiter.acquire, timeout=30)
    wait_for(lambda: env.topology.blocked_clients() >= 1, what="the waiter blocked in BLPOP")
    env.run(env.lock("reset").reset)
    assert result.result(timeout=30) is True
    env.run(waiter.release)


def test_reset_all_deletes_every_lock_and_nothing_else(env: Env) -> None:
    """reset_all() deletes every lock key and leaves other keys alone."""
    names = [f"many-{i}" for i in range(60)]
    for name in names:
        assert env.run(env.lock(name, expire=60).acquire)
    env.inspector.set("unrelated", b"x")
    assert len(env.lock_keys()) == 60
    assert env.reset_all() == 60
    assert env.lock_keys() == []
    assert env.inspector.get("unrelated") == b"x"
    assert env.reset_all() == 0


def test_with_statement(env: Env) -> None:
    """The with statement holds the lock during its body and releases it afterwards."""
    lock = env.lock("with", expire=30)
    if env.runner.asyncio:

        async def body() -> bool:
            async with lock:
                locked: bool = await lock.locked()
                return locked

        assert env.run(body) is True
    else:
        with lock:
            assert lock.locked()
    assert env.inspector.exists(lock._name) == 0


@pytest.mark.parametrize("name", ["{tag}", "}lead", "a}b{c", "back\\slash}", "{}", "ünï{cödé}"])
def test_names_with_braces(env: Env, name: str) -> None:
    """Names with braces and other odd characters work, and their keys share one slot on a cluster."""
    lock = env.lock(name)
    lock_key, signal_key = env.keys(name)
    assert env.run(lock.acquire)
    assert env.inspector.get(lock_key) == lock.id.encode()
    if env.topology.cluster:
        assert env.inspector.cluster_keyslot(lock_key) == env.inspector.cluster_keyslot(signal_key)
    env.run(lock.release)
    assert env.inspector.lrange(signal_key, 0, -1) == [b"1"]


def test_mutual_exclusion(env: Env) -> None:
    """Eight concurrent workers increment a counter with GET then SET under the lock: no update is lost."""
    env.inspector.set("counter", 0)
    rounds = 15

    def worker() -> None:
        lock = env.lock("counter-lock", expire=30)
        for _ in range(rounds):
            assert lock.acquire(timeout=30)
            value = int(env.inspector.get("counter"))
            env.inspector.set("counter", value + 1)
            lock.release()

    async def async_worker() -> None:
        lock = env.lock("counter-lock", expire=30)
        for _ in range(rounds):
            assert await lock.acquire(timeout=30)
            value = int(await env.client.get("counter"))
            await env.client.set("counter", value + 1)
            await lock.release()

    futures = [env.runner.submit(async_worker if env.runner.asyncio else worker) for _ in range(8)]
    for future in futures:
        future.result(timeout=120)
    assert int(env.inspector.get("counter")) == 8 * rounds


def test_timeout_zero_and_non_blocking_give_up_at_once_and_say_the_lock_was_busy(env: Env) -> None:
    """``timeout=0`` and ``blocking=False`` make one attempt; their ``with`` errors say the lock was busy."""
    holder = env.lock("busy-now", expire=30)
    assert env.run(holder.acquire)
    started = time.monotonic()
    assert env.run(env.lock("busy-now").acquire, timeout=0) is False
    with pytest.raises(redis_lock.AcquireTimeout, match="is busy"):
        env.run(_enter_and_exit, env.lock("busy-now", timeout=0))
    with pytest.raises(redis_lock.NotAcquired, match="is busy") as raised:
        env.run(_enter_and_exit, env.lock("busy-now", blocking=False))
    assert "already expired" not in str(raised.value)
    assert time.monotonic() - started < 2
    env.run(holder.release)
    assert env.run(env.lock("busy-now").acquire, timeout=0) is True


def _enter_and_exit(lock: Any) -> Any:
    if isinstance(lock, redis_lock.AsyncLock):

        async def use() -> None:
            async with lock:
                pass

        return use()
    with lock:
        pass
    return None


def test_repr_names_the_public_class(env: Env) -> None:
    """``repr()`` shows ``redis_lock.Lock`` / ``redis_lock.AsyncLock`` and the key, not a private module."""
    lock = env.lock("shown")
    expected = "redis_lock.AsyncLock" if env.runner.asyncio else "redis_lock.Lock"
    assert repr(lock) == f"<{expected} {env.keys('shown')[0]!r}>"


def test_reset_all_clears_lock_keys_written_by_other_programs(env: Env) -> None:
    """``reset_all`` resets every ``lock:*`` key, also untagged ones another program wrote (other slots on Cluster)."""
    for n in range(6):
        assert env.run(env.lock(f"ours-{n}").acquire)
        env.inspector.set(f"lock:job-{n}", "written-by-4.x")  # no hash tag: its signal key hashes elsewhere
    assert env.reset_all() == 12
    assert env.lock_keys() == []
    for n in range(6):
        assert env.inspector.lrange(f"lock-signal:job-{n}", 0, -1) == [b"1"]
