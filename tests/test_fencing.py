"""Fencing tokens across what a server goes through: a restart with AOF, FLUSHDB, a counter set ahead of the clock.

The per-topology cases (release, expiry, reset, reset_all, a deleted counter) are
in ``test_topologies.py``; these need a server of the test's own (restarted) or
write the counter by hand. Each runs for ``Lock`` and ``AsyncLock``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

import redis_lock

from ._server import RedisServer

FLAVOURS = ["Lock", "AsyncLock"]


class Taker:
    """Takes and releases a fencing lock of one name with a fresh client and object each time (sync or asyncio)."""

    def __init__(self, flavour: str, url: str) -> None:
        self.flavour = flavour
        self.url = url

    def take(self, name: str = "fenced", **options: Any) -> int:
        """One grant: acquire, read the token, release; the token."""
        if self.flavour == "Lock":
            with redis.Redis.from_url(self.url) as client:
                lock = redis_lock.Lock(client, name, expire=10, fencing=True, **options)
                assert lock.acquire()
                token = lock.fencing_token
                lock.release()
        else:

            async def grant() -> int | None:
                client = redis.asyncio.Redis.from_url(self.url)
                try:
                    lock = redis_lock.AsyncLock(client, name, expire=10, fencing=True, **options)
                    assert await lock.acquire()
                    token = lock.fencing_token
                    await lock.release()
                    return token
                finally:
                    await client.aclose()

            token = asyncio.run(grant())
        assert isinstance(token, int)
        assert 0 < token < 2**53
        return token


@pytest.fixture(params=FLAVOURS)
def taker(request: pytest.FixtureRequest, redis_url: str) -> Taker:
    flavour: str = request.param
    return Taker(flavour, redis_url)


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    """A server of the test's own with ``appendonly yes`` and ``appendfsync always``."""
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_tokens_keep_increasing_across_a_restart_with_aof(flavour: str, aof_server: RedisServer) -> None:
    """A restarted server (AOF, fsync always) remembers the counter: the next token is larger."""
    taker = Taker(flavour, aof_server.url)
    before = [taker.take() for _ in range(3)]
    aof_server.restart()
    after = taker.take()
    assert before == sorted(set(before))
    assert after > before[-1]
    with redis.Redis.from_url(aof_server.url) as client:
        assert client.get("lock-fence:fenced") == str(after).encode()


def test_tokens_keep_increasing_after_flushdb(taker: Taker, plain: redis.Redis) -> None:
    """FLUSHDB loses the counter; the next token starts from the server clock, above the earlier ones."""
    before = taker.take()
    plain.flushdb()
    assert plain.exists("lock-fence:fenced") == 0
    assert taker.take() > before


def test_a_counter_ahead_of_the_clock_is_followed_by_one(taker: Taker, plain: redis.Redis) -> None:
    """A counter above the server clock (a burst of grants, a clock stepped back) is followed: last + 1."""
    ahead = taker.take() + 10**12  # about 11.6 days ahead of the clock
    plain.set("lock-fence:fenced", ahead)
    assert taker.take() == ahead + 1
    assert taker.take() == ahead + 2


def test_a_counter_behind_the_clock_jumps_to_the_clock(taker: Taker, plain: redis.Redis) -> None:
    """A small counter (say, written by hand) is overtaken by the clock floor: the token is the server's TIME."""
    plain.set("lock-fence:fenced", 5)
    seconds, micros = plain.time()
    assert taker.take() >= seconds * 1_000_000 + micros


def test_the_counter_lives_fencing_expire_after_each_grant(taker: Taker, plain: redis.Redis) -> None:
    """The counter's TTL is fencing_expire (7 days by default), set again by each grant; None keeps it for ever."""
    taker.take()
    assert 7 * 86_400_000 - 60_000 < plain.pttl("lock-fence:fenced") <= 7 * 86_400_000
    taker.take(fencing_expire=30)
    assert 25_000 < plain.pttl("lock-fence:fenced") <= 30_000
    taker.take(fencing_expire=None)
    assert plain.pttl("lock-fence:fenced") == -1


def test_names_have_counters_of_their_own(taker: Taker, plain: redis.Redis) -> None:
    """Each name has its own counter: a grant of one name does not move another's."""
    taker.take("a")
    b = plain.get("lock-fence:b")
    taker.take("a")
    assert plain.get("lock-fence:b") == b is None
    assert plain.exists("lock-fence:a") == 1


def test_a_lock_without_fencing_mints_nothing(plain: redis.Redis, make_client: Callable[..., Any]) -> None:
    """fencing=False (the default) writes no counter and has no token; a 4.x-style grant does not move the counter."""
    client = make_client()
    lock = redis_lock.Lock(client, "plain", expire=10)
    assert lock.acquire()
    assert lock.fencing_token is None
    lock.release()
    assert plain.exists("lock-fence:plain") == 0
