"""Chaos harness: what fencing tokens buy, shown under real faults.

A lease lock alone cannot protect a resource from a holder that stops for longer
than its lease (a GC pause, a swapped-out VM, SIGSTOP): the lease runs out, a
newer holder takes the lock and writes, and then the old holder wakes up and
writes too, still believing it holds the lock. Fencing closes that gap: every
grant of ``redis_lock.Lock(..., fencing=True)`` mints a token greater than every
earlier one, and the resource refuses a write whose token is older than the
newest it has accepted. This harness makes that happen for real and checks the
outcome.

The pieces:

- **Workers**: ``--workers`` processes (spawned, so nothing is inherited from a
  threaded parent by fork), half of them with ``auto_renewal=True``, and half of
  them with a client that retries commands after a connection error (the others
  see every such error: both ways of meeting a fault are exercised). Each loops:
  acquire ``Lock(client, "chaos", expire=0.2, fencing=True)``; write
  :data:`ChaosConfig.writes` times to the resource with the lock's token, with a
  few milliseconds of "work" between writes; release. Errors the faults make
  normal are counted and survived: connection errors on acquire and release, and
  ``NotAcquired``/``LockLost`` on release; redis-py reconnects on the next
  command. Anything else ends the worker, and the run fails.
- **The resource**: a SQLite database file (WAL) shared by the workers, written
  with the documented recipe, in one ``BEGIN IMMEDIATE`` transaction::

      UPDATE resource SET value = :v, fence = :token WHERE id = 1 AND fence <= :token
      -- only if a row changed:
      INSERT INTO log (worker, grant_no, token, wall) VALUES (...)

  A write the guard refuses (no row changed, while the worker believed it held
  the lock) goes to the ``rejected`` table instead. With ``guard=False``
  (``--no-guard``) the UPDATE has no ``fence <= :token`` condition: a plain lease
  lock, every write lands. SQLite serialises writers, so the log's id order is
  the order in which the resource accepted the writes.
- **The board**: a shared-memory array (:class:`Board`) where each worker
  publishes its phase (acquiring, holding between writes, inside a write,
  releasing), its grant number and its token. The harness reads it to pick a
  holder to stop, and to see that the workers make progress.
- **Faults**, one at a time on a fixed schedule drawn from ``--seed`` (the same
  kinds, durations and gaps with and without the guard): every other fault
  SIGSTOPs a worker that holds the lock and still has writes to do, for 3-5
  times the lease, and then keeps it stopped until a newer token has reached the
  resource (polling the resource, at most a few seconds more), so that the write
  it makes right after SIGCONT is stale for certain. The holder is stopped
  between two writes, never inside a write's transaction (which would hold
  SQLite's write lock and stall every worker: the database is not under test):
  the harness picks a worker whose phase is "holding", and if the signal landed
  after it moved on, resumes it at once and picks again. Between those, in a
  shuffled order, a restart of redis-server (``RedisServer(appendonly=True)``:
  AOF with ``appendfsync always``, so the lock and its fencing counter survive),
  ``CLIENT PAUSE`` for about 300 ms, and ``CLIENT KILL`` of the connections of
  one holder or of every worker (found by client name in ``CLIENT LIST``). The
  server is the harness's own, on a unix socket; no other server is touched.
  After each fault the harness waits for new grants (the system recovered)
  before the next one. At the end, the fencing counter in Redis must be no
  smaller than the largest token minted (it survived the restarts).
- **The checker** (:func:`judge`) reads the log in id order: (1) accepted tokens
  never decrease from one write to the next; (2) no write is accepted with a
  token older than one already accepted (a "stale write accepted"); (3) every
  token belongs to one grant: two different (worker, grant) pairs never wrote
  with the same token, which is what the lock's tokens must guarantee, since two
  holders with equal tokens could both write. The violations are the writes that
  break (1) or (2) (those breaking (1) are among those breaking (2)) plus the
  tokens that break (3).

With the guard a run must end with 0 violations, and the stale writes of the
stopped holders show up as rejected. Without it the same schedule must make the
checker find stale writes accepted: proof that the checker can fail.

Run it with ``bash scripts/chaos.sh --minutes 10 [--no-guard]`` (a soak: exits
non-zero on a violation with the guard, on finding none without it, or if the
harness itself failed), or through ``tests/chaos/test_chaos.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import functools
import logging
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Final, NamedTuple

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

import redis_lock

from .._server import RedisServer

__all__ = [
    "ChaosConfig",
    "Fault",
    "LogRow",
    "Report",
    "Verdict",
    "check_log",
    "judge",
    "main",
    "run_chaos",
    "schedule",
]

#: The lock every worker takes; its fencing counter is ``lock-fence:chaos``.
LOCK_NAME: Final = "chaos"
#: Workers name their connections ``chaos-w<index>``, so CLIENT KILL can find them in CLIENT LIST.
CLIENT_PREFIX: Final = "chaos-w"

# Deadlines of the harness's polls: generous, for a loaded 2-core CI machine. Each is an upper bound
# on a wait that ends as soon as its condition holds; none is a pacing delay.
#: Workers spawned, connected and first grants made.
STARTUP_TIMEOUT: Final = 60.0
#: New grants after a fault (the system recovered).
RECOVERY_TIMEOUT: Final = 30.0
#: Finding a worker that holds the lock between two writes, to SIGSTOP it.
HOLDER_TIMEOUT: Final = 10.0
#: A SIGSTOP taking effect on every thread of the worker.
STOPPED_TIMEOUT: Final = 5.0
#: How much longer than its planned pause a stopped holder waits for a newer token to reach the resource.
OVERTAKE_TIMEOUT: Final = 5.0
#: A resumed holder finishing its writes.
FINISH_TIMEOUT: Final = 15.0
#: Workers ending after the stop event (then they are killed).
SHUTDOWN_TIMEOUT: Final = 20.0
#: SQLite's busy timeout: a writer waits this long for the write lock (a stopped writer may hold it).
SQLITE_TIMEOUT: Final = 60.0
#: A worker's pause after a connection error, before it tries again.
ERROR_BACKOFF: Final = 0.02
#: How often a long run reports progress, in seconds.
STATUS_EVERY: Final = 30.0

# What a worker is doing (the board's PHASE field).
IDLE: Final = 0  # acquiring (or between grants)
HOLDING: Final = 1  # holds the lock, between two writes: the moment a SIGSTOP makes the next write stale
WRITING: Final = 2  # inside a write transaction (may hold SQLite's write lock: not a moment to stop it)
RELEASING: Final = 3

# The board's fields: one row of FIELDS int64 per worker, written only by that worker.
PHASE: Final = 0
GRANT: Final = 1  # the worker's grant number, also its count of grants
TOKEN: Final = 2  # the fencing token of its current (or last) grant
ACCEPTED: Final = 3
REJECTED: Final = 4
ACQUIRE_ERRORS: Final = 5
RELEASE_LOST: Final = 6  # release raised NotAcquired or LockLost: the lease had run out
RELEASE_ERRORS: Final = 7
READY: Final = 8
FIELDS: Final = 9

# Fault kinds.
SIGSTOP: Final = "sigstop"
RESTART: Final = "restart"
CLIENT_PAUSE: Final = "client-pause"
CLIENT_KILL: Final = "client-kill"

SCHEMA: Final = """
CREATE TABLE resource (id INTEGER PRIMARY KEY, value TEXT NOT NULL, fence INTEGER NOT NULL);
INSERT INTO resource (id, value, fence) VALUES (1, '', 0);
CREATE TABLE log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    worker INTEGER NOT NULL,
    grant_no INTEGER NOT NULL,
    token INTEGER NOT NULL,
    wall REAL NOT NULL
);
CREATE TABLE rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    worker INTEGER NOT NULL,
    grant_no INTEGER NOT NULL,
    token INTEGER NOT NULL,
    fence INTEGER NOT NULL,
    wall REAL NOT NULL
);
"""
#: The documented recipe: the write lands only if no newer token has been accepted.
GUARDED_UPDATE: Final = "UPDATE resource SET value = :v, fence = :token WHERE id = 1 AND fence <= :token"
#: Without the guard: a plain lease lock.
PLAIN_UPDATE: Final = "UPDATE resource SET value = :v, fence = :token WHERE id = 1"


class HarnessError(RuntimeError):
    """The harness could not do what a fault needs (a worker would not stop, or never finished)."""


# -- configuration and schedule -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChaosConfig:
    """One chaos run."""

    #: How long faults are injected, in seconds (at least ``min_faults`` are, however long that takes).
    seconds: float = 600.0
    #: Write with ``fence <= :token`` (fencing); False: a plain lease lock.
    guard: bool = True
    #: Worker processes: the odd-numbered ones use ``auto_renewal``; workers 2, 3, 6, 7, ... let redis-py
    #: retry a command after a connection error (3 times), the others see every such error.
    workers: int = 4
    #: The lock's lease, in seconds.
    expire: float = 0.2
    #: Writes per grant, and the "work" between two of them, in seconds.
    writes: int = 4
    write_gap: float = 0.01
    #: Draws the schedule (fault kinds, durations, gaps).
    seed: int = 1
    #: Faults injected at the least (one round of the schedule is 6: three SIGSTOPs and one of each other kind).
    min_faults: int = 6
    #: Keep the SQLite database in this directory (else a temporary one, removed).
    keep: Path | None = None


@dataclasses.dataclass(frozen=True)
class Fault:
    """One fault of the schedule."""

    kind: str
    #: SIGSTOP: how long the holder stays stopped at the least; CLIENT PAUSE: its length; in seconds.
    duration: float = 0.0
    #: Quiet time after the system recovered from it, before the next fault, in seconds.
    gap: float = 0.0
    #: CLIENT KILL: every worker's connections, rather than the holder's.
    everyone: bool = False


def schedule(seed: int, expire: float) -> Iterator[Fault]:
    """The faults, endlessly: rounds of SIGSTOP, X, SIGSTOP, Y, SIGSTOP, Z with X, Y, Z the other kinds shuffled."""
    rng = random.Random(seed)
    while True:
        others = [RESTART, CLIENT_PAUSE, CLIENT_KILL]
        rng.shuffle(others)
        for other in others:
            yield Fault(SIGSTOP, duration=rng.uniform(3.0, 5.0) * expire, gap=rng.uniform(0.1, 0.4))
            yield Fault(
                other,
                duration=rng.uniform(0.25, 0.35) if other == CLIENT_PAUSE else 0.0,
                gap=rng.uniform(0.1, 0.4),
                everyone=rng.random() < 0.5,
            )


# -- the board ------------------------------------------------------------------------------------


class Board:
    """The workers' status in shared memory: one row of :data:`FIELDS` int64 per worker.

    Each row has a single writer, its worker, so plain reads and writes suffice.
    """

    def __init__(self, array: ctypes.Array[ctypes.c_int64]) -> None:
        self._array = array

    def get(self, worker: int, field: int) -> int:
        return int(self._array[worker * FIELDS + field])

    def set(self, worker: int, field: int, value: int) -> None:
        self._array[worker * FIELDS + field] = value

    def add(self, worker: int, field: int, amount: int = 1) -> None:
        self.set(worker, field, self.get(worker, field) + amount)

    def total(self, field: int) -> int:
        return sum(int(self._array[row + field]) for row in range(0, len(self._array), FIELDS))


# -- the resource ---------------------------------------------------------------------------------


def create_resource(path: Path) -> None:
    """A fresh resource database: the row to write, and the log of accepted and rejected writes."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)


def open_resource(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), waiting generously for the write lock."""
    db = sqlite3.connect(path, timeout=SQLITE_TIMEOUT, isolation_level=None)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def fenced_write(
    db: sqlite3.Connection, *, guard: bool, worker: int, grant: int, token: int, value: str
) -> bool:
    """Write ``value`` with ``token``, logging it if it landed; True if it did (see the module docstring)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        changed = db.execute(GUARDED_UPDATE if guard else PLAIN_UPDATE, {"v": value, "token": token}).rowcount
        now = time.time()
        if changed:
            db.execute(
                "INSERT INTO log (worker, grant_no, token, wall) VALUES (?, ?, ?, ?)",
                (worker, grant, token, now),
            )
        else:
            db.execute(
                "INSERT INTO rejected (worker, grant_no, token, fence, wall)"
                " SELECT ?, ?, ?, fence, ? FROM resource WHERE id = 1",
                (worker, grant, token, now),
            )
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    return changed == 1


def read_fence(db: sqlite3.Connection) -> int:
    """The token of the last write the resource accepted (0 before any)."""
    row = db.execute("SELECT fence FROM resource WHERE id = 1").fetchone()
    return int(row[0])


# -- the checker ----------------------------------------------------------------------------------


class LogRow(NamedTuple):
    """One accepted write, in the order the resource accepted it."""

    id: int
    worker: int
    grant: int
    token: int


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the checker found in the log (see the module docstring for the three checks)."""

    #: Accepted writes, and the grants they came from.
    writes: int
    grants: int
    #: (1) writes whose token is smaller than the previous write's.
    decreases: int
    #: (2) writes accepted with a token older than one accepted before them.
    stale_accepted: int
    #: (3) tokens that two different grants wrote with.
    shared_tokens: int
    #: Writes the guard refused (the ``rejected`` table).
    rejected: int
    #: The first few violations, described.
    examples: tuple[str, ...] = ()

    @property
    def violations(self) -> int:
        """Writes breaking (1) or (2), plus tokens breaking (3)."""
        return self.stale_accepted + self.shared_tokens


def judge(rows: Sequence[LogRow], rejected: int = 0, max_examples: int = 5) -> Verdict:
    """Check the accepted writes ``rows``, in the order the resource accepted them."""
    examples: list[str] = []

    def example(text: str) -> None:
        if len(examples) < max_examples:
            examples.append(text)

    decreases = stale = 0
    previous: LogRow | None = None
    newest: LogRow | None = None  # the write with the largest token so far
    owners: dict[int, tuple[int, int]] = {}
    shared: set[int] = set()
    for row in rows:
        if previous is not None and row.token < previous.token:
            decreases += 1
        if newest is not None and row.token < newest.token:
            stale += 1
            example(
                f"log #{row.id}: worker {row.worker} (grant {row.grant}) wrote with token {row.token}"
                f" after token {newest.token} (worker {newest.worker}, grant {newest.grant}) was"
                f" accepted at log #{newest.id}"
            )
        if newest is None or row.token > newest.token:
            newest = row
        owner = owners.setdefault(row.token, (row.worker, row.grant))
        if owner != (row.worker, row.grant) and row.token not in shared:
            shared.add(row.token)
            example(
                f"log #{row.id}: token {row.token} written by worker {row.worker} (grant {row.grant})"
                f" and by worker {owner[0]} (grant {owner[1]})"
            )
        previous = row
    return Verdict(
        writes=len(rows),
        grants=len({(row.worker, row.grant) for row in rows}),
        decreases=decreases,
        stale_accepted=stale,
        shared_tokens=len(shared),
        rejected=rejected,
        examples=tuple(examples),
    )


def check_log(path: Path) -> Verdict:
    """:func:`judge` the log of the resource database at ``path``."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = [
            LogRow(int(id_), int(worker), int(grant), int(token))
            for id_, worker, grant, token in db.execute(
                "SELECT id, worker, grant_no, token FROM log ORDER BY id"
            )
        ]
        rejected = int(db.execute("SELECT count(*) FROM rejected").fetchone()[0])
    return judge(rows, rejected)


# -- the workers ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs (pickled to it when it is spawned)."""

    index: int
    unix_path: str
    db_path: str
    guard: bool
    auto_renewal: bool
    #: How often redis-py retries a command after a connection error (0: the error reaches the lock).
    retries: int
    expire: float
    writes: int
    write_gap: float

    @property
    def client_name(self) -> str:
        return f"{CLIENT_PREFIX}{self.index}"


def worker_client(spec: WorkerSpec) -> redis.Redis:
    """The worker's client: named for CLIENT LIST, quick to reconnect after a restart or a kill."""
    return redis.Redis(
        unix_socket_path=spec.unix_path,
        client_name=spec.client_name,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), spec.retries),
    )


def worker_main(spec: WorkerSpec, array: ctypes.Array[ctypes.c_int64], stop: Event) -> None:
    """A worker process: acquire, write ``spec.writes`` times with the token, release; until ``stop``."""
    # Ctrl-C reaches the whole process group: the harness handles it and stops the workers through `stop`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Lost leases and acquire timeouts are this test's daily bread (the board counts them); other
    # errors, such as an unexpected renewal failure, are still printed.
    logging.getLogger("redis_lock").setLevel(logging.ERROR)
    logging.getLogger("redis_lock.refresh.thread").addFilter(
        lambda record: not str(record.msg).startswith("Lost Lock(")
    )
    board = Board(array)
    me = spec.index
    parent = os.getppid()
    grant = 0
    with (
        contextlib.closing(open_resource(spec.db_path)) as db,
        contextlib.closing(worker_client(spec)) as client,
    ):
        board.set(me, READY, 1)
        while not stop.is_set() and os.getppid() == parent:
            lock = redis_lock.Lock(
                client, LOCK_NAME, expire=spec.expire, fencing=True, auto_renewal=spec.auto_renewal
            )
            try:
                if not lock.acquire(timeout=spec.expire):
                    continue
            except redis.RedisError:
                board.add(me, ACQUIRE_ERRORS)
                stop.wait(ERROR_BACKOFF)
                continue
            grant += 1
            token = lock.fencing_token
            if token is None:
                raise AssertionError(f"worker {me}: a grant of a fencing lock came without a token")
            board.set(me, TOKEN, token)
            board.set(me, GRANT, grant)
            board.set(me, PHASE, HOLDING)
            for k in range(spec.writes):
                board.set(me, PHASE, WRITING)
                landed = fenced_write(
                    db, guard=spec.guard, worker=me, grant=grant, token=token, value=f"{me}:{grant}:{k}"
                )
                board.add(me, ACCEPTED if landed else REJECTED)
                if k + 1 < spec.writes:
                    board.set(me, PHASE, HOLDING)
                    time.sleep(spec.write_gap)  # the work between two writes (where a SIGSTOP lands)
            board.set(me, PHASE, RELEASING)
            try:
                lock.release()
            except redis_lock.NotAcquired:  # LockLost too: the lease ran out while this worker was stopped
                board.add(me, RELEASE_LOST)
            except redis.RedisError:
                board.add(me, RELEASE_ERRORS)
            board.set(me, PHASE, IDLE)


# -- the faults -----------------------------------------------------------------------------------


def poll(predicate: Callable[[], bool], timeout: float, interval: float = 0.002) -> bool:
    """Whether ``predicate`` came true within ``timeout`` seconds (checked every ``interval``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


_HAVE_PROC: Final = Path("/proc/self/task").is_dir()


def is_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (Linux ``/proc``; elsewhere, true after a short wait)."""
    if not _HAVE_PROC:
        time.sleep(0.05)
        return True
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for tid in threads:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended
        state = stat.rpartition(")")[2].split()[0]
        if state not in ("T", "t", "Z", "X"):
            return False
    return True


class Chaos:
    """Injects the faults on the harness's own server and workers, and counts them."""

    def __init__(
        self,
        config: ChaosConfig,
        server: RedisServer,
        board: Board,
        processes: Sequence[SpawnProcess],
        db_path: Path,
    ) -> None:
        self.config = config
        self.server = server
        self.board = board
        self.processes = processes
        self.admin = redis.Redis(
            unix_socket_path=server.unix_path,
            socket_timeout=10.0,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), 5),
        )
        self.resource = open_resource(db_path)
        # The schedule has its own generator; this one picks victims, which depends on timing.
        self.picker = random.Random(config.seed + 1)
        self.pauses = 0
        self.overtaken = 0
        self.stopped_seconds = 0.0
        self.missed_pauses = 0
        self.restarts = 0
        self.client_pauses = 0
        self.kills = 0
        self.killed_connections = 0

    def close(self) -> None:
        self.admin.close()
        self.resource.close()

    def inject(self, fault: Fault) -> None:
        if fault.kind == SIGSTOP:
            self.stop_holder(fault.duration)
        elif fault.kind == RESTART:
            self.server.restart()
            self.restarts += 1
        elif fault.kind == CLIENT_PAUSE:
            self.admin.client_pause(round(fault.duration * 1000))
            self.client_pauses += 1
        elif fault.kind == CLIENT_KILL:
            self.client_kill(fault.everyone)
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")

    def _pid(self, worker: int) -> int:
        pid = self.processes[worker].pid
        if pid is None:
            raise HarnessError(f"worker {worker} has no pid")
        return pid

    def _holder(self) -> int | None:
        """A worker holding the lock between two writes right now, if any."""
        holders = [w for w in range(len(self.processes)) if self.board.get(w, PHASE) == HOLDING]
        return self.picker.choice(holders) if holders else None

    def stop_holder(self, duration: float) -> None:
        """SIGSTOP a holder between two writes, for ``duration`` and until a newer token reached the resource."""
        deadline = time.monotonic() + HOLDER_TIMEOUT
        while time.monotonic() < deadline:
            worker = self._holder()
            if worker is None:
                time.sleep(0.001)
                continue
            pid = self._pid(worker)
            os.kill(pid, signal.SIGSTOP)
            try:
                if not poll(functools.partial(is_stopped, pid), STOPPED_TIMEOUT):
                    raise HarnessError(f"worker {worker} (pid {pid}) did not stop on SIGSTOP")
                # Stopped now, its row frozen: still between two writes (of this grant or a newer one)?
                if self.board.get(worker, PHASE) == HOLDING:
                    self._hold_stopped(worker, duration)
                    self.pauses += 1
                    return
            finally:
                os.kill(pid, signal.SIGCONT)
            # It moved on (into a write, or released) before the signal landed: try another.
        self.missed_pauses += 1

    def _hold_stopped(self, worker: int, duration: float) -> None:
        token = self.board.get(worker, TOKEN)
        grant = self.board.get(worker, GRANT)
        stopped_at = time.monotonic()
        time.sleep(duration)  # the fault itself: the holder stays stopped past its lease
        if poll(lambda: read_fence(self.resource) > token, OVERTAKE_TIMEOUT):
            self.overtaken += 1
        self.stopped_seconds += time.monotonic() - stopped_at
        os.kill(self._pid(worker), signal.SIGCONT)

        def finished() -> bool:
            return self.board.get(worker, GRANT) != grant or self.board.get(worker, PHASE) in (
                RELEASING,
                IDLE,
            )

        # Its remaining writes (stale now) happen before the next fault.
        if not poll(finished, FINISH_TIMEOUT):
            raise HarnessError(
                f"worker {worker} did not finish grant {grant} within {FINISH_TIMEOUT} s of SIGCONT"
            )

    def client_kill(self, everyone: bool) -> None:
        """CLIENT KILL the connections of every worker, or of the current holder (else a random worker)."""
        if everyone:
            names = {f"{CLIENT_PREFIX}{w}" for w in range(len(self.processes))}
        else:
            holders = [w for w in range(len(self.processes)) if self.board.get(w, PHASE) != IDLE]
            victim = self.picker.choice(holders or range(len(self.processes)))
            names = {f"{CLIENT_PREFIX}{victim}"}
        for client in self.admin.client_list():
            if client.get("name") in names:
                killed = self.admin.client_kill_filter(_id=client["id"])
                self.killed_connections += int(killed)
        self.kills += 1


# -- the run --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Report:
    """What a run did and what the checker found."""

    config: ChaosConfig
    seconds: float
    grants: int
    acquire_errors: int
    release_lost: int
    release_errors: int
    pauses: int
    overtaken: int
    stopped_seconds: float
    missed_pauses: int
    restarts: int
    client_pauses: int
    kills: int
    killed_connections: int
    #: The fencing counter in Redis at the end (None if it could not be read), and the largest logged token.
    counter: int | None
    max_token: int
    verdict: Verdict
    #: What went wrong with the harness or the workers (not the checker's findings).
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """With the guard: no violation. Without it: the checker caught stale writes (and no shared token)."""
        if self.failures:
            return False
        if self.config.guard:
            return self.verdict.violations == 0
        return self.verdict.stale_accepted > 0 and self.verdict.shared_tokens == 0

    def summary(self) -> str:
        config, verdict = self.config, self.verdict
        mode = "guard: ... WHERE fence <= :token" if config.guard else "no guard: a plain lease lock"
        renewing = len(range(1, config.workers, 2))
        retrying = sum(1 for index in range(config.workers) if index // 2 % 2)
        lines = [
            f"chaos run ({mode}): {config.workers} workers ({renewing} with auto_renewal, {retrying} retrying),"
            f" expire {config.expire} s, seed {config.seed}, {self.seconds:.1f} s",
            f"  grants (runs)                    {self.grants:7d}",
            f"  writes accepted                  {verdict.writes:7d}  (from {verdict.grants} grants)",
            f"  SIGSTOP pauses of a holder       {self.pauses:7d}  ({self.overtaken} overtaken by a newer"
            f" token while stopped; {self.stopped_seconds:.1f} s stopped in all; {self.missed_pauses} found no holder)",
            f"  redis-server restarts            {self.restarts:7d}",
            f"  CLIENT PAUSEs                    {self.client_pauses:7d}",
            f"  CLIENT KILLs                     {self.kills:7d}  ({self.killed_connections} connections killed)",
            f"  stale writes rejected            {verdict.rejected:7d}",
            f"  acquire errors                   {self.acquire_errors:7d}",
            f"  releases after a lost lease      {self.release_lost:7d}  (+ {self.release_errors} release errors)",
            f"  fencing counter / max token      {self.counter} / {self.max_token}",
            f"  violations                       {verdict.violations:7d}  (token decreases {verdict.decreases},"
            f" stale writes accepted {verdict.stale_accepted}, tokens shared by two grants {verdict.shared_tokens})",
        ]
        lines += [f"    {example}" for example in verdict.examples]
        lines += [f"  FAILURE: {failure}" for failure in self.failures]
        if config.guard:
            outcome = "0 violations" if verdict.violations == 0 else "VIOLATIONS with the guard"
        else:
            outcome = (
                "the checker caught the stale writes"
                if verdict.stale_accepted
                else "the checker found NO stale write"
            )
        lines.append(f"  result: {'PASS' if self.passed else 'FAIL'} ({outcome})")
        return "\n".join(lines)


def _dead_workers(processes: Sequence[SpawnProcess]) -> list[str]:
    return [
        f"worker {index} exited with code {process.exitcode}"
        for index, process in enumerate(processes)
        if process.exitcode is not None
    ]


def _stop_workers(processes: Sequence[SpawnProcess], stop: Event) -> None:
    """Stop every worker: the event, SIGCONT (one may be stopped), a join, and SIGKILL for stragglers."""
    stop.set()
    for process in processes:
        if process.pid is not None and process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT
    for process in processes:
        if process.pid is not None:
            process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.pid is not None and process.exitcode is None:
            process.kill()
            process.join(10)


def _read_counter(server: RedisServer) -> int | None:
    """The fencing counter of the lock in Redis, or None if it cannot be read."""
    client = redis.Redis(unix_socket_path=server.unix_path, socket_timeout=10.0)
    try:
        raw = client.get(f"lock-fence:{LOCK_NAME}")
        return None if raw is None else int(raw)
    except (redis.RedisError, ValueError):
        return None
    finally:
        client.close()


def _start(board: Board, processes: Sequence[SpawnProcess]) -> list[str]:
    """Wait for every worker to connect, and for the first grants."""

    def ready() -> bool:
        return board.total(READY) == len(processes) or bool(_dead_workers(processes))

    def granted() -> bool:
        return board.total(GRANT) >= len(processes) or bool(_dead_workers(processes))

    if not poll(ready, STARTUP_TIMEOUT, interval=0.01):
        return [f"the workers were not ready within {STARTUP_TIMEOUT} s"]
    if not poll(granted, STARTUP_TIMEOUT, interval=0.01):
        return [f"no {len(processes)} grants within {STARTUP_TIMEOUT} s of the start"]
    return _dead_workers(processes)


def _recovered(board: Board, processes: Sequence[SpawnProcess]) -> bool:
    """Whether two more grants happen within :data:`RECOVERY_TIMEOUT` (False too if a worker died)."""
    target = board.total(GRANT) + 2
    poll(lambda: board.total(GRANT) >= target or bool(_dead_workers(processes)), RECOVERY_TIMEOUT)
    return board.total(GRANT) >= target


def _inject(
    config: ChaosConfig,
    chaos: Chaos,
    board: Board,
    processes: Sequence[SpawnProcess],
    say: Callable[[str], None],
) -> list[str]:
    """The fault loop: faults of the schedule, one at a time, each followed by recovery and a gap."""
    faults = schedule(config.seed, config.expire)
    began = last_status = time.monotonic()
    injected = 0
    while injected < config.min_faults or time.monotonic() - began < config.seconds:
        fault = next(faults)
        try:
            chaos.inject(fault)
        except (HarnessError, redis.RedisError) as exc:
            return [f"{fault.kind}: {type(exc).__name__}: {exc}"]
        injected += 1
        dead = _dead_workers(processes)
        if dead:
            return dead
        if not _recovered(board, processes):
            return [
                *_dead_workers(processes),
                f"no new grant within {RECOVERY_TIMEOUT} s after a {fault.kind}",
            ]
        time.sleep(fault.gap)  # quiet time before the next fault: pacing, not synchronisation
        now = time.monotonic()
        if now - last_status >= STATUS_EVERY:
            last_status = now
            say(
                f"  {now - began:5.0f} s: {board.total(GRANT)} grants, {board.total(ACCEPTED)} writes accepted,"
                f" {board.total(REJECTED)} rejected; {chaos.pauses} SIGSTOPs, {chaos.restarts} restarts,"
                f" {chaos.client_pauses} CLIENT PAUSEs, {chaos.kills} CLIENT KILLs"
            )
    return []


def run_chaos(config: ChaosConfig, progress: Callable[[str], None] | None = None) -> Report:
    """Run the workers under the faults of ``config`` and check the log.

    Every worker and the server are stopped at the end, and the temporary
    directory removed, whatever happens. ``progress`` gets a status line now
    and then (a long run's heartbeat).
    """
    if config.workers < 2:
        raise ValueError("the chaos run needs two workers at least: one to stop, one to take over")
    workdir = config.keep or Path(tempfile.mkdtemp(prefix="redis-lock-chaos-"))
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        db_path = workdir / "resource.db"
        for suffix in ("", "-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        create_resource(db_path)
        return _run(config, db_path, progress or (lambda _line: None))
    finally:
        if config.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(config: ChaosConfig, db_path: Path, say: Callable[[str], None]) -> Report:
    ctx = multiprocessing.get_context("spawn")
    array = ctx.RawArray(ctypes.c_int64, config.workers * FIELDS)
    board = Board(array)
    stop = ctx.Event()
    processes: list[SpawnProcess] = []
    failures: list[str] = []
    counter: int | None = None
    started = time.monotonic()
    server = RedisServer(appendonly=True)  # makes its directory: cleanup() removes it
    try:
        chaos = Chaos(config, server, board, processes, db_path)
        try:
            server.start()
            for index in range(config.workers):
                spec = WorkerSpec(
                    index=index,
                    unix_path=server.unix_path,
                    db_path=str(db_path),
                    guard=config.guard,
                    auto_renewal=index % 2 == 1,
                    retries=3 if index // 2 % 2 else 0,  # as counted in Report.summary
                    expire=config.expire,
                    writes=config.writes,
                    write_gap=config.write_gap,
                )
                process = ctx.Process(
                    target=worker_main, args=(spec, array, stop), name=spec.client_name, daemon=True
                )
                process.start()
                processes.append(process)
            failures += _start(board, processes)
            if not failures:
                failures += _inject(config, chaos, board, processes, say)
            _stop_workers(processes, stop)
            failures += [f for f in _dead_workers(processes) if not f.endswith(" code 0")]
            counter = _read_counter(server)
        except KeyboardInterrupt:
            failures.append("interrupted")
        finally:
            _stop_workers(processes, stop)
            chaos.close()
    finally:
        server.cleanup()
    seconds = time.monotonic() - started
    verdict = check_log(db_path)
    max_token = max(board.get(worker, TOKEN) for worker in range(config.workers))
    if counter is not None and counter < max_token:
        failures.append(f"the fencing counter ({counter}) is below the largest token minted ({max_token})")
    return Report(
        config=config,
        seconds=seconds,
        grants=board.total(GRANT),
        acquire_errors=board.total(ACQUIRE_ERRORS),
        release_lost=board.total(RELEASE_LOST),
        release_errors=board.total(RELEASE_ERRORS),
        pauses=chaos.pauses,
        overtaken=chaos.overtaken,
        stopped_seconds=chaos.stopped_seconds,
        missed_pauses=chaos.missed_pauses,
        restarts=chaos.restarts,
        client_pauses=chaos.client_pauses,
        kills=chaos.kills,
        killed_connections=chaos.killed_connections,
        counter=counter,
        max_token=max_token,
        verdict=verdict,
        failures=tuple(dict.fromkeys(failures)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The soak command (``scripts/chaos.sh``): one run, its summary, and an exit status (see :attr:`Report.passed`)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.harness",
        description="Chaos soak of redis_lock fencing tokens: workers write a SQLite resource under SIGSTOP,"
        " redis-server restarts, CLIENT PAUSE and CLIENT KILL, and a checker reads the log.",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to inject faults (default 10)")
    parser.add_argument(
        "--no-guard",
        action="store_true",
        help="write without 'fence <= :token' (a plain lease lock): the checker must then find stale writes",
    )
    parser.add_argument(
        "--workers", type=int, default=ChaosConfig.workers, help="worker processes (default 4)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="the schedule's seed (default: random, printed)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the SQLite database in this directory (resource.db, replaced)",
    )
    args = parser.parse_args(argv)
    seed = random.randrange(1 << 32) if args.seed is None else int(args.seed)
    keep: Path | None = args.keep
    config = ChaosConfig(
        seconds=float(args.minutes) * 60.0,
        guard=not args.no_guard,
        workers=int(args.workers),
        seed=seed,
        keep=keep,
    )

    def say(line: str) -> None:
        print(line, flush=True)

    say(
        f"chaos: {config.seconds / 60:g} min, {'with' if config.guard else 'WITHOUT'} the fencing guard,"
        f" {config.workers} workers, seed {seed}"
    )
    report = run_chaos(config, progress=say)
    say(report.summary())
    if keep is not None:
        say(f"  database kept: {keep / 'resource.db'}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
