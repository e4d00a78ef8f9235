"""redis_lock.otel: the OpenTelemetry observer records the documented instruments, with few attributes and no ids.

The adapter is tested by calling its observer methods directly (what a lock does
through ``hooks.notify``), read back with the SDK's in-memory reader; the tests at
the end drive it from real locks, once the locks take ``observer=``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)

import redis_lock
from redis_lock.hooks import BaseObserver, LockObserver
from redis_lock.otel import DURATION_BUCKETS, OpenTelemetryObserver

OBSERVER_PARAMETER = "observer" in inspect.signature(redis_lock.Lock).parameters
needs_observer_parameter = pytest.mark.skipif(
    not OBSERVER_PARAMETER, reason="Lock(observer=...) is not there yet (issue #18, part 1)"
)

Collect = Callable[[], dict[str, Metric]]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def collect(reader: InMemoryMetricReader) -> Collect:
    """Read every metric recorded so far, by instrument name, checking that they all come from one scope."""

    def read() -> dict[str, Metric]:
        data = reader.get_metrics_data()
        if data is None:
            return {}
        found: dict[str, Metric] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "redis_lock"
                assert scope.scope.version == redis_lock.__version__
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    return read


def points(metric: Metric) -> list[Any]:
    return list(metric.data.data_points)


def sums(metric: Metric) -> dict[frozenset[tuple[str, Any]], float]:
    """A counter's values by attribute set."""
    values: dict[frozenset[tuple[str, Any]], float] = {}
    for point in points(metric):
        assert isinstance(point, NumberDataPoint)
        values[frozenset((point.attributes or {}).items())] = point.value
    return values


def histograms(metric: Metric) -> dict[frozenset[tuple[str, Any]], HistogramDataPoint]:
    found: dict[frozenset[tuple[str, Any]], HistogramDataPoint] = {}
    for point in points(metric):
        assert isinstance(point, HistogramDataPoint)
        found[frozenset((point.attributes or {}).items())] = point
    return found


def all_attribute_values(metrics: dict[str, Metric]) -> set[object]:
    return {
        value
        for metric in metrics.values()
        for point in points(metric)
        for value in (point.attributes or {}).values()
    }


def test_is_an_observer(provider: MeterProvider) -> None:
    """The adapter is a BaseObserver and satisfies the LockObserver protocol."""
    observer = OpenTelemetryObserver(provider)
    assert isinstance(observer, BaseObserver)
    assert isinstance(observer, LockObserver)
    assert "OpenTelemetryObserver" in repr(observer)


def test_instruments_names_units_and_counts(provider: MeterProvider, collect: Collect) -> None:
    """Each hook feeds its instrument: names and units as documented, counts as called, no attribute by default."""
    observer = OpenTelemetryObserver(provider)
    observer.wait_started("invoice:1")
    observer.acquired("invoice:1", 0.25)
    observer.acquired("invoice:2", 0.0)
    observer.wait_started("invoice:3")
    observer.gave_up("invoice:3", 1.5)
    observer.released("invoice:1", 2.0)
    observer.released("invoice:2", 3.0)
    observer.renewed("invoice:1")
    observer.renewed("invoice:1")
    observer.renewed("invoice:2")
    observer.lost("invoice:1")

    metrics = collect()
    assert sorted(metrics) == [
        "redis_lock.contended",
        "redis_lock.hold.duration",
        "redis_lock.lost",
        "redis_lock.renewed",
        "redis_lock.wait.duration",
    ]
    assert metrics["redis_lock.wait.duration"].unit == "s"
    assert metrics["redis_lock.hold.duration"].unit == "s"
    assert all(metric.description for metric in metrics.values())

    assert sums(metrics["redis_lock.contended"]) == {frozenset(): 2}
    assert sums(metrics["redis_lock.renewed"]) == {frozenset(): 3}
    assert sums(metrics["redis_lock.lost"]) == {frozenset(): 1}

    waits = histograms(metrics["redis_lock.wait.duration"])
    assert set(waits) == {
        frozenset({("redis_lock.outcome", "acquired")}),
        frozenset({("redis_lock.outcome", "gave_up")}),
    }
    acquired = waits[frozenset({("redis_lock.outcome", "acquired")})]
    assert (acquired.count, acquired.sum, acquired.min, acquired.max) == (2, 0.25, 0.0, 0.25)
    gave_up = waits[frozenset({("redis_lock.outcome", "gave_up")})]
    assert (gave_up.count, gave_up.sum) == (1, 1.5)

    holds = histograms(metrics["redis_lock.hold.duration"])
    assert set(holds) == {frozenset()}
    assert (holds[frozenset()].count, holds[frozenset()].sum) == (2, 5.0)


def test_histograms_use_second_buckets(provider: MeterProvider, collect: Collect) -> None:
    """The histograms' bucket edges are in seconds (0.5 ms up to minutes), not the SDK's default millisecond edges."""
    observer = OpenTelemetryObserver(provider)
    observer.acquired("a", 0.003)
    observer.released("a", 0.7)
    metrics = collect()
    for name in ("redis_lock.wait.duration", "redis_lock.hold.duration"):
        (point,) = points(metrics[name])
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    (wait,) = points(metrics["redis_lock.wait.duration"])
    assert wait.bucket_counts[DURATION_BUCKETS.index(0.005)] == 1


def test_name_attribute_labels_every_instrument(provider: MeterProvider, collect: Collect) -> None:
    """``name_attribute`` maps each lock name to the ``redis_lock.name`` label, on every instrument."""
    observer = OpenTelemetryObserver(provider, name_attribute=lambda name: name.split(":")[0])
    for account in ("1", "2", "3"):
        observer.wait_started(f"invoice:{account}")
        observer.acquired(f"invoice:{account}", 0.1)
        observer.renewed(f"invoice:{account}")
        observer.released(f"invoice:{account}", 1.0)
    observer.gave_up("report:daily", 0.5)
    observer.lost("report:daily")

    metrics = collect()
    invoice = ("redis_lock.name", "invoice")
    report = ("redis_lock.name", "report")
    assert sums(metrics["redis_lock.contended"]) == {frozenset({invoice}): 3}
    assert sums(metrics["redis_lock.renewed"]) == {frozenset({invoice}): 3}
    assert sums(metrics["redis_lock.lost"]) == {frozenset({report}): 1}
    waits = histograms(metrics["redis_lock.wait.duration"])
    assert {key: point.count for key, point in waits.items()} == {
        frozenset({invoice, ("redis_lock.outcome", "acquired")}): 3,
        frozenset({report, ("redis_lock.outcome", "gave_up")}): 1,
    }
    assert {key: point.count for key, point in histograms(metrics["redis_lock.hold.duration"]).items()} == {
        frozenset({invoice}): 3
    }
    # Three accounts, one series: the ids in the names are not recorded.
    assert all_attribute_values(metrics) == {"invoice", "report", "acquired", "gave_up"}


def test_name_attribute_error_propagates_to_the_caller(provider: MeterProvider) -> None:
    """A ``name_attribute`` that raises makes the hook raise: the lock's ``notify`` logs and swallows it."""
    observer = OpenTelemetryObserver(provider, name_attribute=lambda name: name.split(":")[1])
    with pytest.raises(IndexError):
        observer.renewed("no-colon")
    redis_lock.hooks.notify(observer, "renewed", "no-colon")  # logged, not raised


def test_default_provider_is_the_global_one() -> None:
    """Without a meter provider the global one is used: before the application sets one up, recording is a no-op."""
    observer = OpenTelemetryObserver()
    observer.wait_started("a")
    observer.acquired("a", 0.1)
    observer.gave_up("a", 0.1)
    observer.released("a", 0.1)
    observer.renewed("a")
    observer.lost("a")


def test_one_observer_from_many_threads(provider: MeterProvider, collect: Collect) -> None:
    """One observer shared by every lock of the process counts correctly from many threads at once."""
    observer = OpenTelemetryObserver(provider)

    def work() -> None:
        for _ in range(200):
            observer.renewed("shared")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sums(collect()["redis_lock.renewed"]) == {frozenset(): 1600}


def test_import_without_opentelemetry_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing redis_lock.otel without the OpenTelemetry API fails with an ImportError that names the [otel] extra."""
    monkeypatch.delitem(sys.modules, "redis_lock.otel")
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"\[otel\] extra") as info:
        importlib.import_module("redis_lock.otel")
    assert 'pip install "python-redis-lock[otel]"' in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


# -- with real locks -------------------------------------------------------------------------------


@needs_observer_parameter
def test_lock_reports_through_the_observer(
    make_client: Callable[..., Any], plain: redis.Redis, provider: MeterProvider, collect: Collect
) -> None:
    """A contended lock records a contention, both waits, a give-up, the holds; no owner id nor token appears."""
    observer = OpenTelemetryObserver(provider, name_attribute=lambda name: name.split(":")[0])
    conn = make_client()
    options: dict[str, Any] = {"observer": observer, "fencing": True}
    holder = redis_lock.Lock(conn, "job:42", id="holder-id-secret", **options)
    waiter = redis_lock.Lock(conn, "job:42", id="waiter-id-secret", **options)
    assert holder.acquire()
    token = holder.fencing_token
    assert not waiter.acquire(timeout=0.05)
    released = threading.Timer(0.1, holder.release)
    released.start()
    assert waiter.acquire(timeout=5)
    released.join()
    waiter.release()

    metrics = collect()
    job = ("redis_lock.name", "job")
    assert sums(metrics["redis_lock.contended"]) == {frozenset({job}): 2}
    waits = histograms(metrics["redis_lock.wait.duration"])
    assert waits[frozenset({job, ("redis_lock.outcome", "acquired")})].count == 2
    gave_up = waits[frozenset({job, ("redis_lock.outcome", "gave_up")})]
    assert gave_up.count == 1
    assert gave_up.sum >= 0.04
    assert histograms(metrics["redis_lock.hold.duration"])[frozenset({job})].count == 2
    values = all_attribute_values(metrics)
    assert values == {"job", "acquired", "gave_up"}
    assert not {holder.id, waiter.id, token, str(token)} & values


@needs_observer_parameter
def test_auto_renewal_counts_renewals(
    make_client: Callable[..., Any], plain: redis.Redis, provider: MeterProvider, collect: Collect
) -> None:
    """Auto-renewal of a held lock shows up on ``redis_lock.renewed``."""
    import time

    observer = OpenTelemetryObserver(provider)
    lock = redis_lock.Lock(make_client(), "renewed", expire=0.3, auto_renewal=True, observer=observer)
    with lock:
        time.sleep(0.5)
    renewed = sums(collect()["redis_lock.renewed"])
    assert renewed[frozenset()] >= 1
