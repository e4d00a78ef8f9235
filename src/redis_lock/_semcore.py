"""The semaphore, written once: its decisions, state and the steps of every operation, with no I/O.

A semaphore named ``<name>`` lets at most ``limit`` holders in at once. Its
permits are *leases* in one sorted set, ``sem:<name>``: the member is the
holder's id, the score the permit's expiry in milliseconds on the server's
clock (``TIME``), ``inf`` for a permit without expiry. There is no counter
beside it: every script first drops the expired permits
(``ZREMRANGEBYSCORE -inf now``) and then counts what is left, so the count
cannot drift from the holders. The set's key expires with its last permit.
``sem-limit:<name>`` stores the limit, so that processes disagreeing about it
fail loudly (:class:`LimitMismatch`) instead of letting ``max(limits)`` in;
it outlives the last permit by :data:`LIMIT_RETENTION` seconds.
``sem-signal:<name>`` is the waiters' wake-up list, as a lock's: a release pushes
one wake-up (the list never holds more than one); a waiter that takes a permit
after a wake-up and sees more free passes the wake-up on, so two releases in a
row wake two waiters. Waiters also wake when the earliest permit expires (the
busy reply says when), through the client's hub (``_waiting``), never spinning.

:class:`SemaphoreCore` is what :class:`~redis_lock.Semaphore` and
:class:`~redis_lock.AsyncSemaphore` share; each drives the steps with
:func:`~redis_lock._engine.drive` or :func:`~redis_lock._engine.drive_async`
and keeps only its gate (threads or tasks) and its renewal (thread or task).
"""

from __future__ import annotations

import functools
import time as mod_time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar, final

from . import _clients, _core, _keys
from ._engine import Call, Collect, Steps, StopRenewal
from ._exceptions import (
    AcquireTimeout,
    AlreadyAcquired,
    InvalidArgument,
    InvalidArgumentType,
    LockLost,
    NotAcquired,
    NotExpirable,
    RedisLockError,
)
from ._holdcore import HoldCore, Tries
from ._scripts import (
    SEMAPHORE_ACQUIRE,
    SEMAPHORE_EXTEND,
    SEMAPHORE_QUERY,
    SEMAPHORE_RELEASE,
    SEMAPHORE_RESET,
    SEMAPHORE_RESET_ALL,
    SEMAPHORE_SET_LIMIT,
    run,
)
from ._waiting import wakes_steps

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Self

    from .hooks import LockObserver

__all__ = [
    "BUSY",
    "GRANTED",
    "LIMIT_RETENTION",
    "MAX_LIMIT",
    "MISMATCH",
    "OWNED",
    "LimitMismatch",
    "SemaphoreCore",
    "SemaphoreState",
    "next_acquire_step",
    "parse_acquire_reply",
    "parse_query_reply",
    "reset_all_groups",
    "reset_all_semaphores_steps",
    "semaphore_doc",
    "validate_limit",
]

#: The largest limit: far below 2**53, so Lua's doubles count exactly.
MAX_LIMIT: Final = 2**31 - 1
#: How long the stored limit outlives the semaphore's last permit, in seconds (7 days):
#: long enough that a process with another limit is told even after a quiet spell; short
#: enough that one-off names leave nothing behind for ever.
LIMIT_RETENTION: Final = 7 * 24 * 3600.0
_LIMIT_RETENTION_MS: Final = str(_core.to_ms(LIMIT_RETENTION))

# Reply codes of semaphore_acquire.lua.
GRANTED: Final = 0
BUSY: Final = 1
OWNED: Final = 2
MISMATCH: Final = 3


class LimitMismatch(RedisLockError):
    """The semaphore's stored limit differs from the ``limit`` this object was made with.

    Every process must agree on a semaphore's limit; change it with
    :meth:`Semaphore.set_limit <redis_lock.Semaphore.set_limit>`, then make the
    other objects with the new limit. Nothing was changed in Redis.

    :ivar name: the semaphore's name.
    :ivar limit: this object's limit.
    :ivar stored: the limit stored in Redis.

    .. versionadded:: 5.0
    """

    def __init__(self, name: str, limit: int, stored: int) -> None:
        super().__init__(
            f"Semaphore({name!r}) was made with limit={limit}, but its stored limit is {stored}: every "
            "process must use the same limit (change it with set_limit())."
        )
        self.name = name
        self.limit = limit
        self.stored = stored

    def __reduce__(self) -> tuple[type[LimitMismatch], tuple[str, int, int]]:
        return type(self), (self.name, self.limit, self.stored)


# ---------------------------------------------------------------------------
# Validation (before any I/O; errors name the argument and the value).


def validate_limit(limit: object) -> int:
    """The number of permits: an ``int`` from 1 to :data:`MAX_LIMIT`."""
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise InvalidArgumentType(
            f"limit must be an int number of permits, not {type(limit).__name__}: limit={limit!r}",
            argument="limit",
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}: limit={limit!r}", argument="limit")
    return limit


@functools.lru_cache(maxsize=1024, typed=True)
def _settings(
    client_name: str,
    name: object,
    limit: object,
    expire: object,
    auto_renewal: object,
    signal_expire: object,
    blocking: object,
    timeout: object,
    socket_timeout: object,
    cluster: bool,
    pipelines: bool,
    renewal_interval: object,
    max_hold: object,
) -> tuple[tuple[str, str, str], int, _core.LockOptions]:
    """A semaphore's keys, limit and options, validated; cached by value and type, as a lock's are."""
    keys = _keys.semaphore_keys(_core.validate_name(name), cluster=cluster)
    permits = validate_limit(limit)
    options = _core.lock_options(
        expire,
        auto_renewal,
        signal_expire,
        blocking,
        timeout,
        0,
        1.0,
        socket_timeout,
        cluster=cluster,
        pipelines=pipelines,
        client_name=client_name,
        renewal_interval=renewal_interval,
        max_hold=max_hold,
    )
    return keys, permits, options


def _validated(
    client: object,
    strict: object,
    flavour: str,
    name: object,
    limit: object,
    expire: object,
    auto_renewal: object,
    signal_expire: object,
    blocking: object,
    timeout: object,
    renewal_interval: object,
    max_hold: object,
) -> tuple[tuple[str, str, str], int, _core.LockOptions]:
    """Validate every constructor argument but the id and the hooks, with no I/O."""
    _clients.check_client(client, strict=_core.validate_flag(strict, "strict"), flavour=flavour)
    settings = functools.partial(
        _settings,
        type(client).__qualname__,
        name,
        limit,
        expire,
        auto_renewal,
        signal_expire,
        blocking,
        timeout,
        _clients.client_socket_timeout(client),
        _clients.is_cluster_client(client),
        callable(getattr(client, "pipeline", None)),
        renewal_interval,
        max_hold,
    )
    try:
        return settings()
    except TypeError as exc:
        if isinstance(exc, RedisLockError):
            raise
        # An unhashable argument: validate without the cache.
        return functools.partial(_settings.__wrapped__, *settings.args)()


# ---------------------------------------------------------------------------
# Script replies.


def _int(value: object, script: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RedisLockError(f"Unexpected reply from the {script} script: {value!r}")


def parse_acquire_reply(reply: object) -> tuple[int, int]:
    """semaphore_acquire.lua's ``{code, value}``."""
    if _core.is_array(reply) and len(reply) == 2:
        code = _int(reply[0], "semaphore_acquire")
        if code in (GRANTED, BUSY, OWNED, MISMATCH):
            return code, _int(reply[1], "semaphore_acquire")
    raise RedisLockError(f"Unexpected reply from the semaphore_acquire script: {reply!r}")


def takes_permit(reply: object, request: _core.AcquireRequest) -> bool:
    """Whether ``reply`` means this call holds a permit now."""
    code = parse_acquire_reply(reply)[0]
    return code == GRANTED or (code == OWNED and request.owned_is_ours)


def next_acquire_step(
    reply: object, request: _core.AcquireRequest, *, now: float, chunk: float, name: str, limit: int
) -> bool | _core.WaitPlan:
    """Decide what follows an attempt, whose ``reply`` arrived at ``now``: True, False, or the wait.

    A busy reply carries the time left to the earliest permit's expiry, so the
    wait ends then at the latest (:func:`redis_lock._core.plan_wait`).

    :raises AlreadyAcquired: this id holds a permit already.
    :raises LimitMismatch: the stored limit is not ``limit``.
    """
    code, value = parse_acquire_reply(reply)
    if code == GRANTED or (code == OWNED and request.owned_is_ours):
        return True
    if code == OWNED:
        raise AlreadyAcquired(f"Already acquired from this Semaphore instance ({name!r}).")
    if code == MISMATCH:
        raise LimitMismatch(name, limit, value)
    if not request.blocking or (request.deadline is not None and now >= request.deadline):
        return False
    return _core.plan_wait(now, request.deadline, value, chunk)


@final
@dataclass(frozen=True, slots=True)
class SemaphoreState:
    """What semaphore_query.lua saw: the stored limit (None: none), the permits held, this id's ms left."""

    stored: int | None
    count: int
    #: This id's permit: ms left, -1 without expiry, -2 when it holds none.
    own: int
    holders: tuple[str, ...]


def parse_query_reply(reply: object) -> SemaphoreState:
    if _core.is_array(reply) and len(reply) >= 3:
        stored = _int(reply[0], "semaphore_query")
        ids = tuple(_core.decode_owner(item) or "" for item in reply[3:])
        return SemaphoreState(
            None if stored < 0 else stored,
            _int(reply[1], "semaphore_query"),
            _int(reply[2], "semaphore_query"),
            ids,
        )
    raise RedisLockError(f"Unexpected reply from the semaphore_query script: {reply!r}")


def _check_release_reply(reply: object, name: str) -> None:
    code = _int(reply, "semaphore_release")
    if code == 1:
        raise NotAcquired(f"Semaphore({name!r}): this id holds no permit (never acquired, expired or reset).")
    if code not in (0, 2):  # 2: released by an earlier copy of this very call
        raise RedisLockError(f"Unsupported code {code} from the semaphore_release script.")


def _check_extend_reply(reply: object, name: str) -> None:
    code = _int(reply, "semaphore_extend")
    if code == 1:
        raise NotAcquired(f"Semaphore({name!r}): this id holds no permit (never acquired, expired or reset).")
    if code == 2:
        raise NotExpirable(f"Semaphore({name!r}): this id's permit has no expiry.")
    if code != 0:
        raise RedisLockError(f"Unsupported code {code} from the semaphore_extend script.")


# ---------------------------------------------------------------------------
# Waiting through the client's hub. The same steps as a lock's (``LockCore._sleep`` and
# ``_leave_hub``), as functions of the hub, the entry and the cluster flag.


# ---------------------------------------------------------------------------
# The semaphore.

_IDENTITY: Final = """    :param name: the semaphore's name; its keys are ``sem:<name>`` (the permits),
        ``sem-signal:<name>`` (the wake-up list) and ``sem-limit:<name>`` (the limit),
        with the name in a hash tag on a cluster client (``sem:{<name>}``...).
    :param limit: how many holders the semaphore lets in at once (1 to 2**31 - 1). It
        is stored in Redis: an object made with another limit raises
        :class:`~redis_lock.LimitMismatch` from :meth:`acquire`; change it with
        :meth:`set_limit`.
    :param expire: each permit's lifetime in seconds, with millisecond precision;
        ``None`` (or any falsy value) means permits never expire.
    :param id: this holder's id, the member of the permits' sorted set, as ``str``
        or ``bytes``; random by default. Objects sharing an id share one permit.
"""
_SHARED: Final = """    :param auto_renewal: renew the permit every ``expire * 2/3`` seconds (or every
        ``renewal_interval``) while it is held, through the client's renewal
        scheduler (one per client, pipelined with the locks'). Needs ``expire``.
    :param strict: require ``redis_client`` to be a known client class of this flavour.
    :param signal_expire: how long an unconsumed wake-up signal lives, in milliseconds.
    :param blocking: whether the ``with`` statement waits for a permit.
    :param timeout: how long the ``with`` statement waits, in seconds (``None``:
        forever); :class:`~redis_lock.AcquireTimeout` if it passes. :meth:`acquire`
        takes its own ``timeout``.
    :param renewal_interval: with ``auto_renewal``, renew every this many seconds.
    :param max_hold: with ``auto_renewal``, stop renewing this many seconds after the
        acquisition: the permit then expires and the hold is reported lost.
    :param on_lost: called as ``on_lost(semaphore)`` when auto-renewal loses the permit.
    :param observer: a :class:`redis_lock.hooks.LockObserver` told of waits,
        acquisitions, releases, renewals and losses.
    :raises InvalidArgument: (a :class:`ValueError`) for an unusable value.
    :raises InvalidArgumentType: (a :class:`TypeError`) for an argument of the wrong type.
"""


def semaphore_doc(doc: str | None) -> str:
    """``doc`` with its ``{identity}`` and ``{shared}`` lines replaced by the parameters both flavours share."""
    assert doc is not None
    return doc.replace("    {identity}\n", _IDENTITY).replace("    {shared}\n", _SHARED)


C = TypeVar("C")


class SemaphoreCore(HoldCore[C]):
    """State and steps shared by ``Semaphore`` and ``AsyncSemaphore`` (see the module docstring).

    What a semaphore shares with a lock (the gate, the acquire loop, the hold's
    lease and renewal, the release) is :class:`~redis_lock._holdcore.HoldCore`'s;
    its tries are :class:`_Tries`.
    """

    _kind = "Semaphore"

    def __init__(
        self,
        redis_client: C,
        name: str,
        limit: int,
        expire: float | None = None,
        id: str | bytes | None = None,
        auto_renewal: bool = False,
        strict: bool = True,
        signal_expire: int = _core.DEFAULT_SIGNAL_EXPIRE_MS,
        blocking: bool = True,
        timeout: float | None = None,
        renewal_interval: float | None = None,
        max_hold: float | None = None,
        on_lost: Callable[[Self], object] | None = None,
        observer: LockObserver | None = None,
    ) -> None:
        keys, self._limit, self._options = _validated(
            redis_client,
            strict,
            self._flavour,
            name,
            limit,
            expire,
            auto_renewal,
            signal_expire,
            blocking,
            timeout,
            renewal_interval,
            max_hold,
        )
        lock_id = _core.validate_id(id)
        _core.validate_hooks(on_lost, observer)
        self._client = redis_client
        self._name = name
        self._key, self._signal, self._limit_key = keys
        self._id = lock_id
        self._generated_id = id is None
        self._id_pid = _core.current_pid()
        self.blocking = self._options.blocking
        #: The renewal interval (the name a lock's 4.x subclasses use, shared by HoldCore).
        self._lock_renewal_interval = self._options.renewal_interval
        self._lease = _core.Lease(
            redis_client,
            self._key,
            lock_id,
            self._options.expire,
            name=name,
            observer=observer,
            on_lost=on_lost,
            extend_script=SEMAPHORE_EXTEND,
            extend_keys=(self._limit_key,),
            extend_tail=(_LIMIT_RETENTION_MS,),
        )
        self._acquired_at = 0.0

    def __repr__(self) -> str:
        return f"<{_clients.public_name(type(self))} {self._name!r} limit={self._limit}>"

    @property
    def id(self) -> str:
        """This holder's id: the member its permit has in ``sem:<name>``."""
        return self._id

    @property
    def name(self) -> str:
        """The semaphore's name."""
        return self._name

    @property
    def limit(self) -> int:
        """The limit this object was made with (or last set with :meth:`set_limit`)."""
        return self._limit

    def _enter_error(self) -> NotAcquired:
        """The error a ``with`` statement raises when it could not take a permit."""
        timeout = self._options.timeout
        if self.blocking and timeout:
            return AcquireTimeout(f"Semaphore({self._name!r}): no permit was free within {timeout} seconds.")
        how = "blocking=False" if not self.blocking else "timeout=0"
        busy = (
            f"Semaphore({self._name!r}) is busy: all {self._limit} permits are held (or another thread or "
            f"task holds this object), and {how} does not wait."
        )
        return NotAcquired(busy) if not self.blocking else AcquireTimeout(busy)

    # -- acquire -------------------------------------------------------------------------

    def _prepare_acquire(self, blocking: object, timeout: object) -> _core.AcquireRequest:
        waits = _core.validate_flag(blocking, "blocking")
        expire = self._options.expire
        wait_for = _core.check_acquire_timeout(
            timeout, blocking=waits, expire=expire, renewal=self._lock_renewal_interval
        )
        now = mod_time.monotonic()
        owned_is_ours = _core.owned_is_ours(generated_id=self._generated_id)
        return _core.AcquireRequest(
            blocking=waits,
            deadline=None if wait_for is None else now + wait_for,
            keys=(self._key, self._signal, self._limit_key),
            args=(
                self._id,
                str(_core.to_ms(expire)) if expire else "0",
                "1" if owned_is_ours else "0",
                str(self._limit),
                _LIMIT_RETENTION_MS,
                str(self._options.signal_expire),
            ),
            owned_is_ours=owned_is_ours,
            started=now,
        )

    @property
    def _title(self) -> str:
        return f"Semaphore({self._name!r})"

    def _tries(self, request: _core.AcquireRequest) -> _Tries:
        undo = functools.partial(self._undo_attempt, request)
        return _Tries(request, self._options, undo, signal=self._signal, name=self._name, limit=self._limit)

    def _undo_attempt(self, request: _core.AcquireRequest, reply: object) -> Steps[None]:
        """After a cancelled acquire: give back the permit its attempt took (only if this call took it)."""
        if takes_permit(reply, request):
            yield from self._release_undone()

    def _check_release_reply(self, reply: object) -> None:
        _check_release_reply(reply, self._name)

    def _lost_error(self) -> LockLost:
        return LockLost(
            f"Semaphore({self._name!r})'s permit was lost: auto-renewal could not extend it before it expired."
        )

    # -- release, extend, reset, set_limit ---------------------------------------------

    def _release_script_steps(self) -> Steps[object]:
        """Run semaphore_release.lua once for this call, with a receipt that recognises the client's retries of it."""
        holder, signal_expire, nonce, receipt_ttl = _core.unlock_args(
            self._id, self._options.signal_expire, self._options.receipt_ttl_ms
        )
        return run(
            SEMAPHORE_RELEASE,
            (self._key, self._signal, self._limit_key, _keys.semaphore_receipt_key(self._key)),
            (holder, signal_expire, _LIMIT_RETENTION_MS, nonce, receipt_ttl),
            cluster=self._options.cluster,
        )

    def _extend_steps(self, expire: object) -> Steps[None]:
        seconds = _core.extend_seconds(expire, self._options.expire)
        sent = mod_time.monotonic()
        reply = yield from run(
            SEMAPHORE_EXTEND,
            (self._key, self._limit_key),
            (self._id, str(_core.to_ms(seconds)), _LIMIT_RETENTION_MS),
            cluster=self._options.cluster,
        )
        _check_extend_reply(reply, self._name)
        self._lease.deadline = _core.lease_end(sent, seconds, self._lease.deadline)

    def _reset_steps(self) -> Steps[int]:
        ticket = self._gate.begin_release()
        try:
            if self._renewing:
                yield StopRenewal(self._lease.deadline)
            reply = yield from run(
                SEMAPHORE_RESET,
                (self._key, self._signal, self._limit_key),
                (str(self._options.signal_expire),),
                cluster=self._options.cluster,
            )
        finally:
            if ticket is not None:
                self._lease.renewed = False
                self._gate.leave(ticket)
        return _core.as_int_reply(reply, "semaphore_reset")

    def _set_limit_steps(self, limit: object) -> Steps[int | None]:
        permits = validate_limit(limit)
        reply = yield from run(
            SEMAPHORE_SET_LIMIT,
            (self._key, self._signal, self._limit_key),
            (str(permits), _LIMIT_RETENTION_MS, str(self._options.signal_expire)),
            cluster=self._options.cluster,
        )
        before = _core.as_int_reply(reply, "semaphore_set_limit")
        self._limit = permits
        return None if before < 0 else before

    # -- queries ---------------------------------------------------------------------------

    def _query_steps(self, *, holders: bool) -> Steps[SemaphoreState]:
        reply = yield from run(
            SEMAPHORE_QUERY,
            (self._key, self._limit_key),
            (self._id, "1" if holders else "0"),
            cluster=self._options.cluster,
        )
        return parse_query_reply(reply)

    def _owned_steps(self) -> Steps[bool]:
        return (yield from self._query_steps(holders=False)).own != -2

    def _holders_steps(self) -> Steps[list[str]]:
        return list((yield from self._query_steps(holders=True)).holders)

    def _available_steps(self) -> Steps[int]:
        state = yield from self._query_steps(holders=False)
        if state.stored is not None and state.stored != self._limit:
            raise LimitMismatch(self._name, self._limit, state.stored)
        return max(0, self._limit - state.count)


class _Tries(Tries):
    """A semaphore's tries: semaphore_acquire.lua, told whether the call was woken by a signal.

    A grant after a wake-up that leaves permits free passes the wake-up on (the
    signal list holds one element, however many permits were released); a
    signal the call was handed and did not use goes on even after a grant
    (``drop_unused``): the wake-up may be another waiter's. A waiter woken to
    learn of a new limit (LimitMismatch) passes the wake-up on too, so that every
    waiter made with the old limit is told now rather than at its re-check.
    """

    drop_unused = False

    def __init__(
        self,
        request: _core.AcquireRequest,
        options: _core.LockOptions,
        undo: Callable[[object], Steps[None]],
        *,
        signal: str,
        name: str,
        limit: int,
    ) -> None:
        super().__init__(request, options.wait_chunk, self._acquire_steps, undo, wake=signal, back=None)
        self.name = name
        self.limit = limit
        self.cluster = options.cluster
        self.signal_expire = options.signal_expire
        #: "1" if the next try follows a wake-up signal (ARGV[7]).
        self.signalled = "0"

    def _acquire_steps(self, request: _core.AcquireRequest) -> Steps[object]:
        return run(SEMAPHORE_ACQUIRE, request.keys, (*request.args, self.signalled), cluster=self.cluster)

    def decide(self, reply: object) -> bool | _core.WaitPlan:
        return next_acquire_step(
            reply, self.request, now=mod_time.monotonic(), chunk=self.chunk, name=self.name, limit=self.limit
        )

    def woken(self, signalled: bool, value: object) -> bool:
        self.signalled = "1" if signalled else "0"
        return False

    def abort(self, error: BaseException) -> Steps[None] | None:
        if isinstance(error, LimitMismatch) and self.signalled == "1":
            return wakes_steps([(self.wake, None, self.signal_expire, None)], cluster=self.cluster)
        return None


# ---------------------------------------------------------------------------
# reset_all for semaphores.


def reset_all_groups(keys: list[object], *, cluster: bool) -> list[tuple[tuple[str, ...], int, int]]:
    """Turn a SCAN page of ``sem:``/``sem-limit:`` keys into semaphore_reset_all.lua calls.

    Each call is (KEYS, permits keys, limit keys): the permits keys, then the limit
    keys, then the signal keys. On a cluster each call's keys share one slot: each
    key goes with its own slot (a key written by hand without a hash tag may have
    its siblings elsewhere).
    """
    suffixes = dict.fromkeys(s for s in map(_keys.semaphore_suffix_of_scanned, keys) if s is not None)
    groups: dict[int, tuple[list[str], list[str], list[str]]] = {}
    for suffix in suffixes:
        names = (
            _keys.SEMAPHORE_PREFIX + suffix,
            _keys.SEMAPHORE_LIMIT_PREFIX + suffix,
            _keys.SEMAPHORE_SIGNAL_PREFIX + suffix,
        )
        for role, key in enumerate(names):
            slot = _keys.key_slot(key) if cluster else 0
            groups.setdefault(slot, ([], [], []))[role].append(key)
    return [
        ((*permits, *limits, *signals), len(permits), len(limits))
        for permits, limits, signals in groups.values()
    ]


def reset_all_semaphores_steps(client: object, signal_expire: object, *, flavour: str) -> Steps[int]:
    """Reset every semaphore (every ``sem:*`` and ``sem-limit:*`` key), waking one waiter of each.

    Walks the keyspace with SCAN (``MATCH sem*``) in pages, never KEYS; on a
    cluster client ``scan_iter`` visits every primary, and each page is reset in
    one script call per hash slot. Returns how many semaphores had permits held.
    """
    _clients.check_client(client, strict=False, flavour=flavour, needs_commands=True)
    expire_arg = str(_core.validate_signal_expire(signal_expire))
    match, count = "sem*", _keys.RESET_ALL_SCAN_COUNT
    deleted = 0
    if _clients.is_cluster_client(client):
        keys: list[object] = yield Collect("scan_iter", {"match": match, "count": count})
        for first in range(0, len(keys), count):
            deleted += yield from _reset_page(keys[first : first + count], expire_arg, cluster=True)
        return deleted
    cursor = 0
    while True:
        cursor, keys = _core.parse_scan_reply(
            (yield Call("scan", (), {"cursor": cursor, "match": match, "count": count}))
        )
        deleted += yield from _reset_page(keys, expire_arg, cluster=False)
        if cursor == 0:
            return deleted


def _reset_page(keys: list[object], expire_arg: str, *, cluster: bool) -> Steps[int]:
    deleted = 0
    for group, permits, limits in reset_all_groups(keys, cluster=cluster):
        reply = yield from run(
            SEMAPHORE_RESET_ALL, group, (expire_arg, str(permits), str(limits)), cluster=cluster
        )
        deleted += _core.as_int_reply(reply, "semaphore_reset_all")
    return deleted
