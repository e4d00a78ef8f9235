"""The hooks for long jobs, for ``Lock`` and ``AsyncLock`` alike: ``on_lost``, ``max_hold``,
``renewal_interval`` and the observer (``redis_lock.hooks``), against a real Redis.

Written once, through the behaviour suite's :class:`~tests.test_behaviour.Flavour`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest
import redis

import redis_lock
from redis_lock import _core, hooks
from redis_lock.hooks import BaseObserver

from ._topology import wait_for
from .test_behaviour import Flavour, flavour  # noqa: F401 (the flavour fixture: Lock and AsyncLock)


class Recorder(BaseObserver):
    """An observer that records every event, thread-safely, with a wake-up per kind."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._mutex = threading.Lock()
        self.seen: dict[str, threading.Event] = {
            kind: threading.Event()
            for kind in ("wait_started", "acquired", "gave_up", "released", "renewed", "lost")
        }

    def _add(self, *event: Any) -> None:
        with self._mutex:
            self.events.append(event)
        self.seen[event[0]].set()

    def kinds(self) -> list[str]:
        with self._mutex:
            return [e[0] for e in self.events]

    def count(self, kind: str) -> int:
        return self.kinds().count(kind)

    def wait_started(self, name: str) -> None:
        self._add("wait_started", name)

    def acquired(self, name: str, waited: float) -> None:
        self._add("acquired", name, waited)

    def gave_up(self, name: str, waited: float) -> None:
        self._add("gave_up", name, waited)

    def released(self, name: str, held: float) -> None:
        self._add("released", name, held)

    def renewed(self, name: str) -> None:
        self._add("renewed", name)

    def lost(self, name: str) -> None:
        self._add("lost", name)


def unique() -> str:
    return f"hooks-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _client(request: pytest.FixtureRequest) -> None:
    """Give the flavour under test a redis-py client of its kind (the behaviour suite's ``env`` does so per kind)."""
    chosen: Flavour = request.getfixturevalue("flavour")
    chosen.client = chosen.make()


def test_on_lost_is_called_once_when_another_client_takes_the_lock(
    flavour: Flavour,  # noqa: F811
    plain: redis.Redis,
) -> None:
    """Renewal finds the key taken over: on_lost(lock) runs once, from the renewal scheduler; lost and LockLost follow."""
    name = unique()
    called: list[Any] = []
    done = threading.Event()

    def on_lost(lock: Any) -> None:
        called.append((lock, threading.current_thread().name))
        done.set()

    recorder = Recorder()
    lock = flavour.lock(name, expire=0.3, auto_renewal=True, on_lost=on_lost, observer=recorder)
    assert flavour.run(lock.acquire)
    plain.set(f"lock:{name}", "intruder", px=60_000)
    assert done.wait(5), "on_lost was not called"
    assert lock.lost
    # Renewal has stopped: nothing more is reported however long we wait for a renewal's due time.
    time.sleep(0.5)
    assert len(called) == 1
    assert called[0][0] is lock
    assert recorder.count("lost") == 1
    with pytest.raises(redis_lock.LockLost):
        flavour.run(lock.release)
    assert plain.get(f"lock:{name}") == b"intruder", "the intruder's lock is untouched"


def test_max_hold_stops_renewal_and_the_key_expires_then(flavour: Flavour, plain: redis.Redis) -> None:  # noqa: F811
    """With max_hold=0.8 and expire=0.3, renewal keeps the key until about 0.8 s, then it expires: a loss."""
    name = unique()
    lost = threading.Event()
    recorder = Recorder()
    lock = flavour.lock(
        name, expire=0.3, auto_renewal=True, max_hold=0.8, on_lost=lambda _: lost.set(), observer=recorder
    )
    started = time.monotonic()
    assert flavour.run(lock.acquire)
    wait_for(lambda: recorder.count("renewed") >= 2, timeout=5, what="two renewals")
    assert plain.exists(f"lock:{name}"), "renewed past its first expire"
    assert time.monotonic() - started > 0.3
    wait_for(lambda: not plain.exists(f"lock:{name}"), timeout=5, what="the key to expire")
    ended = time.monotonic() - started
    assert 0.6 <= ended <= 0.8 + 0.3 + 0.2, ended  # at max_hold, not an expire later (generous bounds)
    assert lost.wait(5)
    assert lock.lost
    with pytest.raises(redis_lock.LockLost) as info:
        flavour.run(lock.release)
    assert isinstance(info.value.__cause__, _core.MaxHoldReached)


def test_renewal_interval_sets_the_pace(flavour: Flavour, plain: redis.Redis) -> None:  # noqa: F811
    """renewal_interval=0.05 renews many times within 0.5 s; the default (expire * 2/3 = 1.33 s) not once."""
    fast, slow = Recorder(), Recorder()
    quick = flavour.lock(unique(), expire=2, auto_renewal=True, renewal_interval=0.05, observer=fast)
    default = flavour.lock(unique(), expire=2, auto_renewal=True, observer=slow)
    assert flavour.run(default.acquire)
    started = time.monotonic()
    assert flavour.run(quick.acquire)
    wait_for(lambda: fast.count("renewed") >= 4, timeout=5, what="four quick renewals")
    # Normally within 0.3 s, so the default renews not once; a loaded machine may take longer.
    assert slow.count("renewed") <= int((time.monotonic() - started) / (2 * 2 / 3))
    flavour.run(quick.release)
    flavour.run(default.release)
    assert fast.kinds()[-1] == "released"


def test_the_observer_hears_a_contended_acquisition_and_its_release(flavour: Flavour) -> None:  # noqa: F811
    """wait_started, then acquired with the time waited, then released with the time held; never an id."""
    name = unique()
    recorder = Recorder()
    holder = flavour.lock(name)
    waiter = flavour.lock(name, observer=recorder)
    assert flavour.run(holder.acquire)
    pending = flavour.submit(waiter.acquire, timeout=10)
    assert recorder.seen["wait_started"].wait(5)
    time.sleep(0.05)  # a measurable wait (not synchronisation: the event above is)
    flavour.run(holder.release)
    assert pending.result(10) is True
    flavour.run(waiter.release)
    assert recorder.kinds() == ["wait_started", "acquired", "released"]
    _, acquired_name, waited = recorder.events[1]
    assert acquired_name == name
    assert 0.05 <= waited < 5
    assert recorder.events[2][2] >= 0
    assert all(waiter.id not in map(str, event) for event in recorder.events)


def test_the_observer_hears_giving_up(flavour: Flavour) -> None:  # noqa: F811
    """A timeout that passes: wait_started then gave_up after about the timeout; blocking=False: gave_up alone."""
    name = unique()
    recorder = Recorder()
    holder = flavour.lock(name)
    assert flavour.run(holder.acquire)
    waiter = flavour.lock(name, observer=recorder)
    assert flavour.run(waiter.acquire, timeout=0.1) is False
    assert recorder.kinds() == ["wait_started", "gave_up"]
    assert 0.1 <= recorder.events[1][2] < 2
    assert flavour.run(waiter.acquire, blocking=False) is False
    assert recorder.kinds() == ["wait_started", "gave_up", "gave_up"]
    flavour.run(holder.release)


class Broken(BaseObserver):
    def __getattribute__(self, name: str) -> Any:
        if name in hooks.OBSERVER_METHODS:

            def fail(*args: object) -> None:
                raise RuntimeError(f"observer broke in {name}")

            return fail
        return super().__getattribute__(name)


def test_a_failing_observer_never_breaks_the_lock(
    flavour: Flavour,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every observer method raises: acquire, renewal, waiting and release still work; the errors are logged."""
    name = unique()
    caplog.set_level(logging.WARNING, logger="redis_lock.observer")
    lock = flavour.lock(name, expire=1, auto_renewal=True, renewal_interval=0.05, observer=Broken())
    other = flavour.lock(name, observer=Broken())
    assert flavour.run(lock.acquire)
    assert flavour.run(other.acquire, timeout=0.1) is False
    wait_for(lambda: "renewed" in caplog.text, timeout=5, what="a renewal's observer error logged")
    flavour.run(lock.release)
    assert not lock.lost
    assert "observer broke in acquired" in caplog.text
    assert "observer broke in gave_up" in caplog.text
