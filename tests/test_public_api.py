"""The public surface: __all__, the names 4.x users import, the exception hierarchy, and subclassing."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis
import redis.asyncio

import redis_lock
import redis_lock.typing

from ._topology import async_wait_for, wait_for
from .conftest import MakeClient

OLD_API = {
    "Lock",
    "reset_all",
    "AlreadyAcquired",
    "NotAcquired",
    "AlreadyStarted",
    "TimeoutNotUsable",
    "InvalidTimeout",
    "TimeoutTooLarge",
    "NotExpirable",
    "UNLOCK_SCRIPT",
    "EXTEND_SCRIPT",
    "RESET_SCRIPT",
    "RESET_ALL_SCRIPT",
}


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ has no duplicates and equals the module's public attributes (ruff's RUF022 keeps it sorted)."""
    assert len(redis_lock.__all__) == len(set(redis_lock.__all__))
    public = {
        name
        for name, value in vars(redis_lock).items()
        if not name.startswith("_") and type(value).__name__ != "module" and name != "annotations"
    }
    assert public | {"__version__"} == set(redis_lock.__all__)


def test_every_4x_name_is_still_importable() -> None:
    """Every name python-redis-lock 4.x exported can still be imported from redis_lock."""
    assert set(redis_lock.__all__) >= OLD_API
    for name in OLD_API:
        assert getattr(redis_lock, name) is not None


def test_version() -> None:
    """The version is the 5.x development version."""
    assert redis_lock.__version__ == "5.0.0.dev0"


@pytest.mark.parametrize(
    "name",
    [
        "AlreadyAcquired",
        "NotAcquired",
        "AlreadyStarted",
        "TimeoutNotUsable",
        "InvalidTimeout",
        "TimeoutTooLarge",
        "NotExpirable",
        "AcquireTimeout",
        "LockLost",
        "NotReplicated",
        "InvalidArgument",
        "InvalidArgumentType",
        "StaleToken",
        "LimitMismatch",
    ],
)
def test_exceptions_are_runtime_errors_under_one_base(name: str) -> None:
    """Every exception derives from RedisLockError, which derives from RuntimeError as 4.x's did."""
    exc = getattr(redis_lock, name)
    assert issubclass(exc, redis_lock.RedisLockError)
    assert issubclass(exc, RuntimeError)


def test_argument_errors_are_also_value_or_type_errors() -> None:
    """Argument errors stay catchable as the ValueError/TypeError 4.x raised for them."""
    for exc in (
        redis_lock.InvalidArgument,
        redis_lock.TimeoutNotUsable,
        redis_lock.InvalidTimeout,
        redis_lock.TimeoutTooLarge,
    ):
        assert issubclass(exc, ValueError)
    assert issubclass(redis_lock.InvalidArgumentType, TypeError)
    assert issubclass(redis_lock.LockLost, redis_lock.NotAcquired)
    assert issubclass(redis_lock.AcquireTimeout, redis_lock.NotAcquired)
    assert issubclass(redis_lock.NotReplicated, redis_lock.NotAcquired)


def test_argument_errors_carry_the_argument_name() -> None:
    """InvalidArgument and InvalidArgumentType say which argument was wrong."""
    err = redis_lock.InvalidArgument("bad", argument="expire")
    assert err.argument == "expire"
    assert redis_lock.InvalidArgumentType("bad", argument="name").argument == "name"


def test_logger_names_are_those_of_4x() -> None:
    """The six 4.x logger names exist under the redis_lock logger, with no handlers configured by us."""
    from redis_lock import _core

    loggers = [
        _core.logger_for_acquire,
        _core.logger_for_refresh_thread,
        _core.logger_for_refresh_start,
        _core.logger_for_refresh_shutdown,
        _core.logger_for_refresh_exit,
        _core.logger_for_release,
    ]
    assert [lg.name for lg in loggers] == [
        "redis_lock.acquire",
        "redis_lock.refresh.thread",
        "redis_lock.refresh.start",
        "redis_lock.refresh.shutdown",
        "redis_lock.refresh.exit",
        "redis_lock.release",
    ]
    assert all(not lg.handlers for lg in loggers)
    assert not logging.getLogger("redis_lock").handlers


# -- subclassing: 4.x's docs tell users to subclass Lock to change the renewal interval ------------------


def watch_pttl(client: redis.Redis, key: str, seconds: float) -> tuple[int, int]:
    """Sample ``key``'s PTTL every 5 ms for ``seconds``: how many times it went up (renewals), and its lowest value."""
    renewals, lowest, last = 0, 2**62, client.pttl(key)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        time.sleep(0.005)
        pttl: int = client.pttl(key)
        assert pttl > 0, f"{key} expired or vanished while held (PTTL {pttl})"
        renewals += pttl > last
        lowest, last = min(lowest, pttl), pttl
    return renewals, lowest


#: A subclass renews every 100 ms a lock of 2 s, which the default interval (2/3 of it) would renew
#: only after 1.33 s: within a second of watching, about ten renewals and a PTTL that stays near 2000 ms,
#: against none and a PTTL down to 1000 ms.
HOOK_EXPIRE, HOOK_INTERVAL, WATCH = 2, 0.1, 1.0


def check_renewed_at_hook_interval(renewals: int, lowest: int) -> None:
    assert 4 <= renewals <= WATCH / HOOK_INTERVAL + 3, renewals
    assert lowest > (HOOK_EXPIRE - HOOK_INTERVAL) * 1000 - 500, lowest


def test_lock_subclass_renews_at_the_interval_it_sets(make_client: MakeClient, plain: redis.Redis) -> None:
    """A Lock subclass that sets _lock_renewal_interval after __init__ (the 4.x hook) is renewed at that pace, as PTTL shows."""

    class FastLock(redis_lock.Lock):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._lock_renewal_interval = HOOK_INTERVAL

    lock = FastLock(make_client(), "hook", expire=HOOK_EXPIRE, auto_renewal=True)
    assert lock.acquire()
    try:
        renewals, lowest = watch_pttl(plain, "lock:hook", WATCH)
    finally:
        lock.release()
    check_renewed_at_hook_interval(renewals, lowest)


@pytest.mark.asyncio
async def test_async_lock_subclass_renews_at_the_interval_it_sets(redis_url: str, plain: redis.Redis) -> None:
    """An AsyncLock subclass that sets _lock_renewal_interval after __init__ is renewed at that pace, as PTTL shows."""

    class FastLock(redis_lock.AsyncLock):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._lock_renewal_interval = HOOK_INTERVAL

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        lock = FastLock(client, "hook", expire=HOOK_EXPIRE, auto_renewal=True)
        assert await lock.acquire()
        try:
            # Watched from a thread, so that the event loop goes on renewing meanwhile.
            renewals, lowest = await asyncio.to_thread(watch_pttl, plain, "lock:hook", WATCH)
        finally:
            await lock.release()
    finally:
        await client.aclose()
    check_renewed_at_hook_interval(renewals, lowest)


def test_lock_subclass_works_with_with_and_is_renewed_through_its_extend(
    make_client: MakeClient, plain: redis.Redis
) -> None:
    """A Lock subclass is what ``with`` yields and holds, and auto-renewal goes through its overridden extend."""

    class CountingLock(redis_lock.Lock):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.extends: list[float | None] = []

        def extend(self, expire: float | None = None) -> None:
            self.extends.append(expire)
            super().extend(expire)

    lock = CountingLock(make_client(), "counted", expire=0.3, auto_renewal=True)
    with lock as entered:
        assert entered is lock
        assert plain.get("lock:counted") == lock.id.encode()
        wait_for(lambda: len(lock.extends) >= 3, timeout=5, what="three renewals through extend")
        # Three renewals 0.2 s apart: the key outlived its 0.3 s expiry.
        assert plain.get("lock:counted") == lock.id.encode()
        assert 0 < plain.pttl("lock:counted") <= 300
    assert plain.exists("lock:counted") == 0
    assert set(lock.extends) == {0.3}
    renewed = len(lock.extends)
    time.sleep(0.4)  # two renewal intervals: the renewal ended with the block
    assert len(lock.extends) == renewed


@pytest.mark.asyncio
async def test_async_lock_subclass_works_with_async_with_and_is_renewed_through_its_extend(
    redis_url: str, plain: redis.Redis
) -> None:
    """An AsyncLock subclass is what ``async with`` yields and holds, and auto-renewal goes through its extend."""

    class CountingLock(redis_lock.AsyncLock):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.extends: list[float | None] = []

        async def extend(self, expire: float | None = None) -> None:
            self.extends.append(expire)
            await super().extend(expire)

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        lock = CountingLock(client, "counted", expire=0.3, auto_renewal=True)
        async with lock as entered:
            assert entered is lock
            assert plain.get("lock:counted") == lock.id.encode()
            await async_wait_for(
                lambda: len(lock.extends) >= 3, timeout=5, what="three renewals through extend"
            )
            assert plain.get("lock:counted") == lock.id.encode()
            assert 0 < plain.pttl("lock:counted") <= 300
        assert plain.exists("lock:counted") == 0
        assert set(lock.extends) == {0.3}
        renewed = len(lock.extends)
        await asyncio.sleep(0.4)  # two renewal intervals: the renewal ended with the block
        assert len(lock.extends) == renewed
    finally:
        await client.aclose()


def test_fencing_module_exports_the_guard_and_its_error() -> None:
    """redis_lock.fencing offers exactly the four guard functions and StaleToken, the same class as redis_lock's."""
    import redis_lock.fencing

    assert sorted(redis_lock.fencing.__all__) == [
        "StaleToken",
        "async_fenced_get",
        "async_fenced_set",
        "fenced_get",
        "fenced_set",
    ]
    assert redis_lock.fencing.StaleToken is redis_lock.StaleToken


def test_typing_module_exports_the_protocol() -> None:
    """redis_lock.typing offers the client Protocol for annotations."""
    assert "RedisClient" in redis_lock.typing.__all__


def test_the_facade_maps_every_module_and_every_private_module_has_all() -> None:
    """The facade's docstring names every module of the package, and each private module declares ``__all__``."""
    import importlib
    import pkgutil

    names = sorted(m.name for m in pkgutil.iter_modules(redis_lock.__path__) if m.name != "__main__")
    assert redis_lock.__doc__ is not None
    missing = [name for name in names if f"``{name}``" not in redis_lock.__doc__]
    assert missing == [], f"modules missing from the map in redis_lock/__init__.py: {missing}"
    for name in names:
        if name.startswith("_"):
            module = importlib.import_module(f"redis_lock.{name}")
            assert isinstance(getattr(module, "__all__", None), list), f"redis_lock.{name} has no __all__"
