"""Lock metrics through OpenTelemetry: an observer that records waits, holds, contention, renewals and losses.

Install the extra (``pip install "python-redis-lock[otel]"``: the OpenTelemetry
API only; the application brings the SDK and its exporters) and pass the
observer to a lock::

    observer = OpenTelemetryObserver()
    with redis_lock.Lock(conn, "report", expire=60, auto_renewal=True, observer=observer):
        ...

One observer can serve every lock of the process. The instruments, on the meter
``redis_lock``:

==============================  =========  ===================================================
``redis_lock.wait.duration``    histogram  seconds from the acquire call to its outcome;
                                (s)        ``redis_lock.outcome`` is ``acquired`` or ``gave_up``
``redis_lock.hold.duration``    histogram  seconds from acquisition to release
                                (s)
``redis_lock.contended``        counter    acquire calls that found the lock busy and waited
``redis_lock.renewed``          counter    extensions made by auto-renewal
``redis_lock.lost``             counter    locks auto-renewal could not keep
==============================  =========  ===================================================

Attributes are few on purpose, to keep the number of time series low: lock names
often contain ids (``invoice:12345``), so by default no name is recorded at all.
``name_attribute`` maps a name to a label of few values, recorded as
``redis_lock.name``. Owner ids and fencing tokens are never recorded: observers
are not even told them.

.. versionadded:: 5.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

try:
    from opentelemetry import metrics
except ImportError as exc:  # pragma: no cover - the tests run with the extra installed
    raise ImportError(
        "redis_lock.otel needs the OpenTelemetry API: install the [otel] extra, "
        'pip install "python-redis-lock[otel]" (or pip install opentelemetry-api)'
    ) from exc

from . import __version__
from .hooks import BaseObserver

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["OpenTelemetryObserver"]

#: The attribute that carries ``name_attribute``'s label.
NAME_ATTRIBUTE: Final = "redis_lock.name"
#: The attribute of ``redis_lock.wait.duration`` that says how the wait ended.
OUTCOME_ATTRIBUTE: Final = "redis_lock.outcome"

#: Bucket edges of the wait and hold histograms, in seconds: 0.5 ms to 5 minutes.
#: (The SDK's default edges, 0 to 10000, suit milliseconds, not seconds.)
DURATION_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class OpenTelemetryObserver(BaseObserver):
    """A lock observer that records OpenTelemetry metrics (see the module docstring for the instruments).

    :param meter_provider: where the instruments come from; by default the global
        meter provider (``opentelemetry.metrics.get_meter_provider()``), which
        records nothing until the application sets one up.
    :param name_attribute: a function of the lock name returning a label of *few*
        distinct values (``lambda name: name.split(":")[0]`` turns ``invoice:12345``
        into ``invoice``), recorded as the ``redis_lock.name`` attribute. By default no
        name is recorded. Never pass a function that returns the name unchanged when
        names contain ids: every id would become a time series.

    An error inside the observer (a broken exporter, a ``name_attribute`` that
    raises) never breaks a lock: the lock logs it and goes on.

    .. versionadded:: 5.0
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        name_attribute: Callable[[str], str] | None = None,
    ) -> None:
        meter = metrics.get_meter("redis_lock", version=__version__, meter_provider=meter_provider)
        self._name_attribute = name_attribute
        self._wait = meter.create_histogram(
            "redis_lock.wait.duration",
            unit="s",
            description="Time from an acquire call to the lock being acquired or the call giving up.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._hold = meter.create_histogram(
            "redis_lock.hold.duration",
            unit="s",
            description="Time from acquiring a lock to releasing it.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._contended = meter.create_counter(
            "redis_lock.contended",
            unit="{acquire}",
            description="Acquire calls that found the lock busy and waited for it.",
        )
        self._renewed = meter.create_counter(
            "redis_lock.renewed", unit="{renewal}", description="Lock extensions made by auto-renewal."
        )
        self._lost = meter.create_counter(
            "redis_lock.lost", unit="{lock}", description="Locks that auto-renewal could not keep."
        )

    def __repr__(self) -> str:
        return f"<redis_lock.otel.OpenTelemetryObserver name_attribute={self._name_attribute!r}>"

    def _attributes(self, name: str) -> dict[str, str]:
        if self._name_attribute is None:
            return {}
        return {NAME_ATTRIBUTE: self._name_attribute(name)}

    def wait_started(self, name: str) -> None:
        """Count a contended acquire."""
        self._contended.add(1, self._attributes(name))

    def acquired(self, name: str, waited: float) -> None:
        """Record the wait, with outcome ``acquired``."""
        self._wait.record(waited, {**self._attributes(name), OUTCOME_ATTRIBUTE: "acquired"})

    def gave_up(self, name: str, waited: float) -> None:
        """Record the wait, with outcome ``gave_up``."""
        self._wait.record(waited, {**self._attributes(name), OUTCOME_ATTRIBUTE: "gave_up"})

    def released(self, name: str, held: float) -> None:
        """Record the hold."""
        self._hold.record(held, self._attributes(name))

    def renewed(self, name: str) -> None:
        """Count a renewal."""
        self._renewed.add(1, self._attributes(name))

    def lost(self, name: str) -> None:
        """Count a lost lock."""
        self._lost.add(1, self._attributes(name))
