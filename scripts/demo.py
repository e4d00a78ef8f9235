"""Several processes contend for one lock on a throwaway local Redis; every hold is recorded and checked.

Run it with ``bash scripts/demo.sh [--processes N] [--rounds N] [--hold SECONDS] [--history FILE]``.

Each process records, for every hold, the instant ``acquire()`` returned and
the instant just before it called ``release()``, on ``time.monotonic_ns()``:
``CLOCK_MONOTONIC`` on Linux, one clock for every process of the machine, so
the intervals of different processes can be compared. With a correct lock no
two intervals overlap (one holder's end comes before its release, which comes
before the next holder's acquire returns). The claim is printed only after the
check; an overlap, a failed process or a missing hold exits non-zero.

``--check FILE`` checks a saved history (``--history FILE`` writes one: a JSON
list of ``[process, start_ns, end_ns]``) without starting anything.

The demo starts its own redis-server (``$REDIS_SERVER``, else ``redis-server``
or ``valkey-server`` on ``PATH`` or in this virtualenv), or uses ``$REDIS_URL``,
touching only its own key there. It does not import the test package.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from multiprocessing.queues import Queue

NAME = "demo"


class Hold(NamedTuple):
    """One hold of the lock: the process and its interval, in nanoseconds of the system-wide monotonic clock."""

    process: int
    start: int
    end: int


class Overlap(NamedTuple):
    """Two holds whose intervals intersect: the lock was held twice at once."""

    first: Hold
    second: Hold


def find_overlaps(holds: Sequence[Hold]) -> list[Overlap]:
    """Every hold that starts before an earlier-starting hold has ended, with the one it overlaps.

    Intervals that only touch (one ends at the very nanosecond the next starts)
    do not overlap. A hold whose end is before its start is reported against
    itself: the history is corrupt.
    """
    found: list[Overlap] = []
    latest: Hold | None = None  # of the holds seen so far, the one that ends last
    for hold in sorted(holds, key=lambda h: (h.start, h.end)):
        if hold.end < hold.start:
            found.append(Overlap(hold, hold))
        if latest is not None and hold.start < latest.end:
            found.append(Overlap(latest, hold))
        if latest is None or hold.end > latest.end:
            latest = hold
    return found


def verify(holds: Sequence[Hold], expected: int | None = None, *, out: Callable[[str], None] = print) -> int:
    """Check a history and say what it shows; the exit status (0: no overlap, 1: overlap, 2: holds missing)."""
    overlaps = find_overlaps(holds)
    if overlaps:
        out(f"FAILED: {len(overlaps)} overlapping holds: the lock was held twice at once.")
        for overlap in overlaps[:10]:
            a, b = overlap
            out(
                f"  process {a.process} held it until {a.end} ns, process {b.process} got it at {b.start} ns"
                f" ({(a.end - b.start) / 1e6:.3f} ms of overlap)"
            )
        return 1
    if expected is not None and len(holds) != expected:
        out(f"FAILED: {len(holds)} holds recorded, {expected} expected (a process failed).")
        return 2
    processes = len({hold.process for hold in holds})
    ordered = sorted(holds, key=lambda h: h.start)
    gaps = [b.start - a.end for a, b in itertools.pairwise(ordered)]
    gap = f"; the shortest gap between two holds was {min(gaps) / 1e3:,.0f} us" if gaps else ""
    out(
        f"checked {len(holds)} holds by {processes} processes on one monotonic clock: no two overlap,"
        f" so the lock was never held twice at once{gap}."
    )
    return 0


def load_history(path: Path) -> list[Hold]:
    return [Hold(int(p), int(s), int(e)) for p, s, e in json.loads(path.read_text())]


def save_history(path: Path, holds: Sequence[Hold]) -> None:
    path.write_text(json.dumps([[h.process, h.start, h.end] for h in holds]))


# -- a throwaway server ----------------------------------------------------------------


def server_binary() -> str:
    """``$REDIS_SERVER``, else redis-server or valkey-server on ``PATH`` or next to this Python."""
    found = os.environ.get("REDIS_SERVER")
    for name in ("redis-server", "valkey-server"):
        found = found or shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise SystemExit(
            "error: no redis-server or valkey-server found: install one, set REDIS_SERVER=/path/to/it,"
            " or set REDIS_URL to use a running server"
        )
    return found


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """``$REDIS_URL``, or a fresh server on a unix socket in a temporary directory, stopped by its pid."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    import redis  # noqa: PLC0415  (--check needs neither Redis nor its client)

    with tempfile.TemporaryDirectory(prefix="redis-lock-demo-") as directory:
        socket_path = str(Path(directory) / "redis.sock")
        binary = server_binary()
        command = [binary, "--port", "0", "--unixsocket", socket_path, "--save", "", "--appendonly", "no"]
        command += ["--dir", directory, "--logfile", str(Path(directory) / "server.log")]
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        try:
            client = redis.Redis(unix_socket_path=socket_path, socket_timeout=1)
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
                    if client.ping():
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"error: {binary} did not start (exit status {server.poll()})")
                time.sleep(0.01)
            client.close()
            print(f"{Path(binary).name} (pid {server.pid}) on unix://{socket_path}", flush=True)
            yield f"unix://{socket_path}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# -- the contenders ----------------------------------------------------------------------


def worker(
    url: str, number: int, rounds: int, hold: float, start: int, holds: Queue[tuple[int, int, int]]
) -> None:
    """Take the lock ``rounds`` times, keep it ``hold`` seconds each time, and record every interval."""
    import redis  # noqa: PLC0415  (imported in the child, after spawn)

    import redis_lock  # noqa: PLC0415

    client = redis.Redis.from_url(url)
    lock = redis_lock.Lock(client, NAME, expire=5, auto_renewal=True)
    try:
        for _ in range(rounds):
            asked = time.monotonic_ns()
            with lock:
                got = time.monotonic_ns()
                print(
                    f"[{(got - start) / 1e9:7.3f}s] process {number} holds the lock"
                    f" (waited {(got - asked) / 1e6:6.1f} ms)",
                    flush=True,
                )
                time.sleep(hold)
                holds.put((number, got, time.monotonic_ns()))  # recorded before release() is called
    finally:
        client.close()


def run(processes: int, rounds: int, hold: float) -> tuple[list[Hold], bool]:
    """Run the contenders; the holds they recorded, and whether every process exited cleanly."""
    context = multiprocessing.get_context("spawn")
    with redis_url() as url:
        start = time.monotonic_ns()
        holds: Queue[tuple[int, int, int]] = context.Queue()
        children = [
            context.Process(target=worker, args=(url, n, rounds, hold, start, holds))
            for n in range(processes)
        ]
        for child in children:
            child.start()
        recorded: list[Hold] = []
        while len(recorded) < processes * rounds:
            try:
                recorded.append(Hold(*holds.get(timeout=1)))
            except queue.Empty:
                if not any(child.is_alive() for child in children):
                    break
        for child in children:
            child.join()
        total = (time.monotonic_ns() - start) / 1e9
        print(f"{len(recorded)} holds of {hold * 1000:.0f} ms in {total:.3f} s", flush=True)
    return recorded, all(child.exitcode == 0 for child in children)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=float, default=0.05, help="seconds each holder keeps the lock")
    parser.add_argument("--history", type=Path, help="also write the recorded holds to this JSON file")
    parser.add_argument("--check", type=Path, metavar="FILE", help="only check a saved history")
    args = parser.parse_args(argv)
    if args.check is not None:
        return verify(load_history(args.check))
    holds, clean = run(args.processes, args.rounds, args.hold)
    if args.history is not None:
        save_history(args.history, holds)
    status = verify(holds, args.processes * args.rounds)
    if status == 0 and not clean:
        print("FAILED: a process exited with an error (see above).")
        status = 2
    return status


if __name__ == "__main__":
    # Spawned children import this file as __mp_main__; only the parent runs the demo.
    sys.exit(main())
