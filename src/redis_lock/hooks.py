"""Hooks for long jobs and for metrics: what a lock tells an observer.

Pass ``observer=`` to :class:`~redis_lock.Lock` or :class:`~redis_lock.AsyncLock`
to hear about its waits, holds, renewals and losses; :mod:`redis_lock.otel`
turns them into OpenTelemetry metrics. An observer's methods are plain
functions, called in the thread (or task) where the event happens: keep them
quick. An observer that raises never breaks the lock: its error is logged (on
the ``redis_lock.observer`` logger) and the operation goes on.

.. versionadded:: 5.0
"""

from __future__ import annotations

from logging import getLogger
from typing import Final, Protocol, runtime_checkable

__all__ = ["OBSERVER_METHODS", "BaseObserver", "LockObserver", "notify"]

logger_for_observer: Final = getLogger("redis_lock.observer")

#: The methods of :class:`LockObserver`, which a lock checks an ``observer`` has.
OBSERVER_METHODS: Final = ("wait_started", "acquired", "gave_up", "released", "renewed", "lost")


@runtime_checkable
class LockObserver(Protocol):
    """What a lock reports. ``name`` is the lock's name as given to the lock (not its Redis key).

    Times are seconds on the monotonic clock. Subclass :class:`BaseObserver` to
    implement only some of the methods.
    """

    def wait_started(self, name: str) -> None:
        """A blocking acquire found the lock busy and starts waiting (once per acquire call)."""

    def acquired(self, name: str, waited: float) -> None:
        """The lock was acquired, ``waited`` seconds after the acquire call started (0 if it was free)."""

    def gave_up(self, name: str, waited: float) -> None:
        """An acquire returned False (busy and not blocking, or its timeout passed) after ``waited`` seconds."""

    def released(self, name: str, held: float) -> None:
        """The lock was released (or reset) by its holder, ``held`` seconds after it was acquired."""

    def renewed(self, name: str) -> None:
        """Auto-renewal extended the lock."""

    def lost(self, name: str) -> None:
        """Auto-renewal lost the lock (its lease ran out, another client took it, or ``max_hold`` passed)."""


class BaseObserver:
    """A :class:`LockObserver` that does nothing: subclass it and override what you need."""

    def wait_started(self, name: str) -> None:
        """See :meth:`LockObserver.wait_started`."""

    def acquired(self, name: str, waited: float) -> None:
        """See :meth:`LockObserver.acquired`."""

    def gave_up(self, name: str, waited: float) -> None:
        """See :meth:`LockObserver.gave_up`."""

    def released(self, name: str, held: float) -> None:
        """See :meth:`LockObserver.released`."""

    def renewed(self, name: str) -> None:
        """See :meth:`LockObserver.renewed`."""

    def lost(self, name: str) -> None:
        """See :meth:`LockObserver.lost`."""


def notify(observer: LockObserver | None, event: str, name: str, *args: float) -> None:
    """Call ``observer.<event>(name, *args)``; an error it raises is logged, never propagated."""
    if observer is None:
        return
    try:
        getattr(observer, event)(name, *args)
    except Exception:
        logger_for_observer.warning("Observer %r failed on %s(%r).", observer, event, name, exc_info=True)
