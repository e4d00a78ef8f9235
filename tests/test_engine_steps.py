"""The engine's steps driven without a server: a scripted fake client and a fake clock.

Each test queues the replies (or errors) a Redis client would give, runs a lock
operation through the real drivers (``_engine.drive``, and ``drive_async`` for
the asyncio flavour), and checks the exact commands the steps sent, their
arguments, and when (on the fake clock). The clock is swapped in where the
library reads it (``mod_time`` in ``_lockcore``, ``_local`` and
``_renewal``), as redis-py's tests swap in ``FakeLockTime``; nothing really
sleeps, so the whole file runs in a second or two. A waiter enlists in a real
``_waiting.Hub`` whose loop never starts (:class:`FakeHub`): each local wait
plays a scripted outcome of the hub's BLPOP instead (a signal, the wait's time
coming, an error).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.property.conftest  # noqa: F401 (registers and loads the HYPOTHESIS_PROFILE profile)
from redis_lock import (
    AsyncLock,
    Lock,
    _clients,
    _core,
    _engine,
    _holdcore,
    _keys,
    _local,
    _lockcore,
    _renewal,
)
from redis_lock._engine import Call, Collect, Steps
from redis_lock._exceptions import AlreadyAcquired, NotAcquired, NotExpirable, NotReplicated
from redis_lock._scripts import ACQUIRE, EXTEND, RESET, RESET_ALL, UNLOCK, WAKE, run, run_pipelined
from redis_lock._waiting import CONTROL_EXPIRE_MS, Entry, Hub, LocalSignal

PROFILE: Final = settings()

START: Final = 1000.0
#: The fake clients report a 4 s socket timeout: wait chunks of 2 s, receipts of 60 s.
SOCKET_TIMEOUT: Final = 4.0
CHUNK: Final = 2.0
EPS: Final = 1e-9

FLAVOURS: Final = ("sync", "async")


class FakeClock:
    """``monotonic()`` and ``sleep()`` on a fake time line: sleeping advances it at once."""

    def __init__(self) -> None:
        self.now = START

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def install_clock(mp: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """Make the library read ``clock`` (the waits themselves are played by :class:`FakeHub`)."""
    for module in (_holdcore, _lockcore, _local, _renewal):
        mp.setattr(module, "mod_time", clock)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock the library reads for this test."""
    fake = FakeClock()
    install_clock(monkeypatch, fake)
    return fake


@dataclass
class Sent:
    """One command the steps sent: the client method, its arguments, and the fake time it was sent at."""

    method: str
    args: tuple[Any, ...]
    at: float


class ScriptedClient:
    """A synchronous client whose replies are queued: ``(method, reply)``; a reply that is an exception is raised.

    A reply that is a function is called when the command is sent, and what it
    returns is the reply (it may act meanwhile, as the hub's loop does); a reply
    for ``"pipeline"`` is the list of the pipeline's replies. There is no BLPOP:
    waiters sleep locally, and the hub's loop is faked (:class:`FakeHub`).
    """

    def __init__(self, clock: FakeClock, *script: tuple[str, object]) -> None:
        self.clock = clock
        self.script = list(script)
        self.sent: list[Sent] = []
        self.connection_pool = types.SimpleNamespace(connection_kwargs={"socket_timeout": SOCKET_TIMEOUT})

    def queue(self, *script: tuple[str, object]) -> None:
        self.script.extend(script)

    @property
    def methods(self) -> list[str]:
        return [s.method for s in self.sent]

    def answer(self, method: str, args: tuple[Any, ...]) -> Any:
        self.sent.append(Sent(method, args, self.clock.now))
        assert self.script, f"unexpected {method}{args}: no reply queued"
        expected, reply = self.script.pop(0)
        assert method == expected, f"sent {method}{args}, the script expected {expected}"
        if callable(reply):
            reply = reply()
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def evalsha(self, *args: object) -> Any:
        return self.answer("evalsha", args)

    def eval(self, *args: object) -> Any:
        return self.answer("eval", args)

    def script_load(self, source: bytes) -> Any:
        return self.answer("script_load", (source,))

    def exists(self, name: str) -> Any:
        return self.answer("exists", (name,))

    def get(self, name: str) -> Any:
        return self.answer("get", (name,))

    def scan(self, cursor: int = 0, match: str | None = None, count: int | None = None) -> Any:
        return self.answer("scan", (cursor, match, count))

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[Any]:
        return iter(self.answer("scan_iter", (match, count)))

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        assert transaction is False
        return FakePipeline(self)


class FakePipeline:
    """A non-transactional pipeline of a :class:`ScriptedClient`: its replies are queued as one ``"pipeline"``."""

    def __init__(self, client: ScriptedClient) -> None:
        self.client = client
        self.commands: list[tuple[object, ...]] = []

    def execute_command(self, *args: object) -> None:
        self.commands.append(args)

    def execute(self, raise_on_error: bool = True) -> Any:
        assert raise_on_error is False
        return self.client.answer("pipeline", tuple(self.commands))


class AsyncScriptedClient(ScriptedClient):
    """The asyncio twin: the same script, every command a coroutine."""

    async def execute_command(self, *args: object) -> Any:  # pragma: no cover - marks the flavour only
        raise AssertionError(args)

    async def evalsha(self, *args: object) -> Any:
        return self.answer("evalsha", args)

    async def eval(self, *args: object) -> Any:
        return self.answer("eval", args)

    async def script_load(self, source: bytes) -> Any:
        return self.answer("script_load", (source,))

    async def exists(self, name: str) -> Any:
        return self.answer("exists", (name,))

    async def get(self, name: str) -> Any:
        return self.answer("get", (name,))

    def pipeline(self, transaction: bool = True) -> AsyncFakePipeline:
        assert transaction is False
        return AsyncFakePipeline(self)


class AsyncFakePipeline(FakePipeline):
    async def execute(self, raise_on_error: bool = True) -> Any:
        assert raise_on_error is False
        return self.client.answer("pipeline", tuple(self.commands))


class Handle:
    """A Lock or AsyncLock on a scripted client, with blocking-style methods for both flavours."""

    def __init__(self, flavour: str, clock: FakeClock, name: str = "job", **kwargs: Any) -> None:
        kwargs.setdefault("expire", 10)
        if flavour == "sync":
            self.client: ScriptedClient = ScriptedClient(clock)
            self.lock: Lock | AsyncLock = Lock(self.client, name, strict=False, **kwargs)  # type: ignore[arg-type]
        else:
            self.client = AsyncScriptedClient(clock)
            self.lock = AsyncLock(self.client, name, strict=False, **kwargs)  # type: ignore[arg-type]

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method``; on asyncio, let what it detached (wake-ups to push) finish before the loop closes."""
        result = getattr(self.lock, method)(*args, **kwargs)
        if isinstance(self.lock, AsyncLock):
            return asyncio.run(settled(result))
        return result

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        result: bool = self.call("acquire", *args, **kwargs)
        return result


async def settled(call: Any) -> Any:
    """Await ``call``, then what it left running in the background (``_engine.Detach``)."""
    result = await call
    # Only this loop's: a task another test's (closed) loop left behind is not this call's.
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(task for task in _engine._background if task.get_loop() is loop))
    return result


# ---------------------------------------------------------------------------
# The waiters' hub, without its loop.

SIGNAL: Final = b"lock-signal:job"
CONTROL: Final = "lock-waiters:test"

#: What the hub's loop does while a waiter sleeps: pop a signal for ``lock-signal:job``
#: (the waiter wakes at once), nothing (the waiter's time comes), or fail with an error.
Outcome = Literal["signal", "time"] | Exception


@dataclass
class Waited:
    """One local wait of a waiter: the fake time it began at and the ``monotonic()`` time it was to end by."""

    at: float
    until: float


class FakeSignal:
    """A waiter's local signal, set and cleared by the hub; its wait plays the :class:`FakeHub`'s next outcome."""

    def __init__(self, fake: FakeHub) -> None:
        self.fake = fake
        self.is_set = False

    def set(self) -> None:
        self.is_set = True

    def clear(self) -> None:
        self.is_set = False


class ThreadSignal(FakeSignal):
    """The fake of ``_waiting.ThreadSignal``: the driver calls its wait."""

    def wait(self, until: float) -> None:
        self.fake.play(self, until)


class TaskSignal(FakeSignal):
    """The fake of ``_waiting.TaskSignal``: the driver awaits its wait."""

    async def wait(self, until: float) -> None:
        self.fake.play(self, until)


class FakeHub:
    """A real :class:`~redis_lock._waiting.Hub` whose loop never starts: each wait plays a queued outcome.

    Installed in place of ``_holdcore.enlist``; the hub is built at the first
    enlist and kept for the test. ``"signal"`` is what the loop does when its
    BLPOP pops a signal (plan, then deliver), without the clock moving;
    ``"time"`` moves the clock to the wait's end; an exception fails the hub, as
    a BLPOP error does. Every wait is recorded in ``waits``.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.outcomes: list[Outcome] = []
        self.waits: list[Waited] = []
        self.hub: Hub | None = None
        self.starts = 0
        self.forgotten = 0

    def queue(self, *outcomes: Outcome) -> None:
        self.outcomes.extend(outcomes)

    @property
    def real(self) -> Hub:
        assert self.hub is not None, "nobody waited"
        return self.hub

    def enlist(
        self,
        flavour: str,
        client: object,
        *,
        cluster: bool,
        chunk: float,
        key: str,
        lock_key: str,
        expire_ms: int,
    ) -> tuple[Hub, Entry]:
        assert (cluster, chunk) == (False, CHUNK)
        if self.hub is None:
            signal: Callable[[FakeHub], LocalSignal] = ThreadSignal if flavour == "sync" else TaskSignal
            self.hub = Hub(client, CONTROL, CHUNK, lambda: signal(self), self.start, self.forget)
        return self.hub, self.hub.enlist(key, lock_key, expire_ms)

    def start(self, hub: Hub) -> None:
        assert hub is self.hub
        self.starts += 1

    def forget(self, hub: Hub) -> bool:
        if hub.end_if_idle():
            self.forgotten += 1
            return True
        return False

    def play(self, signal: FakeSignal, until: float) -> None:
        self.waits.append(Waited(self.clock.now, until))
        if signal.is_set:
            return  # it was handed a signal before it slept: the wait returns at once
        assert self.outcomes, f"unexpected wait until {until}: no outcome queued"
        outcome = self.outcomes.pop(0)
        hub = self.real
        if isinstance(outcome, Exception):
            hub.fail(outcome)
        elif outcome == "signal":
            keys = hub.plan(self.clock.now)
            assert isinstance(keys, tuple), keys
            assert SIGNAL.decode() in keys
            assert hub.deliver([SIGNAL, b"1"]) is None  # a local waiter took it
        else:
            assert until >= self.clock.now
            self.clock.now = until


def install_hub(mp: pytest.MonkeyPatch, clock: FakeClock) -> FakeHub:
    """Make the lock's waiters enlist in a :class:`FakeHub` on ``clock``."""
    fake = FakeHub(clock)
    mp.setattr(_holdcore, "enlist", fake.enlist)
    return fake


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> FakeHub:
    """The fake hub the lock's waiters enlist in, for this test."""
    return install_hub(monkeypatch, clock)


def acquire_args(
    lock: Lock | AsyncLock, *, owned_is_ours: str = "1", expire_ms: str = "10000"
) -> tuple[object, ...]:
    """EVALSHA's arguments for acquire.lua on ``lock:job``."""
    return (ACQUIRE.sha1, 2, "lock:job", "lock-signal:job", lock.id, expire_ms, owned_is_ours)


flavours = pytest.mark.parametrize("flavour", FLAVOURS)


# ---------------------------------------------------------------------------
# Acquire: try, wait, try again.


@flavours
def test_busy_then_woken_then_acquired(flavour: str, clock: FakeClock, hub: FakeHub) -> None:
    """Busy with PTTL 800 ms: a local wait until the expiry + 1 ms, cut short by a signal; acquired at once."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, 800]), ("evalsha", [0, 0]))
    hub.queue("signal")
    assert h.acquire() is True
    assert h.client.methods == ["evalsha", "evalsha"]  # the waiter itself sends no BLPOP
    first, second = h.client.sent
    assert first.args == second.args == acquire_args(h.lock)
    (wait,) = hub.waits
    assert wait.at == START
    assert wait.until == pytest.approx(START + 0.801, abs=EPS)
    assert second.at == START  # a wake-up retries at once
    assert hub.starts == 1


@flavours
def test_a_wait_whose_time_comes_retries_when_the_holder_expires(
    flavour: str, clock: FakeClock, hub: FakeHub
) -> None:
    """With no signal, the waiter sleeps to the holder's expiry + 1 ms and tries again then."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, 800]), ("evalsha", [0, 0]))
    hub.queue("time")
    assert h.acquire() is True
    assert h.client.methods == ["evalsha", "evalsha"]
    assert h.client.sent[1].at == pytest.approx(START + 0.801, abs=EPS)
    assert len(hub.waits) == 1


@flavours
def test_a_holder_without_expiry_is_rechecked_every_chunk(
    flavour: str, clock: FakeClock, hub: FakeHub
) -> None:
    """A holder without expiry (PTTL -1) is re-checked every chunk: a wait until now + CHUNK, then EVALSHA."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, -1]), ("evalsha", [0, 0]))
    hub.queue("time")
    assert h.acquire() is True
    assert hub.waits == [Waited(START, START + CHUNK)]
    assert h.client.sent[1].at == START + CHUNK


@flavours
def test_a_short_ttl_is_waited_for_to_the_millisecond(flavour: str, clock: FakeClock, hub: FakeHub) -> None:
    """A holder expiring in 40 ms is waited for until 41 ms exactly, and one expiring in 0 ms for 1 ms: no minimum."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, 40]), ("evalsha", [1, 0]), ("evalsha", [0, 0]))
    hub.queue("time", "time")
    assert h.acquire() is True
    assert h.client.methods == ["evalsha", "evalsha", "evalsha"]
    assert [w.until for w in hub.waits] == [
        pytest.approx(START + 0.041, abs=EPS),
        pytest.approx(START + 0.042, abs=EPS),
    ]
    assert h.client.sent[1].at == pytest.approx(START + 0.041, abs=EPS)
    assert h.client.sent[2].at == pytest.approx(START + 0.042, abs=EPS)


@flavours
def test_the_deadline_passes(flavour: str, clock: FakeClock, hub: FakeHub) -> None:
    """With timeout=0.5 and a lock held for ever: a wait until the deadline, one last EVALSHA then, False."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, -1]), ("evalsha", [1, -1]))
    hub.queue("time")
    assert h.acquire(timeout=0.5) is False
    assert h.client.methods == ["evalsha", "evalsha"]
    assert hub.waits == [Waited(START, START + 0.5)]
    assert h.client.sent[1].at == START + 0.5
    assert clock.now == START + 0.5
    assert hub.outcomes == []


@flavours
@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"blocking": False}])
def test_no_wait_makes_one_attempt(flavour: str, clock: FakeClock, kwargs: dict[str, Any]) -> None:
    """timeout=0 and blocking=False send one EVALSHA and give up on a busy lock, without waiting."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, 800]))
    assert h.acquire(**kwargs) is False
    assert h.client.methods == ["evalsha"]
    assert clock.now == START


@settings(PROFILE)
@given(
    timeout=st.one_of(st.none(), st.floats(min_value=0, max_value=0.3)),
    pttls=st.lists(st.integers(-1, 1500), min_size=1, max_size=8),
    wakes=st.lists(st.booleans(), min_size=1, max_size=8),
    attempts=st.integers(1, 12),
)
def test_acquire_waits_follow_the_plan(
    timeout: float | None, pttls: list[int], wakes: list[bool], attempts: int
) -> None:
    """Whatever the replies, each wait ends after it began, at the chunk, the deadline or the holder's expiry + 1 ms.

    Each wait follows a busy reply at once, and ends at the earliest of the three
    (never later, never earlier); the lock is taken as soon as it is free, and
    given up only once the deadline is reached.
    """
    clock = FakeClock()
    with pytest.MonkeyPatch.context() as mp:
        install_clock(mp, clock)
        hub = install_hub(mp, clock)
        hub.queue(*("signal" if wakes[i % len(wakes)] else "time" for i in range(attempts)))
        client = BusyThenFree(clock, pttls, attempts)
        lock = Lock(client, "job", expire=None, strict=False)  # type: ignore[arg-type]
        deadline = None if timeout is None else START + timeout
        acquired = lock.acquire(timeout=timeout)
    # An unbounded wait ends when the lock is granted; a bounded one may give up at the deadline, not before.
    if acquired:
        assert len(client.busy) == attempts
        assert len(hub.waits) == attempts
    else:
        assert deadline is not None
        assert client.last_attempt >= deadline
        assert len(hub.waits) == len(client.busy) - 1  # no wait after the last attempt
    for (replied, expiry), wait in zip(client.busy[: len(hub.waits)], hub.waits, strict=True):
        limit = min(replied + CHUNK, expiry, float("inf") if deadline is None else deadline)
        assert wait.at == replied
        assert replied < wait.until <= limit + EPS
        assert wait.until == pytest.approx(limit, abs=EPS)
    if deadline is not None:
        assert clock.now <= deadline
    if hub.hub is not None:
        assert hub.hub.queues == {}


class BusyThenFree(ScriptedClient):
    """Answers busy (with ``pttls``, cycled) to the first ``attempts`` EVALSHAs, then acquired.

    Each busy reply is recorded in ``busy`` with its time and the holder's
    expiry + 1 ms (infinity for a holder without expiry).
    """

    def __init__(self, clock: FakeClock, pttls: list[int], attempts: int) -> None:
        super().__init__(clock)
        self.pttls, self.attempts = pttls, attempts
        self.busy: list[tuple[float, float]] = []
        self.last_attempt = START

    def evalsha(self, *args: object) -> Any:
        now = self.last_attempt = self.clock.now
        if len(self.busy) >= self.attempts:
            return [0, 0]
        pttl = self.pttls[len(self.busy) % len(self.pttls)]
        self.busy.append((now, now + (pttl + 1) / 1000 if pttl >= 0 else float("inf")))
        return [1, pttl]


# ---------------------------------------------------------------------------
# The hub: nudged before a wait, left at the end.


@flavours
def test_a_waiter_nudges_a_blpop_in_flight_that_lacks_its_key(
    flavour: str, clock: FakeClock, hub: FakeHub
) -> None:
    """The hub's BLPOP in flight covers another lock only: the waiter pushes the control list (wake.lua), then waits."""
    h = Handle(flavour, clock)
    _, other = hub.enlist(
        flavour,
        h.client,
        cluster=False,
        chunk=CHUNK,
        key="lock-signal:other",
        lock_key="lock:other",
        expire_ms=1000,
    )
    assert hub.real.ready(other) is None
    assert hub.real.plan(START) == (CONTROL, "lock-signal:other")  # the loop's BLPOP is in flight
    h.client.queue(("evalsha", [1, -1]), ("evalsha", 1), ("evalsha", [0, 0]))
    hub.queue("signal")
    assert h.acquire() is True
    assert h.client.methods == ["evalsha", "evalsha", "evalsha"]
    assert h.client.sent[1].args == (WAKE.sha1, 1, CONTROL, str(CONTROL_EXPIRE_MS))
    assert h.client.sent[0].args == h.client.sent[2].args == acquire_args(h.lock)
    assert list(hub.real.queues) == ["lock-signal:other"]  # only the other waiter is left


@flavours
@pytest.mark.parametrize("ending", ["acquired", "error"])
def test_the_waiter_leaves_the_hub_at_the_end(
    flavour: str, ending: str, clock: FakeClock, hub: FakeHub
) -> None:
    """After a successful acquire, and after a wait cut by an error that is not an interruption, no waiter is left.

    The hub stays registered, idle, for the next wait (which starts its loop again if it must).
    """
    h = Handle(flavour, clock)
    if ending == "acquired":
        h.client.queue(("evalsha", [1, 800]), ("evalsha", [1, 800]), ("evalsha", [0, 0]))
        hub.queue("time", "signal")
        assert h.acquire() is True
    else:
        h.client.queue(("evalsha", [1, 800]))
        hub.queue(redis.ResponseError("WRONGTYPE Operation against a key"))
        with pytest.raises(redis.ResponseError):
            h.acquire()
    assert hub.real.queues == {}
    assert hub.forgotten == 0
    assert h.client.script == []  # nothing to push: no unused signal was left


@flavours
def test_an_unused_signal_is_given_back_when_the_waiter_gives_up(
    flavour: str, clock: FakeClock, hub: FakeHub
) -> None:
    """A signal handed to the waiter during its last attempt goes back to Redis (wake.lua) when it gives up."""
    h = Handle(flavour, clock)

    def signalled_meanwhile() -> object:
        assert hub.real.deliver([SIGNAL, b"1"]) is None  # handed to this waiter, which is not sleeping
        return [1, -1]

    h.client.queue(("evalsha", [1, -1]), ("evalsha", signalled_meanwhile), ("evalsha", 1))
    hub.queue("time")
    assert h.acquire(timeout=0.5) is False
    assert h.client.methods == ["evalsha", "evalsha", "evalsha"]
    assert h.client.sent[2].args == (
        WAKE.sha1,
        2,
        "lock-signal:job",
        "lock:job",
        str(_core.DEFAULT_SIGNAL_EXPIRE_MS),
    )
    assert hub.real.queues == {}


# ---------------------------------------------------------------------------
# NOSCRIPT recovery.


@flavours
def test_noscript_loads_the_script_and_retries_once(flavour: str, clock: FakeClock) -> None:
    """NOSCRIPT from EVALSHA: SCRIPT LOAD of the script's source, then the same EVALSHA again."""
    h = Handle(flavour, clock)
    h.client.queue(
        ("evalsha", redis.exceptions.NoScriptError("No matching script")),
        ("script_load", ACQUIRE.sha1),
        ("evalsha", [0, 0]),
    )
    assert h.acquire() is True
    assert h.client.methods == ["evalsha", "script_load", "evalsha"]
    assert h.client.sent[1].args == (ACQUIRE.source,)
    assert h.client.sent[0].args == h.client.sent[2].args


def test_noscript_on_a_cluster_sends_eval(clock: FakeClock) -> None:
    """On a cluster NOSCRIPT is answered with one EVAL of the source (no SCRIPT LOAD to every primary)."""
    client = ScriptedClient(clock, ("evalsha", redis.exceptions.NoScriptError("x")), ("eval", [0, 0]))
    keys, args = ("lock:{job}", "lock-signal:{job}"), ("me", "10000", "1")
    assert _engine.drive(client, run(ACQUIRE, keys, args, cluster=True)) == [0, 0]
    assert client.methods == ["evalsha", "eval"]
    assert client.sent[1].args == (ACQUIRE.source.decode(), 2, *keys, *args)


@pytest.mark.parametrize("cluster", [False, True])
def test_noscript_twice_propagates(cluster: bool, clock: FakeClock) -> None:
    """A second NOSCRIPT after the reload propagates: one retry, no loop."""
    again = "eval" if cluster else "evalsha"
    script: list[tuple[str, object]] = [("evalsha", redis.exceptions.NoScriptError("first"))]
    if not cluster:
        script.append(("script_load", UNLOCK.sha1))
    script.append((again, redis.exceptions.NoScriptError("second")))
    client = ScriptedClient(clock, *script)
    with pytest.raises(redis.exceptions.NoScriptError, match="second"):
        _engine.drive(client, run(UNLOCK, ("lock:job",), ("me",), cluster=cluster))
    assert client.script == []


def test_other_script_errors_propagate_without_a_reload(clock: FakeClock) -> None:
    """An error other than NOSCRIPT propagates unchanged, with no SCRIPT LOAD."""
    error = redis.ResponseError("BUSY Redis is busy running a script")
    client = ScriptedClient(clock, ("evalsha", error))
    with pytest.raises(redis.ResponseError) as info:
        _engine.drive(client, run(UNLOCK, ("lock:job",), ("me",), cluster=False))
    assert info.value is error
    assert client.methods == ["evalsha"]


def test_run_pipelined_retries_only_the_noscript_copies(clock: FakeClock) -> None:
    """In a pipeline, only the copies that got NOSCRIPT are sent again, after one SCRIPT LOAD."""
    argsets = [
        ("lock:a", "id", "1000"),
        ("lock:b", "id", "1000"),
        ("lock:c", "id", "1000"),
        ("lock:d", "id", "1000"),
    ]
    noscript = redis.exceptions.NoScriptError
    client = ScriptedClient(
        clock,
        ("pipeline", [0, noscript("x"), 1, noscript("x")]),
        ("script_load", EXTEND.sha1),
        ("pipeline", [0, 2]),
    )
    assert _engine.drive(client, run_pipelined(EXTEND, argsets, 1)) == [0, 0, 1, 2]
    assert client.sent[0].args == tuple(("EVALSHA", EXTEND.sha1, 1, *a) for a in argsets)
    assert client.sent[2].args == (
        ("EVALSHA", EXTEND.sha1, 1, *argsets[1]),
        ("EVALSHA", EXTEND.sha1, 1, *argsets[3]),
    )


def test_run_pipelined_load_error_becomes_the_noscript_copies_reply(clock: FakeClock) -> None:
    """If SCRIPT LOAD fails, its error is the reply of the NOSCRIPT copies only; the others keep theirs."""
    down = redis.ConnectionError("down")
    client = ScriptedClient(
        clock, ("pipeline", [0, redis.exceptions.NoScriptError("x")]), ("script_load", down)
    )
    replies = _engine.drive(client, run_pipelined(EXTEND, [("lock:a", "i", "1"), ("lock:b", "i", "1")], 1))
    assert replies == [0, down]


def test_run_pipelined_refused_or_short_replies(clock: FakeClock) -> None:
    """A client refusing to build the pipeline gives None; a reply list of the wrong length is not retried."""

    class Refusing(ScriptedClient):
        def pipeline(self, transaction: bool = True) -> FakePipeline:
            raise redis.RedisClusterException("EVALSHA is not supported in cluster pipelines")

    assert _engine.drive(Refusing(clock), run_pipelined(EXTEND, [("lock:a", "i", "1")], 1)) is None
    client = ScriptedClient(clock, ("pipeline", [redis.exceptions.NoScriptError("x")]))
    replies = _engine.drive(client, run_pipelined(EXTEND, [("lock:a", "i", "1"), ("lock:b", "i", "1")], 1))
    assert len(replies or []) == 1
    assert client.methods == ["pipeline"]


# ---------------------------------------------------------------------------
# The hub's BLPOP cut short by a failover.


@flavours
def test_an_interrupted_wait_is_retried_once_then_propagates(
    flavour: str, clock: FakeClock, hub: FakeHub
) -> None:
    """UNBLOCKED from the hub's BLPOP retries the acquire at once; a second interruption in a row propagates."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, -1]), ("evalsha", [1, -1]))
    hub.queue(
        redis.ResponseError("UNBLOCKED force unblock from blocking operation, instance state changed"),
        redis.ConnectionError("Connection closed by server."),
    )
    with pytest.raises(redis.ConnectionError):
        h.acquire()
    assert h.client.methods == ["evalsha", "evalsha"]
    assert [w.at for w in hub.waits] == [START, START]
    assert clock.now == START  # no waiting between the interruption and the retry
    assert hub.starts == 2  # the failed hub's loop was started again for the second wait
    # The gate was left: the next acquire goes to Redis again.
    h.client.queue(("evalsha", [0, 0]))
    assert h.acquire(blocking=False) is True


@flavours
def test_interruptions_separated_by_a_real_wait_are_each_retried(
    flavour: str, clock: FakeClock, hub: FakeHub
) -> None:
    """Only consecutive interruptions count: one after a completed wait (woken by a signal) is retried again."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, -1]), ("evalsha", [1, -1]), ("evalsha", [1, -1]), ("evalsha", [0, 0]))
    hub.queue(
        redis.ConnectionError("dropped"),
        "signal",
        redis.ResponseError("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
    )
    assert h.acquire() is True
    assert h.client.script == []
    assert hub.outcomes == []


@flavours
def test_other_wait_errors_propagate_at_once(flavour: str, clock: FakeClock, hub: FakeHub) -> None:
    """An error of the hub's BLPOP that is not an interruption (WRONGTYPE) propagates without another attempt."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [1, -1]))
    hub.queue(redis.ResponseError("WRONGTYPE Operation against a key"))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        h.acquire()
    assert h.client.methods == ["evalsha"]
    assert len(hub.waits) == 1


# ---------------------------------------------------------------------------
# Retried writes: "owned" replies.


@flavours
def test_owned_is_taken_as_ours_for_a_generated_id(flavour: str, clock: FakeClock) -> None:
    """A retried acquire answered "owned" is this call's own hold when the id was generated: acquired."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [2, 9000]))
    assert h.acquire() is True
    assert h.client.sent[0].args == acquire_args(h.lock, owned_is_ours="1")


@flavours
def test_owned_is_already_acquired_for_a_chosen_id(flavour: str, clock: FakeClock) -> None:
    """With an id the caller chose (others may share it), "owned" raises AlreadyAcquired, as in 4.x."""
    h = Handle(flavour, clock, id="shared")
    h.client.queue(("evalsha", [2, 9000]))
    with pytest.raises(AlreadyAcquired):
        h.acquire()
    assert h.client.sent[0].args == acquire_args(h.lock, owned_is_ours="0")


@flavours
def test_a_holders_second_acquire_is_already_acquired(flavour: str, clock: FakeClock) -> None:
    """The holder acquiring again asks Redis with ARGV[3] "0", so "owned" is AlreadyAcquired even for a generated id."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [0, 0]), ("evalsha", [2, 9000]))
    if flavour == "async":
        lock = h.lock
        assert isinstance(lock, AsyncLock)

        async def twice() -> None:
            assert await lock.acquire() is True
            with pytest.raises(AlreadyAcquired):
                await lock.acquire()

        asyncio.run(twice())
    else:
        assert h.acquire() is True
        with pytest.raises(AlreadyAcquired):
            h.acquire()
    assert h.client.sent[1].args == acquire_args(h.lock, owned_is_ours="0")


# ---------------------------------------------------------------------------
# Replication: wait_replicas.


def unlock_keys() -> tuple[str, str, str]:
    return ("lock:job", "lock-signal:job", "lock-released:job")


@flavours
def test_too_few_replicas_release_the_lock_again(flavour: str, clock: FakeClock) -> None:
    """Acquired but acknowledged by 0 of 1 replicas: one pipeline (EVALSHA, WAIT), then unlock, NotReplicated."""
    h = Handle(flavour, clock, wait_replicas=1, wait_replicas_timeout=0.5)
    h.client.queue(("pipeline", [[0, 0], 0]), ("evalsha", 0))
    with pytest.raises(NotReplicated) as info:
        h.acquire()
    assert (info.value.required, info.value.acknowledged) == (1, 0)
    assert h.client.methods == ["pipeline", "evalsha"]
    assert h.client.sent[0].args == (("EVALSHA", *acquire_args(h.lock)), ("WAIT", 1, 500))
    unlock = h.client.sent[1].args
    assert unlock[:5] == (UNLOCK.sha1, 3, *unlock_keys())
    assert unlock[5:7] == (h.lock.id, "1000")
    # The gate was left: the next attempt goes to Redis, and enough replicas make it succeed.
    h.client.queue(("pipeline", [[0, 0], 1]))
    assert h.acquire(blocking=False) is True


@flavours
def test_a_wait_error_is_raised_after_the_release(flavour: str, clock: FakeClock) -> None:
    """An error WAIT replied with is raised once the lock has been released again."""
    h = Handle(flavour, clock, wait_replicas=1)
    error = redis.ResponseError("ERR WAIT cannot be used with replica instances")
    h.client.queue(("pipeline", [[0, 0], error]), ("evalsha", 0))
    with pytest.raises(redis.ResponseError) as info:
        h.acquire()
    assert info.value is error
    assert h.client.methods == ["pipeline", "evalsha"]


@flavours
def test_a_failed_release_after_too_few_replicas_propagates_with_context(
    flavour: str, clock: FakeClock
) -> None:
    """If releasing the unreplicated lock fails, that error propagates, with NotReplicated as its context."""
    h = Handle(flavour, clock, wait_replicas=2)
    h.client.queue(("pipeline", [[0, 0], 1]), ("evalsha", redis.ConnectionError("down")))
    with pytest.raises(redis.ConnectionError) as info:
        h.acquire()
    assert isinstance(info.value.__context__, NotReplicated)


@flavours
def test_a_busy_lock_is_not_released_whatever_wait_says(flavour: str, clock: FakeClock) -> None:
    """A busy reply with WAIT 0 is just busy: no unlock, non-blocking returns False."""
    h = Handle(flavour, clock, wait_replicas=1)
    h.client.queue(("pipeline", [[1, 800], 0]))
    assert h.acquire(blocking=False) is False
    assert h.client.methods == ["pipeline"]


@flavours
def test_noscript_in_the_replicated_pipeline(flavour: str, clock: FakeClock) -> None:
    """NOSCRIPT inside the (EVALSHA, WAIT) pipeline: SCRIPT LOAD, then the whole pipeline again."""
    h = Handle(flavour, clock, wait_replicas=1)
    h.client.queue(
        ("pipeline", [redis.exceptions.NoScriptError("x"), 0]),
        ("script_load", ACQUIRE.sha1),
        ("pipeline", [[0, 0], 1]),
    )
    assert h.acquire() is True
    assert h.client.methods == ["pipeline", "script_load", "pipeline"]
    assert h.client.sent[0].args == h.client.sent[2].args


# ---------------------------------------------------------------------------
# Release, extend, queries.


@flavours
def test_release_recognises_its_own_retried_copy(flavour: str, clock: FakeClock) -> None:
    """unlock.lua's 2 (an earlier copy of this very call released it) is a successful release; 1 is NotAcquired."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", [0, 0]), ("evalsha", 2))
    assert h.acquire() is True
    h.call("release")
    h.client.queue(("evalsha", 1))
    with pytest.raises(NotAcquired):
        h.call("release")
    first, second = h.client.sent[1].args, h.client.sent[2].args
    assert first[:6] == (UNLOCK.sha1, 3, *unlock_keys(), h.lock.id)
    assert first[6] == "1000"
    assert first[8] == str(_core.release_receipt_ttl_ms(SOCKET_TIMEOUT))
    assert first[7] != second[7]  # each release call has its own nonce


@flavours
def test_extend_sends_milliseconds_and_maps_replies(flavour: str, clock: FakeClock) -> None:
    """extend(2.5) sends EXTEND with 2500 ms; reply 2 raises NotExpirable, 1 NotAcquired."""
    h = Handle(flavour, clock)
    h.client.queue(("evalsha", 0), ("evalsha", 2), ("evalsha", 1))
    h.call("extend", 2.5)
    with pytest.raises(NotExpirable):
        h.call("extend")
    with pytest.raises(NotAcquired):
        h.call("extend", 0.001)
    assert [s.args for s in h.client.sent] == [
        (EXTEND.sha1, 1, "lock:job", h.lock.id, "2500"),
        (EXTEND.sha1, 1, "lock:job", h.lock.id, "10000"),
        (EXTEND.sha1, 1, "lock:job", h.lock.id, "1"),
    ]


@flavours
def test_queries_normalise_replies(flavour: str, clock: FakeClock) -> None:
    """locked() is EXISTS == 1; get_owner_id() decodes bytes; owned() compares with this lock's id."""
    h = Handle(flavour, clock, id="me")
    h.client.queue(("exists", 1), ("exists", 0), ("get", b"me"), ("get", "other"), ("get", None))
    assert h.call("locked") is True
    assert h.call("locked") is False
    assert h.call("get_owner_id") == "me"
    assert h.call("owned") is False
    assert h.call("get_owner_id") is None


# ---------------------------------------------------------------------------
# reset_all.


def test_reset_all_scans_pages_and_skips_empty_ones(clock: FakeClock) -> None:
    """reset_all walks SCAN pages until cursor 0, one RESET_ALL per non-empty page, and sums the counts."""
    client = ScriptedClient(
        clock,
        ("scan", [b"7", [b"lock:a", b"lock:b", b"lock:\xff"]]),
        ("evalsha", 2),
        ("scan", [b"9", []]),
        ("scan", [0, ["lock:c"]]),
        ("evalsha", 1),
        ("scan", [0, [b"lock-queue:d", b"other"]]),
        ("evalsha", 0),
    )
    assert _engine.drive(client, _lockcore.reset_all_steps(client, 1000, flavour="sync")) == 3
    assert [s.args[0] for s in client.sent if s.method == "scan"] == [0, 7, 9, 0]
    assert [s.args[1] for s in client.sent if s.method == "scan"] == ["lock:*"] * 3 + ["lock-queue:*"]
    assert client.sent[-1].args == (
        RESET.sha1,
        4,
        "lock:d",
        "lock-signal:d",
        "lock-queue:d",
        "lock-queued:d",
        "1000",
        "lock-wake:d:",
    ), "a fair queue whose lock is free is cleared too, its waiters woken"
    assert client.sent[1].args == (
        RESET_ALL.sha1,
        4,
        "lock:a",
        "lock:b",
        "lock-signal:a",
        "lock-signal:b",
        "1000",
        "2",
    )
    assert client.sent[4].args == (RESET_ALL.sha1, 2, "lock:c", "lock-signal:c", "1000", "1")


class ClusterScriptedClient(ScriptedClient):
    """A scripted client the library takes for a cluster client."""


def test_reset_all_on_a_cluster_groups_keys_per_slot(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster each script call touches one slot: tagged pairs together, an untagged key's two keys apart."""
    monkeypatch.setitem(_clients._CLUSTER_BY_CLASS, ClusterScriptedClient, True)
    tagged = [_keys.keys_for(name, cluster=True)[0] for name in ("a", "b", "c")]
    scanned: list[object] = [*(k.encode() for k in tagged), "lock:job", b"not-a-lock"]
    client = ClusterScriptedClient(clock, ("scan_iter", scanned))
    groups = _keys.reset_all_groups(scanned)
    client.queue(*(("evalsha", 1) for _ in groups), ("scan_iter", []))
    assert _engine.drive(client, _lockcore.reset_all_steps(client, 1000, flavour="sync")) == len(groups)
    calls = [s.args for s in client.sent if s.method == "evalsha"]
    assert len(calls) == len(groups) >= 4  # "lock:job" and "lock-signal:job" hash to different slots
    seen: list[str] = []
    for args in calls:
        numkeys = args[1]
        keys = args[2 : 2 + numkeys]
        assert len({_keys.key_slot(k) for k in keys}) == 1
        assert args[2 + numkeys] == "1000"
        locks = int(args[3 + numkeys])
        assert all(k.startswith("lock:") for k in keys[:locks])
        seen.extend(keys)
    lock_keys = [*tagged, "lock:job"]
    assert sorted(seen) == sorted([*lock_keys, *(k.replace("lock:", "lock-signal:", 1) for k in lock_keys)])


# ---------------------------------------------------------------------------
# The drivers themselves.


def _handles_an_error(clock: FakeClock) -> Steps[str]:
    try:
        yield Call("get", ("lock:job",))
    except redis.ConnectionError:
        clock.sleep(0.25)  # the steps go on after the error they were thrown
    items = yield Collect("scan_iter", {"match": "lock:*", "count": 10})
    return f"{len(items)} after {clock.now - START:.2f}"


def test_drivers_throw_errors_in_and_sleep_on_the_clock(clock: FakeClock) -> None:
    """Both drivers throw a client error into the steps, go on after it, and collect iterators."""
    client = ScriptedClient(
        clock, ("get", redis.ConnectionError("down")), ("scan_iter", ["lock:a", "lock:b"])
    )
    assert _engine.drive(client, _handles_an_error(clock)) == "2 after 0.25"

    class AsyncIterClient(AsyncScriptedClient):
        def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[Any]:  # type: ignore[override]
            items = self.answer("scan_iter", (match, count))

            async def gen() -> AsyncIterator[Any]:
                for item in items:
                    yield item

            return gen()

    clock.now = START
    aclient = AsyncIterClient(clock, ("get", redis.ConnectionError("down")), ("scan_iter", ["lock:a"]))
    assert asyncio.run(_engine.drive_async(aclient, _handles_an_error(clock))) == "1 after 0.25"


class _RenewingLock(Lock):
    """A lock whose renewal is running, as far as its release's steps can tell."""

    @property
    def _renewing(self) -> bool:
        return True


def test_release_stops_renewal_before_unlocking(clock: FakeClock) -> None:
    """A release's steps stop renewal (until the lease ends) before sending unlock.lua, inside one Guarded."""
    lock = _RenewingLock(ScriptedClient(clock), "job", expire=10, strict=False)  # type: ignore[arg-type]
    (guarded,) = list(lock._release_steps())
    assert isinstance(guarded, _engine.Guarded)
    body = guarded.steps
    first = next(body)
    assert isinstance(first, _engine.StopRenewal)
    second = body.send(None)
    assert isinstance(second, Call)
    assert (second.method, second.args[0]) == ("evalsha", UNLOCK.sha1)


def test_release_without_renewal_goes_straight_to_unlock(clock: FakeClock) -> None:
    """With no renewal to stop (4.x tested ``_lock_renewal_thread``), the release's first effect is unlock.lua."""
    lock = Lock(ScriptedClient(clock), "job", expire=10, strict=False)  # type: ignore[arg-type]
    (guarded,) = list(lock._release_steps())
    assert isinstance(guarded, _engine.Guarded)
    first = next(guarded.steps)
    assert isinstance(first, Call)
    assert (first.method, first.args[0]) == ("evalsha", UNLOCK.sha1)
