"""The demo's overlap checker (``scripts/demo.py``): it fails on an overlapping history and passes a clean one.

No Redis: the checker is fed histories directly, and once through the command line (``--check``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import demo  # noqa: E402  (scripts/ is not a package: it is put on sys.path above)
from demo import Hold, find_overlaps, verify  # noqa: E402

CLEAN = [Hold(0, 0, 100), Hold(1, 150, 300), Hold(2, 300, 420), Hold(0, 500, 600)]
#: Process 1 got the lock at 250 while process 0 held it until 300.
OVERLAPPING = [Hold(0, 100, 300), Hold(1, 250, 400), Hold(2, 500, 600)]


def test_clean_history_has_no_overlap() -> None:
    """Holds that follow one another, touching ones included, do not overlap."""
    assert find_overlaps(CLEAN) == []


def test_overlap_is_found() -> None:
    """A hold that starts before the previous one ended is reported with that previous one."""
    assert find_overlaps(OVERLAPPING) == [demo.Overlap(OVERLAPPING[0], OVERLAPPING[1])]


def test_overlap_with_a_long_earlier_hold_is_found() -> None:
    """A hold inside a long earlier hold is found even when a short hold came in between."""
    holds = [Hold(0, 0, 1000), Hold(1, 100, 200), Hold(2, 500, 600)]
    assert [(o.first.process, o.second.process) for o in find_overlaps(holds)] == [(0, 1), (0, 2)]


def test_order_of_the_history_does_not_matter() -> None:
    """The checker sorts the holds itself: a shuffled overlapping history still fails."""
    assert find_overlaps(list(reversed(OVERLAPPING)))


def test_verify_fails_on_overlap_and_does_not_claim_exclusion() -> None:
    """verify() exits 1 on an overlap and never prints the claim that the lock was held once at a time."""
    said: list[str] = []
    assert verify(OVERLAPPING, len(OVERLAPPING), out=said.append) == 1
    assert "FAILED" in said[0]
    assert not any("never held twice" in line for line in said)


def test_verify_passes_a_clean_history() -> None:
    """verify() exits 0 and makes the claim only for a clean, complete history."""
    said: list[str] = []
    assert verify(CLEAN, len(CLEAN), out=said.append) == 0
    assert "never held twice at once" in said[-1]


def test_verify_fails_when_holds_are_missing() -> None:
    """A clean history with fewer holds than expected (a process died) fails with status 2."""
    assert verify(CLEAN, len(CLEAN) + 1, out=lambda _: None) == 2


@pytest.mark.parametrize(("history", "status"), [(OVERLAPPING, 1), (CLEAN, 0)])
def test_demo_command_checks_a_saved_history(tmp_path: Path, history: list[Hold], status: int) -> None:
    """``demo.py --check FILE`` exits 1 on an overlapping history and 0 on a clean one."""
    path = tmp_path / "history.json"
    path.write_text(json.dumps([list(hold) for hold in history]))
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "demo.py"), "--check", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == status, done.stdout + done.stderr
    assert ("never held twice at once" in done.stdout) == (status == 0)
