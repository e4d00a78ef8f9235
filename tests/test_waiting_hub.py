"""The waiters' hub (``_waiting.Hub``), server-free: who gets a signal, what is blocked on, what is given back.

The hub's decisions are plain methods under one mutex; here they run with
recording signals and a loop that is never started, so each test states one
decision exactly. A Hypothesis state machine then plays random arrivals, waits,
wake-ups, timeouts, cancellations and failures, and checks that no wake-up
signal is ever lost: each one popped from Redis is used by a waiter, handed on,
dropped by a waiter that took the lock, or given back to Redis.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import tests.property.conftest  # noqa: F401 (registers and loads the HYPOTHESIS_PROFILE profile)
from redis_lock import _waiting
from redis_lock._core import DEFAULT_SIGNAL_EXPIRE_MS
from redis_lock._waiting import CONTROL_EXPIRE_MS, LINGER, Entry, Hub

CONTROL = "lock-waiters:test"
CHUNK = 2.5


class Recorded:
    """A local signal that records whether it is set (the hub sets and clears it)."""

    def __init__(self) -> None:
        self.is_set = False

    def set(self) -> None:
        self.is_set = True

    def clear(self) -> None:
        self.is_set = False

    def wait(self, until: float) -> None:  # pragma: no cover - nothing sleeps here
        raise AssertionError(until)


class Harness:
    """A hub whose loop is never started: ``starts`` counts the starts it asked for."""

    def __init__(self) -> None:
        self.starts = 0
        self.forgotten = 0
        self.hub = Hub(object(), CONTROL, CHUNK, Recorded, self._start, self._forget, linger=LINGER)

    def _start(self, hub: Hub) -> None:
        assert hub is self.hub
        self.starts += 1

    def _forget(self, hub: Hub) -> bool:
        if hub.end_if_idle():
            self.forgotten += 1
            return True
        return False

    def enlist(self, name: str) -> Entry:
        return self.hub.enlist(f"lock-signal:{name}", f"lock:{name}", 1000)


def pop(name: str) -> list[bytes]:
    """A BLPOP reply for the signal list of ``name``."""
    return [f"lock-signal:{name}".encode(), b"1"]


def signalled(entry: Entry) -> bool:
    signal: Any = entry.signal
    return entry.signalled and bool(signal.is_set)


def test_a_signal_wakes_the_first_waiter_in_arrival_order() -> None:
    h = Harness()
    a, b, c = h.enlist("x"), h.enlist("x"), h.enlist("x")
    for entry in (a, b, c):
        assert h.hub.ready(entry) is None
    assert h.starts == 1, "the first waiter starts the loop, once"
    assert h.hub.plan(0.0) == (CONTROL, "lock-signal:x")
    assert h.hub.deliver(pop("x")) is None
    assert [signalled(e) for e in (a, b, c)] == [True, False, False]
    assert h.hub.deliver(pop("x")) is None
    assert [signalled(e) for e in (a, b, c)] == [True, True, False]
    assert h.hub.take(b) is True
    assert h.hub.take(c) is False, "c's own time came: no signal for it"


def test_a_signal_nobody_here_takes_is_given_back_with_its_lock_key_and_expire() -> None:
    h = Harness()
    a = h.hub.enlist("lock-signal:x", "lock:x", 777)
    h.hub.ready(a)
    assert h.hub.plan(0.0) == (CONTROL, "lock-signal:x")
    assert h.hub.leave(a, acquired=False) == [(CONTROL, None, CONTROL_EXPIRE_MS, None)], (
        "the last waiter leaves while the BLPOP holds a connection: it nudges the loop"
    )
    assert h.hub.deliver(pop("x")) == ("lock-signal:x", "lock:x", 777, None)


def test_the_control_list_and_a_timed_out_blpop_wake_nobody() -> None:
    h = Harness()
    a = h.enlist("x")
    h.hub.ready(a)
    h.hub.plan(0.0)
    assert h.hub.deliver([CONTROL, "1"]) is None
    assert h.hub.deliver(None) is None
    assert not a.signalled


def test_a_waiter_for_a_key_the_blpop_lacks_nudges_once() -> None:
    h = Harness()
    a, b, c = h.enlist("x"), h.enlist("y"), h.enlist("y")
    h.hub.ready(a)
    assert h.hub.plan(0.0) == (CONTROL, "lock-signal:x")
    assert h.hub.ready(b) == (CONTROL, None, CONTROL_EXPIRE_MS, None)
    assert h.hub.ready(c) is None, "one nudge is on its way already"
    plan = h.hub.plan(0.1)
    assert isinstance(plan, tuple)
    assert set(plan) == {CONTROL, "lock-signal:x", "lock-signal:y"}
    d = h.enlist("x")
    assert h.hub.ready(d) is None, "the BLPOP covers x already"


def test_an_idle_loop_is_woken_locally_not_through_redis() -> None:
    h = Harness()
    a = h.enlist("x")
    h.hub.ready(a)
    h.hub.plan(0.0)
    h.hub.deliver(pop("x"))
    assert h.hub.plan(0.0) == 0.0 + CHUNK, "everyone has a signal to use: sleep locally"
    assert h.hub.take(a) is True
    idle: Any = h.hub.idle
    assert not idle.is_set
    assert h.hub.ready(a) is None
    assert idle.is_set, "the waiter woke the idle loop, which plans again"
    assert h.hub.plan(0.0) == (CONTROL, "lock-signal:x")


def test_a_waiter_leaving_with_an_unused_signal_hands_it_to_the_next() -> None:
    h = Harness()
    a, b = h.enlist("x"), h.enlist("x")
    h.hub.ready(a)
    h.hub.ready(b)
    h.hub.plan(0.0)
    h.hub.deliver(pop("x"))
    assert signalled(a)
    assert not b.signalled
    assert h.hub.leave(a, acquired=False) == []
    assert signalled(b), "a timed out or was cancelled with the signal: b gets it"


def test_a_waiter_that_took_the_lock_drops_its_unused_signal() -> None:
    h = Harness()
    a, b = h.enlist("x"), h.enlist("x")
    h.hub.ready(a)
    h.hub.ready(b)
    h.hub.plan(0.0)
    h.hub.deliver(pop("x"))
    assert h.hub.leave(a, acquired=True) == []
    assert not b.signalled, "the lock is held again: its release will signal"


def test_the_last_waiter_leaving_an_unused_signal_gives_it_back() -> None:
    h = Harness()
    a = h.enlist("x")
    h.hub.ready(a)
    h.hub.plan(0.0)
    h.hub.deliver(pop("x"))
    assert h.hub.plan(0.0) == CHUNK
    assert h.hub.leave(a, acquired=False) == [("lock-signal:x", "lock:x", 1000, None)], (
        "no BLPOP in flight: no nudge, only the signal goes back"
    )


def test_giving_back_on_a_blocked_key_needs_no_nudge() -> None:
    h = Harness()
    a, b = h.enlist("x"), h.enlist("x")
    h.hub.ready(a)
    h.hub.ready(b)
    h.hub.plan(0.0)
    h.hub.deliver(pop("x"))
    h.hub.leave(b, acquired=False)
    assert h.hub.plan(0.0) == CHUNK
    h.hub.take(a)
    h.hub.ready(a)
    h.hub.plan(0.0)
    h.hub.deliver(pop("x"))
    h.hub.take(a)
    h.hub.ready(a)
    assert h.hub.plan(0.0) == (CONTROL, "lock-signal:x")
    h.hub.deliver(pop("x"))
    assert h.hub.plan(0.0) == CHUNK
    c = h.enlist("x")
    h.hub.ready(c)
    assert h.hub.plan(0.0) == (CONTROL, "lock-signal:x")
    # a leaves with its signal: c takes it; then c leaves unsignalled while x is blocked on.
    assert h.hub.leave(a, acquired=False) == []
    assert signalled(c)
    assert h.hub.leave(c, acquired=False) == [("lock-signal:x", "lock:x", 1000, None)], (
        "the BLPOP on x pops the given-back signal, which ends it: no nudge as well"
    )


def test_a_failed_blpop_wakes_the_sleeping_waiters_with_its_error_and_restarts_on_demand() -> None:
    h = Harness()
    a, b = h.enlist("x"), h.enlist("x")
    h.hub.ready(a)
    h.hub.ready(b)
    h.hub.plan(0.0)
    h.hub.deliver(pop("x"))
    error = ConnectionError("gone")
    h.hub.fail(error)
    assert h.hub.take(a) is True, "a holds a signal: the error is not its"
    with pytest.raises(ConnectionError):
        h.hub.take(b)
    assert h.hub.take(b) is False, "the error is raised once"
    assert h.hub.ready(b) is None
    assert h.starts == 2, "the next wait starts the loop again"


def test_a_cancelled_loop_wakes_the_waiters_without_an_error() -> None:
    h = Harness()
    a = h.enlist("x")
    h.hub.ready(a)
    h.hub.fail(None)
    assert signalled(a) is False
    assert h.hub.take(a) is False


def test_the_loop_lingers_without_a_connection_then_ends() -> None:
    h = Harness()
    a = h.enlist("x")
    h.hub.ready(a)
    h.hub.plan(0.0)
    h.hub.leave(a, acquired=False)
    assert h.hub.plan(1.0) == 1.0 + LINGER
    assert h.hub.plan(1.5) == 1.0 + LINGER
    assert h.hub.plan(1.0 + LINGER) is None
    assert h.forgotten == 1
    assert h.hub.ended


def test_a_waiter_arriving_while_the_loop_lingers_keeps_it() -> None:
    h = Harness()
    a = h.enlist("x")
    h.hub.ready(a)
    h.hub.leave(a, acquired=False)
    assert h.hub.plan(0.0) == LINGER
    b = h.enlist("y")
    assert h.hub.ready(b) is None
    assert h.hub.plan(LINGER + 1) == (CONTROL, "lock-signal:y")
    assert h.forgotten == 0


def test_ending_loses_the_race_to_a_new_waiter() -> None:
    Harness()
    forget_calls: list[bool] = []

    def forget(hub: Hub) -> bool:
        # A waiter arrives between the plan's decision and the registry's mutex.
        late = hub.enlist("lock-signal:late", "lock:late", 1000)
        hub.ready(late)
        ended = hub.end_if_idle()
        forget_calls.append(ended)
        return ended

    hub = Hub(object(), CONTROL, CHUNK, Recorded, lambda _: None, forget, linger=LINGER)
    assert hub.plan(0.0) == LINGER
    assert hub.plan(LINGER) == LINGER, "not ended: plan again at once"
    assert forget_calls == [False]
    assert not hub.ended


def test_control_keys_carry_the_hash_tag_on_a_cluster() -> None:
    slot, tag = _waiting._tag(True, "lock-signal:{a\\x7db}")
    assert tag == "{a\\x7db}:"
    from redis_lock import _keys

    assert slot == _keys.key_slot("lock-signal:{a\\x7db}") == _keys.key_slot(f"{CONTROL}{tag}abc:1")
    assert _waiting._tag(False, "lock-signal:x") == (-1, "")


# ---------------------------------------------------------------------------
# No lost wake-up: a state machine over random schedules.


class HubMachine(RuleBasedStateMachine):
    """Random arrivals, waits, pops, timeouts, cancellations and failures on two locks.

    Every signal popped from "Redis" is accounted for: used by a waiter (``take``
    returned True), dropped by a waiter that took the lock, given back, or still
    held by a waiter. FIFO: a pop goes to the earliest arrival without a signal.
    """

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.active: list[Entry] = []  # in arrival order
        self.popped = self.used = self.dropped = self.given_back = 0
        self.now = 0.0

    @rule(name=st.sampled_from(["a", "b"]))
    def arrive(self, name: str) -> None:
        entry = self.h.enlist(name)
        self.active.append(entry)
        self.h.hub.ready(entry)

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def wake_up_and_retry(self, data: st.DataObject) -> None:
        """A waiter's wait ends (signal or time); its attempt fails; it waits again."""
        entry = data.draw(st.sampled_from(self.active))
        if self._take(entry):
            self.used += 1
        self.h.hub.ready(entry)

    def _take(self, entry: Entry) -> bool:
        """``take``: a signal wins over the failed BLPOP's error, which is raised otherwise."""
        if entry.error is None or entry.signalled:
            return self.h.hub.take(entry)
        with pytest.raises(ConnectionError):
            self.h.hub.take(entry)
        return False

    @precondition(lambda self: self.active)
    @rule(data=st.data(), acquired=st.booleans(), used_first=st.booleans())
    def leave(self, data: st.DataObject, acquired: bool, used_first: bool) -> None:
        """A waiter ends: it took the lock, timed out, or was cancelled (maybe before using its signal)."""
        entry = data.draw(st.sampled_from(self.active))
        if used_first and self._take(entry):
            self.used += 1
        held = entry.signalled
        wakes = self.h.hub.leave(entry, acquired=acquired)
        self.active.remove(entry)
        if held and acquired:
            self.dropped += 1
        self.given_back += sum(1 for w in wakes if w[0] != CONTROL)

    @rule(name=st.sampled_from(["a", "b"]))
    def pop(self, name: str) -> None:
        """The loop (if running) plans and its BLPOP pops a signal of ``name`` (if it blocked on it)."""
        if not self.h.hub.running:
            return
        plan = self.h.hub.plan(self.now)
        if not isinstance(plan, tuple) or f"lock-signal:{name}" not in plan:
            return
        first = next((e for e in self.active if e.key.endswith(":" + name) and not e.signalled), None)
        self.popped += 1
        back = self.h.hub.deliver(pop(name))
        if first is None:
            assert back is not None
            self.given_back += 1
        else:
            assert back is None
            assert first.signalled, "FIFO: the earliest arrival without a signal"

    @rule()
    def blpop_fails(self) -> None:
        self.h.hub.fail(ConnectionError("dropped"))

    @invariant()
    def no_signal_is_lost(self) -> None:
        held = sum(1 for e in self.active if e.signalled)
        assert self.popped == self.used + self.dropped + self.given_back + held

    @invariant()
    def the_blpop_covers_every_sleeping_waiter_without_a_signal(self) -> None:
        hub = self.h.hub
        if not hub.in_blpop:
            return
        for entry in self.active:
            if entry.waiting and not entry.signalled and entry.key not in hub.blocked:
                assert hub.nudged, "a waiter the BLPOP does not cover must have nudged it"


TestHubMachine = HubMachine.TestCase
#: The loaded profile (``ci`` unless ``HYPOTHESIS_PROFILE`` says otherwise), with 4x the examples: no I/O here.
TestHubMachine.settings = settings(settings(), max_examples=settings().max_examples * 4)


def test_a_task_hub_ends_as_soon_as_nobody_waits() -> None:
    """Without a linger (asyncio hubs), the loop ends at its first plan with nobody waiting."""
    ended: list[Hub] = []

    def forget(hub: Hub) -> bool:
        ended.append(hub)
        return hub.end_if_idle()

    hub = Hub(object(), CONTROL, CHUNK, Recorded, lambda _: None, forget)
    a = hub.enlist("lock-signal:x", "lock:x", 1000)
    hub.ready(a)
    hub.leave(a, acquired=False)
    assert hub.plan(5.0) is None
    assert ended == [hub]


# ---------------------------------------------------------------------------
# A lone thread blocks in Redis itself (Hub.lead).


def leading() -> Harness:
    h = Harness()
    h.hub.may_lead = True
    return h


def test_a_lone_waiter_leads_with_its_own_key_and_a_tick_short_timeout() -> None:
    h = leading()
    a = h.enlist("x")
    assert h.hub.lead(a, until=10.0 + 0.8, now=10.0) == ((CONTROL, "lock-signal:x"), 0.7)
    assert h.starts == 0, "no loop: the waiter blocks itself"
    assert h.hub.in_blpop
    assert h.hub.plan(10.1) == 10.1 + CHUNK, "the loop, if any, stays idle while a waiter leads"
    assert h.hub.in_blpop, "and leaves the leader's BLPOP alone"


def test_a_chunk_long_lead_is_capped_by_the_socket_safe_blpop() -> None:
    h = leading()
    a = h.enlist("x")
    assert h.hub.lead(a, until=100.0, now=0.0) == ((CONTROL, "lock-signal:x"), 2.4)


def test_a_short_lone_wait_sleeps_without_any_blpop() -> None:
    h = leading()
    a = h.enlist("x")
    assert h.hub.lead(a, until=0.05, now=0.0) is True
    assert not h.hub.in_blpop
    assert h.starts == 0
    assert a.waiting


def test_no_lead_beside_another_sleeper_nor_for_tasks() -> None:
    h = leading()
    a, b = h.enlist("x"), h.enlist("x")
    assert h.hub.ready(a) is None
    assert h.hub.lead(b, until=5.0, now=0.0) is False
    tasks = Harness()
    c = tasks.enlist("x")
    assert tasks.hub.lead(c, until=5.0, now=0.0) is False, "hubs of tasks never let a waiter lead"


def test_waiters_arriving_during_a_lead_are_covered_or_nudge() -> None:
    h = leading()
    a, b, c = h.enlist("x"), h.enlist("x"), h.enlist("y")
    assert isinstance(h.hub.lead(a, until=5.0, now=0.0), tuple), "a leads"
    assert h.hub.ready(b) is None, "the leader's BLPOP covers x"
    assert h.hub.ready(c) == (CONTROL, None, CONTROL_EXPIRE_MS, None), "y is not covered: nudge the leader"
    assert h.starts == 0


def test_the_leaders_pop_goes_first_in_line_and_the_loop_takes_over() -> None:
    h = leading()
    a, b = h.enlist("x"), h.enlist("x")
    h.hub.lead(a, until=5.0, now=0.0)
    h.hub.ready(b)
    assert h.hub.led(a, pop("x")) is None
    assert signalled(a)
    assert not b.signalled
    assert h.starts == 1, "b still sleeps: the loop starts to block for it"
    assert not h.hub.in_blpop


def test_a_leader_whose_pop_went_to_an_earlier_waiter_is_covered_by_the_loop() -> None:
    """b arrived first but was trying the lock when a led: the pop is b's, and a sleeps on under the loop's BLPOP."""
    h = leading()
    b, a = h.enlist("x"), h.enlist("x")
    h.hub.lead(a, until=5.0, now=0.0)
    assert h.hub.led(a, pop("x")) is None
    assert b.signalled
    assert not a.signalled
    assert h.starts == 1, "a still sleeps: without the loop no BLPOP would cover x until its re-check"
    assert h.hub.plan(0.0) == (CONTROL, "lock-signal:x")


def test_a_leader_woken_by_a_nudge_for_a_waiter_that_left_is_covered_by_the_loop() -> None:
    h = leading()
    a, c = h.enlist("x"), h.enlist("y")
    h.hub.lead(a, until=5.0, now=0.0)
    assert h.hub.ready(c) == (CONTROL, None, CONTROL_EXPIRE_MS, None)
    h.hub.leave(c, acquired=False)
    assert h.hub.led(a, [CONTROL.encode(), b"1"]) is None
    assert h.starts == 1


def test_a_leader_whose_blpop_timed_out_needs_no_loop() -> None:
    h = leading()
    a = h.enlist("x")
    h.hub.lead(a, until=5.0, now=0.0)
    assert h.hub.led(a, None) is None
    assert h.starts == 0, "its own timer is about to end the wait"


def test_a_leader_popping_for_nobody_gives_the_signal_back() -> None:
    h = leading()
    a = h.hub.enlist("lock-signal:x", "lock:x", 321)
    h.hub.lead(a, until=5.0, now=0.0)
    h.hub.leave(a, acquired=False)  # (as after a failed BLPOP: led first, in the steps)
    h2 = leading()
    b = h2.hub.enlist("lock-signal:x", "lock:x", 321)
    h2.hub.lead(b, until=5.0, now=0.0)
    b.signalled = True  # it holds a signal already (handed earlier): the pop is for nobody else
    assert h2.hub.led(b, pop("x")) == ("lock-signal:x", "lock:x", 321, None)
    assert h2.starts == 0, "nobody else sleeps: no loop"


def test_a_leader_whose_blpop_failed_ends_its_lead() -> None:
    h = leading()
    a, b = h.enlist("x"), h.enlist("y")
    h.hub.lead(a, until=5.0, now=0.0)
    h.hub.ready(b)
    assert h.hub.led(a, None) is None
    assert not h.hub.in_blpop
    assert h.hub.leader is None
    assert h.starts == 1


def test_a_list_without_a_lock_key_gets_its_popped_element_back_and_the_waiter_sees_it() -> None:
    """A semaphore's signal list: the element reaches the waiter, and goes back as it was."""
    h = Harness()
    a = h.hub.enlist("sem-signal:x", None, 500)
    h.hub.ready(a)
    assert h.hub.plan(0.0) == (CONTROL, "sem-signal:x")
    assert h.hub.deliver([b"sem-signal:x", b"7"]) is None
    assert signalled(a)
    assert a.value == b"7"
    assert h.hub.leave(a, acquired=False) == [("sem-signal:x", None, 500, b"7")], (
        "left unused: pushed back unconditionally, with the element it carried"
    )
    h.hub.plan(0.0)
    assert h.hub.deliver([b"sem-signal:x", b"8"]) == ("sem-signal:x", None, DEFAULT_SIGNAL_EXPIRE_MS, b"8"), (
        "popped after its waiter left: back as it was"
    )
    assert h.hub.deliver([b"lock-signal:y", b"1"]) == (
        "lock-signal:y",
        "lock:y",
        DEFAULT_SIGNAL_EXPIRE_MS,
        None,
    )


def test_a_fair_waiters_wake_list_is_never_given_back() -> None:
    """A hand-off counts as taken once its list is empty: pushed back, it would look untaken and be voided."""
    h = Harness()
    a = h.hub.enlist("lock-wake:x:t1", None, 500)
    h.hub.ready(a)
    assert h.hub.plan(0.0) == (CONTROL, "lock-wake:x:t1")
    assert h.hub.deliver([b"lock-wake:x:t1", b"h42"]) is None
    assert signalled(a)
    assert a.value == b"h42"
    assert h.hub.leave(a, acquired=False) == []
    h.hub.plan(0.0)
    assert h.hub.deliver([b"lock-wake:x:t1", b"r"]) is None
