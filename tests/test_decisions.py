"""Every decision of the engine (``_core`` and ``_keys``), server-free: tables and Hypothesis properties.

Nothing here talks to Redis or sleeps: the decisions are pure functions of their
arguments (the ``monotonic()`` time among them), so each runs in microseconds.
The Hypothesis example count follows ``HYPOTHESIS_PROFILE``, through the profiles
of ``tests/property/conftest.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Final

import pytest
import redis
import valkey
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import tests.property.conftest  # noqa: F401 (registers and loads the HYPOTHESIS_PROFILE profile)
from redis_lock import _clients, _core, _keys
from redis_lock._exceptions import (
    AcquireTimeout,
    AlreadyAcquired,
    InvalidArgument,
    InvalidArgumentType,
    InvalidTimeout,
    LockLost,
    NotAcquired,
    NotExpirable,
    NotReplicated,
    RedisLockError,
    TimeoutNotUsable,
    TimeoutTooLarge,
)

#: The loaded profile (``ci`` unless ``HYPOTHESIS_PROFILE`` says otherwise), applied explicitly to every
#: property below, so they run alike whether or not ``tests/property`` is collected in the same session.
PROFILE: Final = settings()

#: Slack for float arithmetic on ``monotonic()`` times (far below a millisecond).
EPS: Final = 1e-9


def slack(now: float) -> float:
    """A few float steps at ``now``: what rounding may add to a time near it (nanoseconds here)."""
    return EPS + 8 * math.ulp(max(now, 1.0))


NOW: Final = 1000.0

# Monotonic times, chunk lengths, deadlines and holder TTLs as the engine sees them.
nows = st.floats(min_value=0.0, max_value=1e7, allow_nan=False)
chunks = st.one_of(
    st.sampled_from(
        [_core.MAX_WAIT_CHUNK, _core.UNKNOWN_SOCKET_TIMEOUT_CHUNK, 2.5, 0.1, 0.05, _core.MIN_WAIT]
    ),
    st.floats(min_value=_core.MIN_WAIT, max_value=_core.MAX_WAIT_CHUNK),
)
waits = st.one_of(
    st.floats(min_value=1e-6, max_value=0.2),
    st.floats(min_value=1e-6, max_value=20.0),
    st.floats(min_value=1e-6, max_value=1e9),
)
pttls = st.one_of(st.just(-1), st.integers(0, 250), st.integers(0, 20_000), st.integers(0, 10**12))


def request(
    *, blocking: bool = True, deadline: float | None = None, owned_is_ours: bool = False
) -> _core.AcquireRequest:
    """An acquire request for ``lock:job`` as ``prepare_acquire`` builds it."""
    return _core.AcquireRequest(
        blocking=blocking,
        deadline=deadline,
        keys=("lock:job", "lock-signal:job"),
        args=("id-1", "10000", "1" if owned_is_ours else "0"),
        owned_is_ours=owned_is_ours,
    )


# ---------------------------------------------------------------------------
# Wait planning.


@pytest.mark.parametrize(
    ("deadline", "pttl", "chunk", "until"),
    [
        # The chunk bounds the wait.
        (None, -1, 2.0, NOW + 2.0),
        (None, 20_000, 10.0, NOW + 10.0),
        # The holder's expiry (plus one ms) bounds it.
        (None, 800, 2.0, NOW + 0.801),
        # The deadline bounds it.
        (NOW + 0.5, -1, 2.0, NOW + 0.5),
        (NOW + 0.5, 800, 2.0, NOW + 0.5),
        # The earlier of deadline and expiry wins.
        (NOW + 1.0, 300, 2.0, NOW + 0.301),
        # Short waits are kept exactly: the waiter sleeps on a local timer, not in BLPOP.
        (None, 50, 2.0, NOW + 0.051),
        (None, 0, 2.0, NOW + 0.001),
        (NOW + 0.0005, -1, 2.0, NOW + 0.0005),
        (None, -1, 0.05, NOW + 0.05),
    ],
)
def test_plan_wait_table(deadline: float | None, pttl: int, chunk: float, until: float) -> None:
    """plan_wait ends the wait at the earliest of the chunk, the deadline and the holder's expiry + 1 ms."""
    assert _core.plan_wait(NOW, deadline, pttl, chunk).until == pytest.approx(until, abs=EPS)


@settings(PROFILE)
@given(now=nows, wait=st.one_of(st.none(), waits), pttl=pttls, chunk=chunks)
@example(now=NOW, wait=None, pttl=99, chunk=10.0)
@example(now=NOW, wait=0.101, pttl=-1, chunk=10.0)
def test_plan_wait_properties(now: float, wait: float | None, pttl: int, chunk: float) -> None:
    """A wait ends after now, and never past the chunk, the deadline or the holder's expiry + 1 ms."""
    deadline = None if wait is None else now + wait
    assume(deadline is None or deadline > now)
    limits = [now + chunk]
    if deadline is not None:
        limits.append(deadline)
    if pttl >= 0:
        limits.append(now + (pttl + 1) / 1000)
    assert _core.plan_wait(now, deadline, pttl, chunk).until == min(limits)


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (_core.MAX_WAIT_CHUNK, 9.9),
        (2.5, 2.4),
        (1.0, 0.9),
        (0.7010000000000001 + 0.1, 0.701),
        (0.101, 0.001),
        (0.1005, None),
        (0.05, None),
        (_core.MIN_WAIT, None),
    ],
)
def test_blpop_timeout_table(chunk: float, expected: float | None) -> None:
    """The hub's BLPOP asks for one timer tick less than the chunk, in whole ms; None when under 1 ms."""
    assert _core.blpop_timeout(chunk) == expected


@pytest.mark.parametrize(
    ("socket_timeout", "expected"),
    [
        (None, _core.MAX_WAIT_CHUNK),
        (math.inf, _core.MAX_WAIT_CHUNK),
        (5, 2.5),
        (5.0, 2.5),
        (100.0, _core.MAX_WAIT_CHUNK),
        (0.001, _core.MIN_WAIT),
        (_clients.UNKNOWN, _core.UNKNOWN_SOCKET_TIMEOUT_CHUNK),
        (0, _core.UNKNOWN_SOCKET_TIMEOUT_CHUNK),
        (-1.0, _core.UNKNOWN_SOCKET_TIMEOUT_CHUNK),
        (math.nan, _core.UNKNOWN_SOCKET_TIMEOUT_CHUNK),
        (True, _core.UNKNOWN_SOCKET_TIMEOUT_CHUNK),
        ("5", _core.UNKNOWN_SOCKET_TIMEOUT_CHUNK),
    ],
)
def test_wait_chunk_table(socket_timeout: object, expected: float) -> None:
    """The wait chunk is half the socket timeout, within [1 ms, 10 s]; 1 s when the timeout cannot be read."""
    assert _core.wait_chunk(socket_timeout) == expected


@settings(PROFILE)
@given(socket_timeout=st.floats(min_value=0.002, max_value=1e6))
def test_wait_chunk_never_trips_the_socket_timeout(socket_timeout: float) -> None:
    """A chunk's BLPOP, overrun by one timer tick, ends within the socket timeout when that allows any wait."""
    chunk = _core.wait_chunk(socket_timeout)
    assert _core.MIN_WAIT <= chunk <= _core.MAX_WAIT_CHUNK
    assert chunk <= socket_timeout * _core.SOCKET_TIMEOUT_FRACTION + EPS
    blpop = _core.blpop_timeout(chunk)
    if blpop is not None:
        # Whole milliseconds, at least one (BLPOP's 0 means "forever").
        assert blpop >= _core.MIN_WAIT
        assert blpop * 1000 == pytest.approx(round(blpop * 1000), abs=1e-6)
        assert blpop + _core.SERVER_TIMER_RESOLUTION <= socket_timeout * _core.SOCKET_TIMEOUT_FRACTION + EPS


# ---------------------------------------------------------------------------
# The acquire loop's decision after each attempt.


@pytest.mark.parametrize(
    ("reply", "req", "expected"),
    [
        ([0, 0], request(), True),
        ((0, 0), request(blocking=False), True),
        ([2, 5000], request(owned_is_ours=True), True),
        ([1, 800], request(blocking=False), False),
        ([1, -1], request(blocking=False), False),
        ([1, 800], request(deadline=NOW), False),  # timeout=0: one attempt
        ([1, 800], request(deadline=NOW - 1), False),
        ([1, 800], request(), _core.plan_wait(NOW, None, 800, 2.0)),
        ([1, -1], request(deadline=NOW + 0.5), _core.plan_wait(NOW, NOW + 0.5, -1, 2.0)),
    ],
)
def test_next_acquire_step_table(
    reply: object, req: _core.AcquireRequest, expected: bool | _core.WaitPlan
) -> None:
    """After an attempt: acquired, give up (non-blocking or past the deadline), or the planned wait."""
    assert _core.next_acquire_step(reply, req, now=NOW, chunk=2.0) == expected


@pytest.mark.parametrize("blocking", [True, False])
def test_owned_without_a_generated_id_is_already_acquired(blocking: bool) -> None:
    """An "owned" reply to an id the caller chose raises AlreadyAcquired, blocking or not (the 4.x meaning)."""
    with pytest.raises(AlreadyAcquired, match="Already acquired from this Lock instance"):
        _core.next_acquire_step([2, 5000], request(blocking=blocking), now=NOW, chunk=2.0)


@settings(PROFILE)
@given(
    now=nows,
    wait=st.one_of(st.none(), waits),
    pttl=pttls,
    chunk=chunks,
    blocking=st.booleans(),
    elapsed=st.floats(min_value=0, max_value=100),
)
def test_next_acquire_step_busy_properties(
    now: float, wait: float | None, pttl: int, chunk: float, blocking: bool, elapsed: float
) -> None:
    """A busy reply gives up exactly when non-blocking or at/after the deadline, and otherwise plans the wait."""
    deadline = None if wait is None else now + wait
    later = now + elapsed
    step = _core.next_acquire_step(
        [1, pttl], request(blocking=blocking, deadline=deadline), now=later, chunk=chunk
    )
    gives_up = not blocking or (deadline is not None and later >= deadline)
    if gives_up:
        assert step is False
    else:
        assert step == _core.plan_wait(later, deadline, pttl, chunk)


@pytest.mark.parametrize(
    "reply",
    [
        None,
        "OK",
        b"0",
        0,
        [],
        [0],
        [0, 0, 0],
        [3, 0],
        [-1, 0],
        [True, 0],
        [1, "800"],
        [2, None],
        [b"0", 0],
        {0: 0},
    ],
)
def test_parse_acquire_reply_rejects_the_unexpected(reply: object) -> None:
    """A reply acquire.lua never sends raises RedisLockError naming it, never a TypeError or a wrong decision."""
    with pytest.raises(RedisLockError, match="Unexpected reply") as info:
        _core.parse_acquire_reply(reply)
    assert type(info.value) is RedisLockError


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([0, 0], _core.AcquireReply(_core.ACQUIRED, 0)),
        ((0, 12), _core.AcquireReply(_core.ACQUIRED, 0)),
        ([1, 800], _core.AcquireReply(_core.BUSY, 800)),
        ([1, -1], _core.AcquireReply(_core.BUSY, -1)),
        ([2, 9000], _core.AcquireReply(_core.OWNED, 9000)),
    ],
)
def test_parse_acquire_reply_table(reply: object, expected: _core.AcquireReply) -> None:
    """acquire.lua's {code, pttl} replies (lists on RESP2 and RESP3, tuples too) parse to code and pttl."""
    assert _core.parse_acquire_reply(reply) == expected


# ---------------------------------------------------------------------------
# Building a request, and adapting it to the caller that passed the gate.


def test_prepare_acquire_builds_keys_args_and_deadline() -> None:
    """prepare_acquire sets the deadline from now, the expiry in ms ("0": none) and the owned-is-ours flag."""
    common: dict[str, Any] = {
        "lock_key": "lock:job",
        "signal_key": "lock-signal:job",
        "lock_id": "me",
        "now": NOW,
    }
    req = _core.prepare_acquire(
        blocking=True, timeout=2.5, expire=10.0, renewal=None, owned_is_ours=True, **common
    )
    assert req == _core.AcquireRequest(
        blocking=True,
        deadline=NOW + 2.5,
        keys=("lock:job", "lock-signal:job"),
        args=("me", "10000", "1"),
        owned_is_ours=True,
        started=NOW,
    )
    req = _core.prepare_acquire(blocking=False, timeout=None, expire=None, renewal=None, **common)
    assert (req.blocking, req.deadline, req.args, req.owned_is_ours) == (False, None, ("me", "0", "0"), False)
    req = _core.prepare_acquire(blocking=1, timeout=0, expire=0.0015, renewal=None, **common)
    assert (req.blocking, req.deadline, req.args[1]) == (True, NOW, "2")
    # With auto-renewal a timeout may exceed expire.
    req = _core.prepare_acquire(blocking=True, timeout=60, expire=3.0, renewal=2.0, **common)
    assert req.deadline == NOW + 60


@pytest.mark.parametrize(
    ("blocking", "timeout", "expire", "renewal", "error", "argument"),
    [
        (False, 1.0, None, None, TimeoutNotUsable, "timeout"),
        (False, 0, None, None, TimeoutNotUsable, "timeout"),
        (True, 11.0, 10.0, None, TimeoutTooLarge, "timeout"),
        (True, -1, None, None, InvalidTimeout, "timeout"),
        (True, math.nan, None, None, InvalidTimeout, "timeout"),
        (True, "1", None, None, InvalidArgumentType, "timeout"),
        ("yes", None, None, None, InvalidArgumentType, "blocking"),
        (2, None, None, None, InvalidArgumentType, "blocking"),
        (True, None, 10.0, -1.0, InvalidArgument, "_lock_renewal_interval"),
        (True, None, 10.0, 0.0, InvalidArgument, "_lock_renewal_interval"),
    ],
)
def test_prepare_acquire_rejects_before_any_io(
    blocking: object,
    timeout: object,
    expire: float | None,
    renewal: float | None,
    error: type[Exception],
    argument: str,
) -> None:
    """A bad acquire() argument raises its documented error, naming the argument, while building the request."""
    with pytest.raises(error) as info:
        _core.prepare_acquire(
            blocking=blocking,
            timeout=timeout,
            expire=expire,
            renewal=renewal,
            lock_key="lock:job",
            signal_key="lock-signal:job",
            lock_id="me",
            now=NOW,
        )
    assert isinstance(info.value, InvalidArgument | InvalidArgumentType)
    assert info.value.argument == argument


def test_request_for_a_second_acquire_never_takes_owned_as_ours() -> None:
    """A holder's second acquire sends ARGV[3] "0" and keeps its id: "owned" is then AlreadyAcquired."""
    req = request(owned_is_ours=True)
    again, lock_id, pid = _core.request_for_pass(req, again=True, generated=True, id_pid=1, pid=2)
    assert again.args == ("id-1", "10000", "0")
    assert again.owned_is_ours is False
    assert (lock_id, pid) == ("id-1", 1)
    with pytest.raises(AlreadyAcquired):
        _core.next_acquire_step([2, 100], again, now=NOW, chunk=2.0)


def test_request_for_a_forked_child_draws_a_new_generated_id() -> None:
    """In a forked child (another pid) a generated id is drawn again, and the request carries it."""
    req = request(owned_is_ours=True)
    same, lock_id, pid = _core.request_for_pass(req, again=False, generated=True, id_pid=7, pid=7)
    assert (same, lock_id, pid) == (req, "id-1", 7)
    child, child_id, child_pid = _core.request_for_pass(req, again=False, generated=True, id_pid=7, pid=8)
    assert child_id != "id-1"
    assert len(child_id) == 24
    assert child_pid == 8
    assert child.args == (child_id, "10000", "1")
    assert child.owned_is_ours is True
    # A chosen id is the caller's to share: it stays, whatever the pid.
    chosen, chosen_id, chosen_pid = _core.request_for_pass(
        request(), again=False, generated=False, id_pid=7, pid=8
    )
    assert (chosen, chosen_id, chosen_pid) == (request(), "id-1", 7)


def test_id_for_process_table() -> None:
    """A generated id is kept in its own process and replaced (with the new pid) elsewhere; a chosen id never."""
    assert _core.id_for_process("x", generated=True, id_pid=1, pid=1) == ("x", 1)
    assert _core.id_for_process("x", generated=False, id_pid=1, pid=2) == ("x", 1)
    fresh, pid = _core.id_for_process("x", generated=True, id_pid=1, pid=2)
    assert (fresh != "x", pid) == (True, 2)
    assert fresh != _core.id_for_process("x", generated=True, id_pid=1, pid=2)[0]


# ---------------------------------------------------------------------------
# Retried writes: an acquire or release whose reply was lost and that the client sent again.


@pytest.mark.parametrize(("generated", "taken"), [(True, True), (False, False)])
def test_a_retried_acquire_is_recognised_only_for_a_generated_id(generated: bool, taken: bool) -> None:
    """A retried acquire's "owned" reply means "taken by this call" for a generated id only; else AlreadyAcquired."""
    req = _core.prepare_acquire(
        blocking=True,
        timeout=None,
        expire=10.0,
        renewal=None,
        lock_key="lock:job",
        signal_key="lock-signal:job",
        lock_id="id",
        now=NOW,
        owned_is_ours=_core.owned_is_ours(generated_id=generated),
    )
    assert req.args[2] == ("1" if generated else "0")
    assert _core.takes_lock([2, 9000], req) is taken
    assert _core.takes_lock([0, 0], req) is True
    assert _core.takes_lock([1, 9000], req) is False
    if taken:
        assert _core.next_acquire_step([2, 9000], req, now=NOW, chunk=1.0) is True
    else:
        with pytest.raises(AlreadyAcquired):
            _core.next_acquire_step([2, 9000], req, now=NOW, chunk=1.0)


@pytest.mark.parametrize(("reply", "error"), [(0, None), (2, None), (1, NotAcquired), (3, RedisLockError)])
def test_check_unlock_reply_table(reply: int, error: type[Exception] | None) -> None:
    """unlock.lua 0 (released) and 2 (released by an earlier copy of this call) succeed; 1 is NotAcquired."""
    if error is None:
        _core.check_unlock_reply(reply, "lock:job")
        return
    with pytest.raises(error) as info:
        _core.check_unlock_reply(reply, "lock:job")
    if error is RedisLockError:
        assert not isinstance(info.value, NotAcquired)
    else:
        assert "lock:job" in str(info.value)


def test_unlock_args_carry_a_fresh_nonce_per_call() -> None:
    """Each release call gets its own nonce (a retried copy of one call repeats its command, nonce included)."""
    first = _core.unlock_args("id-1", 1000, 72_000)
    second = _core.unlock_args("id-1", 1000, 72_000)
    assert (first[0], first[1], first[3]) == ("id-1", "1000", "72000")
    assert first[2] != second[2]
    assert first[2]


@pytest.mark.parametrize(
    ("socket_timeout", "expected"),
    [
        (5, 72_000),
        (5.0, 72_000),
        (0.5, 18_000),
        (1000.0, _core.MAX_RECEIPT_TTL_MS),
        (None, _core.DEFAULT_RECEIPT_TTL_MS),
        (math.inf, _core.DEFAULT_RECEIPT_TTL_MS),
        (0, _core.DEFAULT_RECEIPT_TTL_MS),
        (_clients.UNKNOWN, _core.DEFAULT_RECEIPT_TTL_MS),
    ],
)
def test_release_receipt_ttl_table(socket_timeout: object, expected: int) -> None:
    """A release's receipt outlives every retry of it: 12 x (socket timeout + 1 s), at most an hour."""
    assert _core.release_receipt_ttl_ms(socket_timeout) == expected


@settings(PROFILE)
@given(socket_timeout=st.floats(min_value=1e-3, max_value=1e6), more=st.floats(min_value=0, max_value=1e3))
def test_release_receipt_ttl_covers_the_client_retries(socket_timeout: float, more: float) -> None:
    """The receipt lives past RECEIPT_ATTEMPTS attempts (each a socket timeout and a 1 s back-off), capped, monotonic."""
    ttl = _core.release_receipt_ttl_ms(socket_timeout)
    assert ttl <= _core.MAX_RECEIPT_TTL_MS
    assert ttl >= min(_core.MAX_RECEIPT_TTL_MS, _core.RECEIPT_ATTEMPTS * (socket_timeout + 1) * 1000 - 0.5)
    assert _core.release_receipt_ttl_ms(socket_timeout + more) >= ttl


# ---------------------------------------------------------------------------
# Replication (wait_replicas).


@pytest.mark.parametrize(
    ("reply", "owned_is_ours", "acknowledged", "required"),
    [
        ([1, 800], False, 0, 2),  # busy: the WAIT reply means nothing
        ([1, 800], False, redis.ResponseError("ERR WAIT"), 1),
        ([2, 800], False, 0, 1),  # AlreadyAcquired comes later, from next_acquire_step
        ([0, 0], False, 2, 2),
        ([0, 0], False, 3, 2),
        ([2, 800], True, 1, 1),
    ],
)
def test_replication_error_nothing_to_undo(
    reply: object, owned_is_ours: bool, acknowledged: object, required: int
) -> None:
    """No error when the lock was not taken by this call, or enough replicas acknowledged it."""
    req = request(owned_is_ours=owned_is_ours)
    assert (
        _core.replication_error(reply, acknowledged, req, required=required, timeout=0.5, lock_key="lock:j")
        is None
    )


@pytest.mark.parametrize(("reply", "owned_is_ours"), [([0, 0], False), ([2, 800], True)])
def test_replication_error_too_few_replicas(reply: object, owned_is_ours: bool) -> None:
    """A lock taken by this call but acknowledged by too few replicas gives NotReplicated with both counts."""
    error = _core.replication_error(
        reply, 1, request(owned_is_ours=owned_is_ours), required=3, timeout=0.5, lock_key="lock:job"
    )
    assert isinstance(error, NotReplicated)
    assert isinstance(error, NotAcquired)
    assert (error.required, error.acknowledged) == (3, 1)
    message = str(error)
    assert "lock:job" in message
    assert "only 1 of the 3" in message
    assert "0.5" in message


def test_replication_error_passes_a_wait_error_on() -> None:
    """An error WAIT replied with (as a value in the pipeline) is the error to raise, as is."""
    wait_error = redis.ResponseError("ERR WAIT cannot be used with replica instances")
    assert (
        _core.replication_error([0, 0], wait_error, request(), required=1, timeout=1.0, lock_key="k")
        is wait_error
    )
    with pytest.raises(RedisLockError, match="WAIT"):
        _core.replication_error([0, 0], "1", request(), required=1, timeout=1.0, lock_key="k")


@settings(PROFILE)
@given(acknowledged=st.integers(0, 2**63 - 1), required=st.integers(1, 2**63 - 1))
def test_replication_error_exactly_when_too_few(acknowledged: int, required: int) -> None:
    """After a taken lock, the error is NotReplicated exactly when fewer replicas than required acknowledged."""
    error = _core.replication_error(
        [0, 0], acknowledged, request(), required=required, timeout=1, lock_key="k"
    )
    assert (error is None) == (acknowledged >= required)
    if error is not None:
        assert isinstance(error, NotReplicated)
        assert (error.required, error.acknowledged) == (required, acknowledged)


# ---------------------------------------------------------------------------
# Leases, renewal retries, back-off and loss.


def test_lease_table() -> None:
    """A lease runs from the send time for expire seconds; only an auto-renewed one is lost, at its deadline."""
    assert _core.lease_end(NOW, 10.0, 0.0) == NOW + 10.0
    assert _core.lease_end(NOW, None, 123.0) == 123.0
    assert _core.lease_lost(True, NOW, NOW) is True
    assert _core.lease_lost(True, NOW, NOW - 1e-6) is False
    assert _core.lease_lost(False, NOW, NOW + 100) is False
    assert _core.renews(2.0, 3.0) is True
    assert _core.renews(None, 3.0) is False
    assert _core.renews(2.0, None) is False


@pytest.mark.parametrize(
    ("error", "retry_in", "lost", "level"),
    [
        (NotExpirable("no expiry"), None, False, logging.WARNING),
        (NotAcquired("gone"), None, True, logging.ERROR),
        (LockLost("lost"), None, True, logging.ERROR),
        (redis.ConnectionError("down"), 0.05, False, logging.WARNING),
        (valkey.TimeoutError("slow"), 0.05, False, logging.WARNING),
        (RedisLockError("Unexpected reply from the extend script: 'x'"), 0.05, False, logging.WARNING),
    ],
)
def test_renewal_outcome_table(error: Exception, retry_in: float | None, lost: bool, level: int) -> None:
    """No expiry stops renewal; another holder is a loss; a transient error is retried after the delay."""
    outcome = _core.renewal_outcome(error, lock_key="lock:job", now=NOW, lease_deadline=NOW + 5, delay=0.05)
    assert (outcome.retry_in, outcome.lost, outcome.level) == (retry_in, lost, level)
    assert outcome.args[0] == "lock:job"
    assert outcome.message % outcome.args  # the log record formats


def test_renewal_retry_never_outlives_the_lease() -> None:
    """A retry is due no later than the lease's end; at or past the end, the lock is lost instead."""
    error = redis.ConnectionError("down")
    near = _core.renewal_outcome(error, lock_key="k", now=NOW, lease_deadline=NOW + 0.01, delay=0.4)
    assert near.retry_in == pytest.approx(0.01)
    assert near.lost is False
    for now in (NOW, NOW + 1):
        ended = _core.renewal_outcome(error, lock_key="k", now=now, lease_deadline=NOW, delay=0.4)
        assert (ended.retry_in, ended.lost, ended.level) == (None, True, logging.ERROR)
        assert "lease ran out" in str(ended.args[1])


@settings(PROFILE)
@given(
    lease=st.floats(min_value=1e-3, max_value=100.0),
    io_times=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=200),
)
def test_renewal_backoff_doubles_to_the_cap_and_ends_in_loss(lease: float, io_times: list[float]) -> None:
    """Transient errors retry with pauses doubling from 50 ms to 1 s, never past the lease, then the lock is lost."""
    deadline = NOW + lease
    now, delay = NOW, _core.RENEWAL_RETRY_DELAY
    expected_delay = _core.RENEWAL_RETRY_DELAY
    for io_time in io_times * 1000:  # cycled: every run ends in a loss
        now += io_time  # the failing extend took this long
        outcome = _core.renewal_outcome(
            redis.ConnectionError("down"), lock_key="k", now=now, lease_deadline=deadline, delay=delay
        )
        if now >= deadline:
            assert outcome.lost
            assert outcome.retry_in is None
            return
        assert not outcome.lost
        assert outcome.retry_in is not None
        assert 0 < outcome.retry_in <= delay
        assert now + outcome.retry_in <= deadline + EPS
        assert delay == pytest.approx(expected_delay)
        assert outcome.next_delay == min(2 * delay, _core.RENEWAL_RETRY_DELAY_CAP)
        now += outcome.retry_in
        delay = outcome.next_delay
        expected_delay = min(expected_delay * 2, _core.RENEWAL_RETRY_DELAY_CAP)
    pytest.fail("renewal retried forever")  # pragma: no cover


@settings(PROFILE)
@given(
    remaining=st.floats(min_value=-100.0, max_value=100.0),
    delay=st.floats(min_value=_core.RENEWAL_RETRY_DELAY, max_value=_core.RENEWAL_RETRY_DELAY_CAP),
    error=st.sampled_from(
        [NotAcquired("x"), LockLost("x"), NotExpirable("x"), OSError("x"), TimeoutError("x")]
    ),
)
def test_renewal_loss_exactly_when_lease_ended_or_held_by_another(
    remaining: float, delay: float, error: Exception
) -> None:
    """The lock is lost exactly when another holds it (NotAcquired) or, on other errors, the lease has ended."""
    outcome = _core.renewal_outcome(error, lock_key="k", now=NOW, lease_deadline=NOW + remaining, delay=delay)
    if isinstance(error, NotExpirable):
        assert (outcome.lost, outcome.retry_in) == (False, None)
    elif isinstance(error, NotAcquired):
        assert (outcome.lost, outcome.retry_in) == (True, None)
    else:
        assert outcome.lost is (NOW + remaining <= NOW)
        assert (outcome.retry_in is None) is outcome.lost
    assert outcome.next_delay <= _core.RENEWAL_RETRY_DELAY_CAP


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (0, None),
        (1, NotAcquired),
        (2, NotExpirable),
        (3, RedisLockError),
        ("0", RedisLockError),
        (True, RedisLockError),
    ],
)
def test_check_extend_reply_table(reply: object, error: type[Exception] | None) -> None:
    """extend.lua: 0 extended, 1 NotAcquired, 2 NotExpirable, anything else RedisLockError."""
    if error is None:
        _core.check_extend_reply(reply, "lock:job")
        return
    with pytest.raises(error) as info:
        _core.check_extend_reply(reply, "lock:job")
    assert type(info.value) is error


def test_extend_seconds_table() -> None:
    """extend(expire) uses its argument, else the constructor's expire, else raises naming expire."""
    assert _core.extend_seconds(2.5, 10.0) == 2.5
    assert _core.extend_seconds(None, 10.0) == 10.0
    assert _core.extend_seconds(0, 10.0) == 10.0
    with pytest.raises(InvalidArgumentType) as info:
        _core.extend_seconds(None, None)
    assert info.value.argument == "expire"
    with pytest.raises(InvalidArgument, match="expire"):
        _core.extend_seconds(-1, 10.0)


# ---------------------------------------------------------------------------
# Other replies.


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("me", "me"), (b"me", "me"), ("idé", "idé"), ("idé".encode(), "idé"), (b"\xff", "\ufffd")],
)
def test_decode_owner_table(value: object, expected: str | None) -> None:
    """A GET reply becomes str or None whatever decode_responses (invalid UTF-8 is replaced)."""
    assert _core.decode_owner(value) == expected


@pytest.mark.parametrize("value", [1, [b"x"], True])
def test_decode_owner_rejects_the_unexpected(value: object) -> None:
    """A GET reply that is not bytes, str or None raises RedisLockError."""
    with pytest.raises(RedisLockError, match="GET"):
        _core.decode_owner(value)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([0, []], (0, [])),
        ([b"0", []], (0, [])),
        (["17", ["lock:a"]], (17, ["lock:a"])),
        ((b"42", (b"lock:a", b"lock:b")), (42, [b"lock:a", b"lock:b"])),
        ([5, [b"lock:a"]], (5, [b"lock:a"])),
    ],
)
def test_parse_scan_reply_table(reply: object, expected: tuple[int, list[object]]) -> None:
    """A SCAN reply gives the next cursor as int (bytes, str or int) and the page as a list."""
    assert _core.parse_scan_reply(reply) == expected


@pytest.mark.parametrize("reply", [None, [0], [0, "lock:a"], [0, [], []], [None, []], [True, []], "0"])
def test_parse_scan_reply_rejects_the_unexpected(reply: object) -> None:
    """A reply SCAN never sends raises RedisLockError naming SCAN."""
    with pytest.raises(RedisLockError, match="SCAN"):
        _core.parse_scan_reply(reply)


@pytest.mark.parametrize("cursor", [b"next", "", b"1.5"])
def test_parse_scan_reply_rejects_a_non_numeric_cursor(cursor: object) -> None:
    """A SCAN cursor that is not a number raises RedisLockError, as every other unexpected reply does."""
    with pytest.raises(RedisLockError, match="SCAN"):
        _core.parse_scan_reply([cursor, []])


@pytest.mark.parametrize(
    ("error", "interrupted"),
    [
        (
            redis.ResponseError("UNBLOCKED force unblock from blocking operation, instance state changed"),
            True,
        ),
        (valkey.ResponseError("UNBLOCKED client unblocked via CLIENT UNBLOCK"), True),
        (redis.ConnectionError("Connection closed by server."), True),
        (valkey.ConnectionError("Connection reset"), True),
        (redis.exceptions.BusyLoadingError("LOADING"), True),  # a ConnectionError subclass
        (ConnectionResetError("reset"), True),  # matched by class name: the builtin ConnectionError too
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
        (redis.TimeoutError("Timeout reading from socket"), False),
    ],
)
def test_is_interrupted_wait_table(error: BaseException, interrupted: bool) -> None:
    """A BLPOP cut short by a failover (UNBLOCKED, a dropped connection) counts as a wake-up; others do not."""
    assert _core.is_interrupted_wait(error) is interrupted


# ---------------------------------------------------------------------------
# Keys and hash slots.


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM, bit by bit, as in the Redis Cluster specification (poly 0x1021, init 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def reference_slot(key: bytes) -> int:
    """HASH_SLOT as the specification writes it: the first {...} if non-empty, else the whole key."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            key = key[start + 1 : end]
    return crc16_xmodem(key) % 16384


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"123456789", 0x31C3),  # the CRC16 check value of the specification
        (b"", 0),
        (b"foo", 12182),
        (b"{user1000}.following", reference_slot(b"user1000")),
        (b"foo{}{bar}", reference_slot(b"foo{}{bar}")),
        (b"foo{{bar}}zap", reference_slot(b"{bar")),
        (b"foo{bar}{zap}", reference_slot(b"bar")),
    ],
)
def test_key_slot_table(key: bytes, slot: int) -> None:
    """key_slot matches the specification's examples, hash tags included."""
    assert _keys.key_slot(key) == slot
    assert _keys.key_slot(key.decode()) == slot


@settings(PROFILE)
@given(
    key=st.one_of(
        st.binary(),
        st.text().map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.from_regex(rb"\A[a{}]*\Z"),
    )
)
def test_key_slot_agrees_with_crc16_xmodem(key: bytes) -> None:
    """key_slot equals a bitwise CRC16-XMODEM of the hash-tag part, mod 16384, for any bytes."""
    assert _keys.key_slot(key) == reference_slot(key)


@settings(PROFILE)
@given(name=st.text(min_size=1), other=st.text(min_size=1))
def test_cluster_keys_share_one_slot(name: str, other: str) -> None:
    """On a cluster a lock's three keys share a slot, and distinct names give distinct keys."""
    lock_key, signal_key = _keys.keys_for(name, cluster=True)
    assert (
        _keys.key_slot(lock_key) == _keys.key_slot(signal_key) == _keys.key_slot(_keys.receipt_key(lock_key))
    )
    assert lock_key == "lock:" + _keys.hash_tag(name)
    if other != name:
        assert _keys.keys_for(other, cluster=True) != (lock_key, signal_key)
    assert _keys.keys_for(name) == ("lock:" + name, "lock-signal:" + name)
    assert _keys.receipt_key(_keys.keys_for(name)[0]) == "lock-released:" + name


scanned_keys = st.one_of(
    st.builds(lambda n: _keys.keys_for(n, cluster=True)[0], st.text(max_size=4)),
    st.builds(lambda n: "lock:" + n, st.text(max_size=4)),
    st.builds(lambda n: ("lock:" + n).encode(), st.text(alphabet="ab{}", max_size=4)),
    st.sampled_from([b"lock:\xff", b"other:x", "lock-signal:x", 5, None]),
)


@settings(PROFILE)
@given(keys=st.lists(scanned_keys, max_size=30))
def test_reset_all_groups_per_slot(keys: list[object]) -> None:
    """Each reset_all call's keys share one slot; every scanned lock key and its signal key go exactly once."""
    groups = _keys.reset_all_groups(keys)
    locks: list[str] = []
    signals: list[str] = []
    for group, count in groups:
        assert group
        assert len({_keys.key_slot(k) for k in group}) == 1
        locks.extend(group[:count])
        signals.extend(group[count:])
        assert all(k.startswith("lock:") for k in group[:count])
        assert all(k.startswith("lock-signal:") for k in group[count:])
    expected = [pair for pair in map(_keys.keys_for_scanned, keys) if pair is not None]
    assert sorted(locks) == sorted(lock for lock, _ in expected)
    assert sorted(signals) == sorted(signal for _, signal in expected)
    batch, count = _keys.reset_all_batch(keys)
    assert batch == tuple(lock for lock, _ in expected) + tuple(signal for _, signal in expected)
    assert count == len(expected)


# ---------------------------------------------------------------------------
# Validation: every bad value is rejected, naming the argument and the value.


def _assert_rejected(check: Callable[[object], object], value: object, argument: str) -> None:
    with pytest.raises((InvalidArgument, InvalidArgumentType)) as info:
        check(value)
    error = info.value
    assert isinstance(error, InvalidArgument | InvalidArgumentType)
    assert isinstance(error, TypeError if isinstance(error, InvalidArgumentType) else ValueError)
    assert error.argument == argument
    message = str(error)
    assert argument.lower() in message.lower()
    assert repr(value) in message or str(value) in message, message


not_numbers = st.one_of(
    st.text(max_size=3),
    st.binary(max_size=3),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
    st.complex_numbers(),
)
huge_ints = st.integers(min_value=_core.MAX_SECONDS + 1, max_value=10**300)
nonfinite = st.sampled_from([math.nan, math.inf, -math.inf])

VALIDATORS: Final[dict[str, tuple[Callable[[object], object], st.SearchStrategy[object]]]] = {
    "name": (
        _core.validate_name,
        st.one_of(st.just(""), st.integers(), st.binary(), st.none(), st.just("a\ud800")),
    ),
    "expire": (
        _core.validate_expire,
        st.one_of(
            not_numbers,
            nonfinite,
            st.floats(max_value=-1e-300),
            st.integers(max_value=-1),
            st.floats(min_value=1e-9, max_value=0.00099),
            st.floats(min_value=_core.MAX_SECONDS + 1, allow_infinity=False),
            st.integers(min_value=_core.MAX_SECONDS + 1, max_value=10**300),
        ),
    ),
    "timeout": (
        _core.validate_timeout,
        st.one_of(
            not_numbers,
            nonfinite,
            st.floats(max_value=-1e-300),
            st.integers(max_value=-1),
            st.integers(min_value=_core.MAX_SECONDS + 1, max_value=10**300),
        ),
    ),
    "signal_expire": (
        _core.validate_signal_expire,
        st.one_of(
            not_numbers,
            st.floats(allow_nan=False),
            st.integers(max_value=0),
            st.integers(min_value=_core.MAX_SECONDS * 1000 + 1),
        ),
    ),
    "id": (
        _core.validate_id,
        st.one_of(
            st.just(""), st.just(b""), st.integers(), st.floats(), st.just("x\udfff"), st.builds(bytearray)
        ),
    ),
    "wait_replicas": (
        _core.validate_wait_replicas,
        st.one_of(not_numbers, st.floats(), st.integers(max_value=-1), st.integers(min_value=2**63)),
    ),
    "wait_replicas_timeout": (
        _core.validate_wait_replicas_timeout,
        st.one_of(not_numbers, nonfinite, st.floats(max_value=0), st.integers(max_value=0), huge_ints),
    ),
}


@settings(PROFILE)
@given(data=st.data(), argument=st.sampled_from(sorted(VALIDATORS)))
def test_validators_reject_every_bad_value_naming_it(data: st.DataObject, argument: str) -> None:
    """Every validator rejects each bad value with an InvalidArgument(Type) naming the argument and the value."""
    check, bad_values = VALIDATORS[argument]
    _assert_rejected(check, data.draw(bad_values, label=argument), argument)


@pytest.mark.parametrize("value", [2**1024, 10**400], ids=["2**1024", "10**400"])
@pytest.mark.parametrize(
    ("check", "argument"), [(_core.validate_expire, "expire"), (_core.validate_timeout, "timeout")]
)
def test_validators_reject_ints_too_large_for_a_float(
    check: Callable[[object], object], argument: str, value: int
) -> None:
    """expire and timeout of 2**1024 or more are rejected as too large (InvalidArgument), not with OverflowError."""
    _assert_rejected(check, value, argument)


@settings(PROFILE)
@given(
    expire=st.one_of(
        st.floats(min_value=0.001, max_value=_core.MAX_SECONDS), st.integers(1, _core.MAX_SECONDS)
    ),
    timeout=st.one_of(st.floats(min_value=0, max_value=_core.MAX_SECONDS), st.integers(0, _core.MAX_SECONDS)),
    signal_expire=st.integers(1, _core.MAX_SECONDS * 1000),
    name=st.text(min_size=1).filter(lambda s: not any("\ud800" <= c <= "\udfff" for c in s)),
)
def test_validators_accept_every_good_value(
    expire: float, timeout: float, signal_expire: int, name: str
) -> None:
    """Good values pass unchanged (expire and timeout as numbers of seconds, ms precision kept by to_ms)."""
    assert _core.validate_expire(expire) == expire
    assert _core.validate_timeout(timeout) == timeout
    assert isinstance(_core.validate_timeout(timeout), float)
    assert _core.validate_signal_expire(signal_expire) == signal_expire
    assert _core.validate_name(name) == name
    assert _core.validate_id(name) == name
    assert abs(_core.to_ms(expire) - expire * 1000) <= 0.5
    assert _core.to_ms(expire) >= 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (0, None), (0.0, None), (False, "type"), (1, 1), (0.001, 0.001), (2.5, 2.5)],
)
def test_validate_expire_falsy_means_none(value: object, expected: object) -> None:
    """expire None, 0 and 0.0 mean "never expires" (as in 4.x), but a bool is a type error."""
    if expected == "type":
        with pytest.raises(InvalidArgumentType):
            _core.validate_expire(value)
    else:
        assert _core.validate_expire(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"id-1", "id-1"), ("id-1", "id-1"), ("idé", "idé"), (b"\xff\x00id", "/wBpZA==")],
)
def test_validate_id_table(value: object, expected: str) -> None:
    """ASCII bytes ids are decoded, non-ASCII bytes base64-encoded (as 4.x), str kept."""
    assert _core.validate_id(value) == expected


def test_validate_id_generates_distinct_ids() -> None:
    """id=None draws a random 24-character ASCII id, a new one each time."""
    ids = {_core.validate_id(None) for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 24 and i.isascii() for i in ids)


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (1, True), (0, False)])
def test_validate_flag_table(value: object, expected: bool) -> None:
    """Flags accept bools and the ints 0 and 1 (as 4.x did), and return a bool."""
    assert _core.validate_flag(value, "blocking") is expected


@pytest.mark.parametrize(
    ("auto_renewal", "expire", "expected"),
    [(False, None, None), (False, 3.0, None), (True, 3.0, 2.0), (True, 0.0015, 0.001)],
)
def test_check_auto_renewal_table(auto_renewal: bool, expire: float | None, expected: float | None) -> None:
    """Auto-renewal renews every expire * 2/3, down to one millisecond."""
    interval = _core.check_auto_renewal(auto_renewal, expire)
    if expected is None:
        assert interval is None
    else:
        assert interval == pytest.approx(expected)


@pytest.mark.parametrize(
    ("expire", "argument"), [(None, "auto_renewal"), (0.001, "expire"), (0.0014, "expire")]
)
def test_check_auto_renewal_rejects(expire: float | None, argument: str) -> None:
    """Auto-renewal needs an expire of at least 1.5 ms (an interval of at least 1 ms)."""
    with pytest.raises(InvalidArgument) as info:
        _core.check_auto_renewal(True, expire)
    assert info.value.argument == argument


@pytest.mark.parametrize(
    ("blocking", "timeout", "error"),
    [(True, 5.0, AcquireTimeout), (True, 0.0, AcquireTimeout), (False, None, NotAcquired)],
)
def test_enter_error_table(blocking: bool, timeout: float | None, error: type[NotAcquired]) -> None:
    """A with statement that could not acquire raises AcquireTimeout when it waited or had timeout=0, else NotAcquired."""
    raised = _core.enter_error("lock:job", blocking=blocking, timeout=timeout)
    assert type(raised) is error
    assert "lock:job" in str(raised)
