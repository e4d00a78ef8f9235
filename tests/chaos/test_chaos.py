"""What fencing buys, under real faults: a short chaos run (``harness.py``), with and without the guard.

Both halves run the same schedule (the same seed): workers write a SQLite
resource with their fencing tokens while the harness SIGSTOPs holders past
their lease, restarts redis-server, and sends ``CLIENT PAUSE`` and ``CLIENT
KILL``. With the guard (``... WHERE fence <= :token``) the checker must find no
violation, and the stopped holders' late writes must show up as rejected.
Without it, the same faults must make the checker find stale writes accepted:
the proof that the checker can fail. Each half takes about 8 s on an idle
2-core machine (2 s of it to spawn the workers); on a loaded one the harness
waits longer, within generous deadlines, rather than failing.

The checker and the write recipe are also tested on their own, on hand-made
data, so that each of the three checks is seen failing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest

from .harness import (
    ChaosConfig,
    LogRow,
    Report,
    create_resource,
    fenced_write,
    judge,
    open_resource,
    read_fence,
    run_chaos,
)

#: One round of the schedule at the least (three SIGSTOPs, a restart, a CLIENT PAUSE, a CLIENT KILL).
SHORT = ChaosConfig(seconds=4.0, min_faults=6, seed=20240601)


def _run(guard: bool) -> Report:
    report = run_chaos(dataclasses.replace(SHORT, guard=guard))
    print(report.summary())  # pytest shows it with a failure (or with -rP)
    return report


def _assert_every_fault_happened(report: Report) -> None:
    assert report.failures == (), report.summary()
    assert report.pauses >= 1, report.summary()
    assert report.overtaken >= 1, report.summary()
    assert report.restarts >= 1, report.summary()
    assert report.client_pauses >= 1, report.summary()
    assert report.kills >= 1, report.summary()


@pytest.mark.serial
def test_guard_refuses_every_stale_write_under_chaos() -> None:
    """With the guard, every fault happens, no violation is found, and stopped holders' late writes are refused."""
    report = _run(guard=True)
    _assert_every_fault_happened(report)
    assert report.verdict.violations == 0, report.summary()
    # A holder stopped past its lease wrote again after a newer token had landed: the guard refused it.
    assert report.verdict.rejected > 0, report.summary()
    assert report.verdict.writes > 0, report.summary()
    assert report.passed, report.summary()


@pytest.mark.serial
def test_checker_finds_stale_writes_without_guard() -> None:
    """Without the guard the same schedule lets stale writes in, and the checker finds them (it can fail)."""
    report = _run(guard=False)
    _assert_every_fault_happened(report)
    assert report.verdict.stale_accepted > 0, report.summary()
    assert report.verdict.decreases > 0, report.summary()
    # Tokens are the lock's promise, guard or not: never one token for two grants.
    assert report.verdict.shared_tokens == 0, report.summary()
    assert report.verdict.rejected == 0, report.summary()
    assert report.passed, report.summary()


# -- the checker and the recipe on hand-made data --------------------------------------------------


def test_judge_accepts_increasing_tokens_and_the_writes_of_one_grant() -> None:
    verdict = judge([LogRow(1, 0, 1, 10), LogRow(2, 0, 1, 10), LogRow(3, 1, 1, 11), LogRow(4, 0, 2, 12)])
    assert (verdict.writes, verdict.grants, verdict.violations) == (4, 3, 0)
    assert verdict.examples == ()


def test_judge_finds_stale_writes() -> None:
    # #3 goes back from 12 to 10 (a decrease, and stale); #4 rises to 11 but is still older than 12 (stale).
    verdict = judge([LogRow(1, 0, 1, 10), LogRow(2, 1, 1, 12), LogRow(3, 0, 1, 10), LogRow(4, 2, 1, 11)])
    assert (verdict.decreases, verdict.stale_accepted, verdict.shared_tokens) == (1, 2, 0)
    assert verdict.violations == 2
    assert verdict.examples[0].startswith("log #3: worker 0 (grant 1) wrote with token 10 after token 12")


@pytest.mark.parametrize(
    "second", [LogRow(2, 1, 1, 10), LogRow(2, 0, 2, 10)], ids=["other-worker", "same-worker-next-grant"]
)
def test_judge_finds_a_token_written_by_two_grants(second: LogRow) -> None:
    verdict = judge([LogRow(1, 0, 1, 10), second, LogRow(3, 2, 1, 10)])
    assert (verdict.decreases, verdict.stale_accepted, verdict.shared_tokens) == (0, 0, 1)
    assert verdict.violations == 1
    assert "token 10 written by" in verdict.examples[0]


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
def test_fenced_write_recipe(tmp_path: Path, guard: bool) -> None:
    path = tmp_path / "resource.db"
    create_resource(path)
    with contextlib.closing(open_resource(path)) as db:
        assert fenced_write(db, guard=guard, worker=0, grant=1, token=20, value="a")
        assert fenced_write(db, guard=guard, worker=0, grant=1, token=20, value="b")  # same token: accepted
        stale = fenced_write(db, guard=guard, worker=1, grant=1, token=10, value="c")
        assert stale is not guard
        assert read_fence(db) == (20 if guard else 10)
        logged = db.execute("SELECT count(*) FROM log").fetchone()[0]
        rejected = db.execute("SELECT token, fence FROM rejected").fetchall()
    assert logged == (2 if guard else 3)
    assert rejected == ([(10, 20)] if guard else [])
