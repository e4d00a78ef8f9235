"""A throwaway Redis Cluster for tests: three primaries on free loopback ports, no replicas.

The nodes are Redis or Valkey servers (``family``, see ``_server.py``).

Each node is a :class:`~tests._server.RedisServer` started with ``--cluster-enabled
yes`` and its own cluster bus port (``--cluster-port``, so the bus never needs
``port + 10000`` to be free). ``redis-cli --cluster create`` assigns the slots,
then the fixture waits until every node reports ``cluster_state:ok`` and knows
all three. Nodes are stopped by pid. ``cluster-require-full-coverage no`` keeps
the other slots serving while a test restarts one node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import valkey
import valkey.asyncio
import valkey.asyncio.cluster
import valkey.cluster

from ._server import RedisServer, free_port

__all__ = ["RedisClusterDeployment"]


def _redis_cli() -> str:
    binary = os.environ.get("REDIS_CLI") or shutil.which("redis-cli")
    if not binary:
        raise RuntimeError(
            "redis-cli was not found: it ships with redis-server (Debian/Ubuntu: apt-get install redis-tools), "
            "or set REDIS_CLI to its path"
        )
    return binary


class RedisClusterDeployment:
    """Three cluster-enabled redis-server processes joined into one cluster."""

    def __init__(self, size: int = 3, *, node_timeout_ms: int = 2000, family: str = "redis") -> None:
        self.family = family
        self.nodes = [
            RedisServer(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                str(free_port()),
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--cluster-require-full-coverage",
                "no",
                appendonly=True,
                family=family,
            )
            for _ in range(size)
        ]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"{host}:{port}" for host, port in self.startup_nodes]
        subprocess.run(
            [_redis_cli(), "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
        self.wait_until_ok(timeout)

    def wait_until_ok(self, timeout: float = 30.0) -> None:
        """Poll every node until it reports ``cluster_state:ok`` and agrees on who serves the slots."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._node_ready(node) for node in self.nodes):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach cluster_state:ok within {timeout} s")
            time.sleep(0.05)

    def _node_ready(self, node: RedisServer) -> bool:
        with redis.Redis(unix_socket_path=node.unix_path, socket_timeout=2) as client:
            try:
                info = client.cluster("INFO")
                slots = client.cluster("SLOTS")
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                return False
        served = sum(int(entry[1]) - int(entry[0]) + 1 for entry in slots)
        return isinstance(info, dict) and info.get("cluster_state") == "ok" and served == 16384

    def node_for_slot(self, slot: int) -> RedisServer:
        """The node that serves ``slot`` now, asked of the first node that answers."""
        for node in self.nodes:
            try:
                with redis.Redis(unix_socket_path=node.unix_path, socket_timeout=2) as client:
                    for entry in client.cluster("SLOTS"):
                        if int(entry[0]) <= slot <= int(entry[1]):
                            port = int(entry[2][1])
                            return next(n for n in self.nodes if n.port == port)
            except (redis.ConnectionError, redis.TimeoutError):
                continue
        raise RuntimeError(f"no node serves slot {slot}")

    def node_id(self, node: RedisServer) -> str:
        with redis.Redis(unix_socket_path=node.unix_path, decode_responses=True) as client:
            node_id: str = client.execute_command("CLUSTER", "MYID")
            return node_id

    def client(
        self, kind: str = "redis", decode_responses: bool = False, *, asyncio: bool = False, **kwargs: Any
    ) -> Any:
        """A cluster client of redis-py or valkey-py, sync or asyncio; the caller closes it."""
        host, port = self.startup_nodes[0]
        if kind == "redis":
            factory: Any = redis.asyncio.cluster.RedisCluster if asyncio else redis.cluster.RedisCluster
        else:
            factory = valkey.asyncio.cluster.ValkeyCluster if asyncio else valkey.cluster.ValkeyCluster
        return factory(host=host, port=port, decode_responses=decode_responses, **kwargs)

    def stop(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> RedisClusterDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
