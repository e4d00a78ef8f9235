"""Hostile arguments to every public entry point, and what each must do.

Each bad value must raise the documented exception class (``InvalidArgument`` is a
``ValueError``, ``InvalidArgumentType`` a ``TypeError``) with ``.argument`` naming the
argument and a message naming it and the value, before any I/O: the keyspace is
unchanged and the server saw no command. Values 4.x coerced are coerced the same way,
and odd but valid names round-trip through Redis.
"""

from __future__ import annotations

import math
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio

import redis_lock
from redis_lock import (
    InvalidArgument,
    InvalidArgumentType,
    InvalidTimeout,
    TimeoutNotUsable,
    TimeoutTooLarge,
)

Call = Callable[[redis.Redis], object]


@dataclass(frozen=True)
class Bad:
    """One row of the table: a call, the exact exception class, the argument it names, and message fragments."""

    id: str
    call: Call
    error: type[Exception]
    argument: str
    fragments: tuple[str, ...]


def lock(**kwargs: Any) -> Call:
    """A call of the constructor with ``kwargs`` on top of valid defaults."""

    def call(client: redis.Redis) -> object:
        arguments: dict[str, Any] = {"redis_client": client, "name": "bad", **kwargs}
        return redis_lock.Lock(**arguments)

    return call


def acquire(*args: Any, expire: float | None = None, **kwargs: Any) -> Call:
    def call(client: redis.Redis) -> object:
        return redis_lock.Lock(client, "held", expire=expire).acquire(*args, **kwargs)

    return call


def extend(*args: Any, expire: float | None = 60) -> Call:
    def call(client: redis.Redis) -> object:
        redis_lock.Lock(client, "held", expire=expire).extend(*args)
        return None

    return call


def reset_all(*args: Any, client: object = None, use_client: bool = True) -> Call:
    def call(real: redis.Redis) -> object:
        target: Any = real if use_client else client
        return redis_lock.reset_all(target, *args)

    return call


BIG = 2**64
# Deliberately wrong clients, typed Any so the table can pass them where a client belongs.
NO_CLIENT: Any = None
OBJECT_CLIENT: Any = object()


def asyncio_client() -> Any:
    """An asyncio client (never connected): the wrong flavour for Lock."""
    return redis.asyncio.Redis()


NAN = math.nan
INF = math.inf

BAD: list[Bad] = [
    # redis_client
    Bad(
        "client-none",
        lambda c: redis_lock.Lock(NO_CLIENT, "x"),
        InvalidArgument,
        "redis_client",
        ("redis_client", "NoneType"),
    ),
    Bad(
        "client-asyncio",
        lambda c: redis_lock.Lock(asyncio_client(), "x"),
        InvalidArgumentType,
        "redis_client",
        ("redis_client", "Redis", "AsyncLock"),
    ),
    Bad(
        "client-asyncio-nonstrict",
        lambda c: redis_lock.Lock(asyncio_client(), "x", strict=False),
        InvalidArgumentType,
        "redis_client",
        ("redis_client", "AsyncLock"),
    ),
    # name
    Bad("name-empty", lock(name=""), InvalidArgument, "name", ("name", "''")),
    Bad("name-bytes", lock(name=b"bad"), InvalidArgumentType, "name", ("name", "bytes", "b'bad'")),
    Bad("name-none", lock(name=None), InvalidArgumentType, "name", ("name", "None")),
    Bad("name-int", lock(name=1), InvalidArgumentType, "name", ("name", "int")),
    Bad(
        "name-lone-surrogate", lock(name="a\ud800"), InvalidArgument, "name", ("name", "utf-8", "'a\\ud800'")
    ),
    # expire
    Bad("expire-negative", lock(expire=-1), InvalidArgument, "expire", ("expire", "-1")),
    Bad("expire-tiny", lock(expire=1e-9), InvalidArgument, "expire", ("expire", "1e-09")),
    Bad("expire-nan", lock(expire=NAN), InvalidArgument, "expire", ("expire", "nan")),
    Bad("expire-inf", lock(expire=INF), InvalidArgument, "expire", ("expire", "inf")),
    Bad("expire-huge", lock(expire=BIG), InvalidArgument, "expire", ("expire", str(BIG))),
    Bad("expire-true", lock(expire=True), InvalidArgumentType, "expire", ("expire", "True")),
    Bad("expire-str", lock(expire="1"), InvalidArgumentType, "expire", ("expire", "'1'")),
    # id
    Bad("id-int", lock(id=5), InvalidArgumentType, "id", ("id", "int", "id=5")),
    Bad("id-lone-surrogate", lock(id="\udc80"), InvalidArgument, "id", ("id", "utf-8", "'\\udc80'")),
    Bad("id-float", lock(id=1.5), InvalidArgumentType, "id", ("id", "float")),
    Bad("id-empty-str", lock(id=""), InvalidArgument, "id", ("id", "''")),
    Bad("id-empty-bytes", lock(id=b""), InvalidArgument, "id", ("id", "b''")),
    # auto_renewal
    Bad(
        "renewal-expire-too-short",
        lock(expire=0.0012, auto_renewal=True),
        InvalidArgument,
        "expire",
        ("expire", "auto_renewal", "0.0012"),
    ),
    Bad(
        "renewal-without-expire",
        lock(auto_renewal=True),
        InvalidArgument,
        "auto_renewal",
        ("auto_renewal", "expire"),
    ),
    Bad(
        "renewal-str",
        lock(auto_renewal="yes", expire=1),
        InvalidArgumentType,
        "auto_renewal",
        ("auto_renewal", "'yes'"),
    ),
    Bad(
        "renewal-two",
        lock(auto_renewal=2, expire=1),
        InvalidArgumentType,
        "auto_renewal",
        ("auto_renewal", "2"),
    ),
    # strict, blocking
    Bad("strict-str", lock(strict="no"), InvalidArgumentType, "strict", ("strict", "'no'")),
    Bad("blocking-none", lock(blocking=None), InvalidArgumentType, "blocking", ("blocking", "None")),
    # fencing, fencing_expire
    Bad("fencing-str", lock(fencing="yes"), InvalidArgumentType, "fencing", ("fencing", "'yes'")),
    Bad("fencing-float", lock(fencing=1.5), InvalidArgumentType, "fencing", ("fencing", "1.5")),
    Bad(
        "fencing-expire-zero",
        lock(fencing=True, fencing_expire=0),
        InvalidArgument,
        "fencing_expire",
        ("fencing_expire", "=0"),
    ),
    Bad(
        "fencing-expire-negative",
        lock(fencing=True, fencing_expire=-5),
        InvalidArgument,
        "fencing_expire",
        ("fencing_expire", "-5"),
    ),
    Bad(
        "fencing-expire-nan",
        lock(fencing_expire=NAN),
        InvalidArgument,
        "fencing_expire",
        ("fencing_expire", "nan"),
    ),
    Bad(
        "fencing-expire-huge",
        lock(fencing_expire=BIG),
        InvalidArgument,
        "fencing_expire",
        ("fencing_expire", str(BIG)),
    ),
    # renewal_interval, max_hold, on_lost, observer (the hooks)
    Bad(
        "renewal-interval-without-renewal",
        lock(expire=10, renewal_interval=1),
        InvalidArgument,
        "renewal_interval",
        ("renewal_interval", "=1", "auto_renewal"),
    ),
    Bad(
        "renewal-interval-not-under-expire",
        lock(expire=10, auto_renewal=True, renewal_interval=10),
        InvalidArgument,
        "renewal_interval",
        ("renewal_interval", "=10", "less than expire"),
    ),
    Bad(
        "renewal-interval-nan",
        lock(expire=10, auto_renewal=True, renewal_interval=NAN),
        InvalidArgument,
        "renewal_interval",
        ("renewal_interval", "nan"),
    ),
    Bad(
        "renewal-interval-str",
        lock(expire=10, auto_renewal=True, renewal_interval="1"),
        InvalidArgumentType,
        "renewal_interval",
        ("renewal_interval", "'1'"),
    ),
    Bad(
        "max-hold-without-renewal",
        lock(expire=10, max_hold=60),
        InvalidArgument,
        "max_hold",
        ("max_hold", "=60", "auto_renewal"),
    ),
    Bad(
        "max-hold-zero",
        lock(expire=10, auto_renewal=True, max_hold=0),
        InvalidArgument,
        "max_hold",
        ("max_hold", "=0"),
    ),
    Bad(
        "max-hold-bool",
        lock(expire=10, auto_renewal=True, max_hold=True),
        InvalidArgumentType,
        "max_hold",
        ("max_hold", "True"),
    ),
    Bad("on-lost-not-callable", lock(on_lost="stop"), InvalidArgumentType, "on_lost", ("on_lost", "'stop'")),
    # fair, queue_lease
    Bad("fair-str", lock(fair="yes"), InvalidArgumentType, "fair", ("fair", "'yes'")),
    Bad("fair-int", lock(fair=2), InvalidArgumentType, "fair", ("fair", "2")),
    Bad(
        "queue-lease-without-fair",
        lock(queue_lease=5),
        InvalidArgument,
        "queue_lease",
        ("queue_lease", "=5", "fair=True"),
    ),
    Bad(
        "queue-lease-zero",
        lock(fair=True, queue_lease=0),
        InvalidArgument,
        "queue_lease",
        ("queue_lease", "=0"),
    ),
    Bad(
        "queue-lease-nan",
        lock(fair=True, queue_lease=NAN),
        InvalidArgument,
        "queue_lease",
        ("queue_lease", "nan"),
    ),
    Bad(
        "queue-lease-str",
        lock(fair=True, queue_lease="2s"),
        InvalidArgumentType,
        "queue_lease",
        ("queue_lease", "'2s'"),
    ),
    Bad(
        "fair-with-wait-replicas",
        lock(fair=True, wait_replicas=1),
        InvalidArgument,
        "wait_replicas",
        ("wait_replicas", "=1", "fair=True"),
    ),
    Bad(
        "observer-without-methods",
        lock(observer=object()),
        InvalidArgumentType,
        "observer",
        ("observer", "wait_started", "BaseObserver"),
    ),
    Bad(
        "fencing-expire-str",
        lock(fencing=True, fencing_expire="7d"),
        InvalidArgumentType,
        "fencing_expire",
        ("fencing_expire", "str", "'7d'"),
    ),
    Bad(
        "fencing-expire-bool",
        lock(fencing_expire=True),
        InvalidArgumentType,
        "fencing_expire",
        ("fencing_expire", "True"),
    ),
    # signal_expire
    Bad("signal-zero", lock(signal_expire=0), InvalidArgument, "signal_expire", ("signal_expire", "0")),
    Bad("signal-negative", lock(signal_expire=-1), InvalidArgument, "signal_expire", ("signal_expire", "-1")),
    Bad(
        "signal-huge", lock(signal_expire=BIG), InvalidArgument, "signal_expire", ("signal_expire", str(BIG))
    ),
    Bad(
        "signal-float",
        lock(signal_expire=1.5),
        InvalidArgumentType,
        "signal_expire",
        ("signal_expire", "1.5"),
    ),
    Bad(
        "signal-true",
        lock(signal_expire=True),
        InvalidArgumentType,
        "signal_expire",
        ("signal_expire", "True"),
    ),
    Bad(
        "signal-str",
        lock(signal_expire="1000"),
        InvalidArgumentType,
        "signal_expire",
        ("signal_expire", "'1000'"),
    ),
    # the constructor's timeout
    Bad("timeout-negative", lock(timeout=-1), InvalidTimeout, "timeout", ("timeout", "-1")),
    Bad("timeout-nan", lock(timeout=NAN), InvalidTimeout, "timeout", ("timeout", "nan")),
    Bad("timeout-inf", lock(timeout=INF), InvalidTimeout, "timeout", ("timeout", "inf")),
    Bad("timeout-huge", lock(timeout=BIG), InvalidTimeout, "timeout", ("timeout", str(BIG))),
    Bad("timeout-true", lock(timeout=True), InvalidArgumentType, "timeout", ("timeout", "True")),
    Bad("timeout-str", lock(timeout="1"), InvalidArgumentType, "timeout", ("timeout", "'1'")),
    Bad(
        "timeout-nonblocking",
        lock(timeout=1, blocking=False),
        TimeoutNotUsable,
        "timeout",
        ("timeout", "blocking=False", "timeout=1"),
    ),
    Bad(
        "timeout-over-expire", lock(timeout=10, expire=5), TimeoutTooLarge, "timeout", ("timeout", "10", "5")
    ),
    # acquire()
    Bad(
        "acquire-nonblocking-timeout",
        acquire(blocking=False, timeout=5),
        TimeoutNotUsable,
        "timeout",
        ("timeout", "blocking=False", "timeout=5"),
    ),
    Bad(
        "acquire-nonblocking-timeout-zero",
        acquire(blocking=False, timeout=0),
        TimeoutNotUsable,
        "timeout",
        ("timeout",),
    ),
    Bad("acquire-timeout-negative", acquire(timeout=-1), InvalidTimeout, "timeout", ("timeout", "-1")),
    Bad("acquire-timeout-nan", acquire(timeout=NAN), InvalidTimeout, "timeout", ("timeout", "nan")),
    Bad("acquire-timeout-inf", acquire(timeout=INF), InvalidTimeout, "timeout", ("timeout", "inf")),
    Bad("acquire-timeout-huge", acquire(timeout=BIG), InvalidTimeout, "timeout", ("timeout", str(BIG))),
    Bad("acquire-timeout-true", acquire(timeout=True), InvalidArgumentType, "timeout", ("timeout", "True")),
    Bad("acquire-timeout-str", acquire(timeout="1"), InvalidArgumentType, "timeout", ("timeout", "'1'")),
    Bad(
        "acquire-timeout-over-expire",
        acquire(timeout=10, expire=5),
        TimeoutTooLarge,
        "timeout",
        ("timeout", "10", "5"),
    ),
    Bad(
        "acquire-blocking-str",
        acquire(blocking="yes"),
        InvalidArgumentType,
        "blocking",
        ("blocking", "'yes'"),
    ),
    Bad(
        "acquire-blocking-none", acquire(blocking=None), InvalidArgumentType, "blocking", ("blocking", "None")
    ),
    # extend()
    Bad("extend-negative", extend(-1), InvalidArgument, "expire", ("expire", "-1")),
    Bad("extend-tiny", extend(1e-9), InvalidArgument, "expire", ("expire", "1e-09")),
    Bad("extend-nan", extend(NAN), InvalidArgument, "expire", ("expire", "nan")),
    Bad("extend-inf", extend(INF), InvalidArgument, "expire", ("expire", "inf")),
    Bad("extend-huge", extend(BIG), InvalidArgument, "expire", ("expire", str(BIG))),
    Bad("extend-true", extend(True), InvalidArgumentType, "expire", ("expire", "True")),
    Bad("extend-str", extend("1"), InvalidArgumentType, "expire", ("expire", "'1'")),
    Bad("extend-no-expire-anywhere", extend(expire=None), InvalidArgumentType, "expire", ("expire",)),
    # reset_all()
    Bad(
        "reset-all-client-none",
        reset_all(use_client=False),
        InvalidArgumentType,
        "redis_client",
        ("redis_client", "NoneType"),
    ),
    Bad(
        "reset-all-client-object",
        reset_all(client=object(), use_client=False),
        InvalidArgumentType,
        "redis_client",
        ("redis_client", "object"),
    ),
    Bad("reset-all-signal-zero", reset_all(0), InvalidArgument, "signal_expire", ("signal_expire", "0")),
    Bad(
        "reset-all-signal-negative", reset_all(-1), InvalidArgument, "signal_expire", ("signal_expire", "-1")
    ),
    Bad(
        "reset-all-signal-float",
        reset_all(1.5),
        InvalidArgumentType,
        "signal_expire",
        ("signal_expire", "1.5"),
    ),
    Bad(
        "reset-all-signal-str",
        reset_all("1000"),
        InvalidArgumentType,
        "signal_expire",
        ("signal_expire", "'1000'"),
    ),
]


def snapshot(plain: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    """Every key with its serialized value and whether it has a TTL."""
    keys = [key for key in plain.scan_iter(count=1000) if isinstance(key, bytes)]
    return {key: (plain.dump(key), min(plain.pttl(key), 0)) for key in keys}


def commands_seen(plain: redis.Redis) -> set[str]:
    """The commands the server ran since the last CONFIG RESETSTAT (INFO counts itself only afterwards)."""
    return set(plain.info("commandstats")) - {"cmdstat_config|resetstat"}


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_argument_is_rejected_before_any_io(
    bad: Bad, make_client: Callable[..., Any], plain: redis.Redis
) -> None:
    """A bad argument raises the documented exception naming the argument and value, and Redis sees nothing."""
    held = redis_lock.Lock(plain, "held", expire=60)
    assert held.acquire()
    plain.lpush("lock-signal:other", 1)
    check_rejected_before_any_io(bad, make_client(), plain)
    assert held.owned()


def check_rejected_before_any_io(bad: Bad, client: redis.Redis, plain: redis.Redis) -> None:
    """``bad.call(client)`` raises ``bad.error`` naming the argument and value, with no command sent, nothing changed."""
    plain.set("unrelated", "value")
    before = snapshot(plain)
    plain.config_resetstat()
    with pytest.raises(bad.error) as caught:
        bad.call(client)
    assert commands_seen(plain) == set()
    assert type(caught.value) is bad.error
    assert caught.value.argument == bad.argument  # type: ignore[attr-defined]
    message = str(caught.value).lower()
    for fragment in bad.fragments:
        assert fragment.lower() in message, f"{fragment!r} not in {str(caught.value)!r}"
    assert snapshot(plain) == before


def test_argument_errors_keep_their_builtin_bases() -> None:
    """Argument errors stay catchable as the ValueError/TypeError 4.x raised, and as RuntimeError.

    A wrong type is also a ValueError: 4.x converted durations with int(), which
    raised ValueError for ``timeout="foobar"``.
    """
    for bad in BAD:
        assert issubclass(bad.error, ValueError), bad.id
        if issubclass(bad.error, InvalidArgumentType):
            assert issubclass(bad.error, TypeError), bad.id
        assert issubclass(bad.error, RuntimeError), bad.id


def test_a_wrong_type_timeout_is_catchable_as_value_error(conn: Any) -> None:
    """``acquire(timeout="foobar")`` raises an error that ``except ValueError`` catches, as in 4.x's own tests."""
    lock = redis_lock.Lock(conn, "typed")
    with pytest.raises(ValueError, match="timeout") as raised:
        lock.acquire(timeout="foobar")  # type: ignore[arg-type]
    assert isinstance(raised.value, TypeError)


def test_strict_false_accepts_any_object_as_in_4x() -> None:
    """``strict=False`` accepts any object as the client (4.x's tests build ``Lock(object(), ...)``), without I/O."""
    lock = redis_lock.Lock(OBJECT_CLIENT, "anything", strict=False, expire=1)
    assert lock._expire == 1
    with pytest.raises(ValueError, match=r"redis\.Redis or valkey\.Valkey"):
        redis_lock.Lock(OBJECT_CLIENT, "anything")


# -- coercions kept from 4.x ---------------------------------------------------------


@pytest.mark.parametrize("expire", [0, 0.0, None])
def test_falsy_expire_means_no_expiry(conn: Any, plain: redis.Redis, expire: float | None) -> None:
    """A falsy expire (0, 0.0, None) makes a lock that never expires, as in 4.x."""
    lock = redis_lock.Lock(conn, "falsy", expire=expire)
    assert lock.acquire()
    assert plain.pttl("lock:falsy") == -1
    with pytest.raises(InvalidArgumentType):
        lock.extend()  # nothing to extend to
    lock.release()


def test_zero_timeout_gives_up_at_once_and_tiny_timeout_is_honoured(conn: Any, plain: redis.Redis) -> None:
    """timeout=0 makes one attempt (a free lock is taken, a busy one is not waited for); so does 1e-9 s."""
    assert redis_lock.Lock(conn, "t").acquire(timeout=0)
    started = time.monotonic()
    assert not redis_lock.Lock(conn, "t").acquire(timeout=0)
    assert not redis_lock.Lock(conn, "t").acquire(timeout=1e-9)
    assert time.monotonic() - started < 1.0
    with pytest.raises(redis_lock.AcquireTimeout, match="busy"):  # noqa: SIM117
        with redis_lock.Lock(conn, "t", timeout=0):
            pass
    assert plain.exists("lock:t")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (b"ascii-id", "ascii-id"),
        (b"\xff\xfe\x00id", b64encode(b"\xff\xfe\x00id").decode()),
        ("ünïcode", "ünïcode"),
    ],
    ids=["ascii-bytes", "non-ascii-bytes", "non-ascii-str"],
)
def test_id_coercion(conn: Any, plain: redis.Redis, given: str | bytes, stored: str) -> None:
    """ASCII bytes ids are decoded and non-ASCII bytes ids base64-encoded (as in 4.x); the key holds that id."""
    lock = redis_lock.Lock(conn, "ided", id=given)
    assert lock.id == stored
    assert lock.acquire()
    assert plain.get("lock:ided") == stored.encode()
    assert lock.get_owner_id() == stored
    assert redis_lock.Lock(conn, "ided", id=stored).owned()  # the same id, given as str
    lock.release()


def test_extend_with_falsy_expire_uses_the_constructors(conn: Any, plain: redis.Redis) -> None:
    """extend(0) and extend(None) fall back to the constructor's expire."""
    lock = redis_lock.Lock(conn, "ext", expire=30)
    assert lock.acquire()
    for value in (0, None):
        lock.extend(5)
        assert plain.pttl("lock:ext") <= 5000
        lock.extend(value)
        assert 25_000 < plain.pttl("lock:ext") <= 30_000
    lock.release()


VALID_NAMES = {
    "long-100k": "x" * 100_000,
    "non-ascii": "ключ-名前-ü",
    "braces": "{user}:1",
    "close-brace": "a}b{",
    "colons": "a:b::c:",
    "glob": "*?[a-z]\\",
    "spaces": "  a b  ",
    "newlines": "a\nb\r\n",
    "prefix-like": "lock:lock-signal:",
    "nul": "a\x00b",
}


@pytest.mark.parametrize("name", list(VALID_NAMES.values()), ids=list(VALID_NAMES))
def test_odd_names_round_trip(conn: Any, plain: redis.Redis, name: str) -> None:
    """Any non-empty str is a valid name: the key is lock:<name>, it is owned, released, and reset_all finds it."""
    key = ("lock:" + name).encode()
    bystander = redis_lock.Lock(conn, "bystander")
    assert bystander.acquire()
    lock = redis_lock.Lock(conn, name, expire=30)
    assert lock.acquire()
    assert plain.get(key) == lock.id.encode()
    assert lock.locked()
    assert lock.owned()
    assert not redis_lock.Lock(conn, name).acquire(blocking=False)
    lock.release()
    assert not plain.exists(key)
    assert plain.pttl(("lock-signal:" + name).encode()) > 0
    assert bystander.owned()  # glob characters in a name touch no other lock
    assert lock.acquire()
    assert redis_lock.reset_all(conn) == 2
    assert plain.keys("lock:*") == []
