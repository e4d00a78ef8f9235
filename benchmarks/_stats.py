"""Small statistics helpers shared by the benchmarks (no numpy: the dev dependencies do not have it)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` by the nearest-rank method (p99 of 200 is the 198th)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """n, p50, p90, p99, min, max and mean of ``samples`` (seconds in, seconds out)."""
    return {
        "n": len(samples),
        "p50": percentile(samples, 0.50),
        "p90": percentile(samples, 0.90),
        "p99": percentile(samples, 0.99),
        "min": min(samples),
        "max": max(samples),
        "mean": sum(samples) / len(samples),
    }


def expiry_instant(sent: float, answered: float, pttl_ms: int) -> float:
    """When a key expires, from a ``PTTL`` sent at ``sent`` and answered at ``answered`` (monotonic seconds).

    The server read the TTL somewhere in that round trip; its midpoint is off by
    at most half a round trip, well under a millisecond on loopback.
    """
    return (sent + answered) / 2 + pttl_ms / 1000
