"""Lock and AsyncLock stay twins: same public names, same signatures, same kinds of member.

Only what Python forces may differ: the client annotation, ``async def`` on the
methods that talk to Redis, and ``__aenter__``/``__aexit__`` for ``__enter__``/``__exit__``.
"""

from __future__ import annotations

import inspect

import pytest
import redis
import redis.asyncio

import redis_lock

#: Methods that talk to Redis: coroutines on AsyncLock, plain methods on Lock.
IO_METHODS = {"acquire", "release", "extend", "reset", "locked", "owned", "get_owner_id"}
#: The client parameter's annotation is the one intended difference in a signature.
CLIENT_ANNOTATIONS = {"RedisClient", "AsyncRedisClient"}


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def comparable(signature: inspect.Signature) -> list[tuple[str, object, object, object]]:
    """Each parameter's name, kind, default and annotation, with the client annotation blanked out."""
    return [
        (
            p.name,
            p.kind,
            p.default,
            "<client>" if p.annotation in CLIENT_ANNOTATIONS else p.annotation,
        )
        for p in signature.parameters.values()
    ]


def test_same_public_names() -> None:
    """Lock and AsyncLock expose exactly the same public attributes."""
    assert public_names(redis_lock.AsyncLock) == public_names(redis_lock.Lock)
    assert public_names(redis_lock.Lock) >= IO_METHODS | {"id", "lost", "register_scripts"}


def test_same_public_instance_attributes() -> None:
    """Instances of both carry the same public attributes (such as ``blocking``)."""
    sync_lock = redis_lock.Lock(redis.Redis(), "parity")
    async_lock = redis_lock.AsyncLock(redis.asyncio.Redis(), "parity")
    sync_public = {n for n in vars(sync_lock) if not n.startswith("_")}
    async_public = {n for n in vars(async_lock) if not n.startswith("_")}
    assert async_public == sync_public


@pytest.mark.parametrize("name", sorted(public_names(redis_lock.Lock) | {"__init__"}))
def test_same_signature_and_kind(name: str) -> None:
    """Each public member has the same kind (property, classmethod, method) and signature in both classes."""
    sync_member = inspect.getattr_static(redis_lock.Lock, name)
    async_member = inspect.getattr_static(redis_lock.AsyncLock, name)
    assert type(async_member) is type(sync_member)
    if isinstance(sync_member, property):
        assert isinstance(async_member, property)
        assert sync_member.fget is not None
        assert async_member.fget is not None
        assert inspect.signature(async_member.fget) == inspect.signature(sync_member.fget)
        assert async_member.fset is None
        assert sync_member.fset is None
        return
    sync_callable = getattr(redis_lock.Lock, name)
    async_callable = getattr(redis_lock.AsyncLock, name)
    assert comparable(inspect.signature(async_callable)) == comparable(inspect.signature(sync_callable))
    assert (
        inspect.signature(async_callable).return_annotation
        == inspect.signature(sync_callable).return_annotation
    )
    assert inspect.iscoroutinefunction(async_callable) == (name in IO_METHODS)
    assert not inspect.iscoroutinefunction(sync_callable)


@pytest.mark.parametrize(
    ("sync_name", "async_name"), [("__enter__", "__aenter__"), ("__exit__", "__aexit__")]
)
def test_context_manager_twins(sync_name: str, async_name: str) -> None:
    """``async with`` mirrors ``with``: same parameters, and the async methods are coroutines."""
    sync_method = getattr(redis_lock.Lock, sync_name)
    async_method = getattr(redis_lock.AsyncLock, async_name)
    assert comparable(inspect.signature(async_method)) == comparable(inspect.signature(sync_method))
    assert inspect.iscoroutinefunction(async_method)


def test_reset_all_twins() -> None:
    """async_reset_all takes the same parameters as reset_all and is a coroutine function."""
    assert comparable(inspect.signature(redis_lock.async_reset_all)) == comparable(
        inspect.signature(redis_lock.reset_all)
    )
    assert inspect.iscoroutinefunction(redis_lock.async_reset_all)


def test_renewal_hook_exists_on_both() -> None:
    """The 4.x subclass hook ``_lock_renewal_interval`` is set by both constructors."""
    sync_lock = redis_lock.Lock(redis.Redis(), "hook", expire=3, auto_renewal=True)
    async_lock = redis_lock.AsyncLock(redis.asyncio.Redis(), "hook", expire=3, auto_renewal=True)
    assert async_lock._lock_renewal_interval == sync_lock._lock_renewal_interval == 2.0
