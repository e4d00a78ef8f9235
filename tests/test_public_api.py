"""The public surface: __all__, the names 4.x users import, and the exception hierarchy."""

from __future__ import annotations

import logging

import pytest

import redis_lock
import redis_lock.typing

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


def test_lock_is_subclassable() -> None:
    """Lock stays open to subclassing (4.x's docs tell users to subclass it to change the renewal interval)."""

    class Mine(redis_lock.Lock):
        pass

    assert issubclass(Mine, redis_lock.Lock)


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
