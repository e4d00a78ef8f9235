"""The resource side of fencing (``redis_lock.fencing``), against the real Redis the suite starts.

A guard is the hash ``fenced:<resource>`` (fields ``token`` and ``value``);
``fenced_set`` writes it only with a token not older than the last accepted
one, in one script. Every test looks at the keyspace itself (``plain``), not
only at what the functions answer.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio
import redis.cluster
import valkey.asyncio

import redis_lock
import redis_lock.fencing
from redis_lock import InvalidArgument, InvalidArgumentType, Lock, StaleToken, _scripts
from redis_lock.fencing import async_fenced_get, async_fenced_set, fenced_get, fenced_set

from ._cluster import RedisClusterDeployment
from ._server import free_port
from .conftest import MakeClient

#: Tokens of the size acquire.lua mints (server TIME in microseconds), one apart.
OLD, NEW = 1796067249330278, 1796067249332871


def guard(plain: redis.Redis, resource: str) -> dict[bytes, bytes]:
    """The guard hash of ``resource`` as stored in Redis."""
    stored: dict[Any, Any] = plain.hgetall(f"fenced:{resource}")  # a bytes client: bytes keys and values
    return {bytes(k): bytes(v) for k, v in stored.items()}


#: The client kinds the round trips run on: (library, decode_responses, RESP protocol).
KINDS = [
    ("redis", False, 2),
    ("redis", True, 2),
    ("valkey", False, 2),
    ("valkey", True, 2),
    ("redis", True, 3),
]


@pytest.fixture(params=KINDS, ids=lambda k: f"{k[0]}-{'str' if k[1] else 'bytes'}-resp{k[2]}")
def client(request: pytest.FixtureRequest, make_client: MakeClient, plain: redis.Redis) -> Any:
    """A synchronous client of each kind; the database is flushed first (through ``plain``)."""
    kind, decode, protocol = request.param
    return make_client(kind, decode, protocol=protocol)


@pytest_asyncio.fixture(params=["redis", "valkey"])
async def aclient(request: pytest.FixtureRequest, redis_url: str, plain: redis.Redis) -> AsyncIterator[Any]:
    """An asyncio client of redis-py and of valkey-py (decode_responses on); the database is flushed first."""
    factory: Any = redis.asyncio.Redis if request.param == "redis" else valkey.asyncio.Valkey
    made = factory.from_url(redis_url, decode_responses=True)
    yield made
    await made.aclose()


# ---------------------------------------------------------------------------
# Accepting and refusing.


def test_newer_tokens_are_accepted_and_stored_as_decimal_strings(client: Any, plain: redis.Redis) -> None:
    """A first write and a newer one are both accepted; the hash holds the last token in exact decimal and its value."""
    fenced_set(client, "invoice-42", OLD, b"draft")
    assert guard(plain, "invoice-42") == {b"token": b"1796067249330278", b"value": b"draft"}
    fenced_set(client, "invoice-42", NEW, "final")
    # Not "1.7960672493329e+15" (Lua's tostring of a number): the token is kept exactly.
    assert guard(plain, "invoice-42") == {b"token": b"1796067249332871", b"value": b"final"}
    assert plain.keys("*") == [b"fenced:invoice-42"]


def test_an_equal_token_is_accepted(client: Any, plain: redis.Redis) -> None:
    """One holder writes several times with the same token: every write lands."""
    fenced_set(client, "report", NEW, b"one")
    fenced_set(client, "report", NEW, b"two")
    fenced_set(client, "report", NEW, b"three")
    assert fenced_get(client, "report") == (NEW, b"three")


def test_an_older_token_raises_stale_token_and_changes_nothing(client: Any, plain: redis.Redis) -> None:
    """A write with an older token raises StaleToken naming the resource and both tokens; token and value stay."""
    fenced_set(client, "invoice-42", NEW, b"newer holder's")
    with pytest.raises(StaleToken) as caught:
        fenced_set(client, "invoice-42", OLD, b"late write")
    err = caught.value
    assert (err.resource, err.token, err.last) == ("invoice-42", OLD, NEW)
    assert str(err) == (
        "Stale fencing token for 'invoice-42': 1796067249330278 < 1796067249332871, the last token accepted"
    )
    assert guard(plain, "invoice-42") == {b"token": str(NEW).encode(), b"value": b"newer holder's"}
    assert fenced_get(client, "invoice-42") == (NEW, b"newer holder's")


def test_tokens_compare_as_numbers_exactly_on_the_server(plain: redis.Redis) -> None:
    """9 < 10 (a string comparison says otherwise), and tokens one apart just below 2**53 are told apart."""
    fenced_set(plain, "digits", 9, b"nine")
    fenced_set(plain, "digits", 10, b"ten")  # "10" < "9" as strings: a string comparison would refuse it
    with pytest.raises(StaleToken):
        fenced_set(plain, "digits", 9, b"nine again")
    top = 2**53 - 1
    fenced_set(plain, "top", top, b"top")
    with pytest.raises(StaleToken) as caught:
        fenced_set(plain, "top", top - 1, b"one below")  # equal once rounded to 14 digits (Lua's tostring)
    assert caught.value.last == top
    assert fenced_get(plain, "top") == (top, b"top")
    assert guard(plain, "top")[b"token"] == b"9007199254740991"


def test_resources_are_independent(plain: redis.Redis) -> None:
    """A newer token on one resource does not fence another: each resource keeps its own last token."""
    fenced_set(plain, "a", NEW, b"a")
    fenced_set(plain, "b", OLD, b"b")
    assert fenced_get(plain, "a") == (NEW, b"a")
    assert fenced_get(plain, "b") == (OLD, b"b")
    assert sorted(plain.keys("*")) == [b"fenced:a", b"fenced:b"]


# ---------------------------------------------------------------------------
# Reading, values.


def test_fenced_get_is_none_before_any_write_and_the_pair_after(client: Any, plain: redis.Redis) -> None:
    """Nothing accepted yet reads as None (and creates no key); an accepted write reads back as (token, bytes)."""
    assert fenced_get(client, "fresh") is None
    assert plain.exists("fenced:fresh") == 0
    fenced_set(client, "fresh", OLD, b"v")
    read = fenced_get(client, "fresh")
    assert read is not None
    token, value = read
    assert (token, value) == (OLD, b"v")
    assert type(token) is int
    assert type(value) is bytes


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (b"\xff\x00\xfe binary", b"\xff\x00\xfe binary"),  # not UTF-8: must not be decoded on the way back
        ("h\u00e9llo \u2713", "h\u00e9llo \u2713".encode()),
        (b"", b""),
        ("", b""),
    ],
    ids=["non-utf8-bytes", "non-ascii-str", "empty-bytes", "empty-str"],
)
def test_values_round_trip_as_bytes(
    client: Any, plain: redis.Redis, value: str | bytes, stored: bytes
) -> None:
    """bytes are stored as they are and str as UTF-8; both read back as those bytes, whatever decode_responses."""
    fenced_set(client, "blob", OLD, value)
    assert guard(plain, "blob")[b"value"] == stored
    assert fenced_get(client, "blob") == (OLD, stored)


def test_str_values_are_utf8_whatever_the_clients_encoding(
    make_client: MakeClient, plain: redis.Redis
) -> None:
    """A client set to latin-1 still stores a str value as UTF-8, so every reader sees the same bytes."""
    latin = make_client(encoding="latin-1")
    fenced_set(latin, "enc", OLD, "caf\u00e9")
    assert guard(plain, "enc")[b"value"] == b"caf\xc3\xa9"


# ---------------------------------------------------------------------------
# StaleToken.


def test_stale_token_is_exported_and_pickles_whole() -> None:
    """StaleToken is one class in redis_lock and redis_lock.fencing, a RedisLockError, and survives pickling."""
    assert redis_lock.fencing.StaleToken is redis_lock.StaleToken
    assert issubclass(StaleToken, redis_lock.RedisLockError)
    assert not issubclass(StaleToken, redis_lock.NotAcquired)
    err = StaleToken("r", 5, 7)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is StaleToken
    assert (copy.resource, copy.token, copy.last, str(copy)) == ("r", 5, 7, str(err))
    assert str(err) == "Stale fencing token for 'r': 5 < 7, the last token accepted"


# ---------------------------------------------------------------------------
# Bad arguments: refused before any Redis call.

GOOD: dict[str, Any] = {"resource": "res", "token": OLD, "value": b"v"}


def _set_args(**bad: Any) -> dict[str, Any]:
    return {**GOOD, **bad}


BAD_SET = [
    # (id, arguments, error, argument, text the message shows)
    ("resource-bytes", _set_args(resource=b"res"), InvalidArgumentType, "resource", "resource=b'res'"),
    ("resource-int", _set_args(resource=7), InvalidArgumentType, "resource", "resource=7"),
    ("resource-none", _set_args(resource=None), InvalidArgumentType, "resource", "resource=None"),
    ("resource-empty", _set_args(resource=""), InvalidArgument, "resource", "resource=''"),
    ("resource-surrogate", _set_args(resource="a\ud800"), InvalidArgument, "resource", "resource='a\\ud800'"),
    ("token-float", _set_args(token=5.0), InvalidArgumentType, "token", "token=5.0"),
    ("token-bool", _set_args(token=True), InvalidArgumentType, "token", "token=True"),
    ("token-str", _set_args(token="5"), InvalidArgumentType, "token", "token='5'"),
    ("token-none", _set_args(token=None), InvalidArgumentType, "token", "token=None"),
    ("token-zero", _set_args(token=0), InvalidArgument, "token", "token=0"),
    ("token-negative", _set_args(token=-3), InvalidArgument, "token", "token=-3"),
    ("token-2**53", _set_args(token=2**53), InvalidArgument, "token", "token=9007199254740992"),
    ("value-int", _set_args(value=5), InvalidArgumentType, "value", "value=5"),
    ("value-none", _set_args(value=None), InvalidArgumentType, "value", "value=None"),
    ("value-bytearray", _set_args(value=bytearray(b"v")), InvalidArgumentType, "value", "value=bytearray"),
    ("value-surrogate", _set_args(value="\udcff"), InvalidArgument, "value", "value='\\udcff'"),
]
BAD_GET = [case for case in BAD_SET if case[3] == "resource"]


def _unreachable() -> redis.Redis:
    """A real client of a port nothing listens on: any Redis call would raise ConnectionError."""
    return redis.Redis(port=free_port(), socket_connect_timeout=0.5)


@pytest.mark.parametrize(
    ("args", "error", "argument", "shown"), [c[1:] for c in BAD_SET], ids=[c[0] for c in BAD_SET]
)
def test_fenced_set_rejects_bad_arguments_before_any_call(
    plain: redis.Redis, args: dict[str, Any], error: type[Exception], argument: str, shown: str
) -> None:
    """Each bad argument raises its error naming the argument and value; no key is written, no call is made."""
    with pytest.raises(error) as caught:
        fenced_set(plain, args["resource"], args["token"], args["value"])
    assert type(caught.value) is error
    assert getattr(caught.value, "argument", None) == argument
    assert argument in str(caught.value)
    assert shown in str(caught.value)
    assert plain.dbsize() == 0
    # The same arguments with an unreachable server: the error is ours, not a ConnectionError.
    with pytest.raises(error):
        fenced_set(_unreachable(), args["resource"], args["token"], args["value"])


@pytest.mark.parametrize(
    ("args", "error", "argument", "shown"), [c[1:] for c in BAD_GET], ids=[c[0] for c in BAD_GET]
)
def test_fenced_get_rejects_bad_resources_before_any_call(
    args: dict[str, Any], error: type[Exception], argument: str, shown: str
) -> None:
    """fenced_get checks the resource as fenced_set does, before any call (the server is unreachable)."""
    with pytest.raises(error, match="resource") as caught:
        fenced_get(_unreachable(), args["resource"])
    assert shown in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("args", "error", "argument", "shown"), [c[1:] for c in BAD_SET], ids=[c[0] for c in BAD_SET]
)
async def test_async_twins_reject_bad_arguments_before_any_call(
    args: dict[str, Any], error: type[Exception], argument: str, shown: str
) -> None:
    """async_fenced_set (and async_fenced_get for the resource) raise the same errors, before any call."""
    client = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.5)
    try:
        with pytest.raises(error) as caught:
            await async_fenced_set(client, args["resource"], args["token"], args["value"])
        assert getattr(caught.value, "argument", None) == argument
        assert shown in str(caught.value)
        if argument == "resource":
            with pytest.raises(error):
                await async_fenced_get(client, args["resource"])
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_a_client_of_the_wrong_flavour_is_named_with_the_function_to_use(
    redis_url: str, plain: redis.Redis
) -> None:
    """A sync client to the async functions and an asyncio client to the sync ones raise InvalidArgumentType saying which to use."""
    aio = redis.asyncio.Redis.from_url(redis_url)
    try:
        with pytest.raises(InvalidArgumentType, match=r"use async_fenced_set and async_fenced_get") as caught:
            fenced_set(aio, "res", OLD, b"v")  # type: ignore[arg-type]
        assert caught.value.argument == "client"
        with pytest.raises(InvalidArgumentType, match=r"use async_fenced_set"):
            fenced_get(aio, "res")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentType, match=r"use fenced_set and fenced_get") as caught:
            await async_fenced_set(plain, "res", OLD, b"v")  # type: ignore[arg-type]
        assert caught.value.argument == "client"
        with pytest.raises(InvalidArgumentType, match=r"use fenced_set"):
            await async_fenced_get(plain, "res")  # type: ignore[arg-type]
    finally:
        await aio.aclose()
    with pytest.raises(InvalidArgument, match=r"client must be a synchronous client .*got builtins\.object"):
        fenced_set(object(), "res", OLD, b"v")  # type: ignore[arg-type]
    assert plain.dbsize() == 0


# ---------------------------------------------------------------------------
# What the server may hold or forget.


def test_noscript_is_recovered(plain: redis.Redis) -> None:
    """After SCRIPT FLUSH, fenced_set loads its script again and both accepts and refuses as before."""
    fenced_set(plain, "flushed", OLD, b"first")
    plain.script_flush()
    assert plain.script_exists(_scripts.FENCED_SET.sha1) == [False]
    fenced_set(plain, "flushed", NEW, b"second")
    assert plain.script_exists(_scripts.FENCED_SET.sha1) == [True]
    plain.script_flush()
    with pytest.raises(StaleToken):
        fenced_set(plain, "flushed", OLD, b"late")
    assert fenced_get(plain, "flushed") == (NEW, b"second")


def test_a_guard_key_of_another_type_or_garbage_token_is_an_error_not_a_write(plain: redis.Redis) -> None:
    """A guard key that is not a hash, or holds no number as token, makes both calls fail and is left as it was."""
    plain.set("fenced:string", "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        fenced_set(plain, "string", NEW, b"v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        fenced_get(plain, "string")
    assert plain.get("fenced:string") == b"not a hash"
    plain.hset("fenced:garbage", mapping={"token": "abc", "value": "x"})
    with pytest.raises(redis.ResponseError, match="no valid token"):
        fenced_set(plain, "garbage", NEW, b"v")
    with pytest.raises(redis_lock.RedisLockError, match="Unexpected reply"):
        fenced_get(plain, "garbage")
    assert guard(plain, "garbage") == {b"token": b"abc", b"value": b"x"}


def test_concurrent_writers_leave_the_largest_token_and_its_value(
    make_client: MakeClient, plain: redis.Redis
) -> None:
    """Threads writing shuffled tokens at once: the guard ends at the largest token with that writer's value, and
    every refusal reported a last token above the refused one (the check and the write are atomic)."""
    tokens = list(range(OLD, OLD + 400))
    random.Random(7).shuffle(tokens)
    refusals: list[StaleToken] = []
    start = threading.Barrier(8)

    def write(share: list[int]) -> None:
        client = make_client()
        start.wait()
        for token in share:
            try:
                fenced_set(client, "contended", token, str(token))
            except StaleToken as exc:
                refusals.append(exc)

    threads = [threading.Thread(target=write, args=(tokens[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    top = max(tokens)
    assert fenced_get(plain, "contended") == (top, str(top).encode())
    assert refusals
    assert all(exc.last > exc.token for exc in refusals)


# ---------------------------------------------------------------------------
# The asyncio twins.


@pytest.mark.asyncio
async def test_async_twins_accept_refuse_and_read(aclient: Any, plain: redis.Redis) -> None:
    """async_fenced_set/async_fenced_get behave as the sync functions: None, accept, equal, refuse, bytes back."""
    assert await async_fenced_get(aclient, "doc") is None
    await async_fenced_set(aclient, "doc", OLD, "first")
    await async_fenced_set(aclient, "doc", NEW, b"\xff second")
    await async_fenced_set(aclient, "doc", NEW, b"\xff again")
    with pytest.raises(StaleToken) as caught:
        await async_fenced_set(aclient, "doc", OLD, b"late")
    assert (caught.value.resource, caught.value.token, caught.value.last) == ("doc", OLD, NEW)
    assert await async_fenced_get(aclient, "doc") == (NEW, b"\xff again")
    assert guard(plain, "doc") == {b"token": str(NEW).encode(), b"value": b"\xff again"}


@pytest.mark.asyncio
async def test_async_noscript_is_recovered(aclient: Any, plain: redis.Redis) -> None:
    """The asyncio twin reloads the script after SCRIPT FLUSH too (the one recovery both flavours share)."""
    plain.script_flush()
    await async_fenced_set(aclient, "flushed", OLD, b"v")
    assert plain.script_exists(_scripts.FENCED_SET.sha1) == [True]
    assert fenced_get(plain, "flushed") == (OLD, b"v")


# ---------------------------------------------------------------------------
# End to end, with real fencing locks.


def test_late_write_of_a_holder_whose_lease_ran_out_is_refused(
    make_client: MakeClient, plain: redis.Redis
) -> None:
    """Holder A writes, "pauses" past its lease; B gets the lock (woken by A's key expiring) and writes; A's late write is refused."""
    first = Lock(make_client(), "invoice-42", expire=0.1, fencing=True)
    second = Lock(make_client(), "invoice-42", expire=10, fencing=True)
    assert first.acquire()
    first_token = first.fencing_token
    assert first_token is not None
    fenced_set(plain, "invoice-42", first_token, b"A: draft")
    # A pauses here. B's blocking acquire waits for A's key to expire: the lock's own wake-up, no sleep.
    assert second.acquire(timeout=5)
    second_token = second.fencing_token
    assert second_token is not None
    assert second_token > first_token
    fenced_set(plain, "invoice-42", second_token, b"B: final")
    # A wakes up, still believing it holds the lock, and writes.
    with pytest.raises(StaleToken) as caught:
        fenced_set(plain, "invoice-42", first_token, b"A: late overwrite")
    assert (caught.value.token, caught.value.last) == (first_token, second_token)
    assert fenced_get(plain, "invoice-42") == (second_token, b"B: final")
    assert not first.owned()
    second.release()


@pytest.mark.asyncio
async def test_async_late_write_of_a_holder_whose_lease_ran_out_is_refused(
    redis_url: str, plain: redis.Redis
) -> None:
    """The same story with AsyncLock and the asyncio twins: the older holder's late write is refused."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        first = redis_lock.AsyncLock(client, "invoice-43", expire=0.1, fencing=True)
        second = redis_lock.AsyncLock(client, "invoice-43", expire=10, fencing=True)
        assert await first.acquire()
        assert first.fencing_token is not None
        assert await second.acquire(timeout=5)
        assert second.fencing_token is not None
        await async_fenced_set(client, "invoice-43", second.fencing_token, b"B")
        with pytest.raises(StaleToken):
            await async_fenced_set(client, "invoice-43", first.fencing_token, b"A")
        assert await async_fenced_get(client, "invoice-43") == (second.fencing_token, b"B")
        await second.release()
    finally:
        await client.aclose()


# ---------------------------------------------------------------------------
# Redis Cluster.


@pytest.fixture
def cluster(cluster_deployment: RedisClusterDeployment) -> Iterator[redis.cluster.RedisCluster]:
    """A redis-py cluster client with decode_responses on; every primary is flushed first."""
    client: redis.cluster.RedisCluster = cluster_deployment.client(decode_responses=True)
    client.flushall()
    yield client
    client.close()


def test_cluster_clients_accept_refuse_read_and_recover_from_noscript(
    cluster: redis.cluster.RedisCluster, cluster_deployment: RedisClusterDeployment
) -> None:
    """On a cluster (sync and asyncio clients) the one-key guard works unchanged, NOSCRIPT included."""
    resources = [f"res-{i}" for i in range(12)]  # spread over the three primaries
    for resource in resources:
        fenced_set(cluster, resource, NEW, b"\xff new")
        with pytest.raises(StaleToken):
            fenced_set(cluster, resource, OLD, b"old")
        assert fenced_get(cluster, resource) == (NEW, b"\xff new")
    cluster.script_flush()  # on every primary
    fenced_set(cluster, resources[0], NEW + 1, "after flush")
    assert fenced_get(cluster, resources[0]) == (NEW + 1, b"after flush")

    async def twins() -> None:
        aio = cluster_deployment.client(asyncio=True)
        try:
            await async_fenced_set(aio, resources[1], NEW + 1, b"async")
            with pytest.raises(StaleToken):
                await async_fenced_set(aio, resources[1], NEW, b"old")
            assert await async_fenced_get(aio, resources[1]) == (NEW + 1, b"async")
            assert await async_fenced_get(aio, "never-written") is None
        finally:
            await aio.aclose()

    asyncio.run(twins())
