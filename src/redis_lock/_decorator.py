"""The :func:`locked` decorator: run a function (plain or ``async def``) while holding a lock named from its arguments.

Everything that can be checked without I/O is checked once, when decorating:
the name template against the function's parameters, the client's flavour
against the function's, and the lock options (by building one lock, whose
constructor performs no I/O). Each call then builds its own lock, with its own
id, from the formatted name, so threads (or tasks) calling the function at once
exclude each other through Redis like separate processes do.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import string
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, final, overload

from . import _core
from ._async import AsyncLock
from ._exceptions import InvalidArgument, InvalidArgumentType
from ._sync import Lock

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

    from .typing import AsyncRedisClient, RedisClient

__all__ = ["Skipping", "Waiting", "locked"]

P = ParamSpec("P")
R = TypeVar("R")

_FORMATTER: Final = string.Formatter()


def _template_fields(template: str) -> Iterator[str]:
    """The top-level names the replacement fields of ``template`` refer to (``"a"`` for ``{a.b[0]!r:>{w}}``)."""
    for _literal, field, spec, _conversion in _FORMATTER.parse(template):
        if field is None:
            continue
        # "{}" and "{0}" are positional: the name is formatted with keyword arguments only.
        yield field.split(".", 1)[0].split("[", 1)[0]
        if spec:
            yield from _template_fields(spec)


def _check_template(template: object, signature: inspect.Signature, func: Callable[..., object]) -> None:
    if not isinstance(template, str):
        raise InvalidArgumentType(f"name must be a str, got {type(template).__qualname__}", argument="name")
    try:
        fields = set(_template_fields(template))
    except ValueError as exc:
        raise InvalidArgument(
            f"name {template!r} is not a valid format string: {exc}", argument="name"
        ) from exc
    unknown = sorted(field for field in fields if field not in signature.parameters)
    if unknown:
        known = ", ".join(signature.parameters) or "none"
        shown = ", ".join("{" + field + "}" for field in unknown)
        raise InvalidArgument(
            f"name {template!r} refers to {shown}, which {func.__qualname__}() has no parameter for "
            f"(its parameters: {known}); fields must be parameter names, such as {{account_id}} or {{user.id}}",
            argument="name",
        )


class _Decorator:
    """What :class:`Waiting` and :class:`Skipping` share: the settings, the checks, and the wrappers."""

    __slots__ = ("_blocking", "_client", "_name", "_options", "_timeout")

    def __init__(
        self, redis_client: object, name: str, blocking: bool, timeout: float | None, options: dict[str, Any]
    ) -> None:
        # The flavour of the client is checked per decorated function: it must match the function's.
        self._client: Any = redis_client
        self._name = name
        self._blocking = blocking
        self._timeout = timeout
        self._options = options

    def __repr__(self) -> str:
        return f"<redis_lock.locked {self._name!r}>"

    def _lock(self, cls: type[Lock] | type[AsyncLock], name: str) -> Lock | AsyncLock:
        return cls(self._client, name, blocking=self._blocking, timeout=self._timeout, **self._options)

    def _wrap(self, func: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise InvalidArgumentType(
                f"@locked cannot wrap the generator function {func.__qualname__}(): the lock would be "
                "released as soon as the generator is created, before its body runs",
                argument="func",
            )
        is_async = inspect.iscoroutinefunction(func)
        signature = inspect.signature(func)
        _check_template(self._name, signature, func)
        try:
            # The constructor performs no I/O: this validates the options (and the client) now.
            self._lock(AsyncLock if is_async else Lock, self._name)
        except InvalidArgumentType as exc:
            if exc.argument != "redis_client":
                raise
            kind = (
                "an async def function, which needs an asyncio"
                if is_async
                else "a plain function, which needs a synchronous"
            )
            raise InvalidArgumentType(
                f"@locked: {func.__qualname__}() is {kind} client: {exc}", argument="redis_client"
            ) from exc

        def lock_name(args: tuple[object, ...], kwargs: dict[str, object]) -> str:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return self._name.format(**bound.arguments)

        if is_async:

            @functools.wraps(func)
            async def call_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                name = lock_name(args, kwargs)
                lock = AsyncLock(
                    self._client, name, blocking=self._blocking, timeout=self._timeout, **self._options
                )
                if not await lock.acquire(blocking=self._blocking, timeout=self._timeout):
                    return self._busy(name)
                async with contextlib.AsyncExitStack() as stack:
                    # Released by the lock's own __aexit__: a release error never hides the body's exception.
                    stack.push_async_exit(lock)
                    return await func(*args, **kwargs)

            return call_async

        @functools.wraps(func)
        def call(*args: P.args, **kwargs: P.kwargs) -> Any:
            name = lock_name(args, kwargs)
            lock = Lock(self._client, name, blocking=self._blocking, timeout=self._timeout, **self._options)
            if not lock.acquire(blocking=self._blocking, timeout=self._timeout):
                return self._busy(name)
            with contextlib.ExitStack() as stack:
                # Released by the lock's own __exit__: a release error never hides the body's exception.
                stack.push(lock)
                return func(*args, **kwargs)

        return call

    def _busy(self, name: str) -> None:
        """A call that did not get the lock: skipped (``blocking=False``), else :exc:`AcquireTimeout`."""
        if not self._blocking:
            return
        raise _core.enter_error(name, blocking=True, timeout=self._timeout)


@final
class Waiting(_Decorator):
    """The decorator :func:`~redis_lock.locked` returns with ``blocking=True``: the wrapped function keeps its type."""

    __slots__ = ()

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap ``func``; raises at once if the lock name, the client or an option does not fit it."""
        return self._wrap(func)


@final
class Skipping(_Decorator):
    """The decorator :func:`~redis_lock.locked` returns with ``blocking=False``: a skipped call returns None."""

    __slots__ = ()

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R | None]]: ...

    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R | None]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Wrap ``func``; raises at once if the lock name, the client or an option does not fit it."""
        return self._wrap(func)


@overload
def locked(
    redis_client: RedisClient | AsyncRedisClient,
    name: str,
    *,
    blocking: Literal[True] = True,
    timeout: float | None = None,
    **lock_options: Any,
) -> Waiting: ...


@overload
def locked(
    redis_client: RedisClient | AsyncRedisClient,
    name: str,
    *,
    blocking: Literal[False],
    timeout: None = None,
    **lock_options: Any,
) -> Skipping: ...


@overload
def locked(
    redis_client: RedisClient | AsyncRedisClient,
    name: str,
    *,
    blocking: bool,
    timeout: float | None = None,
    **lock_options: Any,
) -> Waiting | Skipping: ...


def locked(
    redis_client: RedisClient | AsyncRedisClient,
    name: str,
    *,
    blocking: bool = True,
    timeout: float | None = None,
    **lock_options: Any,
) -> Waiting | Skipping:
    """Decorate a function so that each call runs while holding a lock named from the call's arguments.

    .. code-block:: python

       @redis_lock.locked(conn, "invoice:{account_id}", expire=60, auto_renewal=True)
       def bill(account_id: int, month: str = "current") -> None: ...

    Each call of ``bill`` formats ``name`` with the call's arguments, by parameter
    name, defaults included (``name.format(**arguments)``: ``"invoice:{account.id}"``
    and ``"{self.name}"`` work too), builds a :class:`Lock` on that name, acquires it,
    runs the function, and releases the lock afterwards, also when the function
    raises. Calls for different names run side by side; calls for the same name,
    from any thread, task, process or host, run one at a time. An ``async def``
    function gets an :class:`AsyncLock` and needs an asyncio client; a plain
    function gets a :class:`Lock` and needs a synchronous client.

    :param redis_client: the client: synchronous for plain functions, asyncio for ``async def`` ones.
    :param name: the lock name, a ``str.format`` template whose fields are the
        function's parameter names.
    :param blocking: ``True``: wait for the lock (see ``timeout``). ``False``: *skip*
        the call when the lock is busy: the function is not called and the call
        returns ``None``.
    :param timeout: with ``blocking=True``, the longest wait in seconds (``None``:
        for ever), after which the call raises :exc:`AcquireTimeout` without calling
        the function.
    :param lock_options: passed to :class:`Lock` (or :class:`AsyncLock`): ``expire``,
        ``auto_renewal``, ``id``, ``fencing``, ...
    :returns: the decorator. The decorated function keeps its signature (and, to a
        type checker, its parameter types); with ``blocking=False`` its return type
        also admits ``None``.
    :raises InvalidArgument: (when decorating) ``name`` refers to something that is
        not a parameter of the function, or is not a valid format string; or a lock
        option has an unusable value.
    :raises InvalidArgumentType: (when decorating) the client's flavour does not
        match the function's (an asyncio client for a plain function, or the
        reverse), the function is a generator, or a lock option has the wrong type.
    :raises TypeError: (when decorating) an unknown lock option.

    The lock's own exceptions propagate from the call: for example
    :exc:`LockLost` (a :class:`NotAcquired`) from the release when auto-renewal lost
    the lock while the function ran.

    .. versionadded:: 5.0
    """
    options = dict(lock_options)
    return (Waiting if blocking else Skipping)(redis_client, name, blocking, timeout, options)
