"""Fair mode's decisions (``_core``), server-free: every branch, with a plain float clock and no sleeping.

``fair_op`` picks the script's op, ``parse_fair_reply`` reads fair.lua's reply,
``next_fair_step`` decides what follows it, ``handed_over`` reads a popped wake-list
element, and ``validate_queue_lease`` / ``queue_refresh`` settle the lease a waiter
holds and how often it refreshes it. The Hypothesis example count follows
``HYPOTHESIS_PROFILE``, through the profiles of ``tests/property/conftest.py``.
"""

from __future__ import annotations

import importlib
import math
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_lock import _core
from redis_lock._exceptions import AlreadyAcquired, InvalidArgument, InvalidArgumentType, RedisLockError

#: The loaded profile (``ci`` unless ``HYPOTHESIS_PROFILE`` says otherwise), applied to every property below.
# tests/property/conftest.py registers the profiles and loads the one HYPOTHESIS_PROFILE names.
importlib.import_module("tests.property.conftest")
PROFILE: Final = settings()

NOW: Final = 1000.0
REFRESH: Final = 0.5
CHUNK: Final = 2.0


def request(
    *, blocking: bool = True, timeout: float | None = None, owned: bool = False, fencing: bool = False
) -> _core.AcquireRequest:
    """A validated acquire() call started at ``NOW``, as ``LockCore`` builds it (expire 10 s)."""
    return _core.prepare_acquire(
        blocking=blocking,
        timeout=timeout,
        expire=10.0,
        renewal=None,
        lock_key="lock:n",
        signal_key="lock-signal:n",
        lock_id="id-1",
        now=NOW,
        owned_is_ours=owned,
        fence_key="lock-fence:n" if fencing else None,
        fence_ttl_ms=60_000 if fencing else 0,
    )


def busy(position: int = 1, hint_ms: int = -1, pttl_ms: int = 5000) -> _core.FairReply:
    return _core.FairReply(_core.BUSY, pttl_ms, position, hint_ms)


def step(reply: _core.FairReply, req: _core.AcquireRequest, now: float = NOW) -> bool | _core.WaitPlan:
    return _core.next_fair_step(reply, req, now=now, refresh=REFRESH, chunk=CHUNK)


# -- fair_op ------------------------------------------------------------------------


def test_fair_op_queues_a_blocking_call_without_deadline() -> None:
    assert _core.fair_op(request(), NOW + 1e6) == _core.FAIR_ACQUIRE


def test_fair_op_gives_up_for_a_non_blocking_call() -> None:
    """A non-blocking acquire takes the lock or leaves, in one step: it never queues."""
    assert _core.fair_op(request(blocking=False), NOW) == _core.FAIR_GIVE_UP


@pytest.mark.parametrize(
    ("now", "op"),
    [
        (NOW, _core.FAIR_ACQUIRE),
        (NOW + 0.999, _core.FAIR_ACQUIRE),
        (NOW + 1.0, _core.FAIR_GIVE_UP),  # at the deadline: the last try gives up unless granted
        (NOW + 5.0, _core.FAIR_GIVE_UP),
    ],
)
def test_fair_op_gives_up_from_the_deadline_on(now: float, op: str) -> None:
    assert _core.fair_op(request(timeout=1.0), now) == op


def test_fair_ops_are_the_scripts_letters() -> None:
    assert (_core.FAIR_ACQUIRE, _core.FAIR_GIVE_UP, _core.FAIR_CANCEL, _core.FAIR_RELEASE) == (
        "a",
        "g",
        "c",
        "r",
    )


# -- fair_args and fair_release_args ----------------------------------------------------------


def test_fair_args_follow_the_scripts_header() -> None:
    """ARGV: op, id, token, wake prefix, signal expire, expire, "owned is ours", queue lease, fence ttl or "-"."""
    args = _core.fair_args("a", request(), "tok", "lock-wake:n:", 1000, 2000)
    assert args == ("a", "id-1", "tok", "lock-wake:n:", "1000", "10000", "0", "2000", "-")
    fenced = _core.fair_args("g", request(owned=True, fencing=True), "tok", "lock-wake:n:", 1000, 2000)
    assert fenced == ("g", "id-1", "tok", "lock-wake:n:", "1000", "10000", "1", "2000", "60000")


def test_fair_release_args_draw_a_fresh_nonce_per_call() -> None:
    first = _core.fair_release_args("id-1", "lock-wake:n:", 1000, 5000)
    second = _core.fair_release_args("id-1", "lock-wake:n:", 1000, 5000)
    assert first[:5] == ("r", "id-1", "", "lock-wake:n:", "1000")
    assert first[6] == "5000"
    assert first[5] != second[5]


# -- parse_fair_reply -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([0, 0], _core.FairReply(_core.ACQUIRED, 0)),
        ((0, 0), _core.FairReply(_core.ACQUIRED, 0)),  # a tuple, as some clients give arrays
        ([0, 0, 17], _core.FairReply(_core.ACQUIRED, 0, token=17)),
        ([2, -1], _core.FairReply(_core.OWNED, -1)),
        ([2, 4000, 9], _core.FairReply(_core.OWNED, 4000, token=9)),
        ([1, 4000, 1, 4000], _core.FairReply(_core.BUSY, 4000, 1, 4000)),
        ([1, -1, 3, -1], _core.FairReply(_core.BUSY, -1, 3, -1)),
        ([1, 4000, 0, -1], _core.FairReply(_core.BUSY, 4000, 0, -1)),  # "g": gave up
    ],
)
def test_parse_fair_reply_reads_each_shape(reply: object, expected: _core.FairReply) -> None:
    assert _core.parse_fair_reply(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        None,
        0,
        b"OK",
        [],
        [0],
        [1, 4000],  # busy without a position and a hint
        [1, 4000, 1],
        [0, 0, 1, 2],  # a grant with a position
        [2, -1, 5, 6],
        [3, 0],  # no such code
        [-1, 0],
        [0, 0, 0],  # a fencing token is positive
        [0, 0, -5],
        [2, -1, 0],
        [0, 0, 1, 2, 3],
        [True, 0],  # a bool is not an integer reply
        [0, False],
        [1, 4000, 1, True],
        [b"0", b"0"],  # nor bytes or str
        ["1", "4000", "1", "4000"],
        [0, 0.0],
        [[0], 0],
    ],
)
def test_parse_fair_reply_refuses_anything_else(reply: object) -> None:
    with pytest.raises(RedisLockError, match="fair script"):
        _core.parse_fair_reply(reply)


@given(
    code=st.sampled_from([_core.ACQUIRED, _core.OWNED]),
    pttl=st.integers(-2, 10**9),
    token=st.none() | st.integers(1, 2**62),
)
@PROFILE
def test_parse_fair_reply_round_trips_a_grant(code: int, pttl: int, token: int | None) -> None:
    reply = [code, pttl] if token is None else [code, pttl, token]
    parsed = _core.parse_fair_reply(reply)
    assert (parsed.code, parsed.pttl_ms, parsed.token, parsed.position, parsed.hint_ms) == (
        code,
        pttl,
        token,
        0,
        -1,
    )


# -- fair_taken and next_fair_step --------------------------------------------------------


def test_a_grant_is_taken() -> None:
    granted = _core.FairReply(_core.ACQUIRED, 0, token=5)
    assert _core.fair_taken(granted, request())
    assert step(granted, request()) is True
    # Whatever the clock says: a grant past the deadline is still the caller's.
    assert step(granted, request(timeout=1.0), now=NOW + 50) is True


def test_owned_is_taken_only_when_the_id_is_this_calls() -> None:
    owned = _core.FairReply(_core.OWNED, 4000)
    assert _core.fair_taken(owned, request(owned=True))
    assert step(owned, request(owned=True)) is True
    assert not _core.fair_taken(owned, request())
    with pytest.raises(AlreadyAcquired):
        step(owned, request())


def test_position_zero_gives_up() -> None:
    """The script's "g" left the queue: the call returns False, whatever its deadline."""
    assert not _core.fair_taken(busy(0), request())
    assert step(busy(0), request(blocking=False)) is False
    assert step(busy(0), request()) is False
    assert step(busy(0), request(timeout=1.0), now=NOW + 2) is False


def test_a_queued_call_waits_until_its_refresh() -> None:
    """No deadline, no hint: sleep until the refresh (shorter than the chunk here)."""
    assert step(busy(3), request()) == _core.WaitPlan(until=NOW + REFRESH)


def test_a_queued_call_waits_at_most_a_chunk() -> None:
    plan = _core.next_fair_step(busy(3), request(), now=NOW, refresh=5.0, chunk=CHUNK)
    assert plan == _core.WaitPlan(until=NOW + CHUNK)


def test_the_deadline_cuts_the_wait_short() -> None:
    assert step(busy(1), request(timeout=0.2)) == _core.WaitPlan(until=NOW + 0.2)
    # The reply came after the deadline (a slow round trip): no wait, the next try gives up unless granted.
    late = step(busy(1), request(timeout=0.2), now=NOW + 0.3)
    assert late == _core.WaitPlan(until=NOW + 0.3)
    assert _core.fair_op(request(timeout=0.2), NOW + 0.3) == _core.FAIR_GIVE_UP


@pytest.mark.parametrize(
    ("hint_ms", "until"),
    [
        (0, NOW + 0.001),  # one millisecond after the hint: the key or the hand-off has surely run out
        (99, NOW + 0.1),
        (499, NOW + 0.5),
        (10_000, NOW + REFRESH),  # a hint beyond the refresh changes nothing
        (-1, NOW + REFRESH),  # no hint
    ],
)
def test_the_scripts_hint_cuts_the_wait_short(hint_ms: int, until: float) -> None:
    plan = step(busy(1, hint_ms=hint_ms), request())
    assert isinstance(plan, _core.WaitPlan)
    assert math.isclose(plan.until, until, abs_tol=1e-9)


def test_the_hint_and_the_deadline_the_earlier_wins() -> None:
    plan = step(busy(1, hint_ms=50), request(timeout=0.02))
    assert plan == _core.WaitPlan(until=NOW + 0.02)
    plan = step(busy(2, hint_ms=5), request(timeout=0.3))
    assert isinstance(plan, _core.WaitPlan)
    assert math.isclose(plan.until, NOW + 0.006)


def test_the_holders_pttl_alone_does_not_shorten_the_wait() -> None:
    """Only the script's hint does: a waiter not next in line sleeps through the holder's key expiring."""
    assert step(busy(3, pttl_ms=1, hint_ms=-1), request()) == _core.WaitPlan(until=NOW + REFRESH)


@given(
    now=st.floats(0.0, 1e7),
    refresh=st.floats(0.001, 100.0),
    chunk=st.floats(0.001, 100.0),
    timeout=st.none() | st.floats(0.0, 100.0),
    started=st.floats(-100.0, 0.0),
    position=st.integers(1, 50),
    hint=st.integers(-1, 10**6),
)
@PROFILE
def test_a_waits_bounds(
    now: float,
    refresh: float,
    chunk: float,
    timeout: float | None,
    started: float,
    position: int,
    hint: int,
) -> None:
    """A wait never ends before now, nor after the refresh, the chunk, the deadline (if still ahead) or the hint."""
    req = _core.prepare_acquire(
        blocking=True,
        timeout=timeout,
        expire=None,
        renewal=None,
        lock_key="lock:n",
        signal_key="lock-signal:n",
        lock_id="id-1",
        now=now + started,
    )
    plan = _core.next_fair_step(busy(position, hint_ms=hint), req, now=now, refresh=refresh, chunk=chunk)
    assert isinstance(plan, _core.WaitPlan)
    slack = 1e-9 + 8 * math.ulp(max(now, 1.0))
    assert plan.until >= now
    assert plan.until <= now + min(refresh, chunk) + slack
    if req.deadline is not None:
        assert plan.until <= max(now, req.deadline) + slack
    if hint >= 0:
        assert plan.until <= now + (hint + 1) / 1000 + slack


# -- handed_over ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"h", (True, None)),
        ("h", (True, None)),  # a decode_responses client
        (b"h1796087033013276", (True, 1796087033013276)),
        ("h42", (True, 42)),
        (b"h-1", (True, None)),  # not a token: handed, without one
        (b"hx", (True, None)),
        (b"r", (False, None)),  # a reset: queue again
        ("r", (False, None)),
        (b"", (False, None)),
        (b"1", (False, None)),  # the non-fair signal's element
        (None, (False, None)),  # nothing popped
        (7, (False, None)),
        (b"H", (False, None)),
    ],
)
def test_handed_over_reads_a_wake_list_element(value: object, expected: tuple[bool, int | None]) -> None:
    assert _core.handed_over(value) == expected


@given(st.integers(1, 2**63))
@PROFILE
def test_handed_over_reads_back_any_token(token: int) -> None:
    assert _core.handed_over(b"h%d" % token) == (True, token)
    assert _core.handed_over(f"h{token}") == (True, token)


# -- validate_queue_lease and queue_refresh --------------------------------------------------


def test_queue_lease_none_is_the_default() -> None:
    assert _core.validate_queue_lease(None, fair=True) == _core.DEFAULT_QUEUE_LEASE == 2.0
    # None is the constructor's default, so a lock that is not fair accepts it too.
    assert _core.validate_queue_lease(None, fair=False) == _core.DEFAULT_QUEUE_LEASE


@pytest.mark.parametrize("lease", [_core.MIN_QUEUE_LEASE, 0.5, 2, 3600.0, _core.MAX_SECONDS])
def test_queue_lease_in_range_is_seconds_as_float(lease: float) -> None:
    value = _core.validate_queue_lease(lease, fair=True)
    assert value == lease
    assert type(value) is float


@pytest.mark.parametrize("lease", ["2", b"2", True, False, [2], object()])
def test_queue_lease_must_be_a_number(lease: object) -> None:
    with pytest.raises(InvalidArgumentType) as info:
        _core.validate_queue_lease(lease, fair=True)
    assert info.value.argument == "queue_lease"


@pytest.mark.parametrize(
    "lease", [0, 0.029, -1, _core.MAX_SECONDS + 1, float("nan"), float("inf"), float("-inf")]
)
def test_queue_lease_out_of_range_is_refused(lease: float) -> None:
    with pytest.raises(InvalidArgument) as info:
        _core.validate_queue_lease(lease, fair=True)
    assert info.value.argument == "queue_lease"
    assert not isinstance(info.value, InvalidArgumentType)


def test_queue_lease_needs_fair() -> None:
    with pytest.raises(InvalidArgument, match="fair=True") as info:
        _core.validate_queue_lease(2.0, fair=False)
    assert info.value.argument == "queue_lease"
    # The type and the range are checked first: the message names the first thing wrong.
    with pytest.raises(InvalidArgumentType):
        _core.validate_queue_lease("2", fair=False)
    with pytest.raises(InvalidArgument, match="between"):
        _core.validate_queue_lease(0, fair=False)


@pytest.mark.parametrize(
    ("lease", "expire", "every"),
    [
        (3.0, None, 1.0),  # a third of the lease: the place lives two thirds of it after a refresh
        (3.0, 0, 1.0),  # expire 0: the lock never expires, as None
        (3.0, 100.0, 1.0),
        (3.0, 4.0, 1.0),  # a quarter of expire is exactly the third of the lease
        (3.0, 2.0, 0.5),  # a short expire: a quarter of it, so a handed lock keeps 3/4 of its expire
        (_core.DEFAULT_QUEUE_LEASE, None, _core.DEFAULT_QUEUE_LEASE / 3),
        (_core.MIN_QUEUE_LEASE, None, 0.01),
    ],
)
def test_queue_refresh(lease: float, expire: float | None, every: float) -> None:
    assert math.isclose(_core.queue_refresh(lease, expire), every)


@given(lease=st.floats(_core.MIN_QUEUE_LEASE, 1e6), expire=st.none() | st.floats(0.001, 1e6))
@PROFILE
def test_queue_refresh_leaves_a_live_place_and_most_of_a_handed_expire(
    lease: float, expire: float | None
) -> None:
    """A waiter refreshes before its place lapses (two thirds of the lease live on), within a quarter of expire."""
    every = _core.queue_refresh(lease, expire)
    assert 0 < every <= lease * (1 - _core.QUEUE_LEASE_HELD) * (1 + 1e-12)
    assert every < lease * _core.QUEUE_LEASE_HELD
    if expire:
        assert every <= expire / 4
