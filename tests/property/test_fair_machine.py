"""Fair mode's server side (``lua/fair.lua``, ``lua/reset.lua``) as a Hypothesis state machine, on a real Redis.

The machine plays the acquire calls of :class:`redis_lock.Lock` with ``fair=True`` at
the script level: each rule sends fair.lua exactly what ``LockCore._acquire_fair``
sends (its ARGV built by ``_core.fair_args`` and ``_core.fair_release_args``), pops a
call's wake list as the waiters' hub would, or makes the world happen around the
calls: a waiter's lease runs out (its hash field is rewritten with a lease end of
0, no sleeping), a pending hand-off's deadline passes (the marker's deadline is
rewritten to 0), the holder's key expires (``DEL``), or somebody resets the lock.

The model is small: the server queue (tokens in arrival order, some of them dead),
the call the lock is granted or handed to, the hand-off marker, the signal, the
release receipt, the fencing counter and every call's wake list. Each call is
waiting (queued, or between two places after a reset or a voided hand-off),
handed (the lock is its own but it has not popped its wake list), holding (it
believes it holds the lock), lost (it believed so, but its key expired or was
reset) or done. Every reply is predicted, and after every step the invariants
compare the whole keyspace with the model:

* **mutual exclusion**: at most one call believes it holds the lock, and
  ``lock:<name>`` holds that call's id (with that call's expiry);
* **FIFO**: the queue (``lock-queue:<name>``) is the model's, in order, with rising
  tickets, and the lock only ever goes to the first live queued call (dead,
  cancelled and given-up calls are never served, nobody jumps the queue);
* **no lost wake-up**: after a release, or a cancel by a call the lock had been
  handed to, the first live waiter holds the lock and its wake list is exactly one
  ``h...`` (checked against Redis directly, from the queue as it was before the
  step); with no live waiter the lock is free and ``lock-signal:<name>`` has an
  element;
* **dead waiters never block**: a waiter whose lease ran out is dropped by the
  next script call that looks at the head of the queue (the queue comparison is
  exact, so a dead head left behind, or a live waiter dropped, fails it);
* fencing tokens rise with every grant, and a hand-off's token (``h<token>``) is
  the one its receiver is told again when it takes the lock through the script.

The example count follows ``HYPOTHESIS_PROFILE`` (``conftest.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import redis_lock
from redis_lock import _core, _keys
from redis_lock._scripts import FAIR, evalsha

from . import strategies as s

#: One name, with the characters most likely to break key building (braces, glob characters, spaces, non-ASCII).
NAME: Final = s.NAMES[2]
LOCK_KEY, SIGNAL_KEY = _keys.keys_for(NAME)
QUEUE_KEY, WAITERS_KEY, WAKE_PREFIX = _keys.fair_keys(LOCK_KEY)
FENCE_KEY: Final = _keys.fence_key(LOCK_KEY)
RECEIPT_KEY: Final = _keys.receipt_key(LOCK_KEY)
#: fair.lua's KEYS, as ``LockCore._fair_script_keys`` builds them.
FAIR_KEYS: Final = (LOCK_KEY, SIGNAL_KEY, QUEUE_KEY, WAITERS_KEY, FENCE_KEY, RECEIPT_KEY)

#: Every time in the machine is long enough never to run out during a test: only its rules expire things.
SIGNAL_EXPIRE_MS: Final = 600_000
QUEUE_LEASE_MS: Final = 600_000
RECEIPT_TTL_MS: Final = 600_000
#: A call's ``expire`` in seconds (None: the lock never expires).
EXPIRES: Final[tuple[float | None, ...]] = (None, 100.0)
#: A call's fencing: None (off), or the fence key's expire in ms (0: for ever).
FENCES: Final[tuple[int | None, ...]] = (None, 0, 600_000)
#: The id two or more calls may share (as two Lock objects built with one id would); such a call's
#: "owned" reply is never its own (``_core.owned_is_ours``: only a generated id is).
SHARED_ID: Final = "shared-id"
#: Calls in progress at once (waiting, handed, holding or lost): queues of several waiters that collide.
MAX_CALLS: Final = 8

Status = Literal["waiting", "handed", "holding", "lost", "done"]
#: A call may still send fair.lua's acquire-side ops or pop its wake list.
ACTIVE: Final[frozenset[Status]] = frozenset({"waiting", "handed"})

HAND_VALUE: Final = re.compile(rb"h(\d*)")

#: An acquire-side op: mostly "a" (a blocking call queues), sometimes "g" (non-blocking, or at the deadline).
acquire_ops = st.sampled_from(
    [_core.FAIR_ACQUIRE, _core.FAIR_ACQUIRE, _core.FAIR_ACQUIRE, _core.FAIR_GIVE_UP]
)


@dataclass(eq=False)
class FairCall:
    """One acquire() call of a fair Lock: its token, id and settings, and what the model knows of it."""

    token: str
    id: str
    #: The lock's expire in ms; 0: never.
    expire_ms: int
    #: The fence key's expire in ms (0: for ever), or None without fencing.
    fence_ttl: int | None
    #: An "owned" reply means this call holds the lock (its id is its own).
    owned: bool
    request: _core.AcquireRequest
    status: Status = "waiting"
    #: The model of its wake list (``lock-wake:<name>:<token>``).
    wake: list[bytes] = field(default_factory=list[bytes])

    def __repr__(self) -> str:
        return f"FairCall({self.token}, id={self.id!r}, expire_ms={self.expire_ms}, fence={self.fence_ttl}, {self.status})"

    def args(self, op: str) -> tuple[str, ...]:
        return _core.fair_args(op, self.request, self.token, WAKE_PREFIX, SIGNAL_EXPIRE_MS, QUEUE_LEASE_MS)


@dataclass
class Marker:
    """The model of the hand-off marker (the waiters hash's field ""): to whom, and whether its deadline passed."""

    token: str
    id: str
    void_deadline: bool = False


@dataclass(frozen=True)
class Granted:
    """Expected reply {0, 0[, fencing token]}: ``fence`` None (no token), "new" (minted now) or "current"."""

    fence: Literal["new", "current"] | None


@dataclass(frozen=True)
class Owned:
    """Expected reply {2, pttl[, fencing token]}: held by this id already."""

    fence: Literal["new", "current"] | None


@dataclass(frozen=True)
class Busy:
    """Expected reply {1, pttl, position, hint}; position 0: gave up."""

    position: int


Expected = Granted | Owned | Busy


def as_int(value: object) -> int:
    assert isinstance(value, int), value
    return value


def as_list(value: object) -> list[object]:
    assert _core.is_array(value), value
    return list(value)


@dataclass
class Snapshot:
    """Everything the invariants read from Redis, in one round trip."""

    keys: set[bytes]
    owner: bytes | None
    lock_pttl: int
    queue: list[tuple[bytes, float]]
    waiters: dict[bytes, bytes]
    wakes: dict[str, tuple[list[bytes], int]]
    signal_len: int
    receipt: bytes | None
    fence: bytes | None
    fence_pttl: int
    now_ms: int


class FairMachine(RuleBasedStateMachine):
    """fair.lua's acquire calls, releases, cancels and wake-ups against a model of the queue and the holder."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        #: A redis-py bytes client; typed loosely, as its replies' types depend on the command's arguments.
        self.client: Any = client
        self.client.flushdb()
        self.calls: dict[str, FairCall] = {}
        self.queue: list[str] = []
        #: Queued tokens whose lease was made to run out.
        self.dead: set[str] = set()
        #: The call the lock is granted or handed to (its id is in lock:<name>); None: free.
        self.holder: str | None = None
        self.marker: Marker | None = None
        self.signal = False
        self.receipt: str | None = None
        #: The last fencing token minted, and the fence key's expire then.
        self.fence: int | None = None
        self.fence_ttl = 0
        #: Set by a model step that mints a token: the call it was handed to (a hand-off), or "" (a grant).
        self.minted: str | None = None

    # -- the model of fair.lua ----------------------------------------------------

    def owner(self) -> str | None:
        return None if self.holder is None else self.calls[self.holder].id

    def live_waiters(self) -> list[str]:
        return [token for token in self.queue if token not in self.dead]

    def drop(self, token: str) -> None:
        if token in self.queue:
            self.queue.remove(token)
        self.dead.discard(token)
        self.calls[token].wake = []

    def mint(self, call: FairCall, to: str) -> Literal["new"]:
        assert self.minted is None, "one mint per script call"
        assert call.fence_ttl is not None
        self.minted = to
        self.fence_ttl = call.fence_ttl
        return "new"

    def fence_for(self, call: FairCall, *, reuse: bool) -> Literal["new", "current"] | None:
        """The token a grant to ``call`` replies with: none, the counter's (``reuse``, if it has one), or a new one."""
        if call.fence_ttl is None:
            return None
        if reuse and self.fence is not None:
            return "current"
        return self.mint(call, "")

    def hand_next(self) -> bool:
        """The lock is free: hand it to the first live waiter; dead ones ahead of it are dropped."""
        while self.queue:
            head = self.queue[0]
            live = head not in self.dead
            self.drop(head)
            if live:
                call = self.calls[head]
                self.holder = head
                self.marker = Marker(head, call.id)
                call.status = "handed"
                call.wake = [b"h"]  # with fencing, the token is filled in once the script has run
                if call.fence_ttl is not None:
                    self.mint(call, head)
                return True
        self.marker = None
        return False

    def free(self) -> None:
        """The lock key goes: whoever believed it held the lock has lost it."""
        if self.holder is not None:
            holder = self.calls[self.holder]
            if holder.status == "holding":
                holder.status = "lost"
        self.holder = None

    def settle(self) -> None:
        """Forget a hand-off whose lock is no longer its receiver's; void one not taken by its deadline."""
        marker = self.marker
        if marker is None:
            return
        call = self.calls[marker.token]
        if self.owner() != marker.id:
            self.marker = None
            call.wake = []
            if call.status == "handed":
                call.status = "waiting"  # it was never told; it queues again at its next refresh
        elif marker.void_deadline and call.wake:
            assert call.status == "handed"
            self.marker = None
            call.wake = []
            call.status = "waiting"
            self.holder = None

    def model_acquire(self, call: FairCall, op: str) -> Expected:
        """Ops "a" and "g" of ``call``: the reply fair.lua must give, with the model moved on."""
        self.settle()
        marker, owner = self.marker, self.owner()
        if marker is not None and owner == call.id and marker.token == call.token:
            # Handed to this very call: it takes it (its wake list, popped or not, is cleared).
            self.drop(call.token)
            call.status = "holding"
            return Granted(self.fence_for(call, reuse=True))
        if owner == call.id and marker is None:
            if call.owned:
                self.drop(call.token)
                call.status = "holding"
                return Owned(self.fence_for(call, reuse=True))
            return Owned(None)  # another call's hold: AlreadyAcquired
        if owner is None:
            while True:
                head = self.queue[0] if self.queue else None
                if head is None or head == call.token:
                    self.drop(call.token)
                    self.holder = call.token
                    call.status = "holding"
                    self.signal = False
                    return Granted(self.fence_for(call, reuse=False))
                if head not in self.dead:
                    self.hand_next()
                    break
                self.drop(head)
        if op == _core.FAIR_GIVE_UP:
            self.drop(call.token)
            call.status = "done"
            return Busy(0)
        if call.token not in self.queue:
            self.queue.append(call.token)
        self.dead.discard(call.token)
        call.status = "waiting"
        return Busy(self.queue.index(call.token) + 1)

    def model_cancel(self, call: FairCall) -> int:
        self.settle()
        marker = self.marker
        call.status = "done"
        if marker is not None and self.owner() == call.id and marker.token == call.token:
            self.holder = None
            self.marker = None
            self.drop(call.token)
            if not self.hand_next():
                self.signal = True
            return 1
        self.drop(call.token)
        return 0

    def model_release(self, call: FairCall, nonce: str) -> int:
        self.settle()
        call.status = "done"
        if self.owner() != call.id:
            return 2 if self.receipt == nonce else 1
        assert self.holder is not None
        previous = self.calls[self.holder]
        if previous is not call:
            # The lock was another call's with this id (a shared id): that call's hold ends with it. A
            # hand-off it had not taken yet is void: it must never read "h" from its wake list afterwards.
            if previous.status == "holding":
                previous.status = "lost"
            elif previous.status == "handed":
                previous.status = "waiting"
                previous.wake = []
        self.holder = None
        self.marker = None
        if not self.hand_next():
            self.signal = True
        self.receipt = nonce
        return 0

    def model_reset(self) -> None:
        self.signal = True
        if self.marker is not None:
            handed = self.calls[self.marker.token]
            handed.wake = []
            if handed.status == "handed":
                handed.status = "waiting"
        for token in self.queue:
            self.calls[token].wake = [b"r"]
        self.queue = []
        self.dead = set()
        self.marker = None
        self.free()

    # -- running the script ---------------------------------------------------------

    def fair(self, args: tuple[str, ...]) -> object:
        return evalsha(self.client, FAIR, FAIR_KEYS, args)

    def after_script(self) -> int | None:
        """Take a mint the model predicted: the counter rose; a hand-off's wake value carries the token."""
        to, self.minted = self.minted, None
        if to is None:
            return None
        raw = self.client.get(FENCE_KEY)
        assert raw is not None, "a grant with fencing minted no token"
        token = int(raw)
        assert self.fence is None or token > self.fence, f"fencing token {token} after {self.fence}"
        self.fence = token
        if to:
            self.calls[to].wake = [b"h%d" % token]
        return token

    def check_pttl(self, pttl: int) -> None:
        """The holder's key: its call's expiry, or none."""
        assert self.holder is not None
        expire = self.calls[self.holder].expire_ms
        if expire:
            assert 0 < pttl <= expire, (pttl, expire)
        else:
            assert pttl == -1, pttl

    def acquire(self, call: FairCall, op: str) -> None:
        """Send op "a" or "g" for ``call`` and check the reply; an "owned" reply not its own ends the call."""
        expected = self.model_acquire(call, op)
        reply = self.fair(call.args(op))
        minted = self.after_script()
        values = [as_int(v) for v in as_list(reply)]
        parsed = _core.parse_fair_reply(reply)
        if isinstance(expected, Busy):
            assert parsed.code == _core.BUSY, (reply, expected)
            assert parsed.position == expected.position, (reply, expected, self.queue)
            self.check_pttl(parsed.pttl_ms)
            self.check_hint(call, parsed)
            return
        if isinstance(expected, Granted):
            assert values[:2] == [_core.ACQUIRED, 0], (reply, expected)
        else:
            assert values[0] == _core.OWNED, (reply, expected)
            self.check_pttl(values[1])
        if expected.fence is None:
            assert len(values) == 2, (reply, expected)
        else:
            assert len(values) == 3, (reply, expected)
            assert values[2] == (minted if expected.fence == "new" else self.fence), (reply, self.fence)
        if isinstance(expected, Owned) and not call.owned:
            # AlreadyAcquired: the library leaves the queue (a Detach'd cancel) and the call ends.
            assert self.model_cancel(call) == 0
            assert self.fair(call.args(_core.FAIR_CANCEL)) == 0

    def check_hint(self, call: FairCall, reply: _core.FairReply) -> None:
        """A busy reply's hint: the holder's pttl or a pending hand-off's deadline (next), the head's lease (second)."""
        if reply.position == 0:
            assert reply.hint_ms == -1
            return
        rank = reply.position - 1
        marker = self.marker
        if rank == 0:
            if marker is not None and self.calls[marker.token].wake:
                assert 0 <= reply.hint_ms <= QUEUE_LEASE_MS, reply
                if reply.pttl_ms >= 0:
                    assert reply.hint_ms <= reply.pttl_ms, reply
            else:
                assert reply.hint_ms == reply.pttl_ms, reply
        elif rank == 1:
            if self.queue[0] in self.dead:
                assert reply.hint_ms == 0, reply
            else:
                assert 0 < reply.hint_ms <= QUEUE_LEASE_MS, reply
        else:
            assert reply.hint_ms == -1, reply
        assert call.token in self.queue

    def check_handed_on(self, first_live: str | None) -> None:
        """No lost wake-up: the lock is the first live waiter's, woken with one "h", or free with a signal."""
        owner = self.client.get(LOCK_KEY)
        queued = self.client.zrange(QUEUE_KEY, 0, -1)
        if first_live is None:
            assert owner is None, owner
            assert self.client.llen(SIGNAL_KEY) == 1
            assert queued == []
            return
        call = self.calls[first_live]
        assert owner == call.id.encode(), (owner, call)
        wake = self.client.lrange(WAKE_PREFIX + first_live, 0, -1)
        assert len(wake) == 1, wake
        assert HAND_VALUE.fullmatch(wake[0]), wake
        # FIFO, dead waiters skipped: everything up to the receiver has left the queue, the rest is as it was.
        assert [t.decode() for t in queued] == self.queue, (queued, self.queue)

    # -- calls --------------------------------------------------------------------

    def active(self) -> list[str]:
        return [token for token, call in self.calls.items() if call.status in ACTIVE]

    def believers(self) -> list[str]:
        return [token for token, call in self.calls.items() if call.status in ("holding", "lost")]

    @precondition(lambda self: len(self.active()) + len(self.believers()) < MAX_CALLS)
    @rule(
        shared=st.booleans(),
        expire=st.sampled_from(EXPIRES),
        fence=st.sampled_from(FENCES),
        op=acquire_ops,
    )
    def arrive(self, shared: bool, expire: float | None, fence: int | None, op: str) -> None:
        """A new acquire call: blocking (op "a", it queues when it cannot take the lock) or not ("g")."""
        token = f"t{len(self.calls)}"
        lock_id = SHARED_ID if shared else f"id-{len(self.calls)}"
        request = _core.prepare_acquire(
            blocking=op == _core.FAIR_ACQUIRE,
            timeout=None,
            expire=expire,
            renewal=None,
            lock_key=LOCK_KEY,
            signal_key=SIGNAL_KEY,
            lock_id=lock_id,
            now=0.0,
            owned_is_ours=not shared,
            fence_key=None if fence is None else FENCE_KEY,
            fence_ttl_ms=fence or 0,
        )
        assert _core.fair_op(request, 0.0) == op
        call = FairCall(
            token,
            lock_id,
            round(expire * 1000) if expire else 0,
            fence,
            not shared,
            request,
        )
        self.calls[token] = call
        self.acquire(call, op)

    @precondition(lambda self: bool(self.active()))
    @rule(data=st.data(), op=st.sampled_from(["a", "a", "a", "g", "c"]))
    def waiter_acts(self, data: st.DataObject, op: str) -> None:
        """A waiting call runs the script again: it refreshes its place ("a"), gives up at its deadline ("g":
        unless the lock is handed to it), or is cancelled ("c": it leaves; a lock handed to it goes on)."""
        call = self.calls[data.draw(st.sampled_from(self.active()), label="call")]
        if op == _core.FAIR_CANCEL:
            self.cancel_call(call)
        else:
            self.acquire(call, op)

    def unpopped_hand_off(self) -> FairCall | None:
        """The call the lock is handed to, while "h" still waits in its wake list."""
        if self.marker is None:
            return None
        call = self.calls[self.marker.token]
        return call if call.status == "handed" and call.wake else None

    def racers(self) -> list[str]:
        """The call a hand-off waits for, and any other call of its id (its twin) still waiting or believing."""
        handed = self.unpopped_hand_off()
        if handed is None:
            return []
        twins = [
            t
            for t, call in self.calls.items()
            if t != handed.token and call.id == handed.id and call.status in ("waiting", "lost")
        ]
        return [handed.token, *twins]

    @precondition(lambda self: bool(self.racers()))
    @rule(data=st.data(), op=st.sampled_from(["a", "g", "g", "c"]))
    def hand_off_races_a_call(self, data: st.DataObject, op: str) -> None:
        """The lock is handed to a call at the moment it runs the script itself, before its wake-up arrives:
        its refresh ("a") or its last try at the deadline ("g") takes the lock; its cancel ("c") hands it on.
        Or its twin (another call with its id) runs the script then: a hand-off to another call is not its;
        a twin that believes it holds the lock (its key expired) releases it, late."""
        call = self.calls[data.draw(st.sampled_from(self.racers()), label="call")]
        if call.status == "lost":
            self.release_call(call, "")
        elif op == _core.FAIR_CANCEL:
            self.cancel_call(call)
        else:
            self.acquire(call, op)

    def cancel_call(self, call: FairCall) -> None:
        first_live = self.next_receiver(call)
        expected = self.model_cancel(call)
        assert self.fair(call.args(_core.FAIR_CANCEL)) == expected
        self.after_script()
        if expected == 1:
            self.check_handed_on(first_live)

    def next_receiver(self, leaving: FairCall) -> str | None:
        """Before a release or a cancel: the first live waiter other than ``leaving``."""
        return next((t for t in self.live_waiters() if t != leaving.token), None)

    def woken(self) -> list[str]:
        return [token for token in self.active() if self.calls[token].wake]

    @precondition(lambda self: bool(self.woken()))
    @rule(data=st.data(), then_cancel=st.booleans())
    def pop(self, data: st.DataObject, then_cancel: bool) -> None:
        """The hub pops a call's wake list (its BLPOP): "h" hands it the lock, "r" (a reset) has it queue again.

        ``then_cancel``: the call is cancelled after its hub popped but before it took the element: the
        element is lost with it, and its cancel must hand the lock on.
        """
        call = self.calls[data.draw(st.sampled_from(self.woken()), label="call")]
        value = self.client.lpop(WAKE_PREFIX + call.token)
        expected = call.wake.pop(0) if call.wake else None
        assert value == expected, (value, expected)
        if then_cancel:
            self.cancel_call(call)
            return
        handed, token = _core.handed_over(value)
        if value is None:
            assert not handed
            return
        if handed:
            if token is not None:
                assert token == self.fence
            assert call.status == "handed"
            # Taken from the wake list: the call holds the lock, unless its key went before it looked.
            call.status = "holding" if self.holder == call.token else "lost"
            return
        assert value == b"r"
        self.acquire(call, _core.FAIR_ACQUIRE)

    @precondition(lambda self: bool(self.believers()))
    @rule(data=st.data(), retried=st.sampled_from(["", "", "release", "acquire"]))
    def release(self, data: st.DataObject, retried: str) -> None:
        """A call that believes it holds the lock releases it (op "r").

        ``retried``: "release": the client sends the release twice (the second finds its receipt);
        "acquire": first the client sends the holder's last acquire again (a retry after a lost reply), which
        must find the lock still its own.
        """
        self.release_call(self.calls[data.draw(st.sampled_from(self.believers()), label="call")], retried)

    def release_call(self, call: FairCall, retried: str) -> None:
        if retried == "acquire" and call.status == "holding" and call.owned:
            self.acquire(call, _core.FAIR_ACQUIRE)
            assert call.status == "holding"
        args = _core.fair_release_args(call.id, WAKE_PREFIX, SIGNAL_EXPIRE_MS, RECEIPT_TTL_MS)
        nonce = args[5]
        first_live = self.next_receiver(call)
        expected = self.model_release(call, nonce)
        assert self.fair(args) == expected
        self.after_script()
        if expected == 0:
            self.check_handed_on(first_live)
        if retried == "release":
            assert self.fair(args) == self.model_release(call, nonce)
            self.after_script()

    # -- the world ------------------------------------------------------------------

    @precondition(lambda self: bool(set(self.queue) - self.dead))
    @rule(data=st.data())
    def waiter_dies(self, data: st.DataObject) -> None:
        """A queued waiter's process dies: its lease runs out (rewritten to end at 0)."""
        token = data.draw(st.sampled_from([t for t in self.queue if t not in self.dead]), label="call")
        value = self.client.hget(WAITERS_KEY, token)
        assert value is not None
        self.client.hset(WAITERS_KEY, token, b"0" + value[value.index(b"|") :])
        self.dead.add(token)

    @precondition(lambda self: self.marker is not None and not self.marker.void_deadline)
    @rule()
    def handoff_deadline_passes(self) -> None:
        """The pending hand-off's deadline passes: void if its receiver had not popped it, else the hold stands."""
        assert self.marker is not None
        value = self.client.hget(WAITERS_KEY, "")
        assert value is not None
        self.client.hset(WAITERS_KEY, "", b"0" + value[value.index(b"|") :])
        self.marker.void_deadline = True

    @precondition(lambda self: self.holder is not None)
    @rule()
    def holder_key_expires(self) -> None:
        """The holder's key expires (DEL): the next acquire-side call hands the free lock to the first live waiter."""
        assert self.client.delete(LOCK_KEY) == 1
        self.free()

    @precondition(lambda self: bool(self.queue) or self.holder is not None)
    @rule()
    def reset(self) -> None:
        """``Lock.reset()``: the lock is freed, every queued call's wake list gets "r", the queue is empty."""
        queued = list(self.queue)
        self.model_reset()
        redis_lock.Lock(self.client, NAME, fair=True, signal_expire=SIGNAL_EXPIRE_MS).reset()
        for token in queued:
            assert self.client.lrange(WAKE_PREFIX + token, 0, -1) == [b"r"]
        assert not self.client.exists(QUEUE_KEY, LOCK_KEY)

    # -- invariants -----------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        pipe = self.client.pipeline(transaction=True)
        pipe.keys("*")
        pipe.get(LOCK_KEY)
        pipe.pttl(LOCK_KEY)
        pipe.zrange(QUEUE_KEY, 0, -1, withscores=True)
        pipe.hgetall(WAITERS_KEY)
        pipe.llen(SIGNAL_KEY)
        pipe.get(RECEIPT_KEY)
        pipe.get(FENCE_KEY)
        pipe.pttl(FENCE_KEY)
        pipe.time()
        for token in self.calls:
            pipe.lrange(WAKE_PREFIX + token, 0, -1)
            pipe.pttl(WAKE_PREFIX + token)
        replies: list[Any] = pipe.execute()
        keys, owner, lock_pttl, queue, waiters, signal_len, receipt, fence, fence_pttl, now = replies[:10]
        rest = replies[10:]
        wakes = {token: (rest[2 * i], rest[2 * i + 1]) for i, token in enumerate(self.calls)}
        return Snapshot(
            set(keys),
            owner,
            lock_pttl,
            queue,
            waiters,
            wakes,
            signal_len,
            receipt,
            fence,
            fence_pttl,
            now[0] * 1000 + now[1] // 1000,
        )

    @invariant()
    def keyspace_matches_model(self) -> None:
        snap = self.snapshot()
        expected_keys = {
            key.encode()
            for key, present in (
                (LOCK_KEY, self.holder is not None),
                (SIGNAL_KEY, self.signal),
                (QUEUE_KEY, bool(self.queue)),
                (WAITERS_KEY, bool(self.queue) or self.marker is not None),
                (FENCE_KEY, self.fence is not None),
                (RECEIPT_KEY, self.receipt is not None),
            )
            if present
        }
        expected_keys |= {(WAKE_PREFIX + t).encode() for t, call in self.calls.items() if call.wake}
        assert snap.keys == expected_keys, (snap.keys ^ expected_keys, self.calls)

        # Mutual exclusion: one believer at most, and the key holds its id.
        holding = [call for call in self.calls.values() if call.status == "holding"]
        assert len(holding) <= 1, holding
        owner = self.owner()
        assert snap.owner == (None if owner is None else owner.encode()), (snap.owner, owner)
        if holding:
            assert self.holder == holding[0].token
            assert snap.owner == holding[0].id.encode()
        if self.holder is not None:
            assert self.calls[self.holder].status in ("handed", "holding")
            self.check_pttl(snap.lock_pttl)

        # FIFO: the queue is the model's, in arrival order (rising tickets).
        assert [token.decode() for token, _ in snap.queue] == self.queue, (snap.queue, self.queue)
        tickets = [score for _, score in snap.queue]
        assert tickets == sorted(set(tickets)), tickets

        # The waiters hash: each queued call's lease (0: dead), expire, fencing and id; the marker.
        fields = {token.decode() for token in snap.waiters}
        assert fields == set(self.queue) | ({""} if self.marker is not None else set()), (fields, self.queue)
        for token in self.queue:
            call = self.calls[token]
            lease, expire, fence, lock_id = snap.waiters[token.encode()].decode().split("|", 3)
            assert (int(lease) == 0) == (token in self.dead), (token, lease)
            assert int(lease) == 0 or int(lease) > snap.now_ms
            assert (expire, fence, lock_id) == (
                str(call.expire_ms),
                "-" if call.fence_ttl is None else str(call.fence_ttl),
                call.id,
            )
        if self.marker is not None:
            deadline, token, lock_id = snap.waiters[b""].decode().split("|", 2)
            assert (token, lock_id) == (self.marker.token, self.marker.id)
            assert (int(deadline) == 0) == self.marker.void_deadline
            assert int(deadline) == 0 or int(deadline) > snap.now_ms

        # Wake lists: exactly the model's; a hand-off only for the call the lock is handed to (or whose key
        # went before any script looked); a hand-off lives as long as the lock, a reset's as a signal.
        for token, call in self.calls.items():
            wake, pttl = snap.wakes[token]
            assert wake == call.wake, (call, wake)
            if not wake:
                continue
            if wake[0] == b"r":
                assert 0 < pttl <= SIGNAL_EXPIRE_MS
                continue
            assert self.marker is not None, call
            assert self.marker.token == token, (call, self.marker)
            assert self.holder in (token, None)
            assert (pttl == -1) == (call.expire_ms == 0), (call, pttl)

        assert snap.signal_len == (1 if self.signal else 0)
        assert snap.receipt == (None if self.receipt is None else self.receipt.encode())
        if self.fence is not None:
            assert snap.fence == b"%d" % self.fence
            if self.fence_ttl:
                assert 0 < snap.fence_pttl <= self.fence_ttl
            else:
                assert snap.fence_pttl == -1


@pytest.mark.slow
def test_fair_machine(plain: redis.Redis) -> None:
    """Every sequence of fair acquires, refreshes, cancels, wake-ups, releases, deaths, expiries and resets
    keeps Redis and the model in agreement (mutual exclusion, FIFO, no lost wake-up, dead waiters skipped)."""

    class Machine(FairMachine):
        def __init__(self) -> None:
            super().__init__(plain)

    run_state_machine_as_test(Machine, settings=settings())


# -- a bug the machine found, as it shrank it ---------------------------------------------
# fair.lua's op "r" once deleted the lock key and the hand-off marker but not the wake list of the call
# the lock was handed to: a release by another call sharing the id left that call an "h" to pop.


def fair_call(client: redis.Redis, op: str, lock_id: str, token: str) -> object:
    """fair.lua's acquire-side ``op`` for the call ``token`` of ``lock_id`` (no expiry, no fencing)."""
    request = _core.prepare_acquire(
        blocking=True,
        timeout=None,
        expire=None,
        renewal=None,
        lock_key=LOCK_KEY,
        signal_key=SIGNAL_KEY,
        lock_id=lock_id,
        now=0.0,
    )
    args = _core.fair_args(op, request, token, WAKE_PREFIX, SIGNAL_EXPIRE_MS, QUEUE_LEASE_MS)
    return evalsha(client, FAIR, FAIR_KEYS, args)


def fair_release(client: redis.Redis, lock_id: str) -> tuple[str, ...]:
    args = _core.fair_release_args(lock_id, WAKE_PREFIX, SIGNAL_EXPIRE_MS, RECEIPT_TTL_MS)
    assert evalsha(client, FAIR, FAIR_KEYS, args) == 0
    return args


@pytest.mark.parametrize("how", ["late release", "retried release"])
def test_a_release_by_a_shared_id_voids_a_pending_hand_off(plain: redis.Redis, how: str) -> None:
    """A release that ends a hand-off to another call of the same id leaves that call nothing to pop.

    Two calls share an id: ``a`` (the lock's holder before) and ``b`` (queued). The lock is handed to
    ``b``; before ``b`` pops its wake list, a release with that id runs: the late release of ``a``, whose
    key had expired, or a client's second copy of the release that handed the lock to ``b``. Shared
    ids share the lock, so that release ends ``b``'s hold and hands the lock on (here: frees it, and
    ``c`` takes it). ``b`` must then not find "h" in its wake list: it would return from ``acquire()``
    holding a lock that ``c`` holds.
    """
    wake_b = WAKE_PREFIX + "tb"
    if how == "late release":
        assert fair_call(plain, "a", SHARED_ID, "ta") == [0, 0]
        plain.delete(LOCK_KEY)  # a's key expires; a does not know yet
        assert fair_call(plain, "a", "id-h", "th") == [0, 0]
        assert fair_call(plain, "a", SHARED_ID, "tb") == [1, -1, 1, -1]
        fair_release(plain, "id-h")  # handed to b
        assert plain.lrange(wake_b, 0, -1) == [b"h"]
        fair_release(plain, SHARED_ID)  # a's late release
    else:
        assert fair_call(plain, "a", "id-h", "th") == [0, 0]
        assert as_list(fair_call(plain, "a", SHARED_ID, "ta"))[:3] == [1, -1, 1]
        assert as_list(fair_call(plain, "a", SHARED_ID, "tb"))[:3] == [1, -1, 2]
        fair_release(plain, "id-h")  # handed to a
        assert plain.lpop(WAKE_PREFIX + "ta") == b"h"  # a holds the lock
        args = fair_release(plain, SHARED_ID)  # handed to b
        assert plain.lrange(wake_b, 0, -1) == [b"h"]
        # The client sends a's release again (it lost the reply): the lock is its id's, so it goes on.
        evalsha(plain, FAIR, FAIR_KEYS, args)
    assert fair_call(plain, "a", "id-c", "tc") == [0, 0]
    assert plain.get(LOCK_KEY) == b"id-c"
    assert plain.lpop(wake_b) is None, "b would take c's lock"
