"""The lock's contract as a Hypothesis state machine against a real Redis.

Several :class:`redis_lock.Lock` handles (some sharing an id, on redis-py and
valkey-py clients with ``decode_responses`` off and on) act on a few names, while
the world around them expires keys, deletes them, takes locks over and flushes the
script cache. A plain model (name -> owner id and expiry) predicts every result and
every exception; the invariants compare the model with Redis and with what each
handle reports after every step. See ``README.rst`` beside this file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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
from redis_lock import RedisLockError, _waiting

from . import strategies as s

CONTROL_PREFIX = _waiting.CONTROL_PREFIX.encode()

MAX_HANDLES = 8
#: A foreign client's id: no handle ever has it.
FOREIGN_ID = "foreign-owner"
#: Generous bound for anything that should take milliseconds on an idle machine.
SLACK = 2.0


@dataclass(eq=False)
class Handle:
    """One Lock under test and what the model knows about it."""

    lock: redis_lock.Lock
    name: str
    id: str
    expire_ms: int | None
    renewal: bool
    kind: str

    def __repr__(self) -> str:
        return f"Handle({self.name!r}, id={self.id!r}, expire_ms={self.expire_ms}, renewal={self.renewal}, {self.kind})"


@dataclass
class Held:
    """The model of one held lock: its owner id and the TTL last set (None: no expiry)."""

    owner: str
    expire_ms: int | None


Outcome = tuple[str, object]


def outcome(call: Callable[[], object]) -> Outcome:
    """Run ``call``; return ("ok", result) or (exception class name, None) for the library's errors."""
    try:
        return ("ok", call())
    except RedisLockError as exc:
        return (type(exc).__name__, None)


def lock_key(name: str) -> bytes:
    return ("lock:" + name).encode()


def signal_key(name: str) -> bytes:
    return ("lock-signal:" + name).encode()


def receipt_key(name: str) -> bytes:
    return ("lock-released:" + name).encode()


class ModelView(Protocol):
    """What the world rules and the Redis invariants use of a machine: its model and a plain client.

    The asyncio machine has both too, so it reuses those methods as they are.
    """

    model: dict[str, Held]
    plain: redis.Redis


class LockMachine(RuleBasedStateMachine):
    """Drive Lock handles over a few names and check them against a dict model."""

    handles = Bundle("handles")

    def __init__(self, clients: dict[str, Any], plain: redis.Redis) -> None:
        super().__init__()
        self.clients = clients
        self.plain = plain
        self.plain.flushdb()
        self.model: dict[str, Held] = {}
        self.all_handles: list[Handle] = []

    def teardown(self) -> None:
        # Stop every renewal thread; release() stops it before talking to Redis.
        for handle in self.all_handles:
            if handle.renewal:
                with contextlib.suppress(RedisLockError):
                    handle.lock.release()

    # -- helpers ---------------------------------------------------------------

    def owner(self: ModelView, name: str) -> str | None:
        held = self.model.get(name)
        return None if held is None else held.owner

    def expect_acquire(self, handle: Handle) -> Outcome:
        """What acquire() must do now: take a free lock, refuse our own, fail on another's."""
        owner = self.owner(handle.name)
        if owner is None:
            return ("ok", True)
        if owner == handle.id:
            return ("AlreadyAcquired", None)
        return ("ok", False)

    def took(self, handle: Handle, result: Outcome) -> None:
        if result == ("ok", True):
            self.model[handle.name] = Held(handle.id, handle.expire_ms)

    # -- handles ---------------------------------------------------------------

    @initialize(target=handles, name=s.names, kind=s.client_kinds)
    def first_handle(self, name: str, kind: tuple[str, bool]) -> Handle:
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
    ) -> Handle:
        return self.new_handle_for(name, id, expire, renewal and bool(expire), kind)

    def new_handle_for(
        self, name: str, id: str | bytes | None, expire: float | None, renewal: bool, kind: tuple[str, bool]
    ) -> Handle:
        label = f"{kind[0]}-{'str' if kind[1] else 'bytes'}"
        lock = redis_lock.Lock(self.clients[label], name, expire=expire, id=id, auto_renewal=renewal)
        assert lock.id == s.expected_id(id, lock.id)
        handle = Handle(
            lock=lock,
            name=name,
            id=lock.id,
            expire_ms=round(expire * 1000) if expire else None,
            renewal=renewal,
            kind=label,
        )
        self.all_handles.append(handle)
        return handle

    # -- the lock's own operations -----------------------------------------------

    @rule(handle=handles)
    def acquire_nonblocking(self, handle: Handle) -> None:
        expected = self.expect_acquire(handle)
        result = outcome(lambda: handle.lock.acquire(blocking=False))
        assert result == expected
        self.took(handle, result)

    @rule(handle=handles, timeout=s.timeouts)
    def acquire_with_timeout(self, handle: Handle, timeout: float) -> None:
        expected = self.expect_acquire(handle)
        started = time.monotonic()
        result = outcome(lambda: handle.lock.acquire(timeout=timeout))
        elapsed = time.monotonic() - started
        assert result == expected
        if result == ("ok", False):
            # A busy lock whose holder lives on: the waiter waits its whole timeout, no more.
            assert timeout - 0.002 <= elapsed < timeout + SLACK
        self.took(handle, result)

    @rule(handle=handles)
    def acquire_waits_for_holder_expiry(self, handle: Handle) -> None:
        """A waiter on a lock whose holder's key runs out gets it at expiry, not at its own timeout."""
        owner = self.owner(handle.name)
        if owner is None or owner == handle.id:
            self.acquire_nonblocking(handle)
            return
        self.plain.pexpire(lock_key(handle.name), 20)
        started = time.monotonic()
        result = outcome(lambda: handle.lock.acquire(timeout=10))
        elapsed = time.monotonic() - started
        assert result == ("ok", True)
        assert elapsed < SLACK
        self.took(handle, result)

    @rule(handle=handles)
    def release(self, handle: Handle) -> None:
        owner = self.owner(handle.name)
        result = outcome(handle.lock.release)
        if owner == handle.id:
            assert result == ("ok", None)
            del self.model[handle.name]
        else:
            assert result == ("NotAcquired", None)

    @rule(handle=handles, expire=s.extend_expires)
    def extend(self, handle: Handle, expire: float | None) -> None:
        held = self.model.get(handle.name)
        new_ms = round(expire * 1000) if expire else handle.expire_ms
        result = outcome(lambda: handle.lock.extend(expire))
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
    def reset(self, handle: Handle) -> None:
        assert outcome(handle.lock.reset) == ("ok", None)
        self.model.pop(handle.name, None)

    @rule(kind=s.client_kinds)
    def reset_all(self, kind: tuple[str, bool]) -> None:
        label = f"{kind[0]}-{'str' if kind[1] else 'bytes'}"
        assert outcome(lambda: redis_lock.reset_all(self.clients[label])) == ("ok", len(self.model))
        self.model.clear()

    # -- the world around the lock ---------------------------------------------------

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def key_expires(self: ModelView, data: st.DataObject) -> None:
        """A held lock's key really expires (its lease ran out)."""
        name = data.draw(st.sampled_from(sorted(self.model)))
        key = lock_key(name)
        self.plain.pexpire(key, 1)
        deadline = time.monotonic() + SLACK
        while self.plain.exists(key):
            assert time.monotonic() < deadline, "a key with a 1 ms TTL did not expire"
            time.sleep(0.001)
        del self.model[name]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def foreign_delete(self: ModelView, data: st.DataObject) -> None:
        """Someone deletes a held lock's key behind its owner's back (the lock is lost)."""
        name = data.draw(st.sampled_from(sorted(self.model)))
        assert self.plain.delete(lock_key(name)) == 1
        del self.model[name]

    @rule(name=s.names)
    def foreign_takeover(self: ModelView, name: str) -> None:
        """Another client (a 4.x process, say) holds the lock without expiry once the key is free."""
        if self.plain.set(lock_key(name), FOREIGN_ID, nx=True):
            self.model[name] = Held(FOREIGN_ID, None)

    @rule()
    def script_flush(self: ModelView) -> None:
        """The server forgets every script (a restart, a failover, an operator's SCRIPT FLUSH)."""
        self.plain.script_flush()

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def redis_matches_model(self: ModelView) -> None:
        """Each name's key holds the modelled owner, with the modelled kind of expiry."""
        for name in s.NAMES:
            held = self.model.get(name)
            value = self.plain.get(lock_key(name))
            if held is None:
                assert value is None, f"{name!r} is held in Redis by {value!r} but free in the model"
                continue
            assert value == held.owner.encode(), f"{name!r}: Redis has {value!r}, model {held.owner!r}"
            pttl = self.plain.pttl(lock_key(name))
            if held.expire_ms is None:
                assert pttl == -1, f"{name!r} should not expire, PTTL {pttl}"
            else:
                assert 0 < pttl <= held.expire_ms, f"{name!r}: PTTL {pttl}, expected <= {held.expire_ms}"

    @invariant()
    def handles_agree(self) -> None:
        """locked(), owned() and get_owner_id() of every handle say what the model says."""
        for handle in self.all_handles:
            owner = self.owner(handle.name)
            assert handle.lock.get_owner_id() == owner
            assert handle.lock.locked() is (owner is not None)
            assert handle.lock.owned() is (owner == handle.id)
            assert not handle.lock.lost

    @invariant()
    def keyspace_is_clean(self: ModelView) -> None:
        """Only lock keys of held names, short-lived one-element signal lists, release receipts and hubs' control lists exist."""
        held = {lock_key(name) for name in self.model}
        signals = {signal_key(name) for name in s.NAMES}
        receipts = {receipt_key(name) for name in s.NAMES}
        for key in self.plain.scan_iter(count=1000):
            if key in held:
                continue
            # Read in one MULTI: a short-lived key may expire between two separate reads.
            pipe = self.plain.pipeline(transaction=True)
            pipe.type(key)
            pipe.pttl(key)
            kind, ttl = pipe.execute()
            if kind == b"none":
                continue  # expired since the SCAN
            assert ttl != -1, f"{key!r} would never expire"
            if key in receipts:
                assert kind == b"string"
                continue
            if key.startswith(CONTROL_PREFIX):
                # A waiters' hub's control list (redis_lock._waiting): one element, at most a minute.
                assert kind == b"list"
                assert 0 < ttl <= _waiting.CONTROL_EXPIRE_MS
                assert self.plain.llen(key) <= 1, f"{key!r} holds more than one nudge"
                continue
            assert key in signals, f"unexpected key {key!r}"
            assert kind == b"list"
            assert self.plain.llen(key) <= 1, f"{key!r} holds more than one wake-up signal"


@pytest.mark.slow
def test_lock_machine(make_client: Callable[..., Any], plain: redis.Redis) -> None:
    """Every sequence of lock operations and outside events keeps Redis, the handles and the model in agreement."""
    clients = {
        f"{kind}-{'str' if decode else 'bytes'}": make_client(kind, decode) for kind, decode in s.CLIENT_KINDS
    }

    class Machine(LockMachine):
        def __init__(self) -> None:
            super().__init__(clients, plain)

    # Hypothesis releases for Python 3.10 leave run_state_machine_as_test unannotated.
    run_state_machine_as_test(Machine, settings=settings())  # type: ignore[no-untyped-call, unused-ignore]
