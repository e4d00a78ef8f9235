"""Redis Cluster specifics, on a real three-primary cluster (``_cluster.py``).

The behaviour shared with a standalone server is in ``test_topologies.py``; here
are the key rule, the scripts' keys, many names over all slots, a restarted
node, and a slot migrated while a waiter blocks.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from hypothesis import given
from hypothesis import strategies as st

import redis_lock
from redis_lock import _keys, _scripts

from ._cluster import RedisClusterDeployment
from ._topology import Runner, wait_for

LUA_DIR = Path(_scripts.__file__).parent / "lua"


@pytest.fixture
def cluster(cluster_deployment: RedisClusterDeployment) -> Iterator[redis.cluster.RedisCluster]:
    """A redis-py cluster client; every primary is flushed first."""
    client: redis.cluster.RedisCluster = cluster_deployment.client()
    client.flushall()
    yield client
    client.close()


# ---------------------------------------------------------------------------
# The key rule.


@given(st.text(min_size=1, max_size=30))
def test_hash_tag_puts_both_keys_in_one_slot_and_keeps_names_apart(name: str) -> None:
    lock_key, signal_key = _keys.keys_for(name, cluster=True)
    assert _keys.key_slot(lock_key) == _keys.key_slot(signal_key) == _keys.key_slot(_keys.hash_tag(name))
    # The tag holds no "}" so Redis hashes exactly the whole (escaped) name.
    assert "}" not in _keys.hash_tag(name)[1:-1]
    # Distinct names never share keys: the escaping can be undone.
    inner = lock_key[len("lock:{") : -1]
    assert re.sub(r"\\(\\|x7d)", lambda m: "\\" if m.group(1) == "\\" else "}", inner) == name


def test_standalone_keys_are_the_4x_names() -> None:
    assert _keys.keys_for("a{b}c") == ("lock:a{b}c", "lock-signal:a{b}c")
    assert _keys.keys_for("a{b}c", cluster=True) == ("lock:{a{b\\x7dc}", "lock-signal:{a{b\\x7dc}")
    assert _keys.keys_for("x\\y", cluster=True)[0] == "lock:{x\\\\y}"


def test_key_slot_agrees_with_the_server(cluster: redis.cluster.RedisCluster) -> None:
    """Our CRC16 slot function (used to group reset_all's keys) is the server's CLUSTER KEYSLOT."""
    names = ["", "a", "{a}", "{}", "{}a", "a{", "x{y}z", "}lead", "ünï{cödé}", "lock:{tag}"]
    names += [f"name-{i}" for i in range(200)]
    for name in names:
        for key in (name, *_keys.keys_for(name or "n", cluster=True)):
            assert _keys.key_slot(key) == cluster.cluster_keyslot(key), key


#: Fair mode's wake lists (``lock-wake:<name>:<token>``) are the one kind of key a script builds: the
#: release hands the lock to a waiter it finds in the queue. They are built from a prefix argument that
#: carries the lock's hash tag, so they share the lock's slot (see docs/fair.rst). ("key": fair.lua's keep(), given KEYS.)
BUILT_WAKE_KEY: Final = r"key|wake_key\([\w.]+\)?|ARGV\[2\] \.\. [\w.(]+|wake"


def test_scripts_touch_only_the_keys_they_are_given() -> None:
    """Every redis.call in every script names its key as KEYS[...], never a key built in Lua (but fair wake lists)."""
    calls = 0
    for path in sorted(LUA_DIR.glob("*.lua")):
        for match in re.finditer(r"redis\.p?call\(\s*'(\w+)'\s*,\s*([^,)]+)", path.read_text()):
            calls += 1
            key = match.group(2).strip()
            if path.stem in ("fair", "reset") and re.fullmatch(BUILT_WAKE_KEY, key):
                continue
            assert re.fullmatch(r"KEYS\[[^\]]+\]", key), (path.name, match.group(0))
    assert calls >= 15


def test_every_scripts_keys_share_one_slot(cluster: redis.cluster.RedisCluster) -> None:
    """The KEYS each script is called with hash to one slot, checked by the server for every call."""
    for name in ["plain", "{tagged}", "}x", "a}b"]:
        lock = redis_lock.Lock(cluster, name, expire=10)
        assert cluster.cluster_keyslot(lock._name) == cluster.cluster_keyslot(lock._signal)
        # acquire, extend, unlock and reset each run against the real cluster, which
        # rejects a script whose keys span slots (CROSSSLOT) or touch another node.
        assert lock.acquire()
        lock.extend(20)
        lock.release()
        lock.reset()
    for name in [f"group-{i}" for i in range(100)]:
        assert redis_lock.Lock(cluster, name).acquire()
    keys = list(cluster.scan_iter(match="lock:*"))
    for group, _locks in _keys.reset_all_groups(keys):
        assert len({cluster.cluster_keyslot(key) for key in group}) == 1
    assert redis_lock.reset_all(cluster) == 100


# ---------------------------------------------------------------------------
# Clients.


def test_cluster_clients_pass_the_strict_check(cluster_deployment: RedisClusterDeployment) -> None:
    sync_client = cluster_deployment.client("valkey")
    async_client = cluster_deployment.client(asyncio=True)
    try:
        redis_lock.Lock(sync_client, "strict")
        redis_lock.AsyncLock(async_client, "strict")
        with pytest.raises(redis_lock.InvalidArgumentType, match=r"use redis_lock\.AsyncLock"):
            redis_lock.Lock(async_client, "wrong")
        with pytest.raises(redis_lock.InvalidArgumentType, match=r"use redis_lock\.Lock"):
            redis_lock.AsyncLock(sync_client, "wrong")
    finally:
        sync_client.close()
        asyncio.run(async_client.aclose())


# ---------------------------------------------------------------------------
# Many names, a restarted node, a migrated slot.


def test_many_names_spread_over_every_primary(
    cluster: redis.cluster.RedisCluster, cluster_deployment: RedisClusterDeployment
) -> None:
    locks = [redis_lock.Lock(cluster, f"spread-{i}", expire=60) for i in range(300)]
    for lock in locks:
        assert lock.acquire(blocking=False)
    for lock in locks[::7]:
        assert not redis_lock.Lock(cluster, lock._name[len("lock:{") : -1]).acquire(blocking=False)
    per_node = []
    for node in cluster_deployment.nodes:
        with redis.Redis(unix_socket_path=node.unix_path) as direct:
            per_node.append(len(list(direct.scan_iter(match="lock:*"))))
    assert sum(per_node) == 300
    assert min(per_node) > 50, per_node  # about a third each
    for lock in locks:
        lock.release()
    assert list(cluster.scan_iter(match="lock:*")) == []


def _slot_and_node(deployment: RedisClusterDeployment, name: str) -> tuple[int, Any]:
    slot = _keys.key_slot(_keys.keys_for(name, cluster=True)[0])
    return slot, deployment.node_for_slot(slot)


def test_a_held_lock_survives_its_node_restarting(cluster_deployment: RedisClusterDeployment) -> None:
    """The node holding a lock restarts (AOF on): the lock is still held, blocked waiters end without a
    double grant (they get the lock after the release, or a ConnectionError while the node is down),
    and locks on the other nodes keep working meanwhile, even with the script cache flushed."""
    name = "restarted"
    _, node = _slot_and_node(cluster_deployment, name)
    client = cluster_deployment.client(socket_timeout=2, socket_connect_timeout=2)
    try:
        client.flushall()
        holder = redis_lock.Lock(client, name, expire=60)
        assert holder.acquire()
        outcome: list[object] = []

        def wait() -> None:
            waiter_client = cluster_deployment.client(socket_timeout=2, socket_connect_timeout=2)
            try:
                outcome.append(redis_lock.Lock(waiter_client, name).acquire(timeout=40))
                outcome.append(holder_released.is_set())
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError) as exc:
                outcome.append(exc)
            finally:
                waiter_client.close()

        holder_released = threading.Event()
        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        with redis.Redis(unix_socket_path=node.unix_path) as direct:
            wait_for(lambda: int(direct.info("clients")["blocked_clients"]) == 1, what="the waiter blocked")
        for each in cluster_deployment.nodes:
            with redis.Redis(unix_socket_path=each.unix_path) as direct:
                direct.script_flush()
        node.stop()
        # Another node's slots keep serving while this one is down, reloading the
        # flushed scripts on that node alone (SCRIPT LOAD would need every primary).
        other_name = next(
            f"elsewhere-{i}"
            for i in range(1000)
            if _slot_and_node(cluster_deployment, f"elsewhere-{i}")[1] is not node
        )
        other = redis_lock.Lock(client, other_name)
        assert other.acquire(blocking=False)
        other.release()
        node.start()
        cluster_deployment.wait_until_ok()
        assert holder.owned(), "the lock did not survive the restart"
        holder_released.set()
        holder.release()
        thread.join(timeout=60)
        assert not thread.is_alive(), "a waiter still hangs after the node came back"
        assert outcome
        assert outcome == [True, True] or isinstance(outcome[0], Exception), outcome
    finally:
        client.close()


def _migrate_slot(deployment: RedisClusterDeployment, slot: int, source: Any, target: Any) -> None:
    """Move ``slot`` with its keys from ``source`` to ``target``, as ``redis-cli --cluster reshard`` does."""
    source_id, target_id = deployment.node_id(source), deployment.node_id(target)
    with (
        redis.Redis(unix_socket_path=source.unix_path) as src,
        redis.Redis(unix_socket_path=target.unix_path) as dst,
    ):
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in deployment.nodes:
            with redis.Redis(unix_socket_path=node.unix_path) as each:
                each.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


def _waiter(
    deployment: RedisClusterDeployment,
    name: str,
    flavour: str,
    released: threading.Event,
    outcome: list[object],
) -> threading.Thread:
    """Start a thread whose Lock (or AsyncLock) waits for ``name``; it records whether it got the lock and
    whether ``released`` was already set when it did, then releases."""

    def wait_sync() -> None:
        client = deployment.client()
        try:
            waiter = redis_lock.Lock(client, name)
            outcome.append(waiter.acquire(timeout=30))
            outcome.append(released.is_set())
            waiter.release()
        finally:
            client.close()

    async def wait_async() -> None:
        client = deployment.client(asyncio=True)
        try:
            waiter = redis_lock.AsyncLock(client, name)
            outcome.append(await waiter.acquire(timeout=30))
            outcome.append(released.is_set())
            await waiter.release()
        finally:
            await client.aclose()

    thread = threading.Thread(target=wait_sync if flavour == "sync" else lambda: asyncio.run(wait_async()))
    thread.daemon = True
    thread.start()
    return thread


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_slot_migration_while_a_waiter_blocks(
    cluster_deployment: RedisClusterDeployment, flavour: str
) -> None:
    """A lock's slot moves to another node (MOVED) while its holder holds it and a waiter blocks:
    the holder still releases it, and the waiter wakes and takes it on the new node."""
    name = f"migrating-{flavour}"
    slot, source = _slot_and_node(cluster_deployment, name)
    target = next(node for node in cluster_deployment.nodes if node is not source)
    client = cluster_deployment.client()
    try:
        holder = redis_lock.Lock(client, name, expire=60)
        assert holder.acquire()
        released = threading.Event()
        outcome: list[object] = []
        thread = _waiter(cluster_deployment, name, flavour, released, outcome)
        with redis.Redis(unix_socket_path=source.unix_path) as direct:
            wait_for(lambda: int(direct.info("clients")["blocked_clients"]) == 1, what="the waiter blocked")
        _migrate_slot(cluster_deployment, slot, source, target)
        assert cluster_deployment.node_for_slot(slot) is target
        with redis.Redis(unix_socket_path=target.unix_path) as direct:
            assert direct.get(holder._name) == holder.id.encode()
        released.set()
        started = time.monotonic()
        holder.release()  # this client's slot map is stale: it follows MOVED to the new node
        thread.join(timeout=40)
        assert not thread.is_alive()
        assert outcome == [True, True]
        assert time.monotonic() - started < 15
    finally:
        client.close()
        _migrate_slot(cluster_deployment, slot, target, source)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_script_flush_on_the_locks_node_during_a_wait(
    cluster_deployment: RedisClusterDeployment, flavour: str
) -> None:
    """SCRIPT FLUSH on the lock's node while a waiter blocks: release and the waiter's next attempt reload by EVAL.

    Redis 8 keeps scripts sent with EVAL in an LRU of 500, so recovery must never rely
    on an EVAL'd script staying cached: every NOSCRIPT is answered by EVAL again.
    """
    name = f"flushed-{flavour}"
    _, node = _slot_and_node(cluster_deployment, name)
    runner = Runner(flavour)
    client = cluster_deployment.client(asyncio=runner.asyncio)
    if runner.asyncio:
        runner.run(client.initialize)
    holder_client = cluster_deployment.client()
    factory: Any = redis_lock.AsyncLock if runner.asyncio else redis_lock.Lock
    try:
        holder = redis_lock.Lock(holder_client, name, expire=60)
        assert holder.acquire()
        waiter = factory(client, name)
        result = runner.submit(waiter.acquire, timeout=30)
        with redis.Redis(unix_socket_path=node.unix_path) as direct:
            wait_for(lambda: int(direct.info("clients")["blocked_clients"]) >= 1, what="the waiter blocked")
            for _ in range(3):
                direct.script_flush()
                assert direct.script_exists(_scripts.UNLOCK.sha1) == [False]
                holder.release()  # NOSCRIPT -> EVAL on the node; wakes the waiter
                assert result.result(timeout=30) is True
                direct.script_flush()  # the waiter's release must reload too
                runner.run(waiter.release)
                assert holder.acquire()
                result = runner.submit(waiter.acquire, timeout=30)
                wait_for(
                    lambda: int(direct.info("clients")["blocked_clients"]) >= 1, what="the waiter blocked"
                )
        holder.release()
        assert result.result(timeout=30) is True
        runner.run(waiter.release)
    finally:
        holder_client.close()
        runner.close_client(client)
        runner.close()
