"""Every decision the lock makes, with no I/O.

Argument validation, id generation, the wait-time arithmetic, leases and
renewal outcomes, and the mapping from script replies to results or exceptions
live here, once, so the sync and async flavours only talk to Redis and wait.
Key names live in ``_keys``, what a client is in ``_clients``.
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import itertools
import logging
import math
import os
from base64 import b64encode
from dataclasses import dataclass
from logging import getLogger
from os import urandom
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeGuard, final

from ._clients import check_client, client_socket_timeout, is_cluster_client
from ._exceptions import (
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
from ._keys import keys_for, receipt_key
from .hooks import OBSERVER_METHODS

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._scripts import Script
    from .hooks import LockObserver

__all__ = [
    "ACQUIRED",
    "BUSY",
    "DEFAULT_FENCING_EXPIRE",
    "DEFAULT_RECEIPT_TTL_MS",
    "DEFAULT_SIGNAL_EXPIRE_MS",
    "MAX_RECEIPT_TTL_MS",
    "MAX_SECONDS",
    "MAX_WAIT_CHUNK",
    "MAX_WAIT_REPLICAS",
    "MIN_WAIT",
    "OWNED",
    "RECEIPT_ATTEMPTS",
    "RENEWAL_RETRY_DELAY",
    "RENEWAL_RETRY_DELAY_CAP",
    "SERVER_TIMER_RESOLUTION",
    "SOCKET_TIMEOUT_FRACTION",
    "UNKNOWN_SOCKET_TIMEOUT_CHUNK",
    "AcquireCode",
    "AcquireReply",
    "AcquireRequest",
    "Lease",
    "LockSettings",
    "MaxHoldReached",
    "RenewalOutcome",
    "WaitPlan",
    "as_int_reply",
    "blpop_timeout",
    "check_acquire_timeout",
    "check_auto_renewal",
    "check_encodable",
    "check_extend_reply",
    "check_renewal_interval",
    "check_replication",
    "check_unlock_reply",
    "decode_owner",
    "enter_error",
    "exit_release_failed_note",
    "extend_seconds",
    "generate_id",
    "granted_token",
    "id_for_process",
    "is_array",
    "is_interrupted_wait",
    "lease_end",
    "lease_lost",
    "lease_ran_out",
    "lock_lost_error",
    "lock_settings",
    "logger_for_acquire",
    "logger_for_refresh_exit",
    "logger_for_refresh_shutdown",
    "logger_for_refresh_start",
    "logger_for_refresh_thread",
    "logger_for_release",
    "next_acquire_step",
    "owned_is_ours",
    "parse_acquire_reply",
    "parse_scan_reply",
    "plan_wait",
    "prepare_acquire",
    "release_receipt_ttl_ms",
    "renewal_outcome",
    "renews",
    "replication_error",
    "request_for_pass",
    "takes_lock",
    "to_ms",
    "unlock_args",
    "validate_expire",
    "validate_fencing_expire",
    "validate_flag",
    "validate_hooks",
    "validate_id",
    "validate_max_hold",
    "validate_name",
    "validate_renewal_interval",
    "validate_signal_expire",
    "validate_timeout",
    "validate_wait_replicas",
    "validate_wait_replicas_timeout",
    "wait_chunk",
]

# Logger names and messages are those of python-redis-lock 4.x: users filter on them.
# Lock ids are never logged: an id is enough to release someone else's lock.
logger_for_acquire: Final = getLogger("redis_lock.acquire")
logger_for_refresh_thread: Final = getLogger("redis_lock.refresh.thread")
logger_for_refresh_start: Final = getLogger("redis_lock.refresh.start")
logger_for_refresh_shutdown: Final = getLogger("redis_lock.refresh.shutdown")
logger_for_refresh_exit: Final = getLogger("redis_lock.refresh.exit")
logger_for_release: Final = getLogger("redis_lock.release")


#: Upper bound for ``expire`` and ``timeout``, in seconds (about 31.7 years).
MAX_SECONDS: Final = 1_000_000_000
#: Shortest BLPOP wait, in seconds: BLPOP treats 0 as "forever", so never send less.
MIN_WAIT: Final = 0.001
#: How late Redis may time out a BLPOP: it checks blocked clients' timeouts on
#: its timer, which ticks ``hz`` times a second (10 by default, hence 100 ms).
SERVER_TIMER_RESOLUTION: Final = 0.1
#: Longest single BLPOP when the client has no socket timeout. A waiter re-checks
#: the lock at least this often, which bounds the cost of a lost wake-up signal
#: (a waiter that popped the signal and then died, or a signal that expired
#: while its waiter was paused).
MAX_WAIT_CHUNK: Final = 10.0
#: A wait chunk is at most this fraction of the client's socket timeout, so a
#: BLPOP (which stops one timer resolution before the chunk ends, and may then
#: overrun by that much) never trips the read timeout (redis-py 8 defaults to 5 s).
SOCKET_TIMEOUT_FRACTION: Final = 0.5
#: The BLPOP chunk when a client's socket timeout cannot be read: safe for any
#: socket timeout of two seconds or more.
UNKNOWN_SOCKET_TIMEOUT_CHUNK: Final = 1.0
#: Default lifetime of an unconsumed wake-up signal, in milliseconds (as in 4.x).
DEFAULT_SIGNAL_EXPIRE_MS: Final = 1000

#: How long a name's fencing counter lives after its last grant, by default: 7 days, in seconds.
#: Losing it is safe (the next token starts from the server's clock, above every earlier
#: one), so one-off lock names do not keep a key for ever.
DEFAULT_FENCING_EXPIRE: Final = 7 * 24 * 3600.0
#: First pause between renewal retries after an error, in seconds; doubles up to the cap.
RENEWAL_RETRY_DELAY: Final = 0.05
RENEWAL_RETRY_DELAY_CAP: Final = 1.0

# Reply codes of acquire.lua.
AcquireCode = Literal[0, 1, 2]
ACQUIRED: Final = 0
BUSY: Final = 1
OWNED: Final = 2


# ---------------------------------------------------------------------------
# Validation. Every check runs before any Redis call; errors name the argument
# and the value. 4.x messages are kept word for word where 4.x had one.


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_name(name: object, argument: str = "name") -> str:
    """A lock name (or, as ``argument``, another name): a non-empty str encodable as UTF-8."""
    if not isinstance(name, str):
        raise InvalidArgumentType(
            f"{argument} must be a str, not {type(name).__name__}: {argument}={name!r}", argument=argument
        )
    if not name:
        raise InvalidArgument(f"{argument} must not be empty: {argument}=''", argument=argument)
    check_encodable(name, argument)
    return name


def check_encodable(value: str, argument: str) -> None:
    # A lone surrogate ("\ud800") cannot be sent: redis-py would fail inside the call.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{argument} must be encodable as UTF-8 ({exc.reason} at position {exc.start}): {argument}={value!r}",
            argument=argument,
        ) from None


def validate_expire(expire: object, *, argument: str = "expire") -> float | None:
    """Return ``expire`` in seconds, or None for "never expires".

    Falsy values mean None, as in 4.x; fractional seconds keep millisecond precision.
    """
    if expire is None:
        return None
    if not _is_number(expire):
        raise InvalidArgumentType(
            f"{argument} must be a number of seconds or None, not {type(expire).__name__}: {argument}={expire!r}",
            argument=argument,
        )
    assert isinstance(expire, int | float)
    if not expire:
        return None
    if (isinstance(expire, float) and math.isnan(expire)) or expire < 0:
        raise InvalidArgument(
            f"A negative {argument} is not acceptable. Got {argument}={expire!r}.", argument=argument
        )
    if expire > MAX_SECONDS:
        raise InvalidArgument(
            f"{argument} must be at most {MAX_SECONDS} seconds: {argument}={expire!r}", argument=argument
        )
    if expire < 0.001:
        raise InvalidArgument(
            f"{argument} must be at least 0.001 seconds (one millisecond): {argument}={expire!r}",
            argument=argument,
        )
    return expire


def to_ms(seconds: float) -> int:
    """Convert seconds to whole milliseconds for Redis, never rounding a positive value to 0."""
    return max(1, round(seconds * 1000))


def validate_timeout(timeout: object) -> float | None:
    """Return ``timeout`` in seconds, or None for "wait forever".

    0 means "do not wait" (one attempt), as for :class:`threading.Lock` and
    redis-py; 4.x treated every falsy timeout as "forever", so that a computed
    ``deadline - now`` reaching 0 blocked for ever.
    """
    if timeout is None:
        return None
    if not _is_number(timeout):
        raise InvalidArgumentType(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}: timeout={timeout!r}",
            argument="timeout",
        )
    assert isinstance(timeout, int | float)
    if (isinstance(timeout, float) and math.isnan(timeout)) or timeout < 0:
        raise InvalidTimeout(f"Timeout ({timeout}) cannot be less than or equal to 0", argument="timeout")
    if timeout > MAX_SECONDS:
        raise InvalidTimeout(f"Timeout ({timeout}) must be at most {MAX_SECONDS} seconds", argument="timeout")
    return float(timeout)


def validate_flag(value: object, argument: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InvalidArgumentType(
        f"{argument} must be a bool, not {type(value).__name__}: {argument}={value!r}", argument=argument
    )


def validate_signal_expire(signal_expire: object) -> int:
    if not isinstance(signal_expire, int) or isinstance(signal_expire, bool):
        raise InvalidArgumentType(
            "signal_expire must be an int number of milliseconds, "
            f"not {type(signal_expire).__name__}: signal_expire={signal_expire!r}",
            argument="signal_expire",
        )
    if not 0 < signal_expire <= MAX_SECONDS * 1000:
        raise InvalidArgument(
            f"signal_expire must be between 1 and {MAX_SECONDS * 1000} milliseconds: signal_expire={signal_expire!r}",
            argument="signal_expire",
        )
    return signal_expire


def generate_id() -> str:
    """A random id: 18 random bytes, base64 (24 ASCII characters), as in 4.x."""
    return binascii.b2a_base64(urandom(18), newline=False).decode("ascii")


def validate_id(id: object) -> str:
    """Return the lock id as ``str``: bytes are decoded as ASCII, or base64-encoded if not ASCII (as in 4.x)."""
    if id is None:
        return generate_id()
    if isinstance(id, bytes):
        try:
            value = id.decode("ascii")
        except UnicodeDecodeError:
            value = b64encode(id).decode("ascii")
    elif isinstance(id, str):
        value = id
    else:
        raise InvalidArgumentType(
            f"Incorrect type for `id`. Must be bytes/str not {type(id)}: id={id!r}", argument="id"
        )
    if not value:
        raise InvalidArgument(f"id must not be empty: id={id!r}", argument="id")
    check_encodable(value, "id")
    return value


def check_auto_renewal(auto_renewal: bool, expire: float | None) -> float | None:
    """Return the renewal interval (``expire * 2/3``), or None without auto-renewal."""
    if not auto_renewal:
        return None
    if expire is None:
        raise InvalidArgument("Expire may not be None when auto_renewal is set", argument="auto_renewal")
    interval = expire * 2 / 3
    if interval < MIN_WAIT:
        raise InvalidArgument(
            f"expire must be at least {MIN_WAIT * 1.5:g} seconds with auto_renewal=True (renewed every "
            f"expire * 2/3, at least one millisecond): expire={expire!r}",
            argument="expire",
        )
    return interval


def check_renewal_interval(interval: float | None) -> float | None:
    """Validate ``_lock_renewal_interval`` (which subclasses may set) before it is used."""
    if interval is None:
        return None
    if not validate_expire(interval, argument="_lock_renewal_interval"):
        raise InvalidArgument(
            f"_lock_renewal_interval must be a positive number: {interval!r}",
            argument="_lock_renewal_interval",
        )
    return interval


def check_acquire_timeout(
    timeout: object, *, blocking: bool, expire: float | None, renewal: float | None
) -> float | None:
    """Validate ``acquire()``'s (or the constructor's) timeout against the lock's settings."""
    if not blocking and timeout is not None:
        raise TimeoutNotUsable(
            f"Timeout cannot be used if blocking=False: timeout={timeout!r}", argument="timeout"
        )
    value = validate_timeout(timeout)
    if value is not None and expire is not None and renewal is None and value > expire:
        raise TimeoutTooLarge(
            f"Timeout ({value}) cannot be greater than expire ({expire})", argument="timeout"
        )
    return value


@final
@dataclass(frozen=True, slots=True)
class LockOptions:
    """A lock's validated options: everything but its name and id, shared by every lock built alike."""

    expire: float | None
    signal_expire: int
    blocking: bool
    renewal_interval: float | None
    timeout: float | None
    wait_chunk: float
    receipt_ttl_ms: int
    wait_replicas: int
    wait_replicas_timeout: float
    #: The client is a cluster client (scripts reload with EVAL on its nodes).
    cluster: bool
    #: Every grant mints a fencing token (``lock-fence:<name>``).
    fencing: bool = False
    #: How long the fencing counter lives after the last grant, in ms; 0: for ever.
    fencing_ttl_ms: int = 0
    #: With auto-renewal: renewal stops this many seconds after the acquisition (the key then expires).
    max_hold: float | None = None
    #: Fair mode: waiters queue, and a release hands the lock to the first (``lua/fair.lua``).
    fair: bool = False
    #: Fair mode: how long a waiter's place outlives its last refresh on the server, in ms.
    queue_lease_ms: int = 0
    #: Fair mode: how often a waiter refreshes its place, in seconds.
    queue_refresh: float = 0.0


#: A lock's validated constructor arguments, as both flavours store them: the lock, signal and receipt
#: keys, the id, whether the id was generated for this instance (``id=None``: no other instance has it),
#: and the options. A plain tuple: the cheapest thing to build on the hot path.
LockSettings: TypeAlias = "tuple[str, str, str, str, bool, LockOptions]"


def lock_settings(
    client: object,
    name: object,
    expire: object,
    id: object,
    auto_renewal: object,
    strict: object,
    signal_expire: object,
    blocking: object,
    timeout: object,
    wait_replicas: object,
    wait_replicas_timeout: object,
    fencing: object,
    fencing_expire: object,
    flavour: str,
    renewal_interval: object = None,
    max_hold: object = None,
    fair: object = False,
    queue_lease: object = None,
) -> LockSettings:
    """Validate every constructor argument of ``Lock``/``AsyncLock``, with no I/O.

    Building a lock per use (``with redis_lock.Lock(conn, name):``) is the common
    idiom, so this is on the hot path: what depends on the client's class is
    decided once per class (``_clients``); the name and the options are validated
    once per combination of values (:func:`named_settings`, keyed by value *and
    type*, so ``True`` never passes for ``1``); only the id is looked at anew.
    """
    check_client(client, strict=validate_flag(strict, "strict"), flavour=flavour)
    arguments = (
        type(client).__qualname__,
        name,
        expire,
        auto_renewal,
        signal_expire,
        blocking,
        timeout,
        wait_replicas,
        wait_replicas_timeout,
        fencing,
        fencing_expire,
        client_socket_timeout(client),
        is_cluster_client(client),
        callable(getattr(client, "pipeline", None)),
        renewal_interval,
        max_hold,
        fair,
        queue_lease,
    )
    try:
        lock_key, signal_key, receipt, options = named_settings(*arguments)
    except TypeError as exc:
        if isinstance(exc, RedisLockError):
            raise
        # An unhashable argument: validate without the cache.
        lock_key, signal_key, receipt, options = named_settings.__wrapped__(*arguments)
    return lock_key, signal_key, receipt, validate_id(id), id is None, options


@functools.lru_cache(maxsize=1024, typed=True)
def named_settings(
    client_name: str,
    name: object,
    expire: object,
    auto_renewal: object,
    signal_expire: object,
    blocking: object,
    timeout: object,
    wait_replicas: object,
    wait_replicas_timeout: object,
    fencing: object,
    fencing_expire: object,
    socket_timeout: object,
    cluster: bool,
    pipelines: bool,
    renewal_interval: object = None,
    max_hold: object = None,
    fair: object = False,
    queue_lease: object = None,
) -> tuple[str, str, str, LockOptions]:
    """A lock's keys (lock, signal, receipt) and validated options; cached, see :func:`lock_settings`."""
    lock_key, signal_key = keys_for(validate_name(name), cluster=cluster)
    options = lock_options(
        expire,
        auto_renewal,
        signal_expire,
        blocking,
        timeout,
        wait_replicas,
        wait_replicas_timeout,
        socket_timeout,
        fencing=fencing,
        fencing_expire=fencing_expire,
        cluster=cluster,
        pipelines=pipelines,
        client_name=client_name,
        renewal_interval=renewal_interval,
        max_hold=max_hold,
        fair=fair,
        queue_lease=queue_lease,
    )
    return lock_key, signal_key, receipt_key(lock_key), options


def lock_options(
    expire: object,
    auto_renewal: object,
    signal_expire: object,
    blocking: object,
    timeout: object,
    wait_replicas: object,
    wait_replicas_timeout: object,
    socket_timeout: object,
    *,
    fencing: object = False,
    fencing_expire: object = DEFAULT_FENCING_EXPIRE,
    cluster: bool,
    pipelines: bool,
    client_name: str,
    renewal_interval: object = None,
    max_hold: object = None,
    fair: object = False,
    queue_lease: object = None,
) -> LockOptions:
    """Validate a lock's options (in one order, every error naming argument and value)."""
    seconds = validate_expire(expire)
    renew = validate_flag(auto_renewal, "auto_renewal")
    signal_ms = validate_signal_expire(signal_expire)
    waits = validate_flag(blocking, "blocking")
    interval = check_auto_renewal(renew, seconds)
    interval = validate_renewal_interval(renewal_interval, interval, seconds)
    hold = validate_max_hold(max_hold, renewing=interval is not None)
    replicas = validate_wait_replicas(wait_replicas)
    replicas_timeout = validate_wait_replicas_timeout(wait_replicas_timeout)
    check_replication(
        replicas,
        replicas_timeout,
        socket_timeout,
        cluster=cluster,
        pipelines=pipelines,
        client_name=client_name,
    )
    fences = validate_flag(fencing, "fencing")
    fence_seconds = validate_fencing_expire(fencing_expire)
    fairly = validate_flag(fair, "fair")
    lease = validate_queue_lease(queue_lease, fair=fairly)
    if fairly and replicas:
        raise InvalidArgument(
            "fair=True cannot be combined with wait_replicas: a release hands the lock to the next "
            f"waiter in its script, with no WAIT for the new holder: wait_replicas={replicas!r}",
            argument="wait_replicas",
        )
    return LockOptions(
        expire=seconds,
        signal_expire=signal_ms,
        blocking=waits,
        renewal_interval=interval,
        timeout=check_acquire_timeout(timeout, blocking=waits, expire=seconds, renewal=interval),
        wait_chunk=wait_chunk(socket_timeout),
        receipt_ttl_ms=release_receipt_ttl_ms(socket_timeout),
        wait_replicas=replicas,
        wait_replicas_timeout=replicas_timeout,
        cluster=cluster,
        fencing=fences,
        fencing_ttl_ms=0 if fence_seconds is None else to_ms(fence_seconds),
        max_hold=hold,
        fair=fairly,
        queue_lease_ms=to_ms(lease * QUEUE_LEASE_HELD),
        queue_refresh=queue_refresh(lease, seconds),
    )


def validate_hooks(on_lost: object, observer: object) -> None:
    """Check the ``on_lost`` callback and the ``observer`` (see :mod:`redis_lock.hooks`)."""
    if on_lost is not None and not callable(on_lost):
        raise InvalidArgumentType(
            f"on_lost must be a callable or None, not {type(on_lost).__name__}: on_lost={on_lost!r}",
            argument="on_lost",
        )
    if observer is not None:
        missing = [m for m in OBSERVER_METHODS if not callable(getattr(observer, m, None))]
        if missing:
            raise InvalidArgumentType(
                f"observer must have the methods of redis_lock.hooks.LockObserver ({', '.join(missing)} "
                f"missing; subclass redis_lock.hooks.BaseObserver): observer={observer!r}",
                argument="observer",
            )


def validate_renewal_interval(
    renewal_interval: object, default: float | None, expire: float | None
) -> float | None:
    """The renewal interval: ``renewal_interval`` if given (auto-renewal only, under ``expire``), else ``default``."""
    if renewal_interval is None:
        return default
    if not _is_number(renewal_interval):
        raise InvalidArgumentType(
            "renewal_interval must be a number of seconds or None, "
            f"not {type(renewal_interval).__name__}: renewal_interval={renewal_interval!r}",
            argument="renewal_interval",
        )
    if default is None or expire is None:
        raise InvalidArgument(
            f"renewal_interval needs auto_renewal=True: renewal_interval={renewal_interval!r}",
            argument="renewal_interval",
        )
    assert isinstance(renewal_interval, int | float)
    if not MIN_WAIT <= renewal_interval < expire:  # also rejects NaN
        raise InvalidArgument(
            f"renewal_interval must be at least {MIN_WAIT} seconds and less than expire ({expire:g}), "
            f"so that each renewal comes before the key expires: renewal_interval={renewal_interval!r}",
            argument="renewal_interval",
        )
    return float(renewal_interval)


def validate_max_hold(max_hold: object, *, renewing: bool) -> float | None:
    """``max_hold`` in seconds (None: no cap); it caps auto-renewal, so it needs it."""
    if max_hold is None:
        return None
    if not _is_number(max_hold):
        raise InvalidArgumentType(
            f"max_hold must be a number of seconds or None, not {type(max_hold).__name__}: max_hold={max_hold!r}",
            argument="max_hold",
        )
    assert isinstance(max_hold, int | float)
    if not MIN_WAIT <= max_hold <= MAX_SECONDS:  # also rejects NaN
        raise InvalidArgument(
            f"max_hold must be between {MIN_WAIT} and {MAX_SECONDS} seconds, or None: max_hold={max_hold!r}",
            argument="max_hold",
        )
    if not renewing:
        raise InvalidArgument(
            f"max_hold caps auto-renewal, so it needs auto_renewal=True: max_hold={max_hold!r}",
            argument="max_hold",
        )
    return float(max_hold)


#: Fair mode: how long a waiter that died may hold up the queue, by default, in seconds.
DEFAULT_QUEUE_LEASE: Final = 2.0
#: The shortest ``queue_lease`` (a waiter refreshes its place every third of it).
MIN_QUEUE_LEASE: Final = 0.03
#: The share of ``queue_lease`` a waiter's place lives on the server after a refresh; it refreshes every
#: ``1 - QUEUE_LEASE_HELD`` of it, so a dead waiter is skipped at most ``queue_lease`` after its death.
QUEUE_LEASE_HELD: Final = 2 / 3


def validate_queue_lease(queue_lease: object, *, fair: bool) -> float:
    """``queue_lease`` in seconds (None: :data:`DEFAULT_QUEUE_LEASE`); only fair locks queue."""
    if queue_lease is None:
        return DEFAULT_QUEUE_LEASE
    if not _is_number(queue_lease):
        raise InvalidArgumentType(
            "queue_lease must be a number of seconds or None, "
            f"not {type(queue_lease).__name__}: queue_lease={queue_lease!r}",
            argument="queue_lease",
        )
    assert isinstance(queue_lease, int | float)
    if not MIN_QUEUE_LEASE <= queue_lease <= MAX_SECONDS:  # also rejects NaN
        raise InvalidArgument(
            f"queue_lease must be between {MIN_QUEUE_LEASE} and {MAX_SECONDS} seconds, or None: "
            f"queue_lease={queue_lease!r}",
            argument="queue_lease",
        )
    if not fair:
        raise InvalidArgument(
            f"queue_lease bounds how long a dead waiter holds up fair mode's queue, so it needs "
            f"fair=True: queue_lease={queue_lease!r}",
            argument="queue_lease",
        )
    return float(queue_lease)


def queue_refresh(queue_lease: float, expire: float | None) -> float:
    """How often a fair waiter refreshes its place: the rest of ``queue_lease``, and at most a quarter of ``expire``.

    A lock handed to a waiter counts its lease from the waiter's last refresh
    (the hand-off came later, at a time the waiter cannot know), so refreshing
    within a quarter of ``expire`` keeps three quarters of it for the first
    renewal, which comes at two thirds by default.
    """
    every = queue_lease * (1 - QUEUE_LEASE_HELD)
    return every if not expire else min(every, expire / 4)


def validate_fencing_expire(fencing_expire: object) -> float | None:
    """Return ``fencing_expire`` in seconds: None (the counter never expires), or a number from 1 ms to 10**9 s."""
    if fencing_expire is None:
        return None
    if not _is_number(fencing_expire):
        raise InvalidArgumentType(
            "fencing_expire must be a number of seconds or None, "
            f"not {type(fencing_expire).__name__}: fencing_expire={fencing_expire!r}",
            argument="fencing_expire",
        )
    assert isinstance(fencing_expire, int | float)
    if not 0.001 <= fencing_expire <= MAX_SECONDS:  # also rejects NaN
        raise InvalidArgument(
            f"fencing_expire must be between 0.001 and {MAX_SECONDS} seconds, or None: "
            f"fencing_expire={fencing_expire!r}",
            argument="fencing_expire",
        )
    return float(fencing_expire)


# ---------------------------------------------------------------------------
# Key names and Redis Cluster.


# ---------------------------------------------------------------------------
# Waiting.


def wait_chunk(socket_timeout: object) -> float:
    """The longest BLPOP that cannot trip the client's socket timeout.

    ``socket_timeout`` is the client's setting: a number, None (no timeout), or
    :data:`UNKNOWN` when the client does not say.
    """
    if socket_timeout is None:
        return MAX_WAIT_CHUNK
    if _is_number(socket_timeout):
        assert isinstance(socket_timeout, int | float)
        if socket_timeout == math.inf:
            return MAX_WAIT_CHUNK
        if socket_timeout > 0:
            return max(MIN_WAIT, min(MAX_WAIT_CHUNK, socket_timeout * SOCKET_TIMEOUT_FRACTION))
    return UNKNOWN_SOCKET_TIMEOUT_CHUNK


def blpop_timeout(chunk: float) -> float | None:
    """The hub's BLPOP timeout for a client whose wait chunk is ``chunk``; None: too short to block safely.

    Redis checks BLPOP timeouts only on its timer tick (every 100 ms at the
    default ``hz 10``), so a BLPOP may overrun its timeout by up to
    :data:`SERVER_TIMER_RESOLUTION`: it asks for one tick less than the chunk,
    in whole milliseconds, so that even overrun it ends within the chunk, and
    so within the client's socket timeout. A chunk shorter than that (a socket
    timeout under about 0.2 s) leaves no safe BLPOP: the waiters then re-check
    the lock every chunk on their own.
    """
    blpop = math.floor(round((chunk - SERVER_TIMER_RESOLUTION) * 1000, 3)) / 1000
    return blpop if blpop >= MIN_WAIT else None


@final
@dataclass(frozen=True, slots=True)
class WaitPlan:
    """How long a waiter sleeps before its next acquire attempt: until the ``monotonic()`` time ``until``.

    It sleeps locally (``_waiting``); a wake-up signal for its lock ends the sleep at once.
    """

    until: float


def plan_wait(now: float, deadline: float | None, holder_pttl_ms: int, chunk: float) -> WaitPlan:
    """Plan the wait before the next attempt, from ``now`` (a ``monotonic()`` time).

    The wait ends at the earliest of: the caller's ``deadline``, the holder's key
    expiring (so a waiter wakes when the lock expires, not only on release), and
    a re-check ``chunk`` (which bounds the cost of a lost wake-up signal). The
    waiter sleeps on a local timer, so each target is kept to the millisecond:
    Redis' own timer tick (``hz``), which makes a BLPOP's timeout up to 100 ms
    late, no longer decides when a waiter wakes.
    """
    target = now + chunk
    if deadline is not None and deadline < target:
        target = deadline
    if holder_pttl_ms >= 0:
        # Redis deems a key expired once its deadline has passed; one extra
        # millisecond makes sure it has when the waiter retries.
        target = min(target, now + (holder_pttl_ms + 1) / 1000)
    return WaitPlan(until=target)


@final
@dataclass(frozen=True, slots=True)
class AcquireRequest:
    """A validated ``acquire()`` call: the script's KEYS and ARGV, and when to give up."""

    blocking: bool
    deadline: float | None
    #: The lock and signal keys, and with fencing the fence key.
    keys: tuple[str, ...]
    #: The id, the expire in ms, "owned is ours", and with fencing the fence key's expire in ms.
    args: tuple[str, ...]
    #: An "owned" reply means this very call took the lock (see :func:`takes_lock`).
    owned_is_ours: bool = False
    #: When the call started (a ``monotonic()`` time): the observer's wait time counts from it.
    started: float = 0.0


def prepare_acquire(
    *,
    blocking: object,
    timeout: object,
    expire: float | None,
    renewal: float | None,
    lock_key: str,
    signal_key: str,
    lock_id: str,
    now: float,
    owned_is_ours: bool = False,
    fence_key: str | None = None,
    fence_ttl_ms: int = 0,
) -> AcquireRequest:
    """Validate ``acquire()``'s arguments (before any I/O) and build the request.

    :param now: the ``monotonic()`` time the call started; the deadline counts from it.
    :param owned_is_ours: see :func:`owned_is_ours`.
    :param fence_key: with fencing, the name's fence key: every grant mints a token;
        ``fence_ttl_ms`` is how long that key lives after a grant (0: for ever).
    """
    blocking = validate_flag(blocking, "blocking")
    wait_for = check_acquire_timeout(timeout, blocking=blocking, expire=expire, renewal=renewal)
    check_renewal_interval(renewal)
    args = (lock_id, str(to_ms(expire)) if expire else "0", "1" if owned_is_ours else "0")
    return AcquireRequest(
        blocking=blocking,
        deadline=None if wait_for is None else now + wait_for,
        keys=(lock_key, signal_key) if fence_key is None else (lock_key, signal_key, fence_key),
        args=args if fence_key is None else (*args, str(fence_ttl_ms)),
        owned_is_ours=owned_is_ours,
        started=now,
    )


def request_for_pass(
    request: AcquireRequest, *, again: bool, generated: bool, id_pid: int, pid: int
) -> tuple[AcquireRequest, str, int]:
    """Adapt ``request`` to the caller that passed the object's local gate; return it with the id to use.

    ``again``: the caller holds the object already (a second acquire by the same
    thread or task): an "owned" reply is then its first hold, AlreadyAcquired.
    Otherwise the caller is the object's only user of the id (``_local``); in a
    forked child a generated id is first generated again (:func:`id_for_process`).

    :returns: the request, the id, and the pid the id belongs to.
    """
    lock_id = request.args[0]
    if again:
        return (
            dataclasses.replace(
                request, args=(lock_id, request.args[1], "0", *request.args[3:]), owned_is_ours=False
            ),
            lock_id,
            id_pid,
        )
    fresh, fresh_pid = id_for_process(lock_id, generated=generated, id_pid=id_pid, pid=pid)
    if fresh != lock_id:
        request = dataclasses.replace(request, args=(fresh, *request.args[1:]))
    return request, fresh, fresh_pid


def owned_is_ours(*, generated_id: bool) -> bool:
    """Whether acquire.lua answering "owned" means that this call holds the lock now.

    The client may send one command twice: redis-py and valkey-py retry a
    command after a connection error or a socket timeout, although the first
    copy may already have run (its reply was lost). If the first copy of the
    acquire script took the lock, the second finds it held by this very id and
    answers "owned".

    Who can have written a generated id? Only this object (an id is generated
    per object, and again in a forked child: :func:`id_for_process`), and only
    through the caller that holds the object's local gate (``_local``), which is
    this call: nobody else of this process sends the acquire script with this id
    while it runs. So "owned" comes from this call's own earlier copy, or from
    an earlier call of this object that raised before it could tell (and that
    nobody holds). Either way nobody else holds the lock, so this call takes it:
    the script then resets the key's expiry, as a fresh grant would.

    With an id the caller chose, other objects and processes may share it, and
    "owned" keeps its 4.x meaning, AlreadyAcquired.
    """
    return generated_id


def id_for_process(lock_id: str, *, generated: bool, id_pid: int, pid: int) -> tuple[str, int]:
    """The id an object uses in process ``pid``: a generated id is generated again in a forked child.

    A forked child has a copy of every lock object of its parent. If both used the
    one generated id, each could take the other's hold for its own (see
    :func:`owned_is_ours`); with an id of its own, the child's copy is simply
    another owner. A chosen id is the caller's to share, and stays.
    """
    if not generated or id_pid == pid:
        return lock_id, id_pid
    return generate_id(), pid


def takes_lock(reply: object, request: AcquireRequest) -> bool:
    """Whether acquire.lua's ``reply`` means the lock is now held by this call."""
    return _taken(parse_acquire_reply(reply).code, request)


def _taken(code: int, request: AcquireRequest) -> bool:
    return code == ACQUIRED or (code == OWNED and request.owned_is_ours)


def next_acquire_step(reply: object, request: AcquireRequest, *, now: float, chunk: float) -> bool | WaitPlan:
    """Decide what follows an attempt of acquire.lua, whose reply arrived at ``now``.

    :returns: True (acquired), False (give up: busy and non-blocking, or the deadline
        passed), or the :class:`WaitPlan` to follow before the next attempt.
    :raises AlreadyAcquired: this lock's id already holds the lock.
    """
    parsed = parse_acquire_reply(reply)
    if _taken(parsed.code, request):
        return True
    if parsed.code == OWNED:
        raise AlreadyAcquired("Already acquired from this Lock instance.")
    if not request.blocking or (request.deadline is not None and now >= request.deadline):
        return False
    return plan_wait(now, request.deadline, parsed.pttl_ms, chunk)


# ---------------------------------------------------------------------------
# Fair mode (lua/fair.lua).

#: fair.lua's operations: acquire (or queue), acquire or give up, cancel, release.
FAIR_ACQUIRE: Final = "a"
FAIR_GIVE_UP: Final = "g"
FAIR_CANCEL: Final = "c"
FAIR_RELEASE: Final = "r"


@final
@dataclass(frozen=True, slots=True)
class FairReply:
    """fair.lua's reply to an acquire: the code; busy: the holder's pttl, the queue position and a wake-up hint."""

    code: AcquireCode
    pttl_ms: int = 0
    #: The waiter's place in the queue (1: next); 0 when it gave up.
    position: int = 0
    #: Milliseconds until something this waiter must act on runs out (the holder's key, a hand-off); -1: none.
    hint_ms: int = -1
    #: The fencing token of a grant (with fencing), else None.
    token: int | None = None


def parse_fair_reply(reply: object) -> FairReply:
    if is_array(reply):
        values = [_as_int(value, "fair") for value in reply]
        if len(values) == 4 and values[0] == BUSY:
            return FairReply(BUSY, values[1], values[2], values[3])
        if len(values) in (2, 3) and values[0] in (ACQUIRED, OWNED):
            token = values[2] if len(values) == 3 else None
            if token is None or token > 0:
                return FairReply(ACQUIRED if values[0] == ACQUIRED else OWNED, values[1], token=token)
    raise RedisLockError(f"Unexpected reply from the fair script: {reply!r}")


def fair_taken(reply: FairReply, request: AcquireRequest) -> bool:
    """Whether fair.lua's acquire ``reply`` means the lock is now held by this call."""
    return _taken(reply.code, request)


def fair_op(request: AcquireRequest, now: float) -> str:
    """The fair script's operation for the next attempt: give up unless it is granted, or queue."""
    if not request.blocking or (request.deadline is not None and now >= request.deadline):
        return FAIR_GIVE_UP
    return FAIR_ACQUIRE


def fair_args(
    op: str, request: AcquireRequest, token: str, wake_prefix: str, signal_expire: int, queue_lease_ms: int
) -> tuple[str, ...]:
    """fair.lua's ARGV for an acquire-side ``op`` of the call ``token`` (see the script)."""
    lock_id, expire_ms, owned = request.args[:3]
    fence = request.args[3] if len(request.args) > 3 else "-"
    return (op, lock_id, token, wake_prefix, str(signal_expire), expire_ms, owned, str(queue_lease_ms), fence)


def fair_release_args(
    lock_id: str, wake_prefix: str, signal_expire: int, receipt_ttl_ms: int
) -> tuple[str, ...]:
    """fair.lua's ARGV for one release call (a fresh nonce for its receipt, as :func:`unlock_args`)."""
    return (FAIR_RELEASE, lock_id, "", wake_prefix, str(signal_expire), _nonces.next(), str(receipt_ttl_ms))


def next_fair_step(
    reply: FairReply, request: AcquireRequest, *, now: float, refresh: float, chunk: float
) -> bool | WaitPlan:
    """Decide what follows a fair attempt whose reply arrived at ``now``.

    :returns: True (acquired), False (it gave up: non-blocking, or past the
        deadline), or the :class:`WaitPlan` before the next attempt: until a
        hand-off wakes it, its refresh is due, the caller's deadline, or the
        script's hint (the holder's key or a dead waiter's hand-off runs out).
        Past the deadline the next attempt gives up unless granted (``fair_op``).
    :raises AlreadyAcquired: this lock's id already holds the lock.
    """
    if _taken(reply.code, request):
        return True
    if reply.code == OWNED:
        raise AlreadyAcquired("Already acquired from this Lock instance.")
    if reply.position == 0:
        return False
    target = now + min(refresh, chunk)
    if request.deadline is not None:
        target = min(target, request.deadline)
    if reply.hint_ms >= 0:
        target = min(target, now + (reply.hint_ms + 1) / 1000)
    return WaitPlan(until=max(now, target))


#: What a fair waiter's wake list carries: the lock was handed to it ("h", then its fencing token, if any).
HANDED: Final = b"h"


def handed_over(value: object) -> tuple[bool, int | None]:
    """Read an element popped from a fair waiter's wake list: (handed to it, its fencing token).

    Anything but a hand-off (a reset's "r") means: queue again.
    """
    data = value.encode() if isinstance(value, str) else value
    if not isinstance(data, bytes) or not data.startswith(HANDED):
        return False, None
    digits = data[len(HANDED) :]
    return True, int(digits) if digits.isdigit() else None


def is_interrupted_wait(error: BaseException) -> bool:
    """Whether an error from the BLPOP wait means a failover cut the wait short.

    Two errors qualify: ``-UNBLOCKED`` (the server force-unblocked the command:
    the primary became a replica, or ``CLIENT UNBLOCK ... ERROR``), which the
    clients raise as a plain ``ResponseError``, and a dropped connection (Sentinel
    kills the clients of a primary it demotes; a crashed primary drops them).
    The acquire loop treats either like a wake-up signal and runs the acquire
    script again at once (after a dropped connection, on a fresh one, which a
    Sentinel client opens to the current primary). Matching class names covers
    redis-py and valkey-py.
    """
    if str(error).startswith("UNBLOCKED"):
        return True
    return any(cls.__name__ == "ConnectionError" for cls in type(error).__mro__)


# ---------------------------------------------------------------------------
# Replication: waiting for replicas to acknowledge a newly acquired lock (WAIT).

#: Largest ``wait_replicas``: WAIT parses it as a signed 64-bit integer.
MAX_WAIT_REPLICAS: Final = 2**63 - 1


def validate_wait_replicas(wait_replicas: object) -> int:
    if not isinstance(wait_replicas, int) or isinstance(wait_replicas, bool):
        raise InvalidArgumentType(
            "wait_replicas must be an int number of replicas, "
            f"not {type(wait_replicas).__name__}: wait_replicas={wait_replicas!r}",
            argument="wait_replicas",
        )
    if not 0 <= wait_replicas <= MAX_WAIT_REPLICAS:
        raise InvalidArgument(
            f"wait_replicas must be between 0 and {MAX_WAIT_REPLICAS}: wait_replicas={wait_replicas!r}",
            argument="wait_replicas",
        )
    return wait_replicas


def validate_wait_replicas_timeout(timeout: object) -> float:
    """Return ``wait_replicas_timeout`` in seconds: a positive, finite number (WAIT's 0 would mean forever)."""
    if not _is_number(timeout):
        raise InvalidArgumentType(
            "wait_replicas_timeout must be a number of seconds, "
            f"not {type(timeout).__name__}: wait_replicas_timeout={timeout!r}",
            argument="wait_replicas_timeout",
        )
    assert isinstance(timeout, int | float)
    if not 0 < timeout <= MAX_SECONDS:  # also rejects NaN
        raise InvalidArgument(
            f"wait_replicas_timeout must be greater than 0 and at most {MAX_SECONDS} seconds: "
            f"wait_replicas_timeout={timeout!r}",
            argument="wait_replicas_timeout",
        )
    return timeout


def check_replication(
    replicas: int, timeout: float, socket_timeout: object, *, cluster: bool, pipelines: bool, client_name: str
) -> None:
    """Check that the client can wait for ``replicas`` replicas (nothing to check for 0).

    The WAIT must go on the connection that ran the acquire script (WAIT counts
    that connection's writes only), so the client needs ``pipeline()``; a cluster
    client's pipeline may split the two. The WAIT must also end well within the
    client's socket timeout, or the read would time out and a retrying client
    would run the acquire script a second time.
    """
    if not replicas:
        return
    if cluster:
        raise InvalidArgument(
            f"wait_replicas is not supported on cluster clients yet: wait_replicas={replicas!r}",
            argument="wait_replicas",
        )
    if not pipelines:
        raise InvalidArgumentType(
            f"wait_replicas={replicas!r} needs a client with a pipeline() method, got {client_name}",
            argument="redis_client",
        )
    if _is_number(socket_timeout):
        assert isinstance(socket_timeout, int | float)
        if 0 < socket_timeout < math.inf and timeout > socket_timeout * SOCKET_TIMEOUT_FRACTION:
            raise InvalidArgument(
                f"wait_replicas_timeout must be at most {SOCKET_TIMEOUT_FRACTION:g} times the client's "
                f"socket_timeout ({socket_timeout!r} s): wait_replicas_timeout={timeout!r}",
                argument="wait_replicas_timeout",
            )


def replication_error(
    reply: object,
    acknowledged: object,
    request: AcquireRequest,
    *,
    required: int,
    timeout: float,
    lock_key: str,
) -> BaseException | None:
    """Judge acquire.lua's reply and the WAIT reply that followed it on the same connection.

    :returns: None when there is nothing to undo (the lock was not taken, or
        enough replicas acknowledged it); otherwise the error to raise once the
        lock has been released again: :class:`~redis_lock.NotReplicated`, or the
        error WAIT itself replied with.
    """
    if not takes_lock(reply, request):
        return None  # busy: the WAIT reply means nothing
    if isinstance(acknowledged, BaseException):
        return acknowledged
    count = as_int_reply(acknowledged, "WAIT")
    if count >= required:
        return None
    return NotReplicated(
        f"Lock({lock_key!r}) was released again: only {count} of the {required} replicas required "
        f"acknowledged it within {timeout} seconds.",
        required=required,
        acknowledged=count,
    )


# ---------------------------------------------------------------------------
# Holding: lease, extension, renewal, release.


#: How many times a release's reply may be lost and the release sent again, to
#: size its receipt: redis-py 8 and valkey-py retry a command 10 times by default.
RECEIPT_ATTEMPTS: Final = 12
#: The receipt's lifetime when the client's socket timeout cannot be read.
DEFAULT_RECEIPT_TTL_MS: Final = 72_000
#: Longest receipt lifetime, in milliseconds (one hour).
MAX_RECEIPT_TTL_MS: Final = 3_600_000


def release_receipt_ttl_ms(socket_timeout: object) -> int:
    """How long a release's receipt lives, in milliseconds: past the client's last retry of it.

    A client retries a command whose reply did not arrive within its socket timeout
    (after a short back-off, at most 1 s in redis-py 8); the server may run every
    copy. unlock.lua leaves a receipt (the call's nonce) for as long as a copy of
    the same call may still arrive, so a later copy that finds the lock gone can
    tell "this call released it" from "it was lost" (see ``lua/unlock.lua``).
    """
    if _is_number(socket_timeout):
        assert isinstance(socket_timeout, int | float)
        if 0 < socket_timeout < math.inf:
            return min(MAX_RECEIPT_TTL_MS, to_ms(RECEIPT_ATTEMPTS * (socket_timeout + 1)))
    return DEFAULT_RECEIPT_TTL_MS


class _Nonces:
    """Per-call nonces: a random prefix per process (drawn again after a fork) and a counter."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = urandom(9).hex()
        self.counter = itertools.count()
        #: This process's pid, kept here (and renewed after a fork) so that no lock asks the kernel.
        self.pid = os.getpid()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


_nonces: Final = _Nonces()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_nonces.renew)


def current_pid() -> int:
    """The pid of this process, without a system call (kept up to date across forks)."""
    return _nonces.pid


def unlock_args(lock_id: str, signal_expire: int, receipt_ttl_ms: int) -> tuple[str, str, str, str]:
    """unlock.lua's ARGV for one release call: the id, the signal's lifetime, a fresh nonce, the receipt's lifetime."""
    return lock_id, str(signal_expire), _nonces.next(), str(receipt_ttl_ms)


@final
class Lease:
    """One lock object's current hold, as plain data: what renewal reads and writes.

    ``key`` and ``id`` say what to extend, with ``client``, for ``expire`` seconds;
    ``deadline`` is when the hold runs out (a ``monotonic()`` time, moved by each
    confirmed extend); ``renewed`` whether auto-renewal keeps it; ``lost`` the
    error that ended it, if it was lost. The renewal scheduler works on leases
    only, never on the lock classes' attributes.
    """

    __slots__ = (
        "client",
        "deadline",
        "expire",
        "extend_keys",
        "extend_script",
        "extend_tail",
        "failure",
        "hold_until",
        "id",
        "key",
        "lost",
        "name",
        "observer",
        "on_lost",
        "renewed",
        "reported",
    )

    def __init__(
        self,
        client: object,
        key: str,
        lock_id: str,
        expire: float | None,
        *,
        name: str = "",
        observer: LockObserver | None = None,
        on_lost: Callable[[Any], object] | None = None,
        extend_script: Script | None = None,
        extend_keys: tuple[str, ...] = (),
        extend_tail: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        self.key = key
        self.id = lock_id
        self.expire = expire
        self.deadline = 0.0
        self.renewed = False
        self.lost: BaseException | None = None
        #: The error of the last renewal attempt, while renewal retries it (None once one succeeds).
        self.failure: BaseException | None = None
        #: With ``max_hold``: when renewal stops (a ``monotonic()`` time), else None.
        self.hold_until: float | None = None
        #: The lock's name (as given), for the observer; its observer and ``on_lost`` hook.
        self.name = name
        self.observer = observer
        self.on_lost = on_lost
        #: The loss was reported (observer, ``on_lost``): once per hold.
        self.reported = False
        #: The script renewal extends this hold with, None: ``extend.lua``. Its KEYS are ``key`` and
        #: ``extend_keys``; its ARGV ``id``, the lifetime in ms, and ``extend_tail``.
        self.extend_script = extend_script
        self.extend_keys = extend_keys
        self.extend_tail = extend_tail


class MaxHoldReached(RedisLockError):
    """Renewal stopped because the hold reached ``max_hold`` (the cause of the :class:`LockLost`)."""


def lease_lost(renewed: bool, lease_deadline: float, now: float) -> bool:
    """Whether an auto-renewed hold is lost at ``now``: its lease ran out with no renewal confirmed.

    Renewal moves ``lease_deadline`` only when Redis confirms an extend, so this
    holds whatever the renewal's I/O is doing (blocked in the client's own
    timeout-and-retry loop behind a partition, for example): the holder learns of
    the loss when its lease ends, not when the I/O returns.
    """
    return renewed and now >= lease_deadline


def lease_ran_out(lock_key: str, failure: BaseException | None) -> BaseException:
    """Log and return the cause recorded when an auto-renewed hold's lease ran out unconfirmed.

    The cause is the error renewal was retrying (``failure``), if any. Called once
    per loss, by whoever sees it first (``lost``); renewal then stops without
    another word (``_renewal._settle``).
    """
    reason = "its lease ran out before Redis confirmed a renewal"
    if failure is not None:
        reason = f"renewal kept failing until its lease ran out ({failure!r})"
    logger_for_refresh_thread.error("Lost Lock(%r): %s.", lock_key, reason)
    return failure if failure is not None else RedisLockError(f"Lock({lock_key})'s {reason}.")


def lease_end(sent: float, expire: float | None, current: float) -> float:
    """The ``monotonic()`` time a lease set by a command sent at ``sent`` runs out.

    Counting from when the command was *sent* errs on the early side. A lock
    without expiry keeps ``current``.
    """
    return current if expire is None else sent + expire


def renews(renewal: float | None, expire: float | None) -> bool:
    """Whether a newly acquired lock starts auto-renewal."""
    return renewal is not None and bool(expire)


def extend_seconds(expire: object, default: float | None) -> float:
    """The lifetime ``extend(expire)`` sets: its argument, else the constructor's ``expire``."""
    seconds = validate_expire(expire) or default
    if seconds is None:
        raise InvalidArgumentType(
            "To extend a lock 'expire' must be provided as an argument to extend() method "
            "or at initialization time.",
            argument="expire",
        )
    return seconds


@final
@dataclass(frozen=True, slots=True)
class RenewalOutcome:
    """What a renewer does after extending the lock raised.

    ``retry_in`` is the pause before the next attempt, or None to stop renewing;
    ``next_delay`` the pause after the one after; ``lost`` whether the lock is now
    lost. ``level``, ``message`` and ``args`` are the log record to emit on
    ``redis_lock.refresh.thread``.
    """

    retry_in: float | None
    next_delay: float
    lost: bool
    level: int
    message: str
    args: tuple[object, ...]


def renewal_outcome(
    error: Exception, *, lock_key: str, now: float, lease_deadline: float, delay: float
) -> RenewalOutcome:
    """Decide how renewal goes on after extending raised ``error`` at ``now``.

    A lock that lost its expiry stops renewal (nothing to renew). A lock held by
    someone else, or gone, is lost. Any other error (a connection error, a timeout)
    is transient: retry after ``delay`` (doubling up to :data:`RENEWAL_RETRY_DELAY_CAP`)
    for as long as the lease lasts, then the lock is lost.
    """
    if isinstance(error, NotExpirable):
        return RenewalOutcome(
            None,
            delay,
            False,
            logging.WARNING,
            "Stopping renewal: Lock(%r) no longer has an expiry.",
            (lock_key,),
        )
    if isinstance(error, MaxHoldReached):
        return RenewalOutcome(None, delay, True, logging.WARNING, "Lost Lock(%r): %s.", (lock_key, error))
    if isinstance(error, NotAcquired):
        reason = "another client holds it, or it expired or was reset"
        return RenewalOutcome(None, delay, True, logging.ERROR, "Lost Lock(%r): %s.", (lock_key, reason))
    remaining = lease_deadline - now
    if remaining <= 0:
        reason = f"renewal kept failing until its lease ran out ({error!r})"
        return RenewalOutcome(None, delay, True, logging.ERROR, "Lost Lock(%r): %s.", (lock_key, reason))
    return RenewalOutcome(
        min(delay, remaining),
        min(delay * 2, RENEWAL_RETRY_DELAY_CAP),
        False,
        logging.WARNING,
        "Renewing Lock(%r) failed (%r); retrying for up to %.3f seconds.",
        (lock_key, error, remaining),
    )


def lock_lost_error(lock_key: str) -> LockLost:
    """The error ``release()`` raises when auto-renewal had lost the lock."""
    return LockLost(f"Lock({lock_key}) was lost: auto-renewal could not extend it before it expired.")


def enter_error(lock_key: str, *, blocking: bool, timeout: float | None) -> NotAcquired:
    """The error a ``with`` statement raises when it could not acquire the lock."""
    if blocking and timeout:
        return AcquireTimeout(f"Lock({lock_key}) wasn't acquired within {timeout} seconds.")
    how = "blocking=False" if not blocking else "timeout=0"
    busy = (
        f"Lock({lock_key}) is busy: another owner holds it (or another thread or task holds this object), "
        f"and {how} does not wait."
    )
    return NotAcquired(busy) if not blocking else AcquireTimeout(busy)


def exit_release_failed_note(title: str, release_error: BaseException) -> str:
    """The note added to a ``with`` body's exception when releasing (``title``: ``Lock(lock:x)``...) then failed."""
    return f"While propagating this, releasing {title} failed: {release_error!r}"


# ---------------------------------------------------------------------------
# Script replies.


@final
@dataclass(frozen=True, slots=True)
class AcquireReply:
    code: AcquireCode
    pttl_ms: int
    #: The fencing token of a grant (with fencing), else None.
    token: int | None = None


def is_array(value: object) -> TypeGuard[list[object] | tuple[object, ...]]:
    # A RESP array reply (a list, or a tuple from some clients), with its items typed as object.
    return isinstance(value, list | tuple)


def _as_int(value: object, script: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RedisLockError(f"Unexpected reply from the {script} script: {value!r}")


def parse_acquire_reply(reply: object) -> AcquireReply:
    if is_array(reply) and len(reply) in (2, 3):
        code = _as_int(reply[0], "acquire")
        token = _as_int(reply[2], "acquire") if len(reply) == 3 else None
        if token is not None and (code == BUSY or token <= 0):
            raise RedisLockError(f"Unexpected reply from the acquire script: {reply!r}")
        if code == ACQUIRED:
            return AcquireReply(ACQUIRED, 0, token)
        if code == BUSY:
            return AcquireReply(BUSY, _as_int(reply[1], "acquire"))
        if code == OWNED:
            return AcquireReply(OWNED, _as_int(reply[1], "acquire"), token)
    raise RedisLockError(f"Unexpected reply from the acquire script: {reply!r}")


def granted_token(reply: object) -> int | None:
    """The fencing token of acquire.lua's granting ``reply`` (None without fencing)."""
    return parse_acquire_reply(reply).token


def check_unlock_reply(reply: object, lock_key: str) -> None:
    """Judge unlock.lua's reply: 0 released, 2 released by an earlier copy of this very call."""
    code = _as_int(reply, "unlock")
    if code == 2:
        return
    if code == 1:
        raise NotAcquired(f"Lock({lock_key}) is not acquired or it already expired.")
    if code != 0:
        raise RedisLockError(f"Unsupported error code {code} from UNLOCK script.")


def check_extend_reply(reply: object, lock_key: str) -> None:
    code = _as_int(reply, "extend")
    if code == 1:
        raise NotAcquired(f"Lock {lock_key} is not acquired or it already expired.")
    if code == 2:
        raise NotExpirable(f"Lock {lock_key} has no assigned expiration time")
    if code != 0:
        raise RedisLockError(f"Unsupported error code {code} from EXTEND script")


def decode_owner(value: object) -> str | None:
    """Normalise a GET reply (bytes, str or None, whatever ``decode_responses``) to ``str | None``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise RedisLockError(f"Unexpected reply to GET: {value!r}")


def as_int_reply(value: object, command: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RedisLockError(f"Unexpected reply to {command}: {value!r}")


def parse_scan_reply(reply: object) -> tuple[int, list[object]]:
    if is_array(reply) and len(reply) == 2 and is_array(reply[1]):
        cursor = reply[0]
        if isinstance(cursor, bytes | str):
            try:
                cursor = int(cursor)
            except ValueError:
                raise RedisLockError(f"Unexpected reply to SCAN: {reply!r}") from None
        return as_int_reply(cursor, "SCAN"), list(reply[1])
    raise RedisLockError(f"Unexpected reply to SCAN: {reply!r}")
