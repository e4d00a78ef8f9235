"""Hostile arguments to the semaphore's entry points: rejected before any I/O, naming the argument and value.

The harness is ``test_bad_input``'s: each bad value raises the exact documented
class with ``.argument`` set and the argument and value in the message, the
server sees no command, and the keyspace is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

import redis_lock
from redis_lock import InvalidArgument, InvalidArgumentType, InvalidTimeout, TimeoutNotUsable, TimeoutTooLarge

from .test_bad_input import Bad, Call, check_rejected_before_any_io

NO_CLIENT: Any = None


def semaphore(**kwargs: Any) -> Call:
    """The constructor with ``kwargs`` on top of valid defaults."""

    def call(client: redis.Redis) -> object:
        arguments: dict[str, Any] = {"redis_client": client, "name": "bad", "limit": 2, **kwargs}
        return redis_lock.Semaphore(**arguments)

    return call


def method(name: str, *args: Any, expire: float | None = 30, **kwargs: Any) -> Call:
    def call(client: redis.Redis) -> object:
        return getattr(redis_lock.Semaphore(client, "held", 2, expire=expire), name)(*args, **kwargs)

    return call


BIG = 2**64

BAD: list[Bad] = [
    Bad(
        "client-none",
        lambda c: redis_lock.Semaphore(NO_CLIENT, "x", 1),
        InvalidArgument,
        "redis_client",
        ("redis_client", "NoneType"),
    ),
    Bad(
        "client-asyncio",
        lambda c: redis_lock.Semaphore(redis.asyncio.Redis(), "x", 1),  # type: ignore[arg-type]
        InvalidArgumentType,
        "redis_client",
        ("redis_client", "Redis"),
    ),
    Bad(
        "async-client-sync",
        lambda c: redis_lock.AsyncSemaphore(c, "x", 1),  # type: ignore[arg-type]
        InvalidArgumentType,
        "redis_client",
        ("redis_client", "Redis"),
    ),
    Bad("name-empty", semaphore(name=""), InvalidArgument, "name", ("name", "''")),
    Bad("name-bytes", semaphore(name=b"x"), InvalidArgumentType, "name", ("name", "bytes", "b'x'")),
    Bad("name-surrogate", semaphore(name="a\ud800"), InvalidArgument, "name", ("name", "'a\\ud800'")),
    Bad("limit-zero", semaphore(limit=0), InvalidArgument, "limit", ("limit", "limit=0")),
    Bad("limit-negative", semaphore(limit=-3), InvalidArgument, "limit", ("limit", "-3")),
    Bad("limit-huge", semaphore(limit=BIG), InvalidArgument, "limit", ("limit", str(BIG))),
    Bad("limit-float", semaphore(limit=2.0), InvalidArgumentType, "limit", ("limit", "float", "2.0")),
    Bad("limit-bool", semaphore(limit=True), InvalidArgumentType, "limit", ("limit", "bool", "True")),
    Bad("limit-none", semaphore(limit=None), InvalidArgumentType, "limit", ("limit", "None")),
    Bad("limit-str", semaphore(limit="2"), InvalidArgumentType, "limit", ("limit", "'2'")),
    Bad("expire-negative", semaphore(expire=-1), InvalidArgument, "expire", ("expire", "-1")),
    Bad("expire-nan", semaphore(expire=math.nan), InvalidArgument, "expire", ("expire", "nan")),
    Bad("expire-str", semaphore(expire="1"), InvalidArgumentType, "expire", ("expire", "'1'")),
    Bad("id-int", semaphore(id=5), InvalidArgumentType, "id", ("id", "int", "id=5")),
    Bad("id-empty", semaphore(id=""), InvalidArgument, "id", ("id", "''")),
    Bad(
        "renewal-without-expire",
        semaphore(auto_renewal=True),
        InvalidArgument,
        "auto_renewal",
        ("auto_renewal", "expire"),
    ),
    Bad("strict-str", semaphore(strict="no"), InvalidArgumentType, "strict", ("strict", "'no'")),
    Bad("blocking-none", semaphore(blocking=None), InvalidArgumentType, "blocking", ("blocking", "None")),
    Bad(
        "signal-expire-zero",
        semaphore(signal_expire=0),
        InvalidArgument,
        "signal_expire",
        ("signal_expire", "=0"),
    ),
    Bad("timeout-negative", semaphore(timeout=-1), InvalidTimeout, "timeout", ("timeout", "-1")),
    Bad(
        "timeout-nonblocking",
        semaphore(timeout=1, blocking=False),
        TimeoutNotUsable,
        "timeout",
        ("timeout", "blocking=False"),
    ),
    Bad(
        "renewal-interval-too-long",
        semaphore(expire=1, auto_renewal=True, renewal_interval=2),
        InvalidArgument,
        "renewal_interval",
        ("renewal_interval", "=2"),
    ),
    Bad(
        "max-hold-without-renewal",
        semaphore(max_hold=5),
        InvalidArgument,
        "max_hold",
        ("max_hold", "auto_renewal"),
    ),
    Bad("on-lost-int", semaphore(on_lost=3), InvalidArgumentType, "on_lost", ("on_lost", "3")),
    Bad("observer-object", semaphore(observer=object()), InvalidArgumentType, "observer", ("observer",)),
    Bad(
        "acquire-timeout-str",
        method("acquire", timeout="soon"),
        InvalidArgumentType,
        "timeout",
        ("timeout", "'soon'"),
    ),
    Bad(
        "acquire-timeout-too-large",
        method("acquire", timeout=60),
        TimeoutTooLarge,
        "timeout",
        ("timeout", "60"),
    ),
    Bad(
        "acquire-blocking-str",
        method("acquire", blocking="yes"),
        InvalidArgumentType,
        "blocking",
        ("blocking", "'yes'"),
    ),
    Bad("extend-negative", method("extend", -5), InvalidArgument, "expire", ("expire", "-5")),
    Bad(
        "extend-nothing",
        method("extend", expire=None),
        InvalidArgumentType,
        "expire",
        ("expire",),
    ),
    Bad("set-limit-zero", method("set_limit", 0), InvalidArgument, "limit", ("limit", "limit=0")),
    Bad("set-limit-float", method("set_limit", 1.5), InvalidArgumentType, "limit", ("limit", "1.5")),
    Bad(
        "reset-all-signal-negative",
        lambda c: redis_lock.reset_all_semaphores(c, -1),
        InvalidArgument,
        "signal_expire",
        ("signal_expire", "-1"),
    ),
    Bad(
        "reset-all-client-none",
        lambda c: redis_lock.reset_all_semaphores(NO_CLIENT),
        InvalidArgumentType,
        "redis_client",
        ("redis_client",),
    ),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_argument_is_rejected_before_any_io(
    bad: Bad, make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """A bad argument raises the documented exception naming the argument and value, and Redis sees nothing."""
    held = redis_lock.Semaphore(plain, "held", 2, expire=60)
    assert held.acquire()
    check_rejected_before_any_io(bad, make_client(), plain)
    assert held.owned()
