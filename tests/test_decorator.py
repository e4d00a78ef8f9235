"""redis_lock.locked: a decorator that runs each call under a lock named from the call's arguments.

Against the test server: names formatted from positional, keyword and default
arguments; mutual exclusion between threads (and tasks) per name; the timeout;
skipping; release after an exception; the asyncio flavour; and the errors
raised when decorating (client flavour, name template, lock options).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import redis
import redis.asyncio
from typing_extensions import assert_type

import redis_lock
from redis_lock._decorator import locked
from redis_lock.hooks import BaseObserver

from .conftest import MakeClient

HOLD = 0.15


@pytest.fixture
def conn(make_client: MakeClient, plain: redis.Redis) -> redis.Redis:
    """A synchronous client on a flushed database."""
    client: redis.Redis = make_client()
    return client


@pytest_asyncio.fixture
async def aconn(redis_url: str, plain: redis.Redis) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client on a flushed database."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# -- names -----------------------------------------------------------------------------------------


def test_name_from_positional_keyword_and_default_arguments(conn: redis.Redis, plain: redis.Redis) -> None:
    """The lock name is the template formatted with the call's arguments, by parameter name, defaults included."""
    seen: list[list[bytes | str]] = []

    @locked(conn, "invoice:{account_id}:{month}")
    def bill(account_id: int, month: str = "current") -> str:
        seen.append(sorted(plain.keys("lock:*")))
        return f"billed {account_id}"

    assert bill(7) == "billed 7"
    assert bill(8, "2026-01") == "billed 8"
    assert bill(month="2026-02", account_id=9) == "billed 9"
    assert seen == [[b"lock:invoice:7:current"], [b"lock:invoice:8:2026-01"], [b"lock:invoice:9:2026-02"]]
    assert plain.keys("lock:*") == []


def test_name_with_attributes_items_and_methods(conn: redis.Redis, plain: redis.Redis) -> None:
    """Fields may reach into arguments (``{user.id}``, ``{ids[0]}``), and ``self`` works for methods."""

    @dataclass
    class User:
        id: int

    class Exporter:
        kind = "csv"

        @locked(conn, "export:{self.kind}:{user.id}:{ids[0]}")
        def run(self, user: User, ids: list[int], *rest: int, **extra: str) -> bytes | str | None:
            value: bytes | str | None = plain.get(f"lock:export:csv:{user.id}:{ids[0]}")
            return value

    assert Exporter().run(User(3), [5, 6], 1, 2, x="y") is not None


def test_wraps_the_function(conn: redis.Redis) -> None:
    """The decorated function keeps its name, docstring, signature, and ``__wrapped__``."""

    def job(account_id: int, *, dry_run: bool = False) -> int:
        """Do the job."""
        return account_id

    decorated = locked(conn, "job:{account_id}")(job)
    assert decorated.__name__ == "job"
    assert decorated.__doc__ == "Do the job."
    assert decorated.__wrapped__ is job  # type: ignore[attr-defined]
    assert inspect.signature(decorated) == inspect.signature(job)
    assert decorated(4, dry_run=True) == 4


def test_lock_options_are_passed_on(conn: redis.Redis, plain: redis.Redis) -> None:
    """``expire``, ``id`` and the other lock options reach the lock of each call."""

    @locked(conn, "opts:{n}", expire=30, id="worker-1", fencing=True)
    def job(n: int) -> tuple[int, bytes | str | None]:
        owner: bytes | str | None = plain.get(f"lock:opts:{n}")
        return plain.pttl(f"lock:opts:{n}"), owner

    ttl, owner = job(1)
    assert 29_000 < ttl <= 30_000
    assert owner == b"worker-1"


# -- behaviour -------------------------------------------------------------------------------------


def test_same_name_never_overlaps_and_different_names_run_together(conn: redis.Redis) -> None:
    """Threads calling for the same account take turns; calls for different accounts run at the same time."""
    intervals: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    start = threading.Barrier(6)

    @locked(conn, "account:{account}")
    def work(account: str) -> None:
        began = time.monotonic()
        time.sleep(HOLD / 3)
        intervals[account].append((began, time.monotonic()))

    def run(account: str) -> None:
        start.wait()
        work(account)

    threads = [threading.Thread(target=run, args=(account,)) for account in "aaabbb"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert all(len(found) == 3 for found in intervals.values())
    for found in intervals.values():
        found.sort()
        assert not any(overlaps(x, y) for i, x in enumerate(found) for y in found[i + 1 :]), found
    assert any(overlaps(x, y) for x in intervals["a"] for y in intervals["b"])


def test_timeout_raises_acquire_timeout_without_calling(conn: redis.Redis) -> None:
    """With a ``timeout``, a call that cannot get the lock in time raises AcquireTimeout and does not run."""
    calls: list[int] = []

    @locked(conn, "busy:{n}", timeout=0.1)
    def job(n: int) -> int:
        calls.append(n)
        return n

    holder = redis_lock.Lock(conn, "busy:1")
    assert holder.acquire()
    began = time.monotonic()
    with pytest.raises(redis_lock.AcquireTimeout, match=r"busy:1"):
        job(1)
    assert 0.09 < time.monotonic() - began < 2
    assert job(2) == 2
    holder.release()
    assert job(1) == 1
    assert calls == [2, 1]


def test_timeout_zero_is_one_attempt(conn: redis.Redis) -> None:
    """``timeout=0`` tries once and raises AcquireTimeout at once when the lock is busy."""

    @locked(conn, "zero", timeout=0)
    def job() -> None:
        raise AssertionError("not called")

    holder = redis_lock.Lock(conn, "zero")
    assert holder.acquire()
    with pytest.raises(redis_lock.AcquireTimeout):
        job()
    holder.release()


def test_blocking_waits_for_the_holder(conn: redis.Redis) -> None:
    """With the default ``blocking=True`` and no timeout, a call waits for the holder's release, then runs."""

    @locked(conn, "wait")
    def job() -> float:
        return time.monotonic()

    holder = redis_lock.Lock(conn, "wait")
    assert holder.acquire()
    released = time.monotonic() + HOLD
    timer = threading.Timer(HOLD, holder.release)
    timer.start()
    assert job() >= released - 0.01
    timer.join()


def test_skip_returns_none_without_calling(conn: redis.Redis) -> None:
    """With ``blocking=False`` a call finding the lock busy is skipped: it returns None and the function is not called."""
    calls: list[int] = []

    @locked(conn, "skip:{n}", blocking=False)
    def job(n: int) -> int:
        calls.append(n)
        return n

    holder = redis_lock.Lock(conn, "skip:1")
    assert holder.acquire()
    began = time.monotonic()
    assert job(1) is None
    assert time.monotonic() - began < 0.5
    assert job(2) == 2
    holder.release()
    assert job(1) == 1
    assert calls == [2, 1]


def test_released_after_an_exception(conn: redis.Redis, plain: redis.Redis) -> None:
    """The lock is released when the function raises, and the function's exception propagates unchanged."""

    @locked(conn, "fails:{n}", expire=30)
    def job(n: int) -> None:
        assert plain.exists(f"lock:fails:{n}")
        raise KeyError(n)

    with pytest.raises(KeyError):
        job(1)
    assert plain.keys("lock:*") == []
    with pytest.raises(KeyError):
        job(1)


def test_release_failure_does_not_hide_the_exception(conn: redis.Redis, plain: redis.Redis) -> None:
    """If the lock was taken away while the function raised, the function's exception is what propagates."""

    @locked(conn, "taken")
    def job() -> None:
        plain.delete("lock:taken")
        raise KeyError("body")

    with pytest.raises(KeyError, match="body"):
        job()


def test_release_failure_after_success_raises(conn: redis.Redis, plain: redis.Redis) -> None:
    """If the lock was lost while the function ran, the call raises NotAcquired from the release."""

    @locked(conn, "lost")
    def job() -> int:
        plain.delete("lock:lost")
        return 1

    with pytest.raises(redis_lock.NotAcquired):
        job()


def test_auto_renewal_keeps_the_lock_and_stops(conn: redis.Redis, plain: redis.Redis) -> None:
    """With ``auto_renewal``, a call longer than ``expire`` keeps its lock, and no renewal outlives the call."""

    @locked(conn, "long", expire=0.2, auto_renewal=True)
    def job() -> bool:
        time.sleep(0.35)
        return bool(plain.exists("lock:long"))

    assert job() is True
    assert plain.keys("lock:*") == []


@pytest.mark.skipif(
    "on_lost" not in inspect.signature(redis_lock.Lock).parameters,
    reason="Lock(on_lost=...) is not there yet",
)
def test_hooks_reach_each_calls_lock(conn: redis.Redis) -> None:
    """``observer``, ``max_hold`` and ``on_lost`` reach the lock of each call: a capped call is told of its loss."""

    class Events(BaseObserver):
        def __init__(self) -> None:
            self.seen: list[tuple[str, str]] = []

        def acquired(self, name: str, waited: float) -> None:
            self.seen.append(("acquired", name))

        def lost(self, name: str) -> None:
            self.seen.append(("lost", name))

    events = Events()
    stop = threading.Event()
    lost_locks: list[redis_lock.Lock] = []

    def on_lost(lock: redis_lock.Lock) -> None:
        lost_locks.append(lock)
        stop.set()

    @locked(conn, "capped:{n}", expire=0.1, auto_renewal=True, max_hold=0.2, on_lost=on_lost, observer=events)
    def job(n: int) -> bool:
        return stop.wait(5)

    with pytest.raises(redis_lock.LockLost):
        job(1)
    assert stop.is_set()
    assert [repr(lock) for lock in lost_locks] == ["<redis_lock.Lock 'lock:capped:1'>"]
    assert events.seen == [("acquired", "capped:1"), ("lost", "capped:1")]


# -- asyncio ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_function(aconn: redis.asyncio.Redis, plain: redis.Redis) -> None:
    """An ``async def`` function gets an AsyncLock named from its arguments, released after the call."""
    seen: list[list[bytes | str]] = []

    @locked(aconn, "report:{day}:{kind}", expire=10)
    async def report(day: str, kind: str = "full") -> str:
        await asyncio.sleep(0)
        seen.append(sorted(plain.keys("lock:*")))
        return f"{day} {kind}"

    assert inspect.iscoroutinefunction(report)
    assert report.__name__ == "report"
    assert await report("mon") == "mon full"
    assert await report(kind="short", day="tue") == "tue short"
    assert seen == [[b"lock:report:mon:full"], [b"lock:report:tue:short"]]
    assert plain.keys("lock:*") == []


@pytest.mark.asyncio
async def test_async_mutual_exclusion(aconn: redis.asyncio.Redis) -> None:
    """Tasks calling for the same name take turns; tasks for different names run at the same time."""
    intervals: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}

    @locked(aconn, "task:{name}")
    async def work(name: str) -> None:
        began = time.monotonic()
        await asyncio.sleep(HOLD / 3)
        intervals[name].append((began, time.monotonic()))

    await asyncio.wait_for(asyncio.gather(*(work(name) for name in "aaabbb")), timeout=10)
    for found in intervals.values():
        found.sort()
        assert len(found) == 3
        assert not any(overlaps(x, y) for i, x in enumerate(found) for y in found[i + 1 :]), found
    assert any(overlaps(x, y) for x in intervals["a"] for y in intervals["b"])


@pytest.mark.asyncio
async def test_async_timeout_skip_and_exception(aconn: redis.asyncio.Redis, plain: redis.Redis) -> None:
    """The asyncio flavour times out, skips and releases after an exception like the synchronous one."""
    calls: list[str] = []

    @locked(aconn, "a:{n}", timeout=0.1)
    async def waits(n: int) -> str:
        calls.append("waits")
        return "ran"

    @locked(aconn, "a:{n}", blocking=False)
    async def skips(n: int) -> str:
        calls.append("skips")
        return "ran"

    @locked(aconn, "a:{n}")
    async def fails(n: int) -> None:
        raise KeyError(n)

    holder = redis_lock.AsyncLock(aconn, "a:1")
    assert await holder.acquire()
    with pytest.raises(redis_lock.AcquireTimeout):
        await waits(1)
    assert await skips(1) is None
    assert calls == []
    await holder.release()
    assert await waits(1) == "ran"
    assert await skips(1) == "ran"
    with pytest.raises(KeyError):
        await fails(1)
    assert plain.keys("lock:*") == []


# -- errors when decorating ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_flavour_mismatch(conn: redis.Redis, aconn: redis.asyncio.Redis) -> None:
    """An asyncio client for a plain function, or a synchronous one for an ``async def`` function, is refused at once."""

    def plain_job() -> None: ...

    async def async_job() -> None: ...

    with pytest.raises(redis_lock.InvalidArgumentType, match=r"plain_job\(\) is a plain function") as info:
        locked(aconn, "x")(plain_job)
    assert info.value.argument == "redis_client"
    assert isinstance(info.value, TypeError)
    with pytest.raises(redis_lock.InvalidArgumentType, match=r"async_job\(\) is an async def function"):
        locked(conn, "x")(async_job)


def test_bad_templates(conn: redis.Redis) -> None:
    """A name field that is not a parameter, a positional field, or a malformed template is refused when decorating."""

    def job(account_id: int, month: str = "current") -> None: ...

    with pytest.raises(redis_lock.InvalidArgument, match=r"\{acount_id\}.*account_id, month") as info:
        locked(conn, "invoice:{acount_id}")(job)
    assert info.value.argument == "name"
    assert isinstance(info.value, ValueError)
    for template in ("invoice:{}", "invoice:{0}", "invoice:{account_id:>{width}}"):
        with pytest.raises(redis_lock.InvalidArgument, match=r"has no parameter for"):
            locked(conn, template)(job)
    for template in ("invoice:{account_id", "invoice:}"):
        with pytest.raises(redis_lock.InvalidArgument, match=r"not a valid format string"):
            locked(conn, template)(job)
    with pytest.raises(redis_lock.InvalidArgumentType, match="name must be a str"):
        locked(conn, b"invoice")(job)  # type: ignore[call-overload]
    # Nested fields naming parameters are fine.
    locked(conn, "invoice:{account_id:>{month}}")(job)


def test_bad_lock_options(conn: redis.Redis) -> None:
    """An unknown lock option or an unusable value is refused when decorating, not at the first call."""

    def job() -> None: ...

    with pytest.raises(TypeError, match="expires"):
        locked(conn, "x", expires=10)(job)
    with pytest.raises(redis_lock.InvalidArgument):
        locked(conn, "x", expire=-1)(job)
    with pytest.raises(redis_lock.InvalidArgument):
        locked(conn, "x", auto_renewal=True)(job)
    with pytest.raises(redis_lock.TimeoutNotUsable):
        locked(conn, "x", blocking=False, timeout=1)(job)
    with pytest.raises(redis_lock.InvalidTimeout):
        locked(conn, "x", timeout=-1)(job)
    with pytest.raises(redis_lock.InvalidArgument, match="redis_client must be"):
        locked(object(), "x")(job)  # type: ignore[call-overload]


def test_generators_are_refused(conn: redis.Redis, aconn: redis.asyncio.Redis) -> None:
    """Generator functions are refused: the lock would be released before their body runs."""

    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    with pytest.raises(redis_lock.InvalidArgumentType, match="generator"):
        locked(conn, "x")(gen)
    with pytest.raises(redis_lock.InvalidArgumentType, match="generator"):
        locked(aconn, "x")(agen)


def test_decorating_performs_no_io(make_client: MakeClient) -> None:
    """Decorating talks to no server: a client to a closed port is fine until the first call."""
    dead = make_client(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.1, retry_on_timeout=False)

    @locked(dead, "x")
    def job() -> None: ...

    assert "locked" in repr(locked(dead, "x"))
    with pytest.raises(redis.ConnectionError):
        job()


# -- types (checked by mypy on this file) --------------------------------------------------------


async def check_types(conn: redis.Redis, aconn: redis.asyncio.Redis) -> None:
    """Not run: mypy checks that the decorated functions keep their parameter and return types."""

    def job(account_id: int, *, month: str = "x") -> int:
        return account_id

    async def ajob(account_id: int) -> int:
        return account_id

    waits = locked(conn, "j:{account_id}")(job)
    assert_type(waits(1, month="y"), int)
    assert_type(locked(conn, "j:{account_id}", blocking=False)(job)(1), int | None)
    assert_type(await locked(aconn, "j:{account_id}")(ajob)(1), int)
    assert_type(await locked(aconn, "j:{account_id}", blocking=False)(ajob)(1), int | None)
    waits("1")  # type: ignore[arg-type]
