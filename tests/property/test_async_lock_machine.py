"""The asyncio twin of ``test_lock_machine.py``: AsyncLock handles as a state machine against a real Redis.

The handles, names, ids, expiries, clients, the model (name -> owner id and expiry),
the outside events and the invariants are those of the sync machine, imported from
it. On top, the machine models what only asyncio has:

- which task holds each handle object's local gate: the machine's own long-lived
  task (which runs every plain operation, as one coroutine of an application
  would, so a second acquire by it raises ``AlreadyAcquired``, as in the sync
  machine) or a finished side task (then every other task's acquire of that
  object gives up, as with :class:`asyncio.Lock`, until someone releases it);
- an acquire cancelled mid-way (after a few event loop turns, or by a tiny
  ``asyncio.wait_for`` timeout), possibly just as the holder's key expires:
  afterwards the handle holds nothing that the model does not say, and nothing
  is left running on the loop;
- two tasks acquiring one AsyncLock object at once: at most one of them gets it.

The machine owns its event loop (made in ``__init__``, closed in ``teardown``) and
its asyncio clients, which belong to that loop. See ``README.rst`` beside this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
import valkey.asyncio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import redis_lock
from redis_lock import RedisLockError, _engine

from .._topology import async_wait_for, blocked_in
from . import strategies as s
from .test_lock_machine import MAX_HANDLES, SLACK, Held, LockMachine, ModelView, Outcome, lock_key, outcome

T = TypeVar("T")

#: Who holds a handle object's local gate: the machine's task, or a side task (finished by then).
MAIN = "main"
SIDE = "side"

#: How long a blocking acquire that is about to be cancelled may wait: far past every cancel point,
#: short enough that a swallowed cancellation fails the step in a second, not in minutes.
LONG = 1.0

#: When an acquire on a busy lock is cancelled: after that many event loop turns, or
#: by an ``asyncio.wait_for`` timeout of that many seconds.
CANCEL_POINTS: tuple[tuple[str, float], ...] = (
    ("turns", 0),
    ("turns", 1),
    ("turns", 2),
    ("turns", 5),
    ("turns", 12),
    ("timeout", 0.001),
    ("timeout", 0.005),
    ("timeout", 0.02),
)
cancel_points = st.sampled_from(CANCEL_POINTS)

#: Lifetime left to the holder's key when a cancelled acquire starts (None: it lives on; 0: PEXPIRE
#: deletes it at once, so the acquire's first script takes the lock while the cancellation is on its way).
HOLDER_EXPIRY_MS: tuple[int | None, ...] = (None, 0, 2, 8)

#: Name prefix of the library's renewal tasks (one per event loop and client).
RENEWAL_TASK = "redis_lock.refresh"
#: The waiters' hub task of a client (``_waiting``), which ends once nobody waits; its BLPOP's task; and
#: a background push of a wake-up (a nudge of that BLPOP, a signal given back), which may outlive an acquire.
WAIT_TASK = "redis_lock.wait"
LIBRARY_TASKS = (RENEWAL_TASK, WAIT_TASK, _engine.BLOCKING_TASK, _engine.BACKGROUND_TASK)


@dataclass(eq=False)
class AsyncHandle:
    """One AsyncLock under test and what the model knows about it."""

    lock: redis_lock.AsyncLock
    name: str
    id: str
    expire_ms: int | None
    renewal: bool
    kind: str
    #: Which task holds this object's local gate (MAIN, SIDE or None).
    holder: str | None = None

    def __repr__(self) -> str:
        return (
            f"AsyncHandle({self.name!r}, id={self.id!r}, expire_ms={self.expire_ms}, "
            f"renewal={self.renewal}, {self.kind}, holder={self.holder})"
        )


def label_of(kind: tuple[str, bool]) -> str:
    return f"{kind[0]}-{'str' if kind[1] else 'bytes'}"


class AsyncLockMachine(RuleBasedStateMachine):
    """Drive AsyncLock handles from several tasks and check them against the sync machine's model."""

    handles = Bundle("handles")

    def __init__(self, url: str, plain: redis.Redis) -> None:
        super().__init__()
        self.plain = plain
        self.plain.flushdb()
        self.model: dict[str, Held] = {}
        self.all_handles: list[AsyncHandle] = []
        self.loop = asyncio.new_event_loop()
        self.clients: dict[str, Any] = {}
        for kind, decode in s.CLIENT_KINDS:
            factory: Any = redis.asyncio.Redis if kind == "redis" else valkey.asyncio.Valkey
            self.clients[label_of((kind, decode))] = factory.from_url(url, decode_responses=decode)
        self.jobs: asyncio.Queue[tuple[Coroutine[Any, Any, Any], asyncio.Future[Any]]] = asyncio.Queue()
        self.main = self.loop.create_task(self._serve(), name="machine")

    async def _serve(self) -> None:
        """The machine's own task: runs the coroutines of ``run`` one after the other."""
        while True:
            coro, done = await self.jobs.get()
            try:
                result = await coro
            except asyncio.CancelledError:
                done.cancel()
                raise
            except Exception as exc:
                done.set_exception(exc)
            else:
                done.set_result(result)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the machine's task; return its result or raise its exception."""
        assert not self.main.done(), "the machine's task ended"
        done: asyncio.Future[T] = self.loop.create_future()
        self.jobs.put_nowait((coro, done))
        return self.loop.run_until_complete(done)

    def teardown(self) -> None:
        try:
            # Stop every renewal; release() stops it before talking to Redis.
            for handle in self.all_handles:
                if handle.renewal:
                    with contextlib.suppress(RedisLockError):
                        self.run(handle.lock.release())
        finally:
            # Anything still running (after a failed step) is cancelled before the loop closes.
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            for client in self.clients.values():
                self.loop.run_until_complete(client.aclose())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    # -- helpers ---------------------------------------------------------------

    def sync_view(self) -> ModelView:
        """This machine as the sync machine's helpers, world rules and Redis invariants see it.

        They only use ``model`` (the same dict of ``Held``) and ``plain``, which this machine has too.
        """
        return self

    def owner(self, name: str) -> str | None:
        return LockMachine.owner(self.sync_view(), name)

    def expect_acquire(self, handle: AsyncHandle, by: str) -> Outcome:
        """What an acquire by the machine's task (MAIN) or a new task (SIDE) must do now.

        A new task finds any held gate busy; the machine's task finds a side task's gate
        busy and passes its own (Redis then says AlreadyAcquired, as for the sync machine's
        single thread). Past the gate, the sync machine's rules apply.
        """
        if handle.holder == SIDE or (handle.holder == MAIN and by == SIDE):
            return ("ok", False)
        owner = self.owner(handle.name)
        if owner is None:
            return ("ok", True)
        if owner == handle.id:
            return ("AlreadyAcquired", None)
        return ("ok", False)

    def took(self, handle: AsyncHandle, result: Outcome, by: str) -> None:
        if result == ("ok", True):
            self.model[handle.name] = Held(handle.id, handle.expire_ms)
            handle.holder = by

    def busy_for_a_new_task(self, handle: AsyncHandle) -> bool:
        return self.expect_acquire(handle, SIDE) == ("ok", False)

    # -- handles ---------------------------------------------------------------

    @initialize(target=handles, name=s.names, kind=s.client_kinds)
    def first_handle(self, name: str, kind: tuple[str, bool]) -> AsyncHandle:
        return self.new_handle_for(name, None, None, False, kind)

    @precondition(lambda self: len(self.all_handles) < MAX_HANDLES)
    @rule(
        target=handles,
        name=s.names,
        id=s.ids,
        expire=s.expires,
        renewal=st.booleans(),
        kind=s.client_kinds,
    )
    def new_handle(
        self, name: str, id: str | bytes | None, expire: float | None, renewal: bool, kind: tuple[str, bool]
    ) -> AsyncHandle:
        return self.new_handle_for(name, id, expire, renewal and bool(expire), kind)

    def new_handle_for(
        self, name: str, id: str | bytes | None, expire: float | None, renewal: bool, kind: tuple[str, bool]
    ) -> AsyncHandle:
        label = label_of(kind)
        lock = redis_lock.AsyncLock(self.clients[label], name, expire=expire, id=id, auto_renewal=renewal)
        assert lock.id == s.expected_id(id, lock.id)
        handle = AsyncHandle(
            lock=lock,
            name=name,
            id=lock.id,
            expire_ms=round(expire * 1000) if expire else None,
            renewal=renewal,
            kind=label,
        )
        self.all_handles.append(handle)
        return handle

    # -- the lock's own operations, from the machine's task ------------------------------

    @rule(handle=handles)
    def acquire_nonblocking(self, handle: AsyncHandle) -> None:
        expected = self.expect_acquire(handle, MAIN)
        result = outcome(lambda: self.run(handle.lock.acquire(blocking=False)))
        assert result == expected
        self.took(handle, result, MAIN)

    @rule(handle=handles, timeout=s.timeouts)
    def acquire_with_timeout(self, handle: AsyncHandle, timeout: float) -> None:
        expected = self.expect_acquire(handle, MAIN)
        started = time.monotonic()
        result = outcome(lambda: self.run(handle.lock.acquire(timeout=timeout)))
        elapsed = time.monotonic() - started
        assert result == expected
        if result == ("ok", False):
            # A busy lock (or gate) whose holder lives on: the waiter waits its whole timeout, no more.
            assert timeout - 0.002 <= elapsed < timeout + SLACK
        self.took(handle, result, MAIN)

    @rule(handle=handles)
    def acquire_waits_for_holder_expiry(self, handle: AsyncHandle) -> None:
        """A waiter on a lock whose holder's key runs out gets it at expiry, not at its own timeout."""
        owner = self.owner(handle.name)
        if owner is None or owner == handle.id or handle.holder == SIDE:
            self.acquire_nonblocking(handle)
            return
        self.plain.pexpire(lock_key(handle.name), 20)
        started = time.monotonic()
        result = outcome(lambda: self.run(handle.lock.acquire(timeout=10)))
        elapsed = time.monotonic() - started
        assert result == ("ok", True)
        assert elapsed < SLACK
        self.took(handle, result, MAIN)

    @rule(handle=handles)
    def release(self, handle: AsyncHandle) -> None:
        owner = self.owner(handle.name)
        result = outcome(lambda: self.run(handle.lock.release()))
        # Any task may release: the gate is free again, whatever Redis said.
        handle.holder = None
        if owner == handle.id:
            assert result == ("ok", None)
            del self.model[handle.name]
        else:
            assert result == ("NotAcquired", None)

    @rule(handle=handles, expire=s.extend_expires)
    def extend(self, handle: AsyncHandle, expire: float | None) -> None:
        held = self.model.get(handle.name)
        new_ms = round(expire * 1000) if expire else handle.expire_ms
        result = outcome(lambda: self.run(handle.lock.extend(expire)))
        if new_ms is None:
            assert result == ("InvalidArgumentType", None)
        elif held is None or held.owner != handle.id:
            assert result == ("NotAcquired", None)
        elif held.expire_ms is None:
            assert result == ("NotExpirable", None)
        else:
            assert result == ("ok", None)
            held.expire_ms = new_ms

    @rule(handle=handles)
    def reset(self, handle: AsyncHandle) -> None:
        assert outcome(lambda: self.run(handle.lock.reset())) == ("ok", None)
        handle.holder = None
        self.model.pop(handle.name, None)

    @rule(kind=s.client_kinds)
    def reset_all(self, kind: tuple[str, bool]) -> None:
        client = self.clients[label_of(kind)]
        assert outcome(lambda: self.run(redis_lock.async_reset_all(client))) == ("ok", len(self.model))
        # Only Redis forgets the locks: every gate stays held by whichever task held it.
        self.model.clear()

    # -- what only asyncio has ----------------------------------------------------------------

    @precondition(lambda self: any(self.busy_for_a_new_task(handle) for handle in self.all_handles))
    @rule(data=st.data(), when=cancel_points, holder_expiry_ms=st.sampled_from(HOLDER_EXPIRY_MS))
    def cancel_a_waiting_acquire(
        self, data: st.DataObject, when: tuple[str, float], holder_expiry_ms: int | None
    ) -> None:
        """A task's acquire of a busy lock, cancelled mid-way, takes nothing: Redis, the gate and the loop stay clean.

        With ``holder_expiry_ms`` the holder's key runs out meanwhile, so the cancellation
        may land after the acquire script took the lock: it must then be given back.
        """
        handle = data.draw(st.sampled_from([h for h in self.all_handles if self.busy_for_a_new_task(h)]))
        key = lock_key(handle.name)
        expiry_ms = None if self.owner(handle.name) is None else holder_expiry_ms
        if expiry_ms is not None:
            self.plain.pexpire(key, expiry_ms)
        expires = expiry_ms is not None
        how, amount = when

        async def cancelled_acquire() -> Outcome:
            if how == "timeout":
                try:
                    return ("ok", await asyncio.wait_for(handle.lock.acquire(timeout=LONG), amount))
                except asyncio.TimeoutError:
                    return ("cancelled", None)
            task = asyncio.ensure_future(handle.lock.acquire(timeout=LONG))
            for _ in range(int(amount)):
                await asyncio.sleep(0)  # the point of the rule: cancel after exactly this many loop turns
            task.cancel()
            await asyncio.wait((task,), timeout=SLACK)
            assert task.done(), "a cancelled acquire did not end"
            return ("cancelled", None) if task.cancelled() else outcome(task.result)

        result = self.run(cancelled_acquire())
        if result != ("cancelled", None):
            # Only a free gate and a key that ran out let the acquire win the race with its cancellation.
            assert expires, result
            assert handle.holder is None, result
            assert result == ("ok", True)
            self.took(handle, result, SIDE)
            return
        if expires:
            deadline = time.monotonic() + SLACK
            while self.plain.exists(key):
                assert time.monotonic() < deadline, "a key with a short TTL did not expire"
                time.sleep(0.001)
            del self.model[handle.name]

    @rule(handle=handles, timeout=st.none() | s.timeouts)
    def tasks_share_a_handle(self, handle: AsyncHandle, timeout: float | None) -> None:
        """Two tasks acquire one AsyncLock object at once (non-blocking, or with a timeout): at most one gets it."""
        expected = self.expect_acquire(handle, SIDE)

        async def both() -> list[Outcome]:
            tasks = [
                asyncio.ensure_future(handle.lock.acquire(blocking=timeout is not None, timeout=timeout))
                for _ in range(2)
            ]
            await asyncio.wait(tasks, timeout=SLACK + (timeout or 0))
            assert all(task.done() for task in tasks), "an acquire of a shared handle hung"
            return [outcome(task.result) for task in tasks]

        first, second = self.run(both())
        if expected == ("ok", True):
            assert sorted([first, second], key=repr) == [("ok", False), ("ok", True)]
            self.took(handle, ("ok", True), SIDE)
        elif expected == ("ok", False):
            assert (first, second) == (expected, expected)
        else:
            # The first task asks Redis while the second finds the gate busy: it gives up
            # at once, or asks Redis in turn once the first has left the gate.
            assert first == expected
            assert second in ((("ok", False), expected) if timeout else (("ok", False),))

    # -- the world around the lock: the sync machine's rules ------------------------------------

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def key_expires(self, data: st.DataObject) -> None:
        """A held lock's key really expires (its lease ran out)."""
        LockMachine.key_expires(self.sync_view(), data)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def foreign_delete(self, data: st.DataObject) -> None:
        """Someone deletes a held lock's key behind its owner's back (the lock is lost)."""
        LockMachine.foreign_delete(self.sync_view(), data)

    @rule(name=s.names)
    def foreign_takeover(self, name: str) -> None:
        """Another client (a 4.x process, say) holds the lock without expiry once the key is free."""
        LockMachine.foreign_takeover(self.sync_view(), name)

    @rule()
    def script_flush(self) -> None:
        """The server forgets every script (a restart, a failover, an operator's SCRIPT FLUSH)."""
        LockMachine.script_flush(self.sync_view())

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def redis_matches_model(self) -> None:
        """Each name's key holds the modelled owner, with the modelled kind of expiry."""
        LockMachine.redis_matches_model(self.sync_view())

    @invariant()
    def keyspace_is_clean(self) -> None:
        """Only lock keys of held names, short-lived one-element signal lists and release receipts exist."""
        LockMachine.keyspace_is_clean(self.sync_view())

    @invariant()
    def handles_agree(self) -> None:
        """locked(), owned() and get_owner_id() of every handle say what the model says."""

        async def view(lock: redis_lock.AsyncLock) -> tuple[str | None, bool, bool]:
            return await asyncio.gather(lock.get_owner_id(), lock.locked(), lock.owned())

        async def views() -> list[tuple[str | None, bool, bool]]:
            # Concurrently: nothing changes the keys meanwhile, and the checks then take three round trips, not 24.
            return await asyncio.gather(*(view(h.lock) for h in self.all_handles))

        for handle, (owner_id, locked, owned) in zip(self.all_handles, self.run(views()), strict=True):
            owner = self.owner(handle.name)
            assert owner_id == owner
            assert locked is (owner is not None)
            assert owned is (owner == handle.id)
            assert not handle.lock.lost

    @invariant()
    def nothing_left_running(self) -> None:
        """Between steps only the machine's task and the library's renewal and hub tasks exist: no acquire lingers."""
        others = [
            task
            for task in asyncio.all_tasks(self.loop)
            if task is not self.main and not task.get_name().startswith(LIBRARY_TASKS)
        ]
        assert others == [], f"tasks left running: {others}"


@pytest.mark.slow
def test_async_lock_machine(redis_url: str, plain: redis.Redis) -> None:
    """Every sequence of AsyncLock operations, cancellations, shared handles and outside events keeps Redis, the handles and the model in agreement."""

    class Machine(AsyncLockMachine):
        def __init__(self) -> None:
            super().__init__(redis_url, plain)

    # Hypothesis releases for Python 3.10 leave run_state_machine_as_test unannotated.
    run_state_machine_as_test(Machine, settings=settings())  # type: ignore[no-untyped-call, unused-ignore]


class SwallowingRedis(redis.asyncio.Redis):
    """A redis-py asyncio client whose BLPOP returns None when cancelled.

    redis-py does this at times (redis/redis-py#2028, still seen with redis-py 8.1): the
    cancellation of a task blocked in BLPOP is lost and the call returns as if it timed out.
    """

    async def blpop(self, keys: Any, timeout: Any = 0) -> Any:
        try:
            return await super().blpop(keys, timeout)
        except asyncio.CancelledError:
            return None


@pytest.mark.asyncio
async def test_cancelled_acquire_ends_even_if_the_client_swallows_the_cancellation(
    redis_url: str, plain: redis.Redis
) -> None:
    """An acquire cancelled in BLPOP ends with CancelledError at once, even if the client's BLPOP swallowed it."""
    client = SwallowingRedis.from_url(redis_url)
    holder = redis_lock.AsyncLock(client, "busy", id="holder")
    assert await holder.acquire()
    task = asyncio.ensure_future(redis_lock.AsyncLock(client, "busy").acquire(timeout=3))
    try:
        await async_wait_for(lambda: blocked_in(plain, "blpop") == 1, timeout=5, what="the waiter's BLPOP")
        task.cancel()
        await asyncio.wait((task,), timeout=1)
        assert task.cancelled(), "the acquire ignored its cancellation"
        await holder.release()
    finally:
        await asyncio.wait((task,), timeout=5)
        await client.aclose()


class LosingRedis(redis.asyncio.Redis):
    """A redis-py asyncio client whose BLPOP loses a cancellation that lands as it starts, then waits in Redis.

    Python 3.11's :func:`asyncio.wait_for`, with which redis-py sends a command when it has a
    ``socket_timeout``, does this when the cancellation arrives just as the send has finished.
    """

    started: asyncio.Event

    async def blpop(self, keys: Any, timeout: Any = 0) -> Any:
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)  # the cancellation lands here, and is lost
        return await super().blpop(keys, timeout)


@pytest.mark.asyncio
async def test_cancelled_acquire_ends_even_if_the_client_loses_the_cancellation_and_waits_on(
    redis_url: str, plain: redis.Redis
) -> None:
    """An acquire cancelled in a BLPOP that loses the cancellation and blocks in Redis still ends at once, and the BLPOP with it."""
    client = LosingRedis.from_url(redis_url)
    assert isinstance(client, LosingRedis)
    client.started = asyncio.Event()
    holder = redis_lock.AsyncLock(client, "busy", id="holder")
    assert await holder.acquire()
    task = asyncio.ensure_future(redis_lock.AsyncLock(client, "busy").acquire(timeout=30))
    try:
        await asyncio.wait_for(client.started.wait(), timeout=5)
        task.cancel()
        await asyncio.wait((task,), timeout=2)
        assert task.cancelled(), "the acquire ignored its cancellation"
        await async_wait_for(lambda: blocked_in(plain, "blpop") == 0, timeout=5, what="the BLPOP to end")
        assert await holder.owned()
    finally:
        await asyncio.wait((task,), timeout=5)
        await holder.release()
        await client.aclose()
