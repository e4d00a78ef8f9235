"""Benchmark harness: one throwaway redis-server for the whole run, sizes for full and quick runs.

The suite lives outside ``testpaths``, so a plain ``pytest`` never runs it; the
main command is ``bash scripts/bench.sh`` (see ``scripts/bench.py``). Every test
stores what it measured in ``benchmark.extra_info`` (``metric``, ``peer`` and the
figures); the driver turns the JSON into one comparison table.

Options: ``--bench-unix`` (connect over the unix socket instead of TCP
loopback), ``--bench-quick`` (a smoke run: fewer samples, shorter windows),
``--bench-processes N`` (contending processes, default 4), ``--bench-crowd N``
(the processes of the second, larger contended run of fair mode and its
yardsticks, default 16; 0 skips it; a quick run never has it).
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
from tests._server import RedisServer, redis_server_binary

from ._peers import make_client


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redis_lock benchmarks")
    group.addoption(
        "--bench-unix", action="store_true", help="connect over the unix socket instead of TCP loopback"
    )
    group.addoption("--bench-quick", action="store_true", help="a fast smoke run: fewer samples")
    group.addoption("--bench-processes", type=int, default=4, help="contending processes (default 4)")
    group.addoption(
        "--bench-crowd",
        type=int,
        default=16,
        help="processes of the crowded contended rows (fair mode; default 16, 0: none; never in a quick run)",
    )


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark measures."""

    quick: bool
    handoffs: int
    expiry_samples: int
    contended_seconds: float
    hold_times: tuple[float, ...]
    processes: int
    renewal_counts: tuple[int, ...]
    renewal_peers: tuple[str, ...]
    #: Seconds a renewal run may spend acquiring; its process is killed 15 s after that plus the hold.
    renewal_budget: float
    #: Rounds of the asyncio uncontended batch (pytest-benchmark calibrates the synchronous one itself).
    async_rounds: int
    #: Processes of the crowded contended rows (``test_contended_crowd``); 0 for none.
    crowd: int = 0


@pytest.fixture(scope="session")
def sizes(pytestconfig: pytest.Config) -> Sizes:
    quick = bool(pytestconfig.getoption("--bench-quick"))
    processes = int(pytestconfig.getoption("--bench-processes"))
    if quick:
        # A smoke run under a minute on two cores: every family once, the smallest sizes that still
        # give a figure (the polling peers' hand-offs and the renewal holds take most of it).
        return Sizes(True, 20, 2, 0.5, (0.001,), processes, (1000,), ("redis_lock",), 10.0, 5, crowd=0)
    return Sizes(
        False,
        200,
        8,
        3.0,
        (0.001, 0.01),
        processes,
        (1000, 10_000),
        ("redis_lock", "prl401", "limit"),
        30.0,
        20,
        crowd=int(pytestconfig.getoption("--bench-crowd")),
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, object]) -> None:
    """Record what the figures depend on: CPUs, affinity, Redis version, transport, run size."""
    version = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    machine_info["redis_server"] = version
    machine_info["nproc"] = os.cpu_count()
    machine_info["cpu_model"] = _cpu_model()
    machine_info["affinity"] = sorted(os.sched_getaffinity(0))
    machine_info["transport"] = "unix" if config.getoption("--bench-unix") else "tcp-loopback"
    machine_info["quick"] = bool(config.getoption("--bench-quick"))
    machine_info["redis_py"] = redis.__version__


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop and reap the benchmark's forkserver, so the CPU time of its children counts as the run's own.

    ``scripts/bench.py`` compares the machine's CPU time with its own children's
    to tell whether other processes were busy during the run; a forkserver left
    to exit on its own would be reaped by init, and its children's time lost.
    """
    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)
    if callable(stop):
        stop()


@pytest.fixture(scope="session")
def server() -> Iterator[RedisServer]:
    """The run's own redis-server (never an external one: the suite flushes and resets its stats)."""
    with RedisServer() as running:
        yield running


@pytest.fixture(scope="session")
def url(server: RedisServer, pytestconfig: pytest.Config) -> str:
    return server.url if pytestconfig.getoption("--bench-unix") else server.tcp_url


@pytest.fixture
def clients(url: str) -> Iterator[Callable[[], redis.Redis]]:
    """A factory of fresh clients (one connection pool each); the database is flushed first."""
    made: list[redis.Redis] = []

    def make() -> redis.Redis:
        client = make_client(url)
        made.append(client)
        return client

    make().flushall()
    yield make
    for client in made:
        client.close()


@dataclass(frozen=True)
class PoolSizes:
    """How much the connection-pool benchmarks (``test_pool.py``) measure."""

    #: Rounds of each 50-thread (or 50-task) trial on a pool of 10; each round is a fresh process.
    rounds: int
    #: The contenders of the 50-thread and the 50-task trials (a peer that cannot get the lock takes the
    #: whole 5 s timeout: a quick run measures fewer).
    thread_peers: tuple[str, ...]
    task_peers: tuple[str, ...]
    #: Tasks waiting on one held lock in the waiting-connections rows, and their contenders.
    waiters: int
    waiting_peers: tuple[str, ...]
    #: Seconds CLIENT LIST is sampled while they all wait (a poller of sleep=0.1 polls ten times a second).
    sample: float
    #: Seconds the waiters have to get the lock in turn once it is released; the rest are cancelled.
    drain: float


@pytest.fixture(scope="session")
def pool_sizes(sizes: Sizes) -> PoolSizes:
    if sizes.quick:
        # Under 10 s: ours against the fastest poller (4.0.1 and the limit, which take their whole 5 s
        # timeout, only in a full run, to keep --quick under a minute); 200 waiters against the default
        # poller, which gets 1 s to serve them (it needs about 3).
        return PoolSizes(
            1,
            ("redis_lock", "redis-py-0.001"),
            ("redis_lock-async", "redis-py-async-0.001"),
            200,
            ("redis_lock-async", "redis-py-async-0.1"),
            0.5,
            1.0,
        )
    return PoolSizes(
        3,
        ("redis_lock", "redis-py-0.1", "redis-py-0.001", "prl401", "limit"),
        ("redis_lock-async", "redis-py-async-0.1", "redis-py-async-0.001", "limit-async"),
        1000,
        ("redis_lock-async", "redis-py-async-0.1", "limit-async"),
        1.0,
        10.0,
    )
