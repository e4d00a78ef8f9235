"""Run the benchmark suite; print a verdict, the full table and the machine's load; draw the charts.

The driver behind ``scripts/bench.sh``:
``bash scripts/bench.sh [--quick] [--unix] [--pin] [--processes N] [-v] [pytest args...]``.

- ``--quick``: a smoke run (fewer samples, shorter windows, under a minute on two cores);
- ``--unix``: connect over the server's unix socket instead of TCP loopback;
- ``--pin``: run client processes and the server on one core (``taskset -c 0``), less noisy on small machines;
- ``-v``: show pytest's own output (hidden otherwise, and printed when pytest fails);
- ``--targets``: also print the project's performance targets, met or missed (for docs/performance.rst);
- ``--no-charts``: do not draw the SVG charts;
- ``--table FILE [--rst] [--full]``: report on a saved JSON result without running anything (``--rst``:
  the verdict as a reStructuredText table, with ``--full`` the whole table);
- ``--charts FILE``: draw the charts of a saved JSON result;
- anything else goes to pytest, e.g. ``-k handoff`` or ``--benchmark-compare``.

Each run keeps its JSON: ``.benchmarks/latest.json`` and, numbered,
``.benchmarks/<machine>/NNNN_*.json`` (``--benchmark-autosave``), so
``bash scripts/bench.sh --benchmark-compare`` compares against the previous run.
The charts go next to it, as ``.benchmarks/latest-<family>.svg``.

Every ratio reads the same way: how many times better one contender does than
another, whatever the measure (faster, fewer requests, fairer). The verdict says
it in words ("1.43x faster than ..."), the table's ratio columns as numbers
(above 1.00x the column's reference does better than that row).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".benchmarks"
LATEST = RESULTS / "latest.json"

#: Column order, and the names shown for each contender.
LABELS = {
    "redis_lock": "redis_lock 5 (ours)",
    "redis_lock-fencing": "redis_lock 5, fencing=True (ours)",
    "redis_lock-fair": "redis_lock 5, fair=True (ours)",
    "prl401": "python-redis-lock 4.0.1",
    "redis-py-0.1": "redis-py Lock, sleep=0.1",
    "redis-py-0.001": "redis-py Lock, sleep=0.001",
    "pottery": "pottery Redlock, 1 master",
    "limit": "limit (hand-written)",
    "blpop-token": "floor: BLPOP token",
    "redis_lock-async": "redis_lock 5 AsyncLock (ours)",
    "redis-py-async-0.1": "redis.asyncio Lock, sleep=0.1",
    "redis-py-async-0.001": "redis.asyncio Lock, sleep=0.001",
    "limit-async": "limit on asyncio (hand-written)",
    "redis-py-async": "redis.asyncio Lock, sleep=0.1",  # the id in results saved before the asyncio rows
    "ping": "PING",
    "redis_lock-semaphore": "redis_lock 5 Semaphore (ours)",
    "limit-semaphore": "limit: sorted-set semaphore (hand-written)",
}
ORDER = list(LABELS)
#: Our contenders: the verdict compares them with the other libraries (never with each other).
OURS = frozenset(
    {"redis_lock", "redis_lock-fencing", "redis_lock-fair", "redis_lock-async", "redis_lock-semaphore"}
)
#: Yardsticks rather than libraries: never "the best library", always shown in the table.
REFERENCES = frozenset({"limit", "limit-async", "blpop-token", "ping", "limit-semaphore"})

Bench = dict[str, Any]
Better = Literal["higher", "lower"]
Row = tuple[str, str, str, str, str]

#: Differences of timings under this fraction are within the run-to-run noise of a small machine.
NOISE = 0.10
#: The machine counts as busy when its load exceeds this fraction of its cores (see :func:`busy_reasons`).
BUSY_FRACTION = 0.5
#: Marks a negative hand-off latency in the table (explained under it).
NEGATIVE_MARK = " (*)"


def label(peer: str) -> str:
    return LABELS.get(peer, peer)


def _order(peer: str) -> int:
    return ORDER.index(peer) if peer in ORDER else len(ORDER)


def _info(bench: Bench) -> dict[str, Any]:
    info: dict[str, Any] = bench.get("extra_info", {})
    return info


def _median(bench: Bench) -> float:
    return float(bench["stats"]["median"])


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us" if abs(seconds) < 0.01 else f"{seconds * 1e3:,.1f} ms"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _is(metric: str, **fields: object) -> Callable[[Bench], bool]:
    def select(bench: Bench) -> bool:
        info = _info(bench)
        return info.get("metric") == metric and all(info.get(k) == v for k, v in fields.items())

    return select


def _field(name: str) -> Callable[[Bench], float | None]:
    def value(bench: Bench) -> float | None:
        found = _info(bench).get(name)
        return float(found) if isinstance(found, int | float) and not isinstance(found, bool) else None

    return value


def _rate(bench: Bench) -> float:
    return 1 / _median(bench)


def _batch_rate(bench: Bench) -> float:
    return float(_info(bench)["batch"]) / _median(bench)


# -- ratios: one direction everywhere --------------------------------------------------


def advantage(reference: float | None, other: float | None, better: Better) -> float | None:
    """How many times better ``reference`` does than ``other``: above 1 the reference does better.

    For a measure where higher is better (throughput, a fair share) that is
    ``reference / other``; where lower is better (latency, requests) ``other /
    reference``. None when either is missing or not positive (a ratio of a
    negative or zero figure means nothing).
    """
    if reference is None or other is None or reference <= 0 or other <= 0:
        return None
    return reference / other if better == "higher" else other / reference


def phrase(ratio: float, words: tuple[str, str]) -> str:
    """``ratio`` (an :func:`advantage`) in words, always as a factor of at least 1: "1.43x faster"."""
    if round(ratio, 2) == 1.0:
        return "on par with"
    if ratio > 1:
        return f"{ratio:,.2f}x {words[0]} than"
    return f"{1 / ratio:,.2f}x {words[1]} than"


# -- the full table --------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One block of the table: which results it reads and how it shows them."""

    title: str
    select: Callable[[Bench], bool]
    value: Callable[[Bench], float | None]
    show: Callable[[float], str]
    #: Which way is better, or None for no ratio (counts, checks).
    better: Better | None = None
    #: The contenders the two ratio columns compare with.
    ours: str = "redis_lock"
    limit: str | None = "limit"


def _title(title: str, better: Better | None) -> str:
    return f"{title} ({better} is better)" if better else title


def _contended_metrics(hold: float, metric: str, prefix: str, ours: str, limit: str) -> list[Metric]:
    at = f"hold {hold * 1000:g} ms"
    select = _is(metric, hold=hold)
    spec: list[tuple[str, str, Callable[[float], str], Better | None]] = [
        (f"{prefix}contended hand-offs/s, {at}", "per_second", "{:,.0f}/s".format, "higher"),
        (f"  {prefix}fairness: smallest share, {at}, ideal 1/N", "min_share", "{:.3f}".format, "higher"),
        (f"  {prefix}fairness: largest share, {at}, ideal 1/N", "max_share", "{:.3f}".format, "lower"),
        (f"  {prefix}mutual-exclusion violations, {at} (must be 0)", "violations", "{:.0f}".format, None),
        (
            f"  {prefix}client requests per acquisition, {at}",
            "requests_per_acquisition",
            "{:.2f}".format,
            "lower",
        ),
        (
            f"  {prefix}Redis commands per acquisition, {at}",
            "commands_per_acquisition",
            "{:.2f}".format,
            "lower",
        ),
    ]
    return [
        Metric(_title(title, better), select, _field(name), show, better, ours, limit)
        for title, name, show, better in spec
    ]


# -- fair mode -----------------------------------------------------------------------------

#: Fair mode's contender, and the fair-mode table's rows: fair, what it is judged against (ours non-fair,
#: python-redis-lock 4.0.1) and the limit.
FAIR = "redis_lock-fair"
FAIR_PEERS = (FAIR, "redis_lock", "prl401", "limit")
#: The families a contended run of fair mode is in: ``--bench-processes`` (4) and ``--bench-crowd`` (16).
CONTENDED_FAMILIES = ("contended", "contended-crowd")


def _contended_at(processes: int, hold: float) -> Callable[[Bench], bool]:
    """A synchronous contended row, of either family, with ``processes`` processes holding for ``hold``."""

    def select(bench: Bench) -> bool:
        info = _info(bench)
        return (
            info.get("metric") in CONTENDED_FAMILIES
            and info.get("processes") == processes
            and info.get("hold") == hold
        )

    return select


def fair_configs(benches: Iterable[Bench]) -> list[tuple[int, float]]:
    """(processes, hold) of every contended run of fair mode: fewest processes first, then shortest hold."""
    return sorted(
        {
            (int(_info(b)["processes"]), float(_info(b)["hold"]))
            for b in benches
            if _info(b).get("metric") in CONTENDED_FAMILIES and _info(b).get("peer") == FAIR
        }
    )


def _fair_scene(processes: int, hold: float) -> str:
    return f"fair mode, {processes} processes, hold {hold * 1000:g} ms"


def _fair_metrics(processes: int, hold: float) -> list[Metric]:
    """The fair-mode table at one (processes, hold): fair against ours non-fair, 4.0.1 and the limit."""
    at = _fair_scene(processes, hold)
    contended = _contended_at(processes, hold)

    def select(bench: Bench) -> bool:
        return contended(bench) and _info(bench).get("peer") in FAIR_PEERS

    share = "{:.3f}".format
    rate = "{:,.0f}/s".format
    count = "{:.2f}".format
    spec: list[tuple[str, str, Callable[[float], str], Better | None]] = [
        (f"{at}: smallest share (ideal 1/{processes} = {1 / processes:.3f})", "min_share", share, "higher"),
        (f"  {at}: largest share", "max_share", share, "lower"),
        (f"  {at}: acquisitions/s", "per_second", rate, "higher"),
        (
            f"  {at}: owner changes/s (the lock passing to another process)",
            "owner_changes_per_second",
            rate,
            "higher",
        ),
        (
            f"  {at}: client requests per acquisition, release included",
            "requests_per_acquisition",
            count,
            "lower",
        ),
        (
            f"  {at}: client requests per acquisition, release excluded",
            "requests_per_acquisition_without_release",
            count,
            "lower",
        ),
        (f"  {at}: Redis commands per acquisition", "commands_per_acquisition", count, "lower"),
        (f"  {at}: hand-off p50, release() -> another process's acquire()", "handoff_p50", _us, "lower"),
        (f"  {at}: hand-off p99, release() -> another process's acquire()", "handoff_p99", _us, "lower"),
        (
            f"  {at}: hand-off p50, from the release() call",
            "handoff_from_call_p50",
            _us,
            "lower",
        ),
        (
            f"  {at}: hand-off p99, from the release() call",
            "handoff_from_call_p99",
            _us,
            "lower",
        ),
    ]
    return [
        Metric(_title(title, better), select, _field(name), show, better, FAIR, "limit")
        for title, name, show, better in spec
    ]


def _renewal_metrics(count: int) -> list[Metric]:
    select = _is("renewal", count=count)
    locks = f"{count:,} auto-renewed locks"
    spec: list[tuple[str, str, Callable[[float], str], Better | None]] = [
        (f"{locks}: held after their expiry", "held_after_expiry", "{:,.0f}".format, "higher"),
        (f"  {locks}: acquired", "acquired", "{:,.0f}".format, "higher"),
        (f"  {locks}: seconds to acquire", "acquire_seconds", "{:.2f} s".format, "lower"),
        (f"  {locks}: threads", "threads", "{:,.0f}".format, "lower"),
        (f"  {locks}: peak RSS", "rss_mb", "{:,.0f} MiB".format, "lower"),
        (f"  {locks}: server connections", "connected_clients", "{:,.0f}".format, "lower"),
    ]
    return [
        Metric(_title(title, better), select, _field(name), show, better)
        for title, name, show, better in spec
    ]


def _pool_scene(info: dict[str, Any]) -> str:
    """A pool row's scene, "50 threads on a pool of 10" (or "50 tasks ..."), from its extra_info."""
    who = "threads" if info.get("flavour") == "threads" else "tasks"
    return f"{info.get('workers', 0)} {who} on a pool of {info.get('pool_size', 0)}"


def _all_served_seconds(bench: Bench) -> float | None:
    """A pool row's wall time, only when every worker got the lock (else failing fast would look good)."""
    info = _info(bench)
    if info.get("acquired") is None or info.get("acquired") != info.get("workers"):
        return None
    return _field("seconds")(bench)


def _pool_metrics(info: dict[str, Any], ours: str, limit: str) -> list[Metric]:
    scene = ("asyncio " if info.get("flavour") == "tasks" else "") + _pool_scene(info)
    workers = info.get("workers", 0)
    select = _is("pool", flavour=info.get("flavour"))
    hold = f"hold {float(info.get('hold', 0)) * 1000:g} ms, {float(info.get('timeout', 0)):g} s timeouts"
    seconds = "{:.2f} s".format
    spec: list[tuple[str, Callable[[Bench], float | None], Callable[[float], str], Better | None]] = [
        (f"{scene}, {hold}: seconds until all {workers} were served", _all_served_seconds, seconds, "lower"),
        (f"  {scene}: acquired, of {workers}", _field("acquired"), "{:,.0f}".format, "higher"),
        (f"  {scene}: seconds until every acquire returned, served or not", _field("seconds"), seconds, None),
        (f"  {scene}: connections lent out, on average", _field("mean_in_use"), "{:.1f}".format, "lower"),
        (f"  {scene}: connections lent out, at most", _field("peak_in_use"), "{:,.0f}".format, "lower"),
    ]
    return [
        Metric(_title(title, better), select, value, show, better, ours, limit)
        for title, value, show, better in spec
    ]


def _waiting_title(tasks: int) -> str:
    return f"connections open while {tasks:,} asyncio tasks wait on one held lock"


def _waiting_metrics(tasks: int) -> list[Metric]:
    select = _is("waiting-connections", tasks=tasks)
    at = f"{tasks:,} waiting tasks"
    count = "{:,.0f}".format
    spec: list[tuple[str, str, Callable[[float], str], Better | None]] = [
        (_waiting_title(tasks), "connections", count, "lower"),
        (f"  {at}: connections their first attempts opened", "connections_first_attempts", count, None),
        (f"  {at}: served once the lock was released (within the drain limit)", "served", count, None),
        (f"  {at}: seconds until the last one got the lock", "drain_seconds", "{:.2f} s".format, None),
    ]
    return [
        Metric(_title(title, better), select, _field(name), show, better, "redis_lock-async", "limit-async")
        for title, name, show, better in spec
    ]


def _pool_flavours(benches: Sequence[Bench]) -> list[tuple[dict[str, Any], str, str]]:
    """One pool row's extra_info per flavour present (threads first), with that flavour's ours and limit."""
    found = []
    for flavour, ours, limit in (
        ("threads", "redis_lock", "limit"),
        ("tasks", "redis_lock-async", "limit-async"),
    ):
        info = next((_info(b) for b in benches if _is("pool", flavour=flavour)(b)), None)
        if info is not None:
            found.append((info, ours, limit))
    return found


def metrics(result: dict[str, Any]) -> list[Metric]:
    """Every block of the table, for the rows this result has."""
    benches: list[Bench] = result["benchmarks"]
    holds = sorted({float(_info(b)["hold"]) for b in benches if _is("contended")(b)})
    counts = sorted({int(_info(b)["count"]) for b in benches if _is("renewal")(b)})
    async_holds = sorted({float(_info(b)["hold"]) for b in benches if _is("contended-async")(b)})
    waiting_counts = sorted({int(_info(b)["tasks"]) for b in benches if _is("waiting-connections")(b)})
    ours, limit = "redis_lock-async", "limit-async"
    found = [
        Metric("PING round trip", _is("ping"), _median, _us),
        Metric(
            _title("uncontended cycles/s", "higher"), _is("uncontended"), _rate, "{:,.0f}/s".format, "higher"
        ),
        Metric(
            _title("uncontended cycles/s, a new lock object per cycle", "higher"),
            _is("uncontended-fresh"),
            _rate,
            "{:,.0f}/s".format,
            "higher",
        ),
        Metric(_title("hand-off latency p50", "lower"), _is("handoff"), _field("p50"), _us, "lower"),
        Metric(_title("hand-off latency p99", "lower"), _is("handoff"), _field("p99"), _us, "lower"),
        Metric(_title("expiry wake-up p50", "lower"), _is("expiry"), _field("p50"), _ms, "lower", limit=None),
        Metric(_title("expiry wake-up max", "lower"), _is("expiry"), _field("max"), _ms, "lower", limit=None),
        *[m for hold in holds for m in _contended_metrics(hold, "contended", "", "redis_lock", "limit")],
        *[m for processes, hold in fair_configs(benches) for m in _fair_metrics(processes, hold)],
        *[m for count in counts for m in _renewal_metrics(count)],
        Metric(
            _title("asyncio uncontended cycles/s", "higher"),
            _is("uncontended-async"),
            _batch_rate,
            "{:,.0f}/s".format,
            "higher",
            ours,
            limit,
        ),
        Metric(
            _title("asyncio hand-off latency p50", "lower"),
            _is("handoff-async"),
            _field("p50"),
            _us,
            "lower",
            ours,
            limit,
        ),
        Metric(
            _title("asyncio hand-off latency p99", "lower"),
            _is("handoff-async"),
            _field("p99"),
            _us,
            "lower",
            ours,
            limit,
        ),
        Metric(
            _title("asyncio expiry wake-up p50", "lower"),
            _is("expiry-async"),
            _field("p50"),
            _ms,
            "lower",
            ours,
            None,
        ),
        Metric(
            _title("asyncio expiry wake-up max", "lower"),
            _is("expiry-async"),
            _field("max"),
            _ms,
            "lower",
            ours,
            None,
        ),
        *[
            m
            for hold in async_holds
            for m in _contended_metrics(hold, "contended-async", "asyncio ", ours, limit)
        ],
        *[m for info, mine, theirs in _pool_flavours(benches) for m in _pool_metrics(info, mine, theirs)],
        *[m for tasks in waiting_counts for m in _waiting_metrics(tasks)],
    ]
    found += _semaphore_metrics()
    # Rows of a family this script does not know yet: their pytest-benchmark median, so nothing is dropped.
    for metric in sorted({str(_info(b).get("metric")) for b in benches} - KNOWN_FAMILIES):
        found.append(
            Metric(_title(f"{metric}: median time per round", "lower"), _is(metric), _median, _us, "lower")
        )
    return found


def _semaphore_metrics() -> list[Metric]:
    """The semaphore family (benchmarks/test_semaphore.py): ours against the hand-written sorted-set semaphore."""
    ours, limit = "redis_lock-semaphore", "limit-semaphore"
    contended = _is("semaphore-contended")
    spec: list[
        tuple[
            str,
            Callable[[Bench], bool],
            Callable[[Bench], float | None],
            Callable[[float], str],
            Better | None,
        ]
    ] = [
        ("semaphore uncontended cycles/s", _is("semaphore-uncontended"), _rate, "{:,.0f}/s".format, "higher"),
        (
            "semaphore contended acquisitions/s, limit 2",
            contended,
            _field("per_second"),
            "{:,.0f}/s".format,
            "higher",
        ),
        ("  semaphore limit violations (must be 0)", contended, _field("violations"), "{:.0f}".format, None),
        (
            "  semaphore client requests per acquisition",
            contended,
            _field("requests_per_acquisition"),
            "{:.2f}".format,
            "lower",
        ),
        (
            "  semaphore Redis commands per acquisition",
            contended,
            _field("commands_per_acquisition"),
            "{:.2f}".format,
            "lower",
        ),
    ]
    return [
        Metric(_title(title, better), select, value, show, better, ours, limit)
        for title, select, value, show, better in spec
    ]


KNOWN_FAMILIES = frozenset(
    {
        "semaphore-uncontended",
        "semaphore-contended",
        "ping",
        "uncontended",
        "handoff",
        "expiry",
        "contended",
        "contended-crowd",
        "renewal",
        "uncontended-async",
        "handoff-async",
        "expiry-async",
        "contended-async",
        "pool",
        "waiting-connections",
    }
)


def _ratio_cell(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:,.2f}x"


def _values(benches: Iterable[Bench], metric: Metric) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for bench in benches:
        if metric.select(bench):
            found[str(_info(bench).get("peer"))] = metric.value(bench)
    return found


def table_rows(result: dict[str, Any]) -> list[Row]:
    """The comparison table: measure, contender, value, ours vs this row, limit vs this row."""
    benches: list[Bench] = result["benchmarks"]
    rows: list[Row] = []
    for metric in metrics(result):
        found = _values(benches, metric)
        if not found:
            continue
        ours = found.get(metric.ours)
        limit = found.get(metric.limit) if metric.limit else None
        title = metric.title
        for peer in sorted(found, key=_order):
            value = found[peer]
            shown = "n/a" if value is None else metric.show(value)
            ours_vs = limit_vs = None
            if value is not None and value <= 0 and metric.better == "lower":
                shown += NEGATIVE_MARK if value < 0 else ""
            elif metric.better is not None:
                ours_vs = advantage(ours, value, metric.better)
                limit_vs = advantage(limit, value, metric.better)
            rows.append((title, label(peer), shown, _ratio_cell(ours_vs), _ratio_cell(limit_vs)))
            title = ""
    return rows


HEADERS: Row = ("measure", "contender", "value", "ours vs this", "limit vs this")
TABLE_NOTE = (
    "ours vs this / limit vs this: how many times better ours / the hand-written limit does than this row,\n"
    "on every row the same way: above 1.00x the reference is faster, fairer or needs fewer requests;\n"
    "below 1.00x this row does better. Ours is redis_lock 5 (AsyncLock on asyncio rows, fair=True on fair-mode\n"
    "rows)."
)
NEGATIVE_NOTE = (
    "(*) negative: the waiter's acquire() returned before the holder's release() did. The floor is a list\n"
    "    holding one token: Redis hands it to the blocked BLPOP inside the LPUSH, and the waiter's reply can\n"
    "    arrive before the releaser's own. It is the server's hand-off cost, with no lock around it; read it\n"
    "    as 'about zero'. Fair mode hands the lock over inside its release script too, so its hand-off can be\n"
    "    negative the same way. A ratio against a negative figure would mean nothing, so it has none."
)


# -- the verdict -----------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One line of the verdict: a measure on which ours is compared with the other libraries."""

    name: str
    metric: Metric
    better: Better
    #: How the ratio reads when ours does better, and when it does worse: ("faster", "slower").
    words: tuple[str, str]
    #: A timing, subject to the machine's noise (counts of requests are not).
    timing: bool = True


def measures(result: dict[str, Any]) -> list[Measure]:
    """The verdict's measures, for the rows this result has."""
    by_title = {m.title: m for m in metrics(result)}

    def get(title: str, better: Better) -> Metric | None:
        return by_title.get(_title(title, better))

    speed = ("faster", "slower")
    out: list[Measure] = []
    for prefix, ours in (("", "redis_lock"), ("asyncio ", "redis_lock-async")):
        plain: list[tuple[str, str, Better, tuple[str, str]]] = [
            ("uncontended throughput", f"{prefix}uncontended cycles/s", "higher", speed),
            (
                "uncontended throughput, new object per cycle",
                f"{prefix}uncontended cycles/s, a new lock object per cycle",
                "higher",
                speed,
            ),
            ("hand-off latency p50", f"{prefix}hand-off latency p50", "lower", speed),
            ("hand-off latency p99", f"{prefix}hand-off latency p99", "lower", speed),
            ("expiry wake-up p50", f"{prefix}expiry wake-up p50", "lower", speed),
            ("expiry wake-up, worst", f"{prefix}expiry wake-up max", "lower", speed),
        ]
        for name, title, better, words in plain:
            metric = get(title, better)
            if metric is not None:
                out.append(Measure(prefix + name, metric, better, words))
        family = "contended-async" if ours.endswith("-async") else "contended"
        holds = sorted({float(_info(b)["hold"]) for b in result["benchmarks"] if _is(family)(b)})
        for hold in holds:
            at = f"hold {hold * 1000:g} ms"
            per_hold: list[tuple[str, str, Better, tuple[str, str], bool]] = [
                (
                    f"contended hand-offs/s, {at}",
                    f"{prefix}contended hand-offs/s, {at}",
                    "higher",
                    speed,
                    True,
                ),
                (
                    f"contention fairness, {at}",
                    f"  {prefix}fairness: smallest share, {at}, ideal 1/N",
                    "higher",
                    ("fairer", "less fair"),
                    True,
                ),
                (
                    f"requests/acquisition, {at}",
                    f"  {prefix}client requests per acquisition, {at}",
                    "lower",
                    ("fewer requests", "more requests"),
                    False,
                ),
                (
                    f"Redis commands/acquisition, {at}",
                    f"  {prefix}Redis commands per acquisition, {at}",
                    "lower",
                    ("fewer commands", "more commands"),
                    False,
                ),
            ]
            for name, title, better, words, timing in per_hold:
                metric = get(title, better)
                if metric is not None:
                    out.append(Measure(prefix + name, metric, better, words, timing))
    waiting = sorted({int(_info(b)["tasks"]) for b in result["benchmarks"] if _is("waiting-connections")(b)})
    for tasks in waiting:
        metric = get(_waiting_title(tasks), "lower")
        if metric is not None:
            words = ("fewer connections", "more connections")
            out.append(
                Measure(f"asyncio {tasks:,} waiters: connections", metric, "lower", words, timing=False)
            )
    return out


@dataclass(frozen=True)
class Comparison:
    """Ours against the best other library (or the next best, when ours is best) on one measure."""

    ours: str
    #: The other library's label and figure; empty when no other library was measured.
    rival: str = ""
    theirs: str = ""
    #: "1.43x faster than", "on par with"; empty when there is no ratio.
    ratio: str = ""
    ours_best: bool = False
    noisy: bool = False

    @property
    def text(self) -> str:
        if not self.rival:
            return f"ours {self.ours} (no other library measured in this run)"
        if not self.ratio:
            return f"ours {self.ours}; {self.rival} {self.theirs} (no ratio: a figure is zero or negative)"
        head = f"ours {self.ours}, best:" if self.ours_best else f"ours {self.ours}:"
        role = "next best" if self.ours_best else "best"
        noise = " (within noise)" if self.noisy else ""
        return f"{head} {self.ratio} {self.rival} ({self.theirs}, {role}){noise}"


def compare(
    values: dict[str, float | None],
    ours: str,
    better: Better,
    words: tuple[str, str],
    show: Callable[[float], str],
    *,
    timing: bool = False,
) -> Comparison | None:
    """Who does best among the libraries, and ours against it (or against the next best when ours is best).

    ``values`` maps contender ids to their figure; references (the limit, the
    floor) are left out. A ``timing`` within :data:`NOISE` of its rival is
    flagged. None when ours was not measured.
    """
    mine = values.get(ours)
    if mine is None:
        return None
    others = {p: v for p, v in values.items() if p not in OURS and p not in REFERENCES and v is not None}
    if not others:
        return Comparison(show(mine))

    def rank(item: tuple[str, float]) -> float:
        return -item[1] if better == "higher" else item[1]

    rival, theirs = min(others.items(), key=rank)
    ratio = advantage(mine, theirs, better)
    if ratio is None:
        return Comparison(show(mine), label(rival), show(theirs))
    return Comparison(
        show(mine),
        label(rival),
        show(theirs),
        phrase(ratio, words),
        ours_best=rank((ours, mine)) <= rank((rival, theirs)),
        noisy=timing and abs(ratio - 1) < NOISE,
    )


def verdict_line(
    values: dict[str, float | None],
    ours: str,
    better: Better,
    words: tuple[str, str],
    show: Callable[[float], str],
    *,
    timing: bool = False,
) -> str | None:
    """:func:`compare` as one sentence, or None when ours was not measured."""
    found = compare(values, ours, better, words, show, timing=timing)
    return None if found is None else found.text


def _served(info: dict[str, Any]) -> str:
    """A pool row in words: "0.62 s, all 50 served", "4 of 50 served in 5.03 s"."""
    workers, acquired, seconds = info.get("workers", 0), info.get("acquired"), float(info.get("seconds", 0))
    if acquired is None:
        return f"no report: {', '.join(info.get('error_kinds') or {}) or 'killed'}"
    if acquired == workers:
        return f"{seconds:.2f} s, all {workers} served"
    return f"{acquired:,} of {workers} served in {seconds:.2f} s"


def _pool_rank(info: dict[str, Any]) -> tuple[float, float]:
    """Who does best on a pool: more workers served first, then less time."""
    return (-float(info.get("acquired") or 0), float(info.get("seconds", 0)))


def pool_comparisons(benches: Sequence[Bench]) -> list[tuple[str, Comparison, list[str]]]:
    """Per pool flavour: (measure, ours against the best other library, the other libraries short of all).

    A contender that served fewer workers does worse, however fast it failed; between
    two that served as many, the faster does better. So the ratio is of workers
    served ("more served") when the counts differ, else of time ("faster").
    """
    out: list[tuple[str, Comparison, list[str]]] = []
    seconds = _field("seconds")
    for info, ours, _ in _pool_flavours(benches):
        rows = {str(_info(b).get("peer")): b for b in benches if _is("pool", flavour=info["flavour"])(b)}
        if ours not in rows:
            continue
        name = ("asyncio " if ours.endswith("-async") else "") + _pool_scene(info)
        mine = _info(rows[ours])
        others = {p: _info(b) for p, b in rows.items() if p not in OURS and p not in REFERENCES}
        if not others:
            out.append((name, Comparison(_served(mine)), []))
            continue
        rival = min(others, key=lambda p: (_pool_rank(others[p]), _order(p)))
        theirs = others[rival]
        same = mine.get("acquired") == theirs.get("acquired")
        if same:
            ratio = advantage(seconds(rows[ours]), seconds(rows[rival]), "lower")
            words = ("faster", "slower")
        else:
            ratio = advantage(_field("acquired")(rows[ours]), _field("acquired")(rows[rival]), "higher")
            words = ("more served", "fewer served")
        found = Comparison(
            _served(mine),
            label(rival),
            _served(theirs),
            "" if ratio is None else phrase(ratio, words),
            ours_best=_pool_rank(mine) <= _pool_rank(theirs),
            noisy=same and ratio is not None and abs(ratio - 1) < NOISE,
        )
        short = [
            f"{label(p)}: {_served(others[p])}"
            for p in sorted(others, key=_order)
            if p != rival and others[p].get("acquired") != others[p].get("workers")
        ]
        out.append((name, found, short))
    return out


def verdict_cells(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The verdict as short cells, for a table that fits a docs page: measure, ours, compared with, ratio."""
    benches: list[Bench] = result["benchmarks"]
    found_all: list[tuple[str, Comparison]] = []
    for measure in measures(result):
        metric = measure.metric
        found = compare(
            _values(benches, metric),
            metric.ours,
            measure.better,
            measure.words,
            metric.show,
            timing=measure.timing,
        )
        if found is not None:
            found_all.append((measure.name, found))
    found_all += [(name, found) for name, found, _ in pool_comparisons(benches)]
    cells: list[tuple[str, str, str, str]] = []
    for name, found in found_all:
        ratio = found.ratio.removesuffix(" than").replace("on par with", "on par")
        who = f"{found.rival}: {found.theirs}" if found.rival else "no other library"
        cells.append(
            (
                name,
                found.ours + (" (best)" if found.ours_best else ""),
                who,
                ratio + (" *" if found.noisy else ""),
            )
        )
    return cells


def _violations_line(benches: Sequence[Bench]) -> str | None:
    rows = [b for b in benches if _info(b).get("metric") in (*CONTENDED_FAMILIES, "contended-async")]
    if not rows:
        return None
    bad = sorted(
        {label(str(_info(b).get("peer"))) for b in rows if (_field("violations")(b) or 0) > 0},
    )
    if bad:
        return f"VIOLATED by {', '.join(bad)}: two processes held the lock at once"
    return f"never held twice at once, by any of the {len(rows)} contended runs"


def _kept(info: dict[str, Any]) -> str:
    """How many locks a renewal row kept, and with what: "1,000 of 1,000 with 3 threads, 1 connection, 37 MiB"."""
    held = info.get("held_after_expiry")
    if held is None:
        error = str(info.get("error") or "no report").split("first error: ")[-1]
        text = (
            f"none: stopped after acquiring {info.get('acquired', 0):,} of {info.get('count', 0):,} ({error})"
        )
    else:
        text = "none" if held == 0 else f"{held:,.0f} of {info.get('count', 0):,}"
    parts = []
    for key, one, many in (
        ("threads", "thread", "threads"),
        ("connected_clients", "connection", "connections"),
    ):
        value = info.get(key)
        if isinstance(value, int | float):
            parts.append(f"{value:,.0f} {one if value == 1 else many}")
    if isinstance(info.get("rss_mb"), int | float):
        parts.append(f"{info['rss_mb']:,.0f} MiB")
    return f"{text} ({', '.join(parts)})" if parts else text


#: How the fair-mode verdict names its yardsticks.
FAIR_RIVALS = {"redis_lock": "non-fair", "prl401": "python-redis-lock 4.0.1"}


def _against(
    mine: float | None,
    theirs: float | None,
    better: Better,
    words: tuple[str, str],
    who: str,
    shown: str,
    *,
    timing: bool,
) -> str:
    """ "1.34x fairer than non-fair (0.185)": ours against one yardstick, the ratio a factor >= 1 in words."""
    ratio = advantage(mine, theirs, better)
    if ratio is None:
        return f"{who} {shown} (no ratio)"
    noise = " (within noise)" if timing and abs(ratio - 1) < NOISE else ""
    return f"{phrase(ratio, words)} {who} ({shown}){noise}"


def _number(info: dict[str, Any], name: str) -> float | None:
    found = info.get(name)
    return float(found) if isinstance(found, int | float) and not isinstance(found, bool) else None


def _shares(info: dict[str, Any]) -> str:
    return f"{info.get('min_share', 0):.3f} to {info.get('max_share', 0):.3f}"


def _requests(info: dict[str, Any]) -> str:
    without = _number(info, "requests_per_acquisition_without_release")
    shown = "n/a" if without is None else f"{without:.2f}"
    return f"{shown}; {info.get('requests_per_acquisition', 0):.2f} with the release"


def _handoff_p50(info: dict[str, Any]) -> str:
    p50 = _number(info, "handoff_from_call_p50")
    returned = _number(info, "handoff_p50")
    if p50 is None:
        return "n/a"
    return _us(p50) + ("" if returned is None else f"; {_us(returned)} from its return")


def _per_second(info: dict[str, Any]) -> str:
    return f"{info.get('per_second', 0):,.0f}/s"


#: The fair-mode verdict's lines: (measure, extra_info field, better, words, how a row shows, a timing?).
FAIR_VERDICT: tuple[tuple[str, str, Better, tuple[str, str], Callable[[dict[str, Any]], str], bool], ...] = (
    ("shares", "min_share", "higher", ("fairer", "less fair"), _shares, True),
    (
        "requests/acquisition",
        "requests_per_acquisition_without_release",
        "lower",
        ("fewer requests", "more requests"),
        _requests,
        False,
    ),
    ("hand-off p50", "handoff_from_call_p50", "lower", ("faster", "slower"), _handoff_p50, True),
    ("acquisitions/s", "per_second", "higher", ("faster", "slower"), _per_second, True),
)


def _fair_lines(benches: Sequence[Bench]) -> list[tuple[str, str]]:
    """Fair mode against ours non-fair and 4.0.1, per (processes, hold): shares, requests, hand-off and rate.

    Requests are compared without the release (what taking the lock costs) and shown with it too; the
    hand-off is that of the contended run, from the old holder's release() call to another process's
    acquire() returning (never negative, so always a ratio), and shown from release()'s return too.
    """
    lines: list[tuple[str, str]] = []
    for processes, hold in fair_configs(benches):
        at = _contended_at(processes, hold)
        rows = {str(_info(b).get("peer")): _info(b) for b in benches if at(b)}
        mine = rows[FAIR]
        rivals = [(who, rows[peer]) for peer, who in FAIR_RIVALS.items() if peer in rows]
        scene = f"fair, {processes} processes, hold {hold * 1000:g} ms"
        for name, key, better, words, show, timing in FAIR_VERDICT:
            head = f"ours {show(mine)}"
            if key == "min_share":
                head += f" (ideal {1 / processes:.3f})"
            compared = ", ".join(
                _against(
                    _number(mine, key), _number(info, key), better, words, who, show(info), timing=timing
                )
                for who, info in rivals
            )
            lines.append((f"{scene}: {name}", f"{head}: {compared or 'no yardstick measured in this run'}"))
    return lines


def _renewal_lines(benches: Sequence[Bench]) -> list[tuple[str, str]]:
    """The renewal story: how many locks ours kept past their expiry, with what, and what the others kept."""
    lines: list[tuple[str, str]] = []
    counts = sorted({int(_info(b)["count"]) for b in benches if _is("renewal")(b)})
    for count in counts:
        rows = {str(_info(b).get("peer")): _info(b) for b in benches if _is("renewal", count=count)(b)}
        others = [p for p in sorted(rows, key=_order) if p not in OURS and p not in REFERENCES]
        for ours in ("redis_lock", "redis_lock-async"):
            if ours not in rows:
                continue
            text = f"ours kept {_kept(rows[ours])}"
            if ours.endswith("-async"):
                pass  # the other libraries are on the line above
            elif others:
                text += "; " + "; ".join(f"{label(p)} kept {_kept(rows[p])}" for p in others)
            else:
                text += "; no other library measured in this run"
            prefix = "asyncio " if ours.endswith("-async") else ""
            lines.append((f"{prefix}{count:,} auto-renewed locks", text))
    return lines


def verdict(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(measure, sentence) pairs, one per measure the run has."""
    benches: list[Bench] = result["benchmarks"]
    lines: list[tuple[str, str]] = []
    for measure in measures(result):
        metric = measure.metric
        values = _values(benches, metric)
        line = verdict_line(
            values, metric.ours, measure.better, measure.words, metric.show, timing=measure.timing
        )
        if line is not None:
            lines.append((measure.name, line))
    for name, found, short in pool_comparisons(benches):
        lines.append((name, "; ".join([found.text, *short])))
    exclusion = _violations_line(benches)
    if exclusion is not None:
        lines.append(("mutual exclusion", exclusion))
    lines.extend(_fair_lines(benches))
    lines.extend(_renewal_lines(benches))
    return lines


# -- the machine's load ----------------------------------------------------------------


@dataclass
class Load:
    """What else the machine did during the run."""

    cores: int
    before: tuple[float, float, float]
    after: tuple[float, float, float] | None = None
    #: CPU seconds the whole machine spent busy during the run, and the run's own (its process tree).
    machine_cpu: float | None = None
    own_cpu: float | None = None
    wall: float | None = None

    @property
    def others_cores(self) -> float | None:
        """Cores other processes kept busy on average during the run (None where unknown)."""
        if self.machine_cpu is None or self.own_cpu is None or not self.wall:
            return None
        return max(0.0, self.machine_cpu - self.own_cpu) / self.wall

    def as_json(self) -> dict[str, Any]:
        return {
            "cores": self.cores,
            "before": list(self.before),
            "after": list(self.after) if self.after else None,
            "machine_cpu": self.machine_cpu,
            "own_cpu": self.own_cpu,
            "wall": self.wall,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Load:
        after = data.get("after")
        return cls(
            int(data["cores"]),
            (data["before"][0], data["before"][1], data["before"][2]),
            (after[0], after[1], after[2]) if after else None,
            data.get("machine_cpu"),
            data.get("own_cpu"),
            data.get("wall"),
        )


def busy_reasons(cores: int, load_before: float, others_cores: float | None) -> list[str]:
    """Why the machine was too busy for the figures to mean much (empty when it was quiet enough).

    The rule: the 1-minute load average before the run, or the cores other
    processes kept busy on average during it, above :data:`BUSY_FRACTION` x
    cores. The load average after the run is not used: the run's own processes
    are in it.
    """
    limit = BUSY_FRACTION * cores
    reasons = []
    if load_before > limit:
        reasons.append(f"load average {load_before:.2f} before the run, above {limit:g}")
    if others_cores is not None and others_cores > limit:
        reasons.append(f"other processes kept {others_cores:.2f} cores busy during the run, above {limit:g}")
    return reasons


def load_lines(load: Load) -> list[str]:
    """The load report: figures, the rule, and the conclusion in plain words."""
    limit = BUSY_FRACTION * load.cores
    after = "" if load.after is None else f", {load.after[0]:.2f} after (the run's own processes count in it)"
    lines = [
        f"machine load: load average (1 min) {load.before[0]:.2f} before the run{after}, {load.cores} cores"
    ]
    others = load.others_cores
    if others is not None:
        lines.append(f"  other processes kept {others:.2f} cores busy on average during the run")
    lines.append(
        f"  rule: too busy when the load average before the run, or the cores other processes used during it,"
        f" is above {BUSY_FRACTION:g} x cores = {limit:g}"
    )
    reasons = busy_reasons(load.cores, load.before[0], others)
    if reasons:
        lines.append(
            f"  THE MACHINE WAS TOO BUSY for these figures to mean much ({'; '.join(reasons)}):"
            " compare contenders within this run only, and rerun on an idle machine before quoting them."
        )
    else:
        lines.append("  the machine was quiet enough: differences under 10 % are still within its noise.")
    return lines


def _cpu_seconds_busy() -> float | None:
    """CPU seconds all cores have spent not idle since boot (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(f) for f in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """This process's CPU time and that of every descendant it has reaped."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class LoadMeter:
    """Measures the machine's load around the run (see :func:`busy_reasons`)."""

    def __init__(self) -> None:
        self.load = Load(os.cpu_count() or 1, os.getloadavg())
        self._busy = _cpu_seconds_busy()
        self._own = _own_cpu_seconds()
        self._start = time.monotonic()

    def finish(self) -> Load:
        self.load.after = os.getloadavg()
        self.load.wall = time.monotonic() - self._start
        busy = _cpu_seconds_busy()
        if busy is not None and self._busy is not None:
            self.load.machine_cpu = busy - self._busy
            self.load.own_cpu = _own_cpu_seconds() - self._own
        return self.load


# -- the targets (bookkeeping for the performance page) ---------------------------------


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The project's performance targets: (target, measured, met?)."""
    benches: list[Bench] = result["benchmarks"]

    def get(metric: str, peer: str, value: Callable[[Bench], float | None], **fields: object) -> float | None:
        for bench in benches:
            if _is(metric, peer=peer, **fields)(bench):
                return value(bench)
        return None

    out: list[tuple[str, str, bool | None]] = []

    def check(name: str, a: float | None, b: float | None, ok: Callable[[float], bool]) -> None:
        if a is None or b is None or b == 0:
            out.append((name, "not measured", None))
        else:
            out.append((name, f"{a / b:.2f}x", ok(a / b)))

    ours_cycle = get("uncontended", "redis_lock", _rate)
    check(
        "uncontended cycle >= 1.5x python-redis-lock 4.0.1",
        ours_cycle,
        get("uncontended", "prl401", _rate),
        lambda r: r >= 1.5,
    )
    check(
        "uncontended cycle >= 0.9x the limit",
        ours_cycle,
        get("uncontended", "limit", _rate),
        lambda r: r >= 0.9,
    )
    p50, p99 = _field("p50"), _field("p99")
    check(
        "hand-off p50 <= 1.2x the limit's BLPOP hand-off",
        get("handoff", "redis_lock", p50),
        get("handoff", "limit", p50),
        lambda r: r <= 1.2,
    )
    check(
        "hand-off p99 <= python-redis-lock 4.0.1's",
        get("handoff", "redis_lock", p99),
        get("handoff", "prl401", p99),
        lambda r: r <= 1.0,
    )
    worst = get("expiry", "redis_lock", _field("max"))
    out.append(
        (
            "expiry wake-up < 50 ms after the key expires",
            "not measured" if worst is None else f"max {_ms(worst)}",
            None if worst is None else worst < 0.05,
        )
    )
    requests = [
        float(_info(b)["requests_per_acquisition"]) for b in benches if _is("contended", peer="redis_lock")(b)
    ]
    out.append(
        (
            "<= 4 client requests per contended acquisition, at every hold time",
            "not measured" if not requests else ", ".join(f"{r:.2f}" for r in requests),
            None if not requests else max(requests) <= 4.005,
        )
    )
    out.extend(_fair_targets(benches))
    held = get("renewal", "redis_lock", _field("held_after_expiry"), count=10_000)
    out.append(
        (
            "10,000 locks held with auto-renewal in one process",
            "not measured" if held is None else f"{held:,.0f} held",
            None if held is None else held >= 10_000,
        )
    )
    return out


def _fair_targets(benches: Sequence[Bench]) -> list[tuple[str, str, bool | None]]:
    """Fair mode's targets (issue #16), at hold 1 ms with 4 processes, and its two-party hand-off."""
    at = _contended_at(4, 0.001)
    rows = {str(_info(b).get("peer")): _info(b) for b in benches if at(b)}
    fair, plain = rows.get(FAIR, {}), rows.get("redis_lock", {})
    out: list[tuple[str, str, bool | None]] = []
    share = _number(fair, "min_share")
    out.append(
        (
            "fair: smallest share >= 0.24 at hold 1 ms, 4 processes",
            "not measured" if share is None else f"{share:.3f} (non-fair {plain.get('min_share', 0):.3f})",
            None if share is None else share >= 0.24,
        )
    )
    requests = _number(fair, "requests_per_acquisition_without_release")
    out.append(
        (
            "fair: <= 2.1 client requests per contended acquisition, release excluded, hold 1 ms, 4 processes",
            "not measured" if requests is None else f"{_requests(fair)} (non-fair {_requests(plain)})",
            None if requests is None else requests <= 2.1,
        )
    )
    handoff = {str(_info(b).get("peer")): _field("p50")(b) for b in benches if _is("handoff")(b)}
    for name, mine, theirs in (
        (
            "fair: hand-off p50 <= 0.6x non-fair's (two processes)",
            handoff.get(FAIR),
            handoff.get("redis_lock"),
        ),
        (
            "fair: hand-off p50 <= 0.6x non-fair's (contended, hold 1 ms, 4 processes, from the release() call)",
            _number(fair, "handoff_from_call_p50"),
            _number(plain, "handoff_from_call_p50"),
        ),
    ):
        if mine is None or theirs is None or theirs <= 0:
            out.append((name, "not measured", None))
        elif mine <= 0:
            # Handed over inside the release script: the waiter's acquire() returned before release() did.
            out.append((name, f"{_us(mine)}, at most zero, against {_us(theirs)}", True))
        else:
            out.append(
                (name, f"{mine / theirs:.2f}x ({_us(mine)} against {_us(theirs)})", mine / theirs <= 0.6)
            )
    return out


# -- rendering ---------------------------------------------------------------------------


def render_text(rows: Sequence[Sequence[str]], headers: Sequence[str], *, right: int = 2) -> str:
    """A plain-text table; columns from ``right`` on are right-aligned."""
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i < right else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in (headers, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_rst(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """An RST simple table (an empty first cell would end a row group: it gets a backslash-space)."""
    filled = [tuple(cell or "\\" for cell in row) for row in rows]
    widths = [max(len(r[i]) for r in (headers, *filled)) for i in range(len(headers))]
    rule = "  ".join("=" * w for w in widths)
    body = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in filled]
    head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(headers)).rstrip()
    return "\n".join([rule, head, rule, *body, rule])


def run_date(result: dict[str, Any]) -> str:
    stamp = str(result.get("datetime", ""))
    try:
        return datetime.datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return stamp or "unknown date"


def machine_line(result: dict[str, Any]) -> str:
    machine = result.get("machine_info", {})
    return (
        f"run of {run_date(result)}{' (quick run)' if machine.get('quick') else ''}: "
        f"{machine.get('nproc')} CPUs ({machine.get('cpu_model')}), affinity {machine.get('affinity')}; "
        f"Python {machine.get('python_version')}; {_redis_version(machine)}; "
        f"redis-py {machine.get('redis_py')}; transport {machine.get('transport')}"
    )


def report(
    result: dict[str, Any], *, rst: bool = False, full: bool = True, show_targets: bool = False
) -> str:
    """The whole report: the run, the load, the verdict, then (``full``) the table."""
    conditions = result.get("redis_lock_load")
    load = Load.from_json(conditions) if conditions else None
    lines = verdict(result)
    if rst:
        headers = ("measure", "ours", "best other library (next best where ours is best)", "ours against it")
        parts = [render_rst(verdict_cells(result), headers)]
        if full:
            parts += ["", render_rst(table_rows(result), HEADERS)]
        return "\n".join(parts)
    parts = [machine_line(result)]
    if load is not None:
        parts += load_lines(load)
    width = max((len(name) for name, _ in lines), default=0)
    parts += [
        "",
        "VERDICT: ours against the best other library on each measure (or the next best where ours is best);",
        "every ratio is a factor >= 1 with its direction in words. References (the limit, the floor) are in the table.",
    ]
    parts += [f"  {name.ljust(width)}  {text}" for name, text in lines] or [
        "  (no measure of ours in this run)"
    ]
    if full:
        rows = table_rows(result)
        parts += ["", render_text(rows, HEADERS), "", TABLE_NOTE]
        if any(NEGATIVE_MARK in row[2] for row in rows):
            parts += [NEGATIVE_NOTE]
    if show_targets:
        parts += ["", "targets (the project's own bookkeeping):"]
        for name, measured, ok in targets(result):
            mark = "n/a " if ok is None else ("MET " if ok else "MISS")
            parts.append(f"  [{mark}] {name}: {measured}")
    return "\n".join(parts)


# -- charts ------------------------------------------------------------------------------

OURS_COLOUR = "#2a7a3b"
OTHER_COLOUR = "#4c72b0"
REFERENCE_COLOUR = "#9a9a9a"


@dataclass(frozen=True)
class Series:
    """One set of bars: a figure per contender."""

    name: str
    values: dict[str, float | None]
    shade: float = 1.0


@dataclass(frozen=True)
class Panel:
    """One axes of a chart: horizontal bars, one group per contender."""

    title: str
    unit: str
    series: tuple[Series, ...]
    show: Callable[[float], str]
    log: bool = False
    #: A dashed vertical line, e.g. the ideal share 1/N: (x, label).
    line: tuple[float, str] | None = None
    #: Extra text after a contender's bars (threads, connections).
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Chart:
    """One SVG file."""

    slug: str
    title: str
    panels: tuple[Panel, ...]


def _series(
    benches: Sequence[Bench],
    select: Callable[[Bench], bool],
    name: str,
    value: Callable[[Bench], float | None],
    shade: float = 1.0,
) -> Series:
    return Series(name, {str(_info(b).get("peer")): value(b) for b in benches if select(b)}, shade)


def _scaled(values: Series, factor: float) -> Series:
    return Series(
        values.name, {p: None if v is None else v * factor for p, v in values.values.items()}, values.shade
    )


def charts(result: dict[str, Any]) -> list[Chart]:
    """The charts this result has rows for (a family with no rows gets no chart)."""
    benches: list[Bench] = result["benchmarks"]
    out: list[Chart] = []
    for suffix, kind in (("", ""), ("-async", "asyncio ")):
        handoff = _is("handoff" + suffix)
        p50 = _scaled(_series(benches, handoff, "p50", _field("p50")), 1e6)
        p99 = _scaled(_series(benches, handoff, "p99", _field("p99"), 0.55), 1e6)
        if p50.values:
            out.append(
                Chart(
                    f"handoff{suffix}",
                    f"{kind}hand-off latency: the holder's release() returned -> the waiter's acquire() returned",
                    (
                        Panel(
                            "p50 and p99 (lower is better)",
                            "time, log scale",
                            (p50, p99),
                            _us_value,
                            log=True,
                        ),
                    ),
                )
            )
        expiry = _is("expiry" + suffix)
        e50 = _scaled(_series(benches, expiry, "p50", _field("p50")), 1e3)
        emax = _scaled(_series(benches, expiry, "max", _field("max"), 0.55), 1e3)
        if e50.values:
            out.append(
                Chart(
                    f"expiry{suffix}",
                    f"{kind}expiry wake-up: the holder's key expired -> a waiter holds the lock",
                    (
                        Panel(
                            "p50 and worst (lower is better)",
                            "time, log scale",
                            (e50, emax),
                            "{:,.1f} ms".format,
                            log=True,
                        ),
                    ),
                )
            )
        contended = [b for b in benches if _is("contended" + suffix)(b)]
        holds = sorted({float(_info(b)["hold"]) for b in contended})
        if holds:
            processes = int(_info(contended[0]).get("processes", 0)) or None
            fairness: list[Panel] = []
            throughput: list[Panel] = []
            for hold in holds:
                at = _is("contended" + suffix, hold=hold)
                fairness.append(
                    Panel(
                        f"hold {hold * 1000:g} ms, {processes} processes",
                        "share of all acquisitions (ideal 1/N; closer is fairer)",
                        (
                            _series(benches, at, "smallest share", _field("min_share")),
                            _series(benches, at, "largest share", _field("max_share"), 0.55),
                        ),
                        "{:.3f}".format,
                        line=(1 / processes, "1/N") if processes else None,
                    )
                )
                throughput.append(
                    Panel(
                        f"hold {hold * 1000:g} ms: hand-offs per second (higher is better)",
                        "acquisitions per second, all processes",
                        (_series(benches, at, "hand-offs/s", _field("per_second")),),
                        "{:,.0f}/s".format,
                    )
                )
                throughput.append(
                    Panel(
                        f"hold {hold * 1000:g} ms: cost per acquisition (lower is better)",
                        "per acquisition",
                        (
                            _series(benches, at, "client requests", _field("requests_per_acquisition")),
                            _series(benches, at, "Redis commands", _field("commands_per_acquisition"), 0.55),
                        ),
                        "{:.2f}".format,
                    )
                )
            out.append(
                Chart(
                    f"fairness{suffix}",
                    f"{kind}contended fairness: each process's share of the lock",
                    tuple(fairness),
                )
            )
            out.append(Chart(f"contended{suffix}", f"{kind}contended throughput and cost", tuple(throughput)))
        uncontended = _is("uncontended" + suffix)
        rate = _batch_rate if suffix else _rate
        cycles = _series(benches, uncontended, "cycles/s", rate)
        if cycles.values:
            out.append(
                Chart(
                    f"uncontended{suffix}",
                    f"{kind}uncontended acquire() + release() of a free lock, one client",
                    (
                        Panel(
                            "cycles per second (higher is better)",
                            "cycles per second",
                            (cycles,),
                            "{:,.0f}/s".format,
                        ),
                    ),
                )
            )
    counts = sorted({int(_info(b)["count"]) for b in benches if _is("renewal")(b)})
    panels = []
    for count in counts:
        at = _is("renewal", count=count)
        held = _series(benches, at, "held after their expiry", _field("held_after_expiry"))
        notes = {}
        for bench in benches:
            if at(bench):
                info = _info(bench)
                note = ", ".join(
                    f"{info[k]:,.0f} {what}"
                    for k, what in (("threads", "threads"), ("connected_clients", "conn."), ("rss_mb", "MiB"))
                    if isinstance(info.get(k), int | float)
                )
                if info.get("held_after_expiry") is None:
                    error = str(info.get("error") or "").split("first error: ")[-1].split(": ")[-1]
                    note = f"none held: stopped after {info.get('acquired', 0):,} locks ({error}); {note}"
                notes[str(info.get("peer"))] = note
        panels.append(
            Panel(
                f"{count:,} locks with auto_renewal=True, expire=2 s, held 3 s (higher is better)",
                f"locks still held after their expiry (of {count:,})",
                (held,),
                "{:,.0f}".format,
                notes=notes,
            )
        )
    if panels:
        out.append(
            Chart("renewal", "renewal at scale: one process keeps many auto-renewed locks", tuple(panels))
        )
    out.extend(_fair_charts(benches))
    out.extend(_pool_charts(benches))
    for metric in sorted({str(_info(b).get("metric")) for b in benches} - KNOWN_FAMILIES):
        median = _scaled(_series(benches, _is(metric), "median", _median), 1e6)
        out.append(
            Chart(
                metric,
                f"{metric}: pytest-benchmark median per round",
                (Panel("median (lower is better)", "microseconds", (median,), "{:,.0f} us".format),),
            )
        )
    return out


def _pool_note(info: dict[str, Any]) -> str:
    """What a pool row's bar does not show: who was served, and the connections lent out."""
    workers, acquired = info.get("workers", 0), info.get("acquired")
    if acquired is None:
        return f"no report: {', '.join(info.get('error_kinds') or {}) or 'killed'}"
    served = f"all {workers} served" if acquired == workers else f"{acquired:,} of {workers} served"
    mean, peak = info.get("mean_in_use"), info.get("peak_in_use")
    if isinstance(mean, int | float) and isinstance(peak, int | float):
        served += f"; conn. lent {mean:.1f} avg, {peak:,.0f} max"
    return served


def _pool_panel(benches: Sequence[Bench], info: dict[str, Any]) -> Panel:
    at = _is("pool", flavour=info.get("flavour"))
    kind = "asyncio: " if info.get("flavour") == "tasks" else ""
    timeout = float(info.get("timeout", 0))
    return Panel(
        f"{kind}{_pool_scene(info)}, hold {float(info.get('hold', 0)) * 1000:g} ms, {timeout:g} s timeouts"
        " (lower is better, if all were served)",
        "seconds until every worker's acquire returned",
        (_series(benches, at, "seconds", _field("seconds")),),
        "{:.2f} s".format,
        notes={str(_info(b).get("peer")): _pool_note(_info(b)) for b in benches if at(b)},
    )


def _waiting_panel(benches: Sequence[Bench], tasks: int) -> Panel:
    at = _is("waiting-connections", tasks=tasks)
    notes = {}
    for bench in benches:
        if at(bench):
            info = _info(bench)
            drain = info.get("drain_seconds")
            after = f" in {drain:.2f} s" if isinstance(drain, int | float) else ""
            notes[str(info.get("peer"))] = f"then {info.get('served', 0):,} of {tasks:,} served{after}"
    return Panel(
        f"{tasks:,} tasks wait: their client's connections in CLIENT LIST, median window (lower is better)",
        "connections",
        (_series(benches, at, "connections", _field("connections")),),
        "{:,.0f}".format,
        notes=notes,
    )


def _fair_charts(benches: Sequence[Bench]) -> list[Chart]:
    """Fair mode against its yardsticks at every (processes, hold) measured: the shares, and the hand-offs."""
    configs = fair_configs(benches)
    if not configs:
        return []
    shares: list[Panel] = []
    handoffs: list[Panel] = []
    for processes, hold in configs:
        contended = _contended_at(processes, hold)

        def at(bench: Bench, contended: Callable[[Bench], bool] = contended) -> bool:
            return contended(bench) and _info(bench).get("peer") in FAIR_PEERS

        scene = f"{processes} processes, hold {hold * 1000:g} ms"
        shares.append(
            Panel(
                scene,
                "share of all acquisitions (ideal 1/N; closer is fairer)",
                (
                    _series(benches, at, "smallest share", _field("min_share")),
                    _series(benches, at, "largest share", _field("max_share"), 0.55),
                ),
                "{:.3f}".format,
                line=(1 / processes, "1/N"),
                notes={
                    str(_info(b).get("peer")): f"{_info(b).get('per_second', 0):,.0f} acquisitions/s"
                    for b in benches
                    if at(b)
                },
            )
        )
        handoffs.append(
            Panel(
                f"{scene}: p50 and p99 (lower is better)",
                "time, log scale",
                (
                    _scaled(_series(benches, at, "p50", _field("handoff_from_call_p50")), 1e6),
                    _scaled(_series(benches, at, "p99", _field("handoff_from_call_p99"), 0.55), 1e6),
                ),
                _us_value,
                log=True,
            )
        )
    return [
        Chart(
            "fair",
            "fair mode: each process's share of the lock, against non-fair, 4.0.1 and the limit",
            tuple(shares),
        ),
        Chart(
            "fair-handoff",
            "fair mode under contention: one process calls release() -> another's acquire() returned",
            tuple(handoffs),
        ),
    ]


def _pool_charts(benches: Sequence[Bench]) -> list[Chart]:
    """The pool chart (one panel per flavour) and the waiting-connections chart, for the rows present."""
    out: list[Chart] = []
    pool_panels = [_pool_panel(benches, info) for info, _, _ in _pool_flavours(benches)]
    if pool_panels:
        out.append(
            Chart(
                "pool",
                "many waiters, few connections: each worker takes one lock once, on a blocking pool",
                tuple(pool_panels),
            )
        )
    waiting = sorted({int(_info(b)["tasks"]) for b in benches if _is("waiting-connections")(b)})
    if waiting:
        out.append(
            Chart(
                "waiting-connections",
                "asyncio tasks waiting on one held lock: the connections their client keeps open",
                tuple(_waiting_panel(benches, tasks) for tasks in waiting),
            )
        )
    return out


def _us_value(microseconds: float) -> str:
    return f"{microseconds:,.0f} us" if abs(microseconds) < 10_000 else f"{microseconds / 1000:,.1f} ms"


def _redis_version(machine: dict[str, Any]) -> str:
    """``Redis server v=7.0.15 sha=... build=...`` -> ``Redis 7.0.15`` (Valkey likewise)."""
    text = str(machine.get("redis_server", ""))
    version = next((word[2:] for word in text.split() if word.startswith("v=")), "")
    name = "Valkey" if "valkey" in text.lower() else "Redis"
    return f"{name} {version}" if version else text


def chart_caption(result: dict[str, Any]) -> str:
    """What every chart carries at its foot: the run, the machine and its load."""
    machine = result.get("machine_info", {})
    conditions = result.get("redis_lock_load")
    load = ""
    if conditions:
        loaded = Load.from_json(conditions)
        busy = busy_reasons(loaded.cores, loaded.before[0], loaded.others_cores)
        load = f"; load avg {loaded.before[0]:.2f} before the run" + (
            " - MACHINE BUSY, figures noisy" if busy else ""
        )
    return (
        f"{run_date(result)}{', quick run' if machine.get('quick') else ''}; {machine.get('nproc')} CPUs"
        f"{load}; {_redis_version(machine)}; {machine.get('transport')}."
        " One run on one machine: compare bars within a chart, not across machines."
    )


def draw(result: dict[str, Any], directory: Path, prefix: str = "latest-") -> list[Path]:
    """Draw :func:`charts` as SVG files in ``directory``; the paths written (matplotlib is imported here)."""
    # Imported here, not at the top: only drawing needs matplotlib, and the report works without it.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.rcParams.update({"svg.hashsalt": "redis_lock", "svg.fonttype": "none", "font.size": 9})
    caption = chart_caption(result)
    written: list[Path] = []
    for chart in charts(result):
        peers_per_panel = [
            sorted({p for s in panel.series for p in s.values}, key=_order, reverse=True)
            for panel in chart.panels
        ]
        heights = [
            0.75 + 0.28 * len(peers) * max(1, len(panel.series))
            for peers, panel in zip(peers_per_panel, chart.panels, strict=True)
        ]
        figure, axes_list = plt.subplots(
            len(chart.panels),
            1,
            figsize=(9.0, sum(heights) + 1.1),
            gridspec_kw={"height_ratios": heights},
            squeeze=False,
        )
        figure.suptitle(chart.title, fontsize=11, x=0.01, ha="left")
        for axes, panel, peers in zip(
            (row[0] for row in axes_list), chart.panels, peers_per_panel, strict=True
        ):
            _draw_panel(axes, panel, peers)
        figure.text(0.01, 0.005, caption, fontsize=7, color="#555555", ha="left", va="bottom", wrap=True)
        figure.tight_layout(rect=(0, 0.03, 1, 0.97))
        path = directory / f"{prefix}{chart.slug}.svg"
        figure.savefig(path, format="svg", metadata={"Date": None})
        plt.close(figure)
        written.append(path)
    return written


def _draw_panel(axes: Any, panel: Panel, peers: list[str]) -> None:
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415  (as in draw(): only charts need matplotlib)

    count = len(panel.series)
    step = 0.8 / count
    positive = [v for s in panel.series for v in s.values.values() if v is not None and v > 0]
    top = max(positive, default=1.0)
    bottom = min(positive, default=1.0)
    for index, series in enumerate(panel.series):
        for row, peer in enumerate(peers):
            value = series.values.get(peer)
            y = row + (count - 1 - index - (count - 1) / 2) * step
            colour = OURS_COLOUR if peer in OURS else REFERENCE_COLOUR if peer in REFERENCES else OTHER_COLOUR
            if value is None:
                continue
            if value <= 0 and panel.log:
                axes.text(
                    bottom / 2.5,
                    y,
                    f"{series.name} {panel.show(value)}: negative, the waiter's acquire() returned before"
                    " release() did (not drawable on a log scale; see the table)",
                    va="center",
                    fontsize=7,
                    color="#444444",
                )
                continue
            axes.barh(y, value, height=step * 0.9, color=colour, alpha=series.shade, edgecolor="none")
            axes.text(
                value,
                y,
                f" {series.name} {panel.show(value)}" if count > 1 else f" {panel.show(value)}",
                va="center",
                fontsize=7,
            )
        del index
    axes.set_yticks(range(len(peers)))
    axes.set_yticklabels([label(p) for p in peers])
    for tick, peer in zip(axes.get_yticklabels(), peers, strict=True):
        if peer in OURS:
            tick.set_fontweight("bold")
    if panel.log:
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: panel.show(x)))
        axes.set_xlim(bottom / 3, top * 8)
    else:
        axes.set_xlim(0, top * (2.0 if panel.notes else 1.35))
    if panel.line is not None:
        axes.axvline(panel.line[0], color="#aa3333", linestyle="--", linewidth=1)
        axes.text(
            panel.line[0],
            len(peers) - 0.45,
            f" {panel.line[1]} = {panel.line[0]:.3g}",
            color="#aa3333",
            fontsize=7,
        )
    for row, peer in enumerate(peers):
        note = panel.notes.get(peer)
        if note:
            axes.text(top * 1.2, row, note, va="center", ha="left", fontsize=7, color="#444444")
    axes.set_title(panel.title, fontsize=9, loc="left")
    axes.set_xlabel(panel.unit)
    axes.grid(axis="x", color="#dddddd", linewidth=0.5)
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)


def write_charts(result: dict[str, Any], directory: Path) -> str:
    """Draw the charts; one line saying where they went (or why none were drawn)."""
    if importlib.util.find_spec("matplotlib") is None:
        return "charts: not drawn, matplotlib is not installed (.venv/bin/pip install matplotlib)"
    for old in directory.glob("latest-*.svg"):
        old.unlink()  # a family missing from this run must not keep an older run's chart
    paths = draw(result, directory)
    if not paths:
        return "charts: none (no chart family in this run)"
    return f"charts: {len(paths)} SVG files in {_shown(directory)}/: " + ", ".join(p.name for p in paths)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# -- running pytest ----------------------------------------------------------------------


def _progress(line: str, done: int) -> int:
    """Show one line of progress on a terminal from pytest's verbose output; the new count of finished tests."""
    for outcome in (" PASSED", " FAILED", " SKIPPED", " ERROR", " XFAIL"):
        if outcome in line:
            done += 1
            name = line.split(" ", 1)[0].rsplit("::", 1)[-1]
            percent = line.rsplit("[", 1)[-1].strip(" ]\n") if "[" in line else ""
            sys.stderr.write(f"\r\033[K  [{percent:>4}] {done} done, last: {name[:70]}")
            sys.stderr.flush()
            break
    return done


def run_pytest(command: list[str], *, verbose: bool) -> tuple[int, list[str]]:
    """Run pytest; its exit status and output (echoed with ``verbose``, else a progress line on a terminal)."""
    output: list[str] = []
    tty = sys.stderr.isatty()
    done = 0
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if verbose:
                sys.stdout.write(line)
                sys.stdout.flush()
            elif tty:
                done = _progress(line, done)
        status = process.wait()
    if tty and not verbose:
        sys.stderr.write("\r\033[K")
    return status, output


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (under a minute on 2 cores)")
    parser.add_argument("--unix", action="store_true", help="use the unix socket instead of TCP loopback")
    parser.add_argument(
        "--pin", action="store_true", help="pin clients and server to one core (taskset -c 0)"
    )
    parser.add_argument("--processes", type=int, default=4, help="contending processes (default 4)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
    parser.add_argument("--targets", action="store_true", help="also print the project's performance targets")
    parser.add_argument("--no-charts", action="store_true", help="do not draw the SVG charts")
    parser.add_argument("--table", metavar="JSON", help="report on a saved result and exit")
    parser.add_argument("--charts", metavar="JSON", help="draw the charts of a saved result and exit")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="with --charts: the directory (default .benchmarks/)"
    )
    parser.add_argument(
        "--rst", action="store_true", help="with --table: the verdict as a reStructuredText table"
    )
    parser.add_argument("--full", action="store_true", help="with --table --rst: the whole table too")
    options, pytest_args = parser.parse_known_args(argv)
    if options.table:
        saved = json.loads(Path(options.table).read_text())
        print(
            report(saved, rst=options.rst, full=options.full or not options.rst, show_targets=options.targets)
        )
        return 0
    if options.charts:
        options.out.mkdir(parents=True, exist_ok=True)
        print(write_charts(json.loads(Path(options.charts).read_text()), options.out))
        return 0
    return run(options, pytest_args)


def pytest_command(options: argparse.Namespace, pytest_args: Sequence[str]) -> list[str]:
    """The pytest command line of a run."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks",
        "-v",
        "-p",
        "no:logging",
        "--timeout=900",
        f"--benchmark-json={LATEST}",
        "--benchmark-autosave",
        f"--bench-processes={options.processes}",
    ]
    if not any(arg.startswith("--benchmark-compare") for arg in pytest_args):
        command.append("--benchmark-quiet")  # the report replaces pytest-benchmark's own table
    if options.quick:
        command += ["--bench-quick", "--benchmark-max-time=0.15"]
    if options.unix:
        command.append("--bench-unix")
    return [*command, *pytest_args]


def run(options: argparse.Namespace, pytest_args: Sequence[str]) -> int:
    """Run the suite, then print the report and draw the charts; pytest's exit status."""
    RESULTS.mkdir(exist_ok=True)
    LATEST.unlink(missing_ok=True)  # never report an older run
    command = pytest_command(options, pytest_args)
    if options.pin:
        taskset = shutil.which("taskset")
        if taskset is None:
            print("error: --pin needs taskset (util-linux)", file=sys.stderr)
            return 2
        command = [taskset, "-c", "0", *command]
    comparing = any(arg.startswith("--benchmark-compare") for arg in pytest_args)
    verbose = options.verbose or comparing
    meter = LoadMeter()
    print(
        f"load average before the run: {meter.load.before[0]:.2f} (1 min), {meter.load.cores} cores;"
        f" pytest output {'below' if verbose else 'hidden (-v shows it)'}",
        flush=True,
    )
    if verbose:
        print("==> " + " ".join(command), flush=True)
    started = time.monotonic()
    status, output = run_pytest(command, verbose=verbose)
    load = meter.finish()
    print(f"benchmarks ran in {time.monotonic() - started:.0f} s", flush=True)
    if LATEST.is_file():
        result = json.loads(LATEST.read_text())
        result["redis_lock_load"] = load.as_json()
        LATEST.write_text(json.dumps(result, indent=2))
        print()
        print(report(result, show_targets=options.targets))
        print()
        if not options.no_charts:
            print(write_charts(result, RESULTS))
        print(f"JSON: {_shown(LATEST)} (and numbered under .benchmarks/ for --benchmark-compare)")
    if status != 0:
        if not verbose:
            print("\n" + "".join(output), end="")
        print(f"\nerror: pytest failed (exit status {status}); its output is above", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
