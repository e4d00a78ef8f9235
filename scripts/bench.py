"""Run the benchmark suite and print one comparison table (the driver behind ``scripts/bench.sh``).

Usage: ``bash scripts/bench.sh [--quick] [--unix] [--pin] [--processes N] [pytest args...]``.

- ``--quick``: a smoke run (fewer samples, shorter windows, under about a minute);
- ``--unix``: connect over the server's unix socket instead of TCP loopback;
- ``--pin``: run client processes and the server on one core (``taskset -c 0``), less noisy on small machines;
- ``--table FILE [--rst]``: print the table of a saved JSON result without running anything;
- anything else goes to pytest, e.g. ``-k handoff`` or ``--benchmark-compare``.

Each run keeps its JSON: ``.benchmarks/latest.json`` and, numbered,
``.benchmarks/<machine>/NNNN_*.json`` (``--benchmark-autosave``), so
``bash scripts/bench.sh --benchmark-compare`` compares against the previous run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
LATEST = ROOT / ".benchmarks" / "latest.json"

#: Column order, and the names shown for each contender.
LABELS = {
    "redis_lock": "redis_lock 5 (ours)",
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
}
ORDER = list(LABELS)

Row = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class Metric:
    """One block of the table: which results it reads and how it shows them."""

    title: str
    select: Callable[[dict[str, Any]], bool]
    value: Callable[[dict[str, Any]], float | None]
    show: Callable[[float], str]
    #: The contender each ratio divides by ("limit" or "redis_lock"), or None for no ratio.
    ours: str | None = "redis_lock"
    limit: str | None = "limit"


def _info(bench: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = bench.get("extra_info", {})
    return info


def _median(bench: dict[str, Any]) -> float:
    return float(bench["stats"]["median"])


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us" if abs(seconds) < 0.01 else f"{seconds * 1e3:,.1f} ms"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _is(metric: str, **fields: object) -> Callable[[dict[str, Any]], bool]:
    def select(bench: dict[str, Any]) -> bool:
        info = _info(bench)
        return info.get("metric") == metric and all(info.get(k) == v for k, v in fields.items())

    return select


def _field(name: str) -> Callable[[dict[str, Any]], float | None]:
    def value(bench: dict[str, Any]) -> float | None:
        found = _info(bench).get(name)
        return float(found) if isinstance(found, int | float) else None

    return value


def _contended_metrics(
    hold: float, metric: str = "contended", prefix: str = "", ours: str = "redis_lock", limit: str = "limit"
) -> list[Metric]:
    label = f"hold {hold * 1000:g} ms"
    select = _is(metric, hold=hold)
    return [
        Metric(
            f"{prefix}contended hand-offs/s, {label} (higher is better)",
            select,
            _field("per_second"),
            "{:,.0f}/s".format,
            ours,
            limit,
        ),
        Metric(
            f"  {prefix}fairness: smallest share, {label} (ideal 1/N)",
            select,
            _field("min_share"),
            "{:.3f}".format,
            None,
            None,
        ),
        Metric(
            f"  {prefix}fairness: largest share, {label} (ideal 1/N)",
            select,
            _field("max_share"),
            "{:.3f}".format,
            None,
            None,
        ),
        Metric(
            f"  {prefix}mutual-exclusion violations, {label} (must be 0)",
            select,
            _field("violations"),
            "{:.0f}".format,
            None,
            None,
        ),
        Metric(
            f"  {prefix}client requests per acquisition, {label}",
            select,
            _field("requests_per_acquisition"),
            "{:.2f}".format,
            ours,
            limit,
        ),
        Metric(
            f"  {prefix}Redis commands per acquisition, {label}",
            select,
            _field("commands_per_acquisition"),
            "{:.2f}".format,
            ours,
            limit,
        ),
    ]


def _renewal_metrics(count: int) -> list[Metric]:
    select = _is("renewal", count=count)
    label = f"{count:,} auto-renewed locks"
    return [
        Metric(
            f"{label}: held after their expiry",
            select,
            _field("held_after_expiry"),
            "{:,.0f}".format,
            None,
            None,
        ),
        Metric(f"  {label}: acquired", select, _field("acquired"), "{:,.0f}".format, None, None),
        Metric(
            f"  {label}: seconds to acquire", select, _field("acquire_seconds"), "{:.2f} s".format, None, None
        ),
        Metric(f"  {label}: threads", select, _field("threads"), "{:,.0f}".format, None, None),
        Metric(f"  {label}: peak RSS", select, _field("rss_mb"), "{:,.0f} MiB".format, None, None),
        Metric(
            f"  {label}: server connections",
            select,
            _field("connected_clients"),
            "{:,.0f}".format,
            None,
            None,
        ),
    ]


def _async_metrics(hold_times: Sequence[float]) -> list[Metric]:
    """The asyncio rows: ratios against our AsyncLock and against the limit's protocol on redis.asyncio."""
    ours, limit = "redis_lock-async", "limit-async"
    return [
        Metric(
            "asyncio uncontended cycles/s (higher is better)",
            _is("uncontended-async"),
            lambda b: float(_info(b)["batch"]) / _median(b),
            "{:,.0f}/s".format,
            ours,
            limit,
        ),
        Metric(
            "asyncio hand-off latency p50 (lower is better)",
            _is("handoff-async"),
            _field("p50"),
            _us,
            ours,
            limit,
        ),
        Metric(
            "asyncio hand-off latency p99 (lower is better)",
            _is("handoff-async"),
            _field("p99"),
            _us,
            ours,
            limit,
        ),
        Metric(
            "asyncio expiry wake-up p50, after the key expired",
            _is("expiry-async"),
            _field("p50"),
            _ms,
            ours,
            None,
        ),
        Metric("asyncio expiry wake-up max", _is("expiry-async"), _field("max"), _ms, ours, None),
        *[
            metric
            for hold in hold_times
            for metric in _contended_metrics(hold, "contended-async", "asyncio ", ours, limit)
        ],
    ]


def metrics(
    hold_times: Sequence[float], counts: Sequence[int], async_hold_times: Sequence[float] = ()
) -> list[Metric]:
    return [
        Metric("PING round trip", _is("ping"), _median, _us, None, None),
        Metric(
            "uncontended cycles/s (higher is better)",
            _is("uncontended"),
            lambda b: 1 / _median(b),
            "{:,.0f}/s".format,
        ),
        Metric("hand-off latency p50 (lower is better)", _is("handoff"), _field("p50"), _us),
        Metric("hand-off latency p99 (lower is better)", _is("handoff"), _field("p99"), _us),
        Metric("expiry wake-up p50, after the key expired", _is("expiry"), _field("p50"), _ms, limit=None),
        Metric("expiry wake-up max", _is("expiry"), _field("max"), _ms, limit=None),
        *[metric for hold in hold_times for metric in _contended_metrics(hold)],
        *[metric for count in counts for metric in _renewal_metrics(count)],
        *_async_metrics(async_hold_times),
    ]


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return ""
    return f"{value / base:.2f}x"


def table_rows(result: dict[str, Any]) -> list[Row]:
    """The comparison table: metric, contender, value, value / ours, value / limit."""
    benches: list[dict[str, Any]] = result["benchmarks"]
    holds = sorted({float(_info(b)["hold"]) for b in benches if _is("contended")(b)})
    counts = sorted({int(_info(b)["count"]) for b in benches if _is("renewal")(b)})
    async_holds = sorted({float(_info(b)["hold"]) for b in benches if _is("contended-async")(b)})
    rows: list[Row] = []
    for metric in metrics(holds, counts, async_holds):
        found: dict[str, float | None] = {}
        for bench in benches:
            if metric.select(bench):
                found[str(_info(bench).get("peer"))] = metric.value(bench)
        if not found:
            continue
        ours = found.get(metric.ours) if metric.ours else None
        limit = found.get(metric.limit) if metric.limit else None
        title = metric.title
        for peer in sorted(found, key=lambda p: ORDER.index(p) if p in ORDER else len(ORDER)):
            value = found[peer]
            shown = "n/a" if value is None else metric.show(value)
            rows.append((title, LABELS.get(peer, peer), shown, _ratio(value, ours), _ratio(value, limit)))
            title = ""
    return rows


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The project's performance targets: (target, measured, met?)."""
    benches: list[dict[str, Any]] = result["benchmarks"]

    def get(
        metric: str, peer: str, value: Callable[[dict[str, Any]], float | None], **fields: object
    ) -> float | None:
        for bench in benches:
            if _is(metric, peer=peer, **fields)(bench):
                return value(bench)
        return None

    def cycles(bench: dict[str, Any]) -> float:
        return 1 / _median(bench)

    out: list[tuple[str, str, bool | None]] = []

    def check(name: str, a: float | None, b: float | None, ok: Callable[[float], bool], fmt: str) -> None:
        if a is None or b is None or b == 0:
            out.append((name, "not measured", None))
        else:
            out.append((name, fmt.format(a / b), ok(a / b)))

    ours_cycle = get("uncontended", "redis_lock", cycles)
    check(
        "uncontended cycle >= 1.5x python-redis-lock 4.0.1",
        ours_cycle,
        get("uncontended", "prl401", cycles),
        lambda r: r >= 1.5,
        "{:.2f}x",
    )
    check(
        "uncontended cycle >= 0.9x the limit",
        ours_cycle,
        get("uncontended", "limit", cycles),
        lambda r: r >= 0.9,
        "{:.2f}x",
    )
    p50 = _field("p50")
    p99 = _field("p99")
    check(
        "hand-off p50 <= 1.2x the limit's BLPOP hand-off",
        get("handoff", "redis_lock", p50),
        get("handoff", "limit", p50),
        lambda r: r <= 1.2,
        "{:.2f}x",
    )
    check(
        "hand-off p99 <= python-redis-lock 4.0.1's",
        get("handoff", "redis_lock", p99),
        get("handoff", "prl401", p99),
        lambda r: r <= 1.0,
        "{:.2f}x",
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
    held = get("renewal", "redis_lock", _field("held_after_expiry"), count=10_000)
    out.append(
        (
            "10,000 locks held with auto-renewal in one process",
            "not measured" if held is None else f"{held:,.0f} held",
            None if held is None else held >= 10_000,
        )
    )
    return out


def render_text(rows: Sequence[Row], headers: Row) -> str:
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in (headers, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_rst(rows: Sequence[Row], headers: Row) -> str:
    """An RST simple table (empty first cells become ``..`` comments would break it; use a backslash-space)."""
    filled = [tuple(cell or "\\" for cell in row) for row in rows]
    widths = [max(len(r[i]) for r in (headers, *filled)) for i in range(len(headers))]
    rule = "  ".join("=" * w for w in widths)
    body = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in filled]
    head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(headers)).rstrip()
    return "\n".join([rule, head, rule, *body, rule])


HEADERS: Row = ("measure", "contender", "value", "x ours", "x limit")


def report(result: dict[str, Any], *, rst: bool = False) -> str:
    machine = result.get("machine_info", {})
    rows = table_rows(result)
    render = render_rst if rst else render_text
    parts = [
        f"machine: {machine.get('nproc')} CPUs ({machine.get('cpu_model')}), affinity {machine.get('affinity')}; "
        f"Python {machine.get('python_version')}; {machine.get('redis_server')}; redis-py {machine.get('redis_py')}; "
        f"transport {machine.get('transport')}{'; quick run' if machine.get('quick') else ''}",
        "",
        render(rows, HEADERS),
        "",
        "x ours / x limit: this row's value divided by ours / by the limit's (for latencies and counts, above 1 is worse).",
        "",
        "targets:",
    ]
    for name, measured, ok in targets(result):
        mark = "n/a " if ok is None else ("MET " if ok else "MISS")
        parts.append(f"  [{mark}] {name}: {measured}")
    return "\n".join(parts)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--unix", action="store_true", help="use the unix socket instead of TCP loopback")
    parser.add_argument(
        "--pin", action="store_true", help="pin clients and server to one core (taskset -c 0)"
    )
    parser.add_argument("--processes", type=int, default=4, help="contending processes (default 4)")
    parser.add_argument("--table", metavar="JSON", help="print the table of a saved result and exit")
    parser.add_argument("--rst", action="store_true", help="with --table: as a reStructuredText table")
    options, pytest_args = parser.parse_known_args(argv)
    if options.table:
        print(report(json.loads(Path(options.table).read_text()), rst=options.rst))
        return 0
    LATEST.parent.mkdir(exist_ok=True)
    LATEST.unlink(missing_ok=True)  # never print an older run's table
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
        command.append("--benchmark-quiet")  # the table below replaces pytest-benchmark's own
    if options.quick:
        command += ["--bench-quick", "--benchmark-max-time=0.3"]
    if options.unix:
        command.append("--bench-unix")
    if options.pin:
        taskset = shutil.which("taskset")
        if taskset is None:
            print("error: --pin needs taskset (util-linux)", file=sys.stderr)
            return 2
        command = [taskset, "-c", "0", *command]
    command += pytest_args
    print("==> " + " ".join(command), flush=True)
    status = subprocess.call(command, cwd=ROOT)
    if LATEST.is_file():
        print()
        print(report(json.loads(LATEST.read_text())))
        print(f"\nJSON: {LATEST.relative_to(ROOT)} (and numbered under .benchmarks/ for --benchmark-compare)")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
