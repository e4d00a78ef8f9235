"""Test harness: a real Redis for every test, never a mock.

By default the session starts its own ``redis-server`` (see ``_server.py``) on a
unix socket and a free loopback port and stops it by pid at the end. Set
``REDIS_URL`` to run against an external server instead; the suite then flushes
that URL's database around every test, so point it at a database you can lose.
Tests that must kill or restart a server always start their own.

Behaviour tests take the ``conn`` fixture, which runs each test with redis-py
and valkey-py clients, with ``decode_responses`` off and on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import valkey

from ._cluster import RedisClusterDeployment
from ._server import RedisServer

ClientKind = tuple[str, bool]
CLIENT_KINDS: list[ClientKind] = [("redis", False), ("redis", True), ("valkey", False), ("valkey", True)]
MakeClient = Callable[..., Any]


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


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of this test's own, to kill, restart or pause without disturbing other tests."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def cluster_deployment() -> Iterator[RedisClusterDeployment]:
    """A three-primary Redis Cluster of the session's own (see ``_cluster.py``)."""
    with RedisClusterDeployment() as deployment:
        yield deployment


@pytest.fixture(scope="session")
def sentinel_deployment() -> Iterator[Any]:
    """A primary, a replica and a sentinel of the session's own (see ``_sentinel.py``)."""
    from ._sentinel import SentinelDeployment

    with SentinelDeployment() as deployment:
        yield deployment
