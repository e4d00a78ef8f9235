"""A throwaway Sentinel deployment for tests: one primary, one replica, one sentinel.

The primary and the replica are :class:`~tests._server.RedisServer` processes (the
replica started with ``--replicaof`` the primary); the sentinel is ``redis-server
--sentinel`` with its own config file in a temporary directory (Sentinel rewrites
that file, so it must be its own) on a free loopback port. Everything listens on
127.0.0.1 and is stopped by pid.

The sentinel has a quorum of 1, so it fails over on its own when the primary
stays down for ``down_after_ms`` (1 s by default), as a real deployment would;
:meth:`SentinelDeployment.failover` asks for a failover at once (``SENTINEL
FAILOVER``) and waits until it is done.

Timings that Sentinel hard-codes (Redis 7.0, ``sentinel.c``), useful when reading
the tests: it sends INFO to each instance every 10 s (every second while a
failover is under way), and it turns a demoted primary that still says it is a
primary into a replica of the new one only after seeing it so for 8 s
(``SENTINEL_PUBLISH_PERIOD * 4``). So after a failover the old primary keeps
accepting writes from the clients still connected to it for about 10 seconds;
:meth:`SentinelDeployment.wait_healthy` waits for the end of that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
import valkey
import valkey.asyncio
import valkey.asyncio.sentinel
import valkey.sentinel

from ._server import RedisServer, free_port, redis_server_binary

__all__ = ["SentinelDeployment"]

#: How often the wait loops poll.
POLL = 0.02
#: Data node options: start a full sync at once instead of after 5 s (the default ``repl-diskless-sync-delay``).
SYNC_AT_ONCE = ("--repl-diskless-sync-delay", "0")


def _sentinels_of(pool: object) -> list[Any]:
    """The sentinel clients behind a Sentinel-managed connection pool (none if it is not one)."""
    manager: Any = getattr(pool, "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


# master_for() builds the client from these subclasses so that closing the client
# also closes its connections to the sentinel: otherwise the asyncio ones would be
# left open, and their ResourceWarning fails the test (filterwarnings = error).


class _RedisMaster(redis.Redis):
    def close(self) -> None:
        super().close()
        for sentinel in _sentinels_of(self.connection_pool):
            sentinel.close()


class _ValkeyMaster(valkey.Valkey):
    def close(self) -> None:
        base: Any = super()  # valkey-py's close() is unannotated
        base.close()
        for sentinel in _sentinels_of(self.connection_pool):
            sentinel.close()


class _AsyncRedisMaster(redis.asyncio.Redis):
    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in _sentinels_of(self.connection_pool):
            await sentinel.aclose()


class _AsyncValkeyMaster(valkey.asyncio.Valkey):
    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in _sentinels_of(self.connection_pool):
            await sentinel.aclose()


class SentinelDeployment:
    """A primary, a replica and a sentinel monitoring them as :attr:`service_name`."""

    service_name: str = "mymaster"

    def __init__(self, *, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        # Either node may become the primary: neither delays a full sync (the
        # default waits 5 s for more replicas to share a diskless transfer).
        self.primary = RedisServer(*SYNC_AT_ONCE)
        self.replica = RedisServer(*SYNC_AT_ONCE, "--replicaof", "127.0.0.1", str(self.primary.port))
        #: Both data nodes; which one is the primary changes with failovers (see :meth:`current_primary`).
        self.nodes = [self.primary, self.replica]
        self.directory = Path(tempfile.mkdtemp(prefix="redis-lock-sentinel-"))
        self.sentinel_port = free_port()
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinel_process: subprocess.Popen[bytes] | None = None
        self._paused: set[int] = set()
        #: The primary before the next failover (the sentinel may no longer report one).
        self._last_primary_port = self.primary.port

    # -- life cycle ------------------------------------------------------------

    def __enter__(self) -> SentinelDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start the primary, the replica, then the sentinel; return once the replica is in sync and known."""
        deadline = time.monotonic() + timeout
        self.primary.start()
        self.replica.start()
        # The sentinel discovers replicas from the primary's INFO, which it sends at
        # once and then every 10 s: start it only once the replica is attached.
        self._wait(lambda: self._link_up(self.replica), deadline, "the replica to sync with the primary")
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            f'dir "{self.directory}"\n'
            f'logfile "{self.directory / "sentinel.log"}"\n'
            f"sentinel monitor {self.service_name} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.service_name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.service_name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.service_name} 1\n"
        )
        self.sentinel_process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"], stdin=subprocess.DEVNULL
        )
        self.wait_healthy(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Stop the sentinel and both servers, by pid (resuming any paused one first), and remove their files."""
        for pid in list(self._paused):
            self._signal(pid, signal.SIGCONT)
        self._paused.clear()
        process, self.sentinel_process = self.sentinel_process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for node in self.nodes:
            node.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- clients ---------------------------------------------------------------

    def master_for(
        self, kind: str = "redis", decode_responses: bool = False, *, asyncio: bool = False, **kwargs: Any
    ) -> Any:
        """A client of the current primary through ``Sentinel(...).master_for``; the caller closes it.

        ``kind`` is ``"redis"`` or ``"valkey"``; ``asyncio`` picks the asyncio client.
        Closing the client also closes its connections to the sentinel.
        """
        sentinels = [("127.0.0.1", self.sentinel_port)]
        sentinel_kwargs = {"socket_timeout": 5.0}
        # The Sentinel classes are unannotated, hence Any.
        if kind == "redis":
            manager: Any = (redis.asyncio.sentinel.Sentinel if asyncio else redis.sentinel.Sentinel)(
                sentinels, sentinel_kwargs=sentinel_kwargs
            )
            master_class: type = _AsyncRedisMaster if asyncio else _RedisMaster
            return manager.master_for(
                self.service_name, redis_class=master_class, decode_responses=decode_responses, **kwargs
            )
        if kind != "valkey":
            raise ValueError(f"kind must be 'redis' or 'valkey', not {kind!r}")
        manager = (valkey.asyncio.sentinel.Sentinel if asyncio else valkey.sentinel.Sentinel)(
            sentinels, sentinel_kwargs=sentinel_kwargs
        )
        master_class = _AsyncValkeyMaster if asyncio else _ValkeyMaster
        return manager.master_for(
            self.service_name, valkey_class=master_class, decode_responses=decode_responses, **kwargs
        )

    def sentinel_client(self) -> redis.Redis:
        """A direct client of the sentinel process (decoded replies); the caller closes it."""
        return redis.Redis(host="127.0.0.1", port=self.sentinel_port, decode_responses=True, socket_timeout=5)

    @staticmethod
    def node_client(node: RedisServer, **kwargs: Any) -> redis.Redis:
        """A direct redis-py bytes client of one data node, over its unix socket; the caller closes it."""
        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis(unix_socket_path=node.unix_path, **kwargs)

    # -- topology --------------------------------------------------------------

    def primary_port(self) -> int | None:
        """The primary's port as clients discover it now, or None while there is no usable primary.

        This is what ``Sentinel.discover_master`` reads (``SENTINEL MASTERS``, a
        primary whose flags say it is up): during a failover, ``SENTINEL
        GET-MASTER-ADDR-BY-NAME`` names the promoted replica before clients
        switch to it.
        """
        try:
            with self.sentinel_client() as sentinel:
                state = sentinel.execute_command("SENTINEL", "MASTER", self.service_name)
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        fields = state if isinstance(state, dict) else dict(zip(state[::2], state[1::2], strict=True))
        if fields.get("flags") != "master":
            return None
        return int(fields["port"])

    def current_primary(self) -> RedisServer:
        """The data node the sentinel reports as primary now."""
        port = self.primary_port()
        for node in self.nodes:
            if node.port == port:
                return node
        raise RuntimeError(f"the sentinel reports an unknown primary port {port}")

    def current_replica(self) -> RedisServer:
        """The data node that is not the primary, in the sentinel's view."""
        primary = self.current_primary()
        return next(node for node in self.nodes if node is not primary)

    def failover(self, timeout: float = 30.0) -> None:
        """Fail over now (``SENTINEL FAILOVER``); return once clients find the other node and it takes writes.

        "The other node" is the one that was not the primary when this object
        last looked (at start, or at the end of the last :meth:`failover` or
        :meth:`wait_healthy`). A failover the sentinel started or finished on its
        own (the primary was killed) counts: this then only waits for it. While
        the replica is not yet fit to be promoted (``NOGOODSLAVE``, for example
        right after it was resumed), the request is repeated until ``timeout``.
        Before failing over again, call :meth:`wait_healthy`: until Sentinel has
        turned the old primary into a replica (about 10 s), it is no fit target.
        """
        deadline = time.monotonic() + timeout
        target = next(node for node in self.nodes if node.port != self._last_primary_port)

        def promoted() -> bool:
            return self.primary_port() == target.port and self._is_primary(target)

        with self.sentinel_client() as sentinel:
            while not promoted():
                try:
                    sentinel.execute_command("SENTINEL", "FAILOVER", self.service_name)
                    break
                except redis.ResponseError as exc:
                    if "INPROG" in str(exc):
                        break
                    if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(POLL)
        self._wait(promoted, deadline, f"the sentinel to promote the node on port {target.port}")
        self._last_primary_port = target.port

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until the sentinel knows one primary and one in-sync replica, and both agree.

        After a failover this lasts until the sentinel has turned the old primary
        into a replica of the new one (10 to 20 s, see the module docstring).
        """
        deadline = time.monotonic() + timeout

        def healthy() -> bool:
            port = self.primary_port()
            primary = next((n for n in self.nodes if n.port == port), None)
            if primary is None or not self._is_primary(primary):
                return False
            replica = next(n for n in self.nodes if n is not primary)
            return self._link_up(replica, primary.port) and self._sentinel_sees_replica(replica)

        self._wait(healthy, deadline, "the sentinel deployment to be healthy")
        self._last_primary_port = self.current_primary().port

    # -- faults ----------------------------------------------------------------

    def pause(self, node: RedisServer) -> None:
        """Freeze a node with SIGSTOP (its sockets stay open; the kernel still buffers what is sent to it)."""
        pid = self._pid(node)
        self._signal(pid, signal.SIGSTOP)
        self._paused.add(pid)

    def resume(self, node: RedisServer) -> None:
        """Resume a node frozen by :meth:`pause` (SIGCONT)."""
        pid = self._pid(node)
        self._signal(pid, signal.SIGCONT)
        self._paused.discard(pid)

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _pid(node: RedisServer) -> int:
        if node.process is None:
            raise RuntimeError("the node is not running")
        return node.process.pid

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _wait(self, predicate: Any, deadline: float, what: str) -> None:
        while not predicate():
            if self.sentinel_process is not None and self.sentinel_process.poll() is not None:
                log = (self.directory / "sentinel.log").read_text(errors="replace")
                raise RuntimeError(f"the sentinel exited with {self.sentinel_process.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(POLL)

    def _info(self, node: RedisServer) -> dict[str, Any] | None:
        if node.process is None or node.process.poll() is not None:
            return None
        try:
            with self.node_client(node, socket_timeout=1) as client:
                info: dict[str, Any] = client.info("replication")
                return info
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None

    def _is_primary(self, node: RedisServer) -> bool:
        info = self._info(node)
        return info is not None and info.get("role") == "master"

    def _link_up(self, node: RedisServer, primary_port: int | None = None) -> bool:
        info = self._info(node)
        if info is None or info.get("role") != "slave" or info.get("master_link_status") != "up":
            return False
        return primary_port is None or int(info.get("master_port", 0)) == primary_port

    def _sentinel_sees_replica(self, node: RedisServer) -> bool:
        try:
            with self.sentinel_client() as sentinel:
                replicas = sentinel.execute_command("SENTINEL", "REPLICAS", self.service_name)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False
        for entry in replicas:
            fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=True))
            # Only the flags: the sentinel's copy of the link status is refreshed by
            # its INFO, every 10 s, while the node's own INFO is checked directly.
            if int(fields.get("port", 0)) == node.port and fields.get("flags") == "slave":
                return True
        return False
