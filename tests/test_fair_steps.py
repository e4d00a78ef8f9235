"""Fair mode's acquire loop (``LockCore._acquire_fair``) on a fake clock, with no server.

The scripted clients, the fake clock and the fake hub come from
``test_engine_steps``: each test queues fair.lua's replies and what the hub's
BLPOP pops while the waiter sleeps (a hand-off "h", a reset's "r", nothing, an
error), then checks the ops the loop sent, when it woke, and what it returned.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
import redis

import redis_lock
from redis_lock._scripts import FAIR
from redis_lock._waiting import Hub

from .test_engine_steps import (
    EPS,
    START,
    FakeClock,
    FakeHub,
    FakeSignal,
    Handle,
    Outcome,
    Waited,
    flavours,
    install_clock,
)

#: What the fake hub's BLPOP pops from the waiter's own wake list while it sleeps.
Pop = tuple[str, bytes]

WAKE_PREFIX: Final = "lock-wake:job:"
#: queue_lease 2 s: a waiter refreshes its place every 2/3 s (expire 10 s allows up to 2.5 s).
REFRESH: Final = 2.0 / 3


class FairHub(FakeHub):
    """The fake hub, which may also pop an element from a fair waiter's own wake list (``("pop", b"h")``)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.steps: list[Outcome | Pop] = []

    def queue(self, *steps: Outcome | Pop) -> None:
        self.steps.extend(steps)

    def play(self, signal: FakeSignal, until: float) -> None:
        if signal.is_set:
            super().play(signal, until)  # handed a signal before it slept: the wait returns at once
            return
        assert self.steps, f"unexpected wait until {until}: nothing queued"
        step = self.steps.pop(0)
        if not isinstance(step, tuple):
            self.outcomes.append(step)
            super().play(signal, until)
            return
        self.waits.append(Waited(self.clock.now, until))
        hub: Hub = self.real
        keys = hub.plan(self.clock.now)
        assert isinstance(keys, tuple), keys
        (wake,) = [key for key in keys if key.startswith(WAKE_PREFIX)]
        assert hub.deliver([wake.encode(), step[1]]) is None  # its waiter took it


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    install_clock(monkeypatch, fake)
    return fake


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> FairHub:
    fake = FairHub(clock)
    monkeypatch.setattr("redis_lock._holdcore.enlist", fake.enlist)
    return fake


def ops(h: Handle) -> list[str]:
    """The fair.lua op of each EVALSHA sent (ARGV[1])."""
    sent = [s.args for s in h.client.sent if s.method == "evalsha"]
    assert all(args[0] == FAIR.sha1 and args[1] == 6 for args in sent)
    return [str(args[2 + 6]) for args in sent]


def busy(pttl: int, position: int, hint: int = -1) -> list[int]:
    return [1, pttl, position, hint]


@flavours
def test_queued_then_handed_the_lock_without_another_request(
    flavour: str, clock: FakeClock, hub: FairHub
) -> None:
    """Queued first in line (hint: the holder's pttl), the waiter is handed the lock: its pop is the grant."""
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", busy(500, 1, 500)))
    hub.queue(("pop", b"h"))
    assert h.acquire() is True
    assert ops(h) == ["a"]
    (wait,) = hub.waits
    assert wait.until == pytest.approx(START + 0.501, abs=EPS), "first in line: woken when the holder expires"
    assert h.lock.fencing_token is None
    lease: Any = h.lock._lease  # pyright: ignore[reportPrivateUsage]
    assert lease.deadline == pytest.approx(START + 10, abs=EPS), "the lease counts from the queueing request"


@flavours
def test_a_hand_off_carries_the_fencing_token(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    h = Handle(flavour, clock, fair=True, fencing=True)
    h.client.queue(("evalsha", busy(800, 3)))
    hub.queue(("pop", b"h1796084634185814"))
    assert h.acquire() is True
    assert h.lock.fencing_token == 1796084634185814
    args = h.client.sent[0].args
    assert args[2 + 6 + 8] == str(7 * 24 * 3600 * 1000), "the fence key's expire goes with the queued call"


@flavours
def test_a_waiter_refreshes_its_place_and_is_granted_by_its_own_script(
    flavour: str, clock: FakeClock, hub: FairHub
) -> None:
    """Not first in line: it sleeps one refresh period, then the same script refreshes it, here granting it."""
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", busy(-1, 3)), ("evalsha", [0, 0]))
    hub.queue("time")
    assert h.acquire() is True
    assert ops(h) == ["a", "a"]
    assert hub.waits[0].until == pytest.approx(START + REFRESH, abs=EPS)
    assert h.client.sent[1].at == pytest.approx(START + REFRESH, abs=EPS)


@flavours
def test_a_short_expire_shortens_the_refresh(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    """With expire 1 s a waiter refreshes every 0.25 s, so a hand-off's lease, counted from it, keeps 3/4 of it."""
    h = Handle(flavour, clock, fair=True, expire=1)
    h.client.queue(("evalsha", busy(-1, 2)), ("evalsha", [0, 0]))
    hub.queue("time")
    assert h.acquire() is True
    assert hub.waits[0].until == pytest.approx(START + 0.25, abs=EPS)


@flavours
def test_at_its_deadline_a_waiter_gives_up_in_one_step(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", busy(-1, 1)), ("evalsha", [1, -1, 0, -1]))
    hub.queue("time")
    assert h.acquire(timeout=0.3) is False
    assert ops(h) == ["a", "g"]
    assert h.client.sent[1].at == pytest.approx(START + 0.3, abs=EPS)


@flavours
def test_a_lock_handed_over_at_the_deadline_is_taken(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    """The timeout race: the give-up op finds the lock handed to this call, and acquire() returns True."""
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", busy(-1, 1)), ("evalsha", [0, 0]))
    hub.queue("time")
    assert h.acquire(timeout=0.3) is True
    assert ops(h) == ["a", "g"]


@flavours
def test_a_reply_past_the_deadline_is_followed_by_a_give_up_at_once(
    flavour: str, clock: FakeClock, hub: FairHub
) -> None:
    """Queued by a reply that arrived after the deadline: no sleep, the give-up op next (it must leave the queue)."""
    h = Handle(flavour, clock, fair=True)

    def late() -> list[int]:
        clock.now += 0.5
        return busy(-1, 1)

    h.client.queue(("evalsha", late), ("evalsha", [1, -1, 0, -1]))
    hub.queue("time")
    assert h.acquire(timeout=0.3) is False
    assert ops(h) == ["a", "g"]
    assert hub.waits[0].until == START + 0.5


@flavours
def test_a_non_blocking_call_never_queues(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", [1, 500, 0, -1]))
    assert h.acquire(blocking=False) is False
    assert ops(h) == ["g"]
    assert hub.waits == []


@flavours
def test_a_reset_wakes_the_waiter_to_queue_again(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", busy(-1, 2)), ("evalsha", busy(-1, 1)), ("evalsha", [0, 0]))
    hub.queue(("pop", b"r"), "time")
    assert h.acquire() is True
    assert ops(h) == ["a", "a", "a"]
    assert h.client.sent[1].at == START, "woken by the reset: it queues again at once"


@flavours
def test_an_interrupted_wait_is_retried(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", busy(-1, 1)), ("evalsha", busy(-1, 1)))
    hub.queue(redis.ConnectionError("dropped"), ("pop", b"h"))
    assert h.acquire() is True
    assert ops(h) == ["a", "a"]


@flavours
def test_a_failed_wait_leaves_the_queue_before_it_propagates(
    flavour: str, clock: FakeClock, hub: FairHub
) -> None:
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", busy(-1, 1)), ("evalsha", 0))
    hub.queue(redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        h.acquire()
    assert ops(h) == ["a", "c"], "the cancel op: leave the queue, hand on a lock handed meanwhile"


@flavours
def test_the_same_id_held_raises_already_acquired(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    h = Handle(flavour, clock, fair=True, id="mine")
    h.client.queue(("evalsha", [2, 5000]), ("evalsha", 0))
    with pytest.raises(redis_lock.AlreadyAcquired):
        h.acquire()
    assert ops(h) == ["a", "c"]


@flavours
def test_a_fair_release_runs_the_release_op(flavour: str, clock: FakeClock, hub: FairHub) -> None:
    h = Handle(flavour, clock, fair=True)
    h.client.queue(("evalsha", [0, 0]), ("evalsha", 0))
    assert h.acquire() is True
    h.call("release")
    assert ops(h) == ["a", "r"]
    args = h.client.sent[1].args
    assert args[2:8] == (
        "lock:job",
        "lock-signal:job",
        "lock-queue:job",
        "lock-queued:job",
        "lock-fence:job",
        "lock-released:job",
    )
    assert args[8 + 1] == h.lock.id
