"""The semaphore's contract as a Hypothesis state machine against a real Redis.

Several :class:`redis_lock.Semaphore` handles (some sharing an id, with different
limits, on redis-py and valkey-py clients with ``decode_responses`` off and on)
act on two names, while the world expires permits (their score moves into the
past, as a lease that ran out), flushes the script cache and resets everything.
A plain model (name -> stored limit, and holder id -> whether its permit expires)
predicts every result and exception; the invariants compare it with Redis and
with what each handle reports after every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
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
from redis_lock import _waiting

from . import strategies as s
from .test_lock_machine import Outcome, outcome

NAMES = ("a", "n{ä}:* ")
IDS: tuple[str | None, ...] = (None, None, "id-1", "id-2")
LIMITS = (1, 2, 3)
EXPIRES: tuple[float | None, ...] = (None, 30)
MAX_HANDLES = 8
CONTROL_PREFIX = _waiting.CONTROL_PREFIX.encode()


@dataclass(eq=False)
class Handle:
    semaphore: redis_lock.Semaphore
    name: str
    id: str
    limit: int
    expires: bool
    kind: str

    def __repr__(self) -> str:
        return (
            f"Handle({self.name!r}, id={self.id!r}, limit={self.limit}, expires={self.expires}, {self.kind})"
        )


@dataclass
class Model:
    """One name: its stored limit (None: none stored) and its holders (id -> the permit expires)."""

    stored: int | None = None
    holders: dict[str, bool] = field(default_factory=dict)


def key(prefix: str, name: str) -> bytes:
    return (prefix + name).encode()


class SemaphoreMachine(RuleBasedStateMachine):
    handles = Bundle("handles")

    def __init__(self, clients: dict[str, Any], plain: redis.Redis) -> None:
        super().__init__()
        self.clients = clients
        self.plain = plain
        self.plain.flushdb()
        self.model = {name: Model() for name in NAMES}
        self.all_handles: list[Handle] = []

    # -- handles ----------------------------------------------------------------

    @initialize(target=handles, name=st.sampled_from(NAMES), limit=st.sampled_from(LIMITS))
    def first_handle(self, name: str, limit: int) -> Handle:
        return self.make(name, None, limit, 30, ("redis", False))

    @precondition(lambda self: len(self.all_handles) < MAX_HANDLES)
    @rule(
        target=handles,
        name=st.sampled_from(NAMES),
        id=st.sampled_from(IDS),
        limit=st.sampled_from(LIMITS),
        expire=st.sampled_from(EXPIRES),
        kind=s.client_kinds,
    )
    def new_handle(
        self, name: str, id: str | None, limit: int, expire: float | None, kind: tuple[str, bool]
    ) -> Handle:
        return self.make(name, id, limit, expire, kind)

    def make(
        self, name: str, id: str | None, limit: int, expire: float | None, kind: tuple[str, bool]
    ) -> Handle:
        label = f"{kind[0]}-{'str' if kind[1] else 'bytes'}"
        semaphore = redis_lock.Semaphore(self.clients[label], name, limit, expire=expire, id=id)
        handle = Handle(semaphore, name, semaphore.id, limit, expire is not None, label)
        self.all_handles.append(handle)
        return handle

    # -- the model's predictions ------------------------------------------------------

    def expect_acquire(self, handle: Handle) -> Outcome:
        model = self.model[handle.name]
        if model.stored is not None and model.stored != handle.limit:
            return ("LimitMismatch", None)
        if handle.id in model.holders:
            return ("AlreadyAcquired", None)
        return ("ok", len(model.holders) < handle.limit)

    def took(self, handle: Handle, result: Outcome) -> None:
        if result == ("ok", True):
            model = self.model[handle.name]
            model.holders[handle.id] = handle.expires
            model.stored = handle.limit

    # -- the semaphore's operations -----------------------------------------------------

    @rule(handle=handles)
    def acquire_nonblocking(self, handle: Handle) -> None:
        expected = self.expect_acquire(handle)
        result = outcome(lambda: handle.semaphore.acquire(blocking=False))
        assert result == expected
        self.took(handle, result)

    @rule(handle=handles, timeout=s.timeouts)
    def acquire_with_timeout(self, handle: Handle, timeout: float) -> None:
        expected = self.expect_acquire(handle)
        started = time.monotonic()
        result = outcome(lambda: handle.semaphore.acquire(timeout=timeout))
        assert result == expected
        if result == ("ok", False):
            assert time.monotonic() - started >= timeout - 0.002
        self.took(handle, result)

    @rule(handle=handles)
    def release(self, handle: Handle) -> None:
        model = self.model[handle.name]
        result = outcome(handle.semaphore.release)
        if handle.id in model.holders:
            assert result == ("ok", None)
            del model.holders[handle.id]
        else:
            assert result == ("NotAcquired", None)

    @rule(handle=handles, expire=st.sampled_from((None, 20)))
    def extend(self, handle: Handle, expire: float | None) -> None:
        model = self.model[handle.name]
        result = outcome(lambda: handle.semaphore.extend(expire))
        if expire is None and not handle.expires:
            assert result == ("InvalidArgumentType", None)
        elif handle.id not in model.holders:
            assert result == ("NotAcquired", None)
        elif not model.holders[handle.id]:
            assert result == ("NotExpirable", None)
        else:
            assert result == ("ok", None)

    @rule(handle=handles, limit=st.sampled_from(LIMITS))
    def set_limit(self, handle: Handle, limit: int) -> None:
        model = self.model[handle.name]
        assert outcome(lambda: handle.semaphore.set_limit(limit)) == ("ok", model.stored)
        model.stored = handle.limit = limit

    @rule(handle=handles)
    def reset(self, handle: Handle) -> None:
        model = self.model[handle.name]
        assert outcome(handle.semaphore.reset) == ("ok", len(model.holders))
        self.model[handle.name] = Model()

    @rule()
    def reset_all(self) -> None:
        held = sum(1 for model in self.model.values() if model.holders)
        assert outcome(lambda: redis_lock.reset_all_semaphores(self.plain)) == ("ok", held)
        self.model = {name: Model() for name in NAMES}

    # -- the world -------------------------------------------------------------------------

    @precondition(lambda self: any(e for m in self.model.values() for e in m.holders.values()))
    @rule(data=st.data())
    def a_permit_expires(self, data: st.DataObject) -> None:
        """An expiring permit's lease runs out: its score moves into the past (reclaimed by the next script)."""
        choices = sorted((n, i) for n, m in self.model.items() for i, e in m.holders.items() if e)
        name, holder = data.draw(st.sampled_from(choices))
        assert self.plain.zadd(key("sem:", name), {holder: 1}, xx=True, ch=True) == 1
        del self.model[name].holders[holder]

    @rule()
    def script_flush(self) -> None:
        self.plain.script_flush()

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def redis_matches_model(self) -> None:
        """The permits with a future score are the model's holders; TTLs exist unless a permit never expires."""
        now_ms = self.plain.time()[0] * 1000
        for name, model in self.model.items():
            reply: Any = self.plain.zrange(key("sem:", name), 0, -1, withscores=True)
            live = {member.decode(): score for member, score in reply if score > now_ms}
            assert set(live) == set(model.holders), name
            for holder, expires in model.holders.items():
                assert (live[holder] == float("inf")) is not expires
            forever = not all(model.holders.values())
            if model.holders:
                assert (self.plain.pttl(key("sem:", name)) == -1) is forever
            stored = self.plain.get(key("sem-limit:", name))
            assert stored == (None if model.stored is None else str(model.stored).encode())
            if stored is not None and model.holders:
                assert (self.plain.pttl(key("sem-limit:", name)) == -1) is forever

    @invariant()
    def handles_agree(self) -> None:
        """owned(), holders() and available() of every handle say what the model says."""
        for handle in self.all_handles:
            model = self.model[handle.name]
            assert handle.semaphore.owned() is (handle.id in model.holders)
            assert sorted(handle.semaphore.holders()) == sorted(model.holders)
            expected: Outcome = (
                ("LimitMismatch", None)
                if model.stored is not None and model.stored != handle.limit
                else ("ok", max(0, handle.limit - len(model.holders)))
            )
            assert outcome(handle.semaphore.available) == expected

    @invariant()
    def keyspace_is_clean(self) -> None:
        """Only the semaphores' keys and hubs' control lists exist; signal lists hold one wake-up at most."""
        for found in self.plain.scan_iter(count=1000):
            if found.startswith(CONTROL_PREFIX):
                continue
            assert found.startswith((b"sem:", b"sem-limit:", b"sem-signal:", b"sem-released:")), found
            if found.startswith(b"sem-signal:"):
                assert self.plain.llen(found) <= 1
                assert self.plain.pttl(found) != -1


@pytest.mark.slow
def test_semaphore_machine(make_client: Callable[..., Any], plain: redis.Redis) -> None:
    """Every sequence of semaphore operations and outside events keeps Redis, the handles and the model in agreement."""
    clients = {
        f"{kind}-{'str' if decode else 'bytes'}": make_client(kind, decode) for kind, decode in s.CLIENT_KINDS
    }

    class Machine(SemaphoreMachine):
        def __init__(self) -> None:
            super().__init__(clients, plain)

    run_state_machine_as_test(Machine, settings=settings())  # type: ignore[no-untyped-call, unused-ignore]
