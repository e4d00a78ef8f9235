"""The engine's vocabulary and its two drivers: every primitive is written once, as steps.

A primitive (acquire, release, extend, reset, reset_all, a renewal batch, a
script with its NOSCRIPT recovery) is a generator of *steps*: it yields an
effect (call this client method, run this pipeline, sleep until, pass the
object's local gate, ...), is sent the result (or has the error thrown in), and
returns its answer. It performs no I/O and never waits itself, in the sans-I/O
style of h11 and wsproto::

    steps (no I/O)                    driver                        Redis
      |-- yield Call("evalsha", ...) -->|-- client.evalsha(...) ------->|
      |<-- send(reply) -----------------|<-- reply --------------------|
      |-- yield Wait(signal, until) --->|   sleeps on a local signal    |
      |-- return True ----------------->|   acquire() returns True      |

:func:`drive` performs the effects with a synchronous client and
:func:`drive_async` with an asyncio one: they are the only sync/async twins, a
few lines each. Why steps and not a shared base class or generated code: the
decisions and their order (what to send next after which reply) are what
drifted between hand-kept twins, and here they exist once; the drivers are too
small to drift, and the generator protocol (``send``/``throw``) carries replies
and errors into the one copy. See docs/design.rst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = [
    "BACKGROUND_TASK",
    "BLOCKING_TASK",
    "Block",
    "Call",
    "Collect",
    "Detach",
    "EnterGate",
    "Guarded",
    "Pipeline",
    "PipelineRefused",
    "Steps",
    "StopRenewal",
    "Wait",
    "drive",
    "drive_async",
    "in_background",
]

T = TypeVar("T")


def _no_kwargs() -> dict[str, Any]:
    # The default of Call.kwargs and Collect.kwargs: as fast as dict, and typed (dict alone is dict[Unknown, Unknown]).
    return {}


@final
@dataclass(slots=True)
class Call:
    """Call ``client.<method>(*args, **kwargs)`` and send back what it returns (awaited, on asyncio)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=_no_kwargs)


@final
@dataclass(slots=True)
class Block:
    """Call a blocking ``client.<method>(*args)`` (``BLPOP``) and send back what it returns.

    As :class:`Call`, except that on asyncio a cancellation ends the wait at once,
    even if it lands where the client would swallow it (see ``_blocking``).
    """

    method: str
    args: tuple[Any, ...] = ()


@final
@dataclass(slots=True)
class Collect:
    """Iterate ``client.<method>(**kwargs)`` (an async iterator on asyncio); send back the items as a list."""

    method: str
    kwargs: dict[str, Any] = field(default_factory=_no_kwargs)


@final
@dataclass(slots=True)
class Pipeline:
    """Send ``commands`` in one non-transactional pipeline; send back the list of replies (errors as values).

    If the client refuses to build it (before any I/O), :class:`PipelineRefused` is thrown in.
    """

    commands: tuple[tuple[Any, ...], ...]


class PipelineRefused(Exception):
    """The client refused to build a pipeline (before any I/O): the steps fall back to single calls."""


@final
@dataclass(slots=True)
class Detach:
    """Run ``steps`` without waiting for them: inline on a thread, in a task of their own on asyncio.

    The effect returns None at once on asyncio, so yielding it is no point where a
    cancellation can land; ``steps`` must handle their own errors.
    """

    steps: Steps[None]


@final
@dataclass(slots=True)
class Wait:
    """Sleep on a local ``signal`` (``_waiting``) until it is set or until the ``monotonic()`` time ``until``."""

    signal: Any
    until: float


@final
@dataclass(slots=True)
class EnterGate:
    """Pass the lock object's local gate (``_local``); send back the ticket, or None."""

    blocking: bool
    deadline: float | None


@final
@dataclass(slots=True)
class StopRenewal:
    """End the lock object's auto-renewal, waiting for an extend in flight until ``until`` at most."""

    until: float


@final
@dataclass(slots=True)
class Guarded(Generic[T]):
    """Run ``steps`` to completion even if the caller is cancelled; send back their answer.

    On asyncio, a cancellation that lands meanwhile lets ``steps`` finish in a
    task of their own, then runs ``undo(answer)`` (if ``steps`` did not raise),
    and only then lets :class:`asyncio.CancelledError` reach the caller; a second
    cancellation leaves both running in the background, as ``pending``.
    A synchronous call cannot be cancelled: the driver just runs ``steps``.
    """

    steps: Steps[T]
    undo: Callable[[T], Steps[None]] | None = None
    #: What the driver left running after a cancellation (set by it alone), else None.
    pending: asyncio.Future[Any] | None = None

    def when_done(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once nothing of this effect is running any more (at once if nothing is)."""
        if self.pending is None or self.pending.done():
            callback()
        else:
            self.pending.add_done_callback(lambda _: callback())


Effect: TypeAlias = (
    "Call | Block | Collect | Pipeline | Wait | Detach | EnterGate | StopRenewal | Guarded[Any]"
)
#: A primitive's steps: yields effects, is sent their results, returns ``T``.
Steps: TypeAlias = Generator[Effect, Any, T]


class Host:
    """What a driver needs of the lock object it drives steps for (its gate and renewal)."""

    @property
    def _gate(self) -> Any:  # pragma: no cover - overridden by LockCore
        raise NotImplementedError

    def _stop_renewal(self, until: float) -> Any:  # pragma: no cover - overridden by Lock and AsyncLock
        raise NotImplementedError


# ---------------------------------------------------------------------------
# The drivers. What the two flavours do alike (start a call, build a pipeline,
# pass the gate) is started by _begin, whose result the async driver awaits.


def _begin(client: Any, effect: Wait | Block | Pipeline | EnterGate | StopRenewal, host: Host | None) -> Any:
    """Start ``effect``: its result, or on asyncio the awaitable of it (Call is the drivers' own fast path)."""
    if type(effect) is Wait:
        return effect.signal.wait(effect.until)  # a ThreadSignal sleeps; a TaskSignal returns a coroutine
    if type(effect) is EnterGate:
        assert host is not None, effect
        # The drivers are the other half of Host, whose members are private to the engine and the lock classes.
        return host._gate.enter(blocking=effect.blocking, deadline=effect.deadline)  # pyright: ignore[reportPrivateUsage]
    if type(effect) is StopRenewal:
        assert host is not None, effect
        return host._stop_renewal(effect.until)  # pyright: ignore[reportPrivateUsage]
    if type(effect) is Block:
        return getattr(client, effect.method)(*effect.args)
    try:
        pipe = client.pipeline(transaction=False)
        for command in effect.commands:
            pipe.execute_command(*command)
    except Exception as exc:
        raise PipelineRefused(repr(exc)) from exc
    return pipe.execute(raise_on_error=False)


def drive(client: Any, steps: Steps[T], host: Host | None = None) -> T:
    """Run ``steps`` to their answer, performing each effect with the synchronous ``client``."""
    send, throw = steps.send, steps.throw
    try:
        effect: Effect = send(None)
        while True:
            try:
                if type(effect) is Call:  # effect classes are final: exact types, the most frequent first
                    result = getattr(client, effect.method)(*effect.args, **effect.kwargs)
                elif (
                    type(effect) is Guarded
                ):  # effect classes are final: exact types, the most frequent first
                    result = drive(client, effect.steps, host)
                elif (
                    type(effect) is Collect
                ):  # effect classes are final: exact types, the most frequent first
                    result = list(getattr(client, effect.method)(**effect.kwargs))
                elif type(effect) is Detach:
                    result = drive(client, effect.steps, host)
                else:
                    result = _begin(client, effect, host)
            except Exception as exc:
                effect = throw(exc)
                continue
            effect = send(result)
    except StopIteration as done:
        answer: T = done.value
        return answer


def _cancelling() -> Callable[[], int] | None:
    """The current task's ``cancelling`` method (Python 3.11+), or None."""
    task = asyncio.current_task()
    method: Callable[[], int] | None = getattr(task, "cancelling", None)
    return method


#: The names of the tasks that run a Detach effect's steps, and a Block effect's command.
BACKGROUND_TASK: Final = "redis_lock.background"
BLOCKING_TASK: Final = "redis_lock.blocking"

#: Tasks finishing guarded steps after their caller was cancelled. asyncio keeps
#: only weak references to tasks, so they are held here until done.
_background: Final[set[asyncio.Future[Any]]] = set()


def in_background(coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Future[Any]:
    """Run ``coro`` in a task (named ``name``) that is kept alive until it ends."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def drive_async(client: Any, steps: Steps[T], host: Host | None = None) -> T:
    """Run ``steps`` to their answer, performing each effect with the asyncio ``client``.

    A cancellation is thrown into the steps like any error, so they clean up
    (leave the gate, ...) and let it propagate. A cancellation the client
    swallowed (redis-py's asyncio ``BLPOP`` may return None when cancelled,
    redis/redis-py#2028) is noticed through ``Task.cancelling()`` (Python 3.11+)
    and thrown in all the same, so a cancelled acquire never goes on waiting.
    """
    cancelling = _cancelling()
    before = cancelling() if cancelling is not None else 0
    send, throw = steps.send, steps.throw
    try:
        effect: Effect = send(None)
        while True:
            try:
                if type(effect) is Call:  # effect classes are final: exact types, the most frequent first
                    result = await getattr(client, effect.method)(*effect.args, **effect.kwargs)
                elif (
                    type(effect) is Guarded
                ):  # effect classes are final: exact types, the most frequent first
                    result = await _guarded(client, effect, host)
                elif type(effect) is Block:  # effect classes are final: exact types, the most frequent first
                    result = await _blocking(_begin(client, effect, host))
                elif (
                    type(effect) is Collect
                ):  # effect classes are final: exact types, the most frequent first
                    result = [entry async for entry in getattr(client, effect.method)(**effect.kwargs)]
                elif type(effect) is Detach:
                    result = in_background(drive_async(client, effect.steps, host), name=BACKGROUND_TASK)
                else:
                    result = await _begin(client, effect, host)
                if cancelling is not None and cancelling() > before:
                    raise asyncio.CancelledError  # requested meanwhile, but swallowed below us
            except (Exception, asyncio.CancelledError) as exc:
                effect = throw(exc)
                continue
            effect = send(result)
    except StopIteration as done:
        answer: T = done.value
        return answer


async def _blocking(call: Coroutine[Any, Any, Any]) -> Any:
    """Await a blocking command so that a cancellation of the caller ends it at once.

    Awaited in place, a cancellation can be lost inside the client: Python 3.11's
    :func:`asyncio.wait_for`, with which redis-py sends a command when it has a
    ``socket_timeout``, returns the send's result if the cancellation lands just as
    the send finishes, and the task then goes on into a ``BLPOP`` of many seconds.
    Run in a task of its own, the command is waited for here, where the caller's
    cancellation always lands; the command is then cancelled until it has ended.
    """
    task = asyncio.get_running_loop().create_task(call, name=BLOCKING_TASK)
    try:
        await asyncio.wait((task,))
    except asyncio.CancelledError:
        # A second cancellation interrupts only this wait; the command still ends.
        await asyncio.shield(in_background(_cancel_until_done(task)))
        raise
    return task.result()


async def _cancel_until_done(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` again and again until it has ended (it may swallow a cancellation, see ``_blocking``)."""
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=_RECANCEL_EVERY)
    if not task.cancelled():
        task.exception()  # retrieved: the caller is cancelled, the command's own outcome is moot


#: How long a cancelled blocking command may take to end before it is cancelled again.
_RECANCEL_EVERY: Final = 0.05


async def _guarded(client: Any, effect: Guarded[Any], host: Host | None) -> Any:
    # Timeline of a cancellation (task.cancel(), asyncio.timeout, ...):
    #   caller ---- X cancelled ---- waits (shielded) ---------- re-raises CancelledError
    #   steps  ---- EVALSHA ... reply ---- undo(reply): EVALSHA unlock ----|
    # Cancelling the command itself would leave it unknown whether it ran (the
    # client drops the connection, and the reply with it), so it runs in a task
    # the cancellation cannot reach, and its answer decides what to undo.
    task = asyncio.ensure_future(drive_async(client, effect.steps, host))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        undo = in_background(_undo(client, task, effect.undo, host))
        effect.pending = undo
        # A second cancellation interrupts only this wait; the undo goes on.
        await asyncio.shield(undo)
        raise


async def _undo(
    client: Any, task: asyncio.Future[Any], undo: Callable[[Any], Steps[None]] | None, host: Host | None
) -> None:
    try:
        answer = await task
    except Exception:
        return  # the steps failed, so they did nothing that we know of
    if undo is not None:
        await drive_async(client, undo(answer), host)
