"""Exceptions raised by :mod:`redis_lock`.

Every exception derives from one base, which derives from :class:`RuntimeError`,
so code written for python-redis-lock 4.x (``except RuntimeError``) keeps working::

    RuntimeError
    └── RedisLockError
        ├── AlreadyAcquired
        ├── AlreadyStarted
        ├── NotAcquired
        │   ├── AcquireTimeout          (new in 5.0)
        │   ├── LockLost                (new in 5.0)
        │   └── NotReplicated           (new in 5.0)
        ├── NotExpirable
        ├── StaleToken              (new in 5.0; redis_lock.fencing)
        ├── InvalidArgument             (new in 5.0; also a ValueError)
        │   ├── TimeoutNotUsable
        │   ├── InvalidTimeout
        │   └── TimeoutTooLarge
        └── InvalidArgumentType         (new in 5.0; also a TypeError and a ValueError)

The argument errors also derive from :class:`ValueError` or :class:`TypeError`
because 4.x raised those plain builtins for the same mistakes.
Errors from the Redis client itself (connection errors, server errors) are never
wrapped: they propagate unchanged.
"""

from __future__ import annotations

__all__ = [
    "AcquireTimeout",
    "AlreadyAcquired",
    "AlreadyStarted",
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidTimeout",
    "LockLost",
    "NotAcquired",
    "NotExpirable",
    "NotReplicated",
    "RedisLockError",
    "StaleToken",
    "TimeoutNotUsable",
    "TimeoutTooLarge",
]


class RedisLockError(RuntimeError):
    """Base class of every exception raised by :mod:`redis_lock`.

    .. versionadded:: 5.0
    """


class AlreadyAcquired(RedisLockError):
    """The lock is already held by this id (this instance, or another one given the same ``id``).

    .. versionchanged:: 5.0
       Derives from :class:`RedisLockError` (still a :class:`RuntimeError`).
    """


class NotAcquired(RedisLockError):
    """The lock is not held by this id: never acquired, expired, reset, or taken over.

    .. versionchanged:: 5.0
       Derives from :class:`RedisLockError` (still a :class:`RuntimeError`).
    """


class AcquireTimeout(NotAcquired):
    """A ``with`` block could not acquire the lock within the constructor's ``timeout``.

    .. versionadded:: 5.0
    """


class LockLost(NotAcquired):
    """Auto-renewal could not keep the lock: its lease ran out or another client took it.

    Raised by :meth:`Lock.release <redis_lock.Lock.release>` after the loss; the
    renewal error that caused it, if any, is the exception's ``__cause__``.

    .. versionadded:: 5.0
    """


class NotReplicated(NotAcquired):
    """Too few replicas acknowledged a lock just acquired, so it was released again.

    Raised by ``acquire()`` on a lock made with ``wait_replicas``: the lock was
    taken on the primary, but fewer than ``wait_replicas`` replicas confirmed
    the write within ``wait_replicas_timeout`` (Redis ``WAIT``). The lock was then
    released, so this id does not hold it. See :doc:`/cluster`.

    :ivar required: the number of replicas asked for (``wait_replicas``).
    :ivar acknowledged: the number that acknowledged in time.

    .. versionadded:: 5.0
    """

    def __init__(self, message: str, *, required: int, acknowledged: int) -> None:
        super().__init__(message)
        self.required = required
        self.acknowledged = acknowledged


class AlreadyStarted(RedisLockError):
    """Kept for compatibility with 4.x: 5.x never raises it (renewal restarts cleanly).

    .. deprecated:: 5.0
       Never raised.
    """


class NotExpirable(RedisLockError):
    """:meth:`Lock.extend <redis_lock.Lock.extend>` was called on a lock whose key has no expiry.

    .. versionchanged:: 5.0
       Derives from :class:`RedisLockError` (still a :class:`RuntimeError`).
    """


class StaleToken(RedisLockError):
    """A fenced write was refused: its fencing token is older than the last one the resource accepted.

    Raised by :func:`redis_lock.fencing.fenced_set` (and its asyncio twin), which
    then changed nothing. The writer's lock was granted to someone else since its
    token was minted (its lease ran out while it paused, say), and the newer
    holder has already written: the write must not land, and the writer no
    longer holds the lock. See :mod:`redis_lock.fencing`.

    :ivar resource: the resource written to.
    :ivar token: the refused token.
    :ivar last: the last token the resource accepted (greater than ``token``).

    .. versionadded:: 5.0
    """

    def __init__(self, resource: str, token: int, last: int) -> None:
        super().__init__(f"Stale fencing token for {resource!r}: {token} < {last}, the last token accepted")
        self.resource = resource
        self.token = token
        self.last = last

    def __reduce__(self) -> tuple[type[StaleToken], tuple[str, int, int]]:
        # Pickled by its attributes (the default would call StaleToken(message)):
        # it crosses process boundaries intact (multiprocessing, concurrent.futures).
        return type(self), (self.resource, self.token, self.last)


class InvalidArgument(RedisLockError, ValueError):
    """An argument has the right type but an unusable value.

    :ivar argument: the name of the offending argument.

    .. versionadded:: 5.0
    """

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class InvalidArgumentType(RedisLockError, TypeError, ValueError):
    """An argument has the wrong type.

    Also a :class:`ValueError`: 4.x converted durations with ``int()``, so
    ``timeout="foobar"`` raised :class:`ValueError` there, and code (4.x's own
    tests among it) catches that.

    :ivar argument: the name of the offending argument.

    .. versionadded:: 5.0
    """

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument


class TimeoutNotUsable(InvalidArgument):
    """``timeout`` was given together with ``blocking=False``.

    .. versionchanged:: 5.0
       Also a :class:`ValueError`, through :class:`InvalidArgument`.
    """


class InvalidTimeout(InvalidArgument):
    """``timeout`` is negative, not finite, or too large.

    .. versionchanged:: 5.0
       Also a :class:`ValueError`, through :class:`InvalidArgument`.
    """


class TimeoutTooLarge(InvalidArgument):
    """``timeout`` is greater than ``expire`` on a lock without auto-renewal.

    .. versionchanged:: 5.0
       Also a :class:`ValueError`, through :class:`InvalidArgument`.
    """
