"""One behavioural suite, three deployments: standalone, Redis Cluster and Sentinel.

A :class:`Topology` hands out clients of one deployment of Redis or Valkey
servers (redis-py or valkey-py, sync or asyncio, RESP2 or RESP3) and a
synchronous bytes client for inspecting it. A :class:`Runner` runs a lock
method the same way for both flavours: a ``Lock`` method is called directly, an
``AsyncLock`` coroutine runs on an event loop in a background thread. So one
test body drives ``Lock`` and ``AsyncLock`` alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from ._cluster import RedisClusterDeployment
    from ._sentinel import SentinelDeployment

#: How long :meth:`Runner.run` waits for a coroutine before failing the test.
RUN_TIMEOUT = 120.0

__all__ = [
    "ClusterTopology",
    "Runner",
    "SentinelTopology",
    "StandaloneTopology",
    "Topology",
    "async_wait_for",
    "blocked_in",
    "wait_for",
]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` every millisecond until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


async def async_wait_for(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """:func:`wait_for` for a coroutine: yields to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def blocked_in(admin: Any, command: str, name: str | None = None) -> int:
    """How many clients (named ``name``, if given) are blocked in ``command`` right now."""
    return sum(
        1
        for c in admin.client_list()
        if c["cmd"] == command and "b" in c["flags"] and (name is None or c["name"] == name)
    )


class Topology:
    """A deployment the lock runs on."""

    name: str
    cluster: bool = False
    #: The server family it runs on, ``"redis"`` or ``"valkey"`` (see ``_server.py``).
    family: str = "redis"

    def client(
        self, kind: str = "redis", decode_responses: bool = False, *, asyncio: bool = False, **kwargs: Any
    ) -> Any:
        raise NotImplementedError

    def _node_clients(self) -> list[redis.Redis]:
        """Direct clients to every primary, for server-side inspection; the caller closes them."""
        raise NotImplementedError

    def inspector(self) -> Any:
        """A synchronous redis-py bytes client of the deployment (the caller closes it)."""
        return self.client()

    def flush(self) -> None:
        for node in self._node_clients():
            with node:
                node.flushall()

    def blocked_clients(self) -> int:
        """Clients blocked in a command (BLPOP) on any primary right now."""
        total = 0
        for node in self._node_clients():
            with node:
                info = node.info("clients")
                total += int(info["blocked_clients"])
        return total


class StandaloneTopology(Topology):
    name = "standalone"

    def __init__(self, url: str, family: str = "redis") -> None:
        self.url = url
        self.family = family

    def client(
        self, kind: str = "redis", decode_responses: bool = False, *, asyncio: bool = False, **kwargs: Any
    ) -> Any:
        import redis.asyncio
        import valkey
        import valkey.asyncio

        if kind == "redis":
            factory: Any = redis.asyncio.Redis if asyncio else redis.Redis
        else:
            factory = valkey.asyncio.Valkey if asyncio else valkey.Valkey
        return factory.from_url(self.url, decode_responses=decode_responses, **kwargs)

    def _node_clients(self) -> list[redis.Redis]:
        return [redis.Redis.from_url(self.url)]


class ClusterTopology(Topology):
    name = "cluster"
    cluster = True

    def __init__(self, deployment: RedisClusterDeployment) -> None:
        self.deployment = deployment
        self.family = deployment.family

    def client(
        self, kind: str = "redis", decode_responses: bool = False, *, asyncio: bool = False, **kwargs: Any
    ) -> Any:
        return self.deployment.client(kind, decode_responses, asyncio=asyncio, **kwargs)

    def _node_clients(self) -> list[redis.Redis]:
        return [redis.Redis(unix_socket_path=node.unix_path) for node in self.deployment.nodes]


class SentinelTopology(Topology):
    name = "sentinel"

    def __init__(self, deployment: SentinelDeployment) -> None:
        self.deployment = deployment

    def client(
        self, kind: str = "redis", decode_responses: bool = False, *, asyncio: bool = False, **kwargs: Any
    ) -> Any:
        return self.deployment.master_for(kind, decode_responses, asyncio=asyncio, **kwargs)

    def _node_clients(self) -> list[redis.Redis]:
        inspector: redis.Redis = self.deployment.master_for()
        return [inspector]


class Runner:
    """Runs lock methods for one flavour: directly for ``Lock``, on a background event loop for ``AsyncLock``."""

    def __init__(self, flavour: str) -> None:
        self.asyncio = flavour == "async"
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=16)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        if self.asyncio:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
            self._loop_thread.start()

    def submit(
        self, function: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Start ``function(*args, **kwargs)`` concurrently; the future holds its result."""
        if self._loop is None:
            return self._threads.submit(function, *args, **kwargs)
        return asyncio.run_coroutine_threadsafe(self._awaited(function, *args, **kwargs), self._loop)

    @staticmethod
    async def _awaited(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        if isinstance(result, Coroutine):
            return await result
        return result

    def run(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``function(*args, **kwargs)`` (awaiting it for ``AsyncLock``) and return its result."""
        if self._loop is None:
            return function(*args, **kwargs)
        return self.submit(function, *args, **kwargs).result(RUN_TIMEOUT)

    def close_client(self, client: Any) -> None:
        if self._loop is None:
            client.close()
        else:
            self.run(client.aclose)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._loop is not None and self._loop_thread is not None:
            loop = self._loop
            loop.call_soon_threadsafe(loop.stop)
            self._loop_thread.join(timeout=10)
            loop.close()
