"""Several processes contend for one lock on a throwaway local Redis and print who held it when.

Run it with ``bash scripts/demo.sh [--processes N] [--rounds N] [--hold SECONDS]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from typing import TYPE_CHECKING

import redis
from tests._server import RedisServer

import redis_lock

if TYPE_CHECKING:
    from multiprocessing.queues import Queue


def worker(
    url: str, number: int, rounds: int, hold: float, start: float, holds: Queue[tuple[float, float]]
) -> None:
    client = redis.Redis.from_url(url)
    lock = redis_lock.Lock(client, "demo", expire=5, auto_renewal=True)
    for _ in range(rounds):
        asked = time.monotonic()
        with lock:
            got = time.monotonic()
            print(
                f"[{got - start:7.3f}s] process {number} holds the lock (waited {1000 * (got - asked):6.1f} ms)",
                flush=True,
            )
            time.sleep(hold)
            holds.put((got, time.monotonic()))
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=float, default=0.05, help="seconds each holder keeps the lock")
    args = parser.parse_args()
    with RedisServer() as server:
        print(f"redis-server on {server.url} (pid {server.process.pid if server.process else '?'})")
        start = time.monotonic()
        context = multiprocessing.get_context("spawn")
        holds: Queue[tuple[float, float]] = context.Queue()
        processes = [
            context.Process(target=worker, args=(server.url, n, args.rounds, args.hold, start, holds))
            for n in range(args.processes)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        total = time.monotonic() - start
        holds = args.processes * args.rounds
        print(
            f"{holds} holds of {args.hold * 1000:.0f} ms in {total:.3f} s; the lock was never held twice at once."
        )


if __name__ == "__main__":
    main()
