"""The ``redis-lock`` command line (``redis_lock._cli``), run as real processes against the test Redis.

Most tests run ``python -m redis_lock`` in a subprocess, as a user would; the
ones that need no child process, no signal and no timing call ``main()`` in
this process (faster, and measured by the coverage run). Every test passes the
test server's URL explicitly and uses lock names of its own.
"""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import redis_lock
from redis_lock._cli import Output, main, mask_url, name_of, url_secrets
from redis_lock._keys import hash_tag, key_slot

from ._cluster import RedisClusterDeployment
from ._server import RedisServer, free_port

CLI = [sys.executable, "-m", "redis_lock"]


def _coverage_env() -> dict[str, str]:
    """When this run measures coverage (scripts/test.sh), the environment that makes subprocesses measure theirs.

    coverage.py's start-up hook (its ``.pth`` file) reads COVERAGE_PROCESS_CONFIG;
    with ``parallel`` each process writes a data file of its own next to the
    run's, and pytest-cov combines them at the end of the run.
    """
    try:
        import coverage
    except ImportError:  # pragma: no cover - coverage is a dev dependency
        return {}
    current = coverage.Coverage.current()
    if current is None or not hasattr(current.config, "serialize"):
        return {}
    config = copy.copy(current.config)
    config.parallel = True
    return {"COVERAGE_PROCESS_CONFIG": config.serialize()}


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(_coverage_env())
    env.update(extra)
    return env


def run_cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run ``redis-lock ARGS...`` to completion (in an environment without $REDIS_URL unless given)."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=30, env=_env(**extra_env), check=False
    )


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``redis-lock --url URL ARGS...`` to completion."""
    return run_cli("--url", url, *args)


StartCli = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def start_cli() -> Iterator[StartCli]:
    """Start ``redis-lock --url URL ARGS...`` in the background; whatever still runs at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(url: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*CLI, "--url", url, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, counts as dead)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except FileNotFoundError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def python(code: str) -> list[str]:
    """A command that runs ``code`` with this interpreter."""
    return [sys.executable, "-c", code]


@pytest.fixture
def name() -> str:
    return f"cli-{uuid.uuid4().hex}"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def held(client: redis.Redis, name: str) -> Iterator[redis_lock.Lock]:
    """The lock ``name``, held by this test for 30 s."""
    lock = redis_lock.Lock(client, name, expire=30)
    assert lock.acquire(blocking=False)
    yield lock
    lock.reset()


# -- run: exit codes ---------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 255])
def test_run_passes_the_exit_status_through(
    redis_url: str, name: str, code: int, client: redis.Redis
) -> None:
    """The command's exit status is redis-lock's, and the lock is released afterwards."""
    done = cli(redis_url, "run", name, "--", *python(f"import sys; sys.exit({code})"))
    assert done.returncode == code, done.stderr
    assert client.exists(f"lock:{name}") == 0


def test_run_reports_a_signal_death_as_128_plus_n(redis_url: str, name: str) -> None:
    """A command killed by signal N makes redis-lock exit 128+N, as a shell does."""
    done = cli(
        redis_url, "run", name, "--", *python("import os, signal; os.kill(os.getpid(), signal.SIGUSR1)")
    )
    assert done.returncode == 128 + signal.SIGUSR1, done.stderr


def test_run_in_process(redis_url: str, name: str, client: redis.Redis) -> None:
    """``main()`` returns the command's status and leaves the lock free."""
    assert main(["--url", redis_url, "run", name, "--", *python("raise SystemExit(5)")]) == 5
    assert client.exists(f"lock:{name}") == 0


def test_a_command_that_cannot_run_exits_127(
    redis_url: str, name: str, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing program exits 127 (as in a shell), says so, and releases the lock."""
    assert main(["--url", redis_url, "run", name, "--", f"/nonexistent/{name}"]) == 127
    assert "cannot run" in capsys.readouterr().err
    assert client.exists(f"lock:{name}") == 0


@pytest.mark.parametrize(("code", "expected"), [(0, 70), (3, 3)])
def test_a_lock_lost_unnoticed_is_reported_at_release(
    redis_url: str,
    name: str,
    client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    code: int,
    expected: int,
) -> None:
    """A lock found lost only at release: a successful command's run exits 70, a failed one keeps its status."""
    steal = f"import redis, sys; redis.Redis.from_url({redis_url!r}).delete('lock:{name}'); sys.exit({code})"
    assert main(["--url", redis_url, "run", name, "--", *python(steal)]) == expected
    assert "was lost before the command ended" in capsys.readouterr().err


# -- run: a busy lock --------------------------------------------------------------------


@pytest.mark.usefixtures("held")
@pytest.mark.parametrize(("options", "code"), [(["-n"], 1), (["-n", "-E", "42"], 42), (["-w", "0"], 1)])
def test_busy_lock_without_waiting(redis_url: str, name: str, options: list[str], code: int) -> None:
    """``-n`` (or ``-w 0``) gives up at once with the conflict code, silently, and never runs the command."""
    started = time.monotonic()
    done = cli(redis_url, "run", name, *options, "--", *python("print('ran')"))
    assert done.returncode == code
    assert time.monotonic() - started < 5
    assert done.stdout == ""
    assert done.stderr == ""


@pytest.mark.usefixtures("held")
def test_wait_gives_up_after_its_timeout(start_cli: StartCli, redis_url: str, name: str) -> None:
    """``-w 0.2`` waits about 0.2 s for a busy lock, then exits with the conflict code."""
    process = start_cli(redis_url, "-v", "run", name, "-w", "0.2", "-E", "3", "--", *python("print('ran')"))
    started = time.monotonic()
    out, err = process.communicate(timeout=10)
    elapsed = time.monotonic() - started
    assert process.returncode == 3
    assert out == ""
    assert "is busy: giving up" in err
    assert 0.2 <= elapsed < 2


def test_wait_ends_when_the_holder_releases(
    start_cli: StartCli, redis_url: str, name: str, held: redis_lock.Lock
) -> None:
    """A waiting run takes the lock once the holder releases it, and ``-v`` reports the wait on stderr."""
    process = start_cli(redis_url, "-v", "run", name, "-w", "20", "--", *python("print('ran')"))
    assert process.stderr is not None
    first = process.stderr.readline()  # a status line, after about a second of waiting
    assert "waiting for" in first
    assert "expires in" in first
    held.release()
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == "ran\n"
    assert "acquired" in err


@pytest.mark.usefixtures("held")
def test_a_signal_ends_the_wait(start_cli: StartCli, redis_url: str, name: str) -> None:
    """SIGTERM while waiting for the lock ends the wait: exit 128+15, and the command never runs."""
    process = start_cli(redis_url, "-v", "run", name, "--", *python("print('ran')"))
    assert process.stderr is not None
    assert "waiting for" in process.stderr.readline()
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 128 + signal.SIGTERM
    assert out == ""


# -- run --fair ----------------------------------------------------------------------------


def _live_waiters(client: redis.Redis, name: str) -> int:
    """How many calls wait in the fair queue of ``name`` (``lock-queue:NAME``)."""
    return int(client.zcard(f"lock-queue:{name}"))


@pytest.fixture
def fair_held(client: redis.Redis, name: str) -> Iterator[redis_lock.Lock]:
    """The lock ``name``, held by this test for 30 s with ``fair=True`` (its release hands it on)."""
    lock = redis_lock.Lock(client, name, expire=30, fair=True)
    assert lock.acquire(blocking=False)
    yield lock
    lock.reset()


def _status_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    """The next ``count`` lines of a waiting run's stderr (its ``-v`` status lines, one a second)."""
    assert process.stderr is not None
    return [process.stderr.readline() for _ in range(count)]


def test_fair_runs_wait_in_arrival_order(
    start_cli: StartCli,
    redis_url: str,
    name: str,
    client: redis.Redis,
    fair_held: redis_lock.Lock,
    tmp_path: Path,
) -> None:
    """Two ``run --fair`` wait in the queue in arrival order, keep their places past a wait chunk, and run in that order.

    ``-v`` shows each one's place (``1st in the queue of 2``, ``2nd ...``). The
    status lines come a second apart, so the first one's place outlives the
    CLI's one-second chunks (a chunked wait would requeue behind the second).
    """
    record = tmp_path / "order"
    command = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"
    first = start_cli(
        redis_url, "-v", "run", name, "--fair", "-w", "20", "--", *python(command), str(record), "A"
    )
    wait_until(lambda: _live_waiters(client, name) == 1, "the first run to queue")
    second = start_cli(
        redis_url, "-v", "run", name, "--fair", "-w", "20", "--", *python(command), str(record), "B"
    )
    wait_until(lambda: _live_waiters(client, name) == 2, "the second run to queue")
    # The second's first line comes a second after it queued; the first's second line as late, if not later.
    assert "2nd in the queue of 2" in _status_lines(second, 1)[0]
    lines = _status_lines(first, 2)
    assert all("1st in the queue of" in line for line in lines), lines
    assert "expires in" in lines[-1]
    fair_held.release()
    for process in (first, second):
        _, err = process.communicate(timeout=10)
        assert process.returncode == 0, err
        assert "acquired" in err
    assert record.read_text().split() == ["A", "B"]
    assert _live_waiters(client, name) == 0


@pytest.mark.usefixtures("fair_held")
def test_fair_wait_ends_on_a_signal_and_leaves_the_queue(
    start_cli: StartCli, redis_url: str, name: str, client: redis.Redis
) -> None:
    """SIGTERM during a ``--fair`` wait ends it at once: exit 128+15, the command never runs, the place is left."""
    process = start_cli(
        redis_url, "run", name, "--fair", "--queue-lease", "30", "--", *python("print('ran')")
    )
    wait_until(lambda: _live_waiters(client, name) == 1, "the run to queue")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert out == ""
    # Left by fair.lua's cancel, not by its lease (30 s here).
    assert _live_waiters(client, name) == 0


def test_fair_wait_gives_up_after_its_timeout(
    start_cli: StartCli, redis_url: str, name: str, client: redis.Redis, fair_held: redis_lock.Lock
) -> None:
    """``--fair -w 0.3`` gives up with the conflict code and leaves the queue; a lock handed over later goes elsewhere."""
    process = start_cli(
        redis_url, "run", name, "--fair", "-w", "0.3", "-E", "3", "--", *python("print('ran')")
    )
    out, err = process.communicate(timeout=10)
    assert process.returncode == 3, err
    assert out == ""
    assert _live_waiters(client, name) == 0
    fair_held.release()
    assert client.exists(f"lock:{name}") == 0


def test_status_and_list_count_fair_waiters(
    redis_url: str,
    name: str,
    client: redis.Redis,
    fair_held: redis_lock.Lock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``queued`` in ``status --json`` and ``list --json`` counts the live fair waiters; a dead waiter's place does not count."""
    results: list[bool] = []

    def take_and_release() -> None:
        waiter = redis_lock.Lock(client, name, expire=30, fair=True)
        results.append(waiter.acquire(timeout=20))
        waiter.release()  # hands the lock to the next

    threads = [threading.Thread(target=take_and_release) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: _live_waiters(client, name) == 2, "two waiters to queue")
        # A place whose lease ended long ago (its waiter died): still in the queue, not counted.
        client.zadd(f"lock-queue:{name}", {"deadbeefdeadbeef": 99})
        client.hset(f"lock-queued:{name}", "deadbeefdeadbeef", "1|30000|-|dead-waiter")
        assert main(["--url", redis_url, "status", name, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["queued"] == 2
        assert main(["--url", redis_url, "list", "--json", "--match", name]) == 0
        assert [entry["queued"] for entry in json.loads(capsys.readouterr().out)] == [2]
        assert main(["--url", redis_url, "status", name]) == 0
        assert "queued: 2" in capsys.readouterr().out
    finally:
        fair_held.release()
        for thread in threads:
            thread.join(timeout=20)
    assert results == [True, True]


# -- run: the child's environment ----------------------------------------------------------


def test_child_environment(redis_url: str, name: str) -> None:
    """The command sees REDIS_LOCK_NAME and REDIS_LOCK_ID (the value in the lock key), no token by default."""
    code = (
        "import json, os, redis; e = os.environ; "
        f"held = redis.Redis.from_url({redis_url!r}).get('lock:' + e['REDIS_LOCK_NAME']).decode(); "
        "print(json.dumps([e['REDIS_LOCK_NAME'], e['REDIS_LOCK_ID'], held, e.get('REDIS_LOCK_FENCING_TOKEN')]))"
    )
    done = cli(redis_url, "run", name, "--", *python(code))
    assert done.returncode == 0, done.stderr
    env_name, lock_id, holder, token = json.loads(done.stdout)
    assert env_name == name
    assert lock_id
    assert lock_id == holder
    assert token is None


def test_fencing_token_increases_between_runs(redis_url: str, name: str) -> None:
    """With ``--fencing`` the command gets REDIS_LOCK_FENCING_TOKEN, larger on every run."""
    tokens = []
    for _ in range(2):
        done = cli(
            redis_url,
            "run",
            name,
            "--fencing",
            "--",
            *python("import os; print(os.environ['REDIS_LOCK_FENCING_TOKEN'])"),
        )
        assert done.returncode == 0, done.stderr
        tokens.append(int(done.stdout))
    assert tokens[0] < tokens[1]


# -- run: signals, lost locks, a killed parent ------------------------------------------------

READY_CHILD = """
import os, signal, sys, time
from pathlib import Path
ready, mode = Path(sys.argv[1]), sys.argv[2]
def trapped(number, frame):
    Path(str(ready) + ".got").write_text(str(number))
    sys.exit(3)
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, trapped if mode == "trap" else signal.SIG_IGN if mode == "ignore" else signal.SIG_DFL)
ready.write_text(str(os.getpid()))
time.sleep(60)
"""


def _ready_child(tmp_path: Path, mode: str) -> tuple[Path, list[str]]:
    ready = tmp_path / "ready"
    return ready, [*python(READY_CHILD), str(ready), mode]


def _child_pid(ready: Path) -> int:
    wait_until(lambda: ready.exists() and ready.read_text() != "", "the command to start")
    return int(ready.read_text())


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_are_forwarded_to_the_command(
    start_cli: StartCli, redis_url: str, name: str, tmp_path: Path, number: int
) -> None:
    """A signal sent to redis-lock reaches the command, whose exit status (3 here) is passed through."""
    ready, command = _ready_child(tmp_path, "trap")
    process = start_cli(redis_url, "run", name, "--", *command)
    _child_pid(ready)
    process.send_signal(number)
    process.communicate(timeout=10)
    assert process.returncode == 3
    assert (tmp_path / "ready.got").read_text() == str(number)


@pytest.mark.parametrize(("mode", "loss"), [("default", "delete"), ("ignore", "steal")])
def test_a_lost_lock_stops_the_command(
    start_cli: StartCli, redis_url: str, name: str, tmp_path: Path, client: redis.Redis, mode: str, loss: str
) -> None:
    """Once the lock is lost the command gets SIGTERM, then SIGKILL after --kill-after; the exit code is 70."""
    ready, command = _ready_child(tmp_path, mode)
    process = start_cli(redis_url, "run", name, "-e", "1", "--kill-after", "0.5", "--", *command)
    pid = _child_pid(ready)
    if loss == "delete":
        client.delete(f"lock:{name}")
    else:
        client.set(f"lock:{name}", "someone-else", px=30_000)
    lost_at = time.monotonic()
    _, err = process.communicate(timeout=10)
    # Renewal notices within ~0.7 s (every 2/3 of -e 1), then SIGTERM, and SIGKILL 0.5 s later if ignored.
    assert time.monotonic() - lost_at < 0.5 + 1 + 1
    assert process.returncode == 70
    assert "lost the lock" in err
    assert not alive(pid)
    if loss == "steal":
        assert client.get(f"lock:{name}") == b"someone-else"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_killed_parent_takes_the_command_and_the_lock_with_it(
    start_cli: StartCli, redis_url: str, name: str, tmp_path: Path, client: redis.Redis
) -> None:
    """After SIGKILL to redis-lock the command dies too, and the lock key expires within ``-e`` seconds."""
    ready, command = _ready_child(tmp_path, "ignore")
    process = start_cli(redis_url, "run", name, "-e", "1", "--", *command)
    pid = _child_pid(ready)
    assert client.exists(f"lock:{name}") == 1
    process.kill()
    process.communicate(timeout=10)
    killed_at = time.monotonic()
    wait_until(lambda: not alive(pid), "the command to die with its parent", timeout=5)
    wait_until(lambda: client.exists(f"lock:{name}") == 0, "the lock key to expire", timeout=3)
    assert time.monotonic() - killed_at < 1 + 1


# -- status, list, reset, reset-all ---------------------------------------------------------


def test_status_of_a_held_lock(
    redis_url: str, name: str, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """``status`` exits 0 for a held lock; ``--json`` prints name, key, held, ttl and token, the id only on request."""
    lock = redis_lock.Lock(client, name, expire=30, fencing=True)
    assert lock.acquire(blocking=False)
    try:
        done = cli(redis_url, "status", name, "--json")
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert set(info) == {"name", "key", "held", "ttl", "fencing_token", "queued"}
        assert info["name"] == name
        assert info["key"] == f"lock:{name}"
        assert info["held"] is True
        assert isinstance(info["ttl"], float)
        assert 0 < info["ttl"] <= 30
        assert info["fencing_token"] == lock.fencing_token
        assert lock.id not in done.stdout

        assert main(["--url", redis_url, "status", name, "--json", "--show-id"]) == 0
        assert json.loads(capsys.readouterr().out)["id"] == lock.id
        assert main(["--url", redis_url, "status", name]) == 0
        text = capsys.readouterr().out
        assert "state: held" in text
        assert lock.id not in text
    finally:
        lock.release()


def test_status_of_a_free_lock(
    redis_url: str, name: str, capsys: pytest.CaptureFixture[str], client: redis.Redis
) -> None:
    """``status`` exits 1 for a free lock, with ``held`` false and no ttl."""
    assert main(["--url", redis_url, "status", name, "--json", "--show-id"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info == {
        "name": name,
        "key": f"lock:{name}",
        "held": False,
        "ttl": None,
        "fencing_token": None,
        "queued": 0,
        "id": None,
    }
    assert main(["--url", redis_url, "status", name]) == 1
    assert "state: free" in capsys.readouterr().out


def test_list(redis_url: str, name: str, client: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    """``list --json`` shows every held lock with its ttl and token; ``--match`` filters by name."""
    fenced = redis_lock.Lock(client, f"{name}-a", expire=30, fencing=True)
    forever = redis_lock.Lock(client, f"{name}-b")
    for lock in (fenced, forever):
        assert lock.acquire(blocking=False)
    try:
        assert main(["--url", redis_url, "list", "--json", "--match", f"{name}-*"]) == 0
        locks = json.loads(capsys.readouterr().out)
        assert [entry["name"] for entry in locks] == [f"{name}-a", f"{name}-b"]
        assert all(set(entry) == {"name", "key", "ttl", "fencing_token", "queued"} for entry in locks)
        assert isinstance(locks[0]["ttl"], float)
        assert locks[0]["fencing_token"] == fenced.fencing_token
        assert locks[1]["ttl"] is None
        assert locks[1]["fencing_token"] is None

        assert main(["--url", redis_url, "list", "--json", "--show-id", "--match", f"*{name}-b"]) == 0
        assert json.loads(capsys.readouterr().out) == [
            {
                "name": f"{name}-b",
                "key": f"lock:{name}-b",
                "ttl": None,
                "fencing_token": None,
                "queued": 0,
                "id": forever.id,
            }
        ]
        assert main(["--url", redis_url, "list", "--match", f"{name}-?"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split("\t")[0] for line in lines] == [f"{name}-a", f"{name}-b"]
        assert main(["--url", redis_url, "list", "--json", "--match", "no-such-*"]) == 0
        assert json.loads(capsys.readouterr().out) == []
    finally:
        fenced.release()
        forever.release()


def test_reset(redis_url: str, name: str, held: redis_lock.Lock, client: redis.Redis) -> None:
    """``reset NAME`` deletes the lock, whoever holds it."""
    assert main(["--url", redis_url, "reset", name]) == 0
    assert client.exists(f"lock:{name}") == 0
    assert not held.locked()


def test_reset_all_is_a_dry_run_without_yes(
    redis_url: str, name: str, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """``reset-all`` lists what it would reset and deletes nothing; with ``--yes`` it resets the matches."""
    locks = [redis_lock.Lock(client, f"{name}-{n}", expire=30) for n in ("a", "b")]
    other = redis_lock.Lock(client, f"other-{name}", expire=30)
    for lock in (*locks, other):
        assert lock.acquire(blocking=False)
    assert main(["--url", redis_url, "reset-all", "--match", f"{name}-*"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [f"{name}-a", f"{name}-b"]
    assert "dry run" in captured.err
    assert all(lock.locked() for lock in locks)

    assert main(["--url", redis_url, "reset-all", "--match", f"{name}-*", "--yes"]) == 0
    assert not any(lock.locked() for lock in locks)
    assert other.locked()

    assert main(["--url", redis_url, "reset-all"]) == 0
    assert f"other-{name}" in capsys.readouterr().out
    assert other.locked()
    assert main(["--url", redis_url, "reset-all", "--yes"]) == 0
    assert not other.locked()


def test_text_output(
    redis_url: str, name: str, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--json``, ``status`` prints one field a line and ``list`` one lock a line; ids only on request."""
    lock = redis_lock.Lock(client, name, expire=30, fencing=True)
    assert lock.acquire(blocking=False)
    try:
        assert main(["--url", redis_url, "status", name, "--show-id"]) == 0
        out = capsys.readouterr().out
        assert f"id: {lock.id}" in out
        assert f"fencing token: {lock.fencing_token}" in out
        assert "ttl: " in out
        assert main(["--url", redis_url, "list", "--show-id", "--match", name]) == 0
        fields = capsys.readouterr().out.rstrip("\n").split("\t")
        assert fields[0] == name
        assert fields[1].endswith(" s")
        assert fields[2:] == [f"token {lock.fencing_token}", f"id {lock.id}"]
    finally:
        lock.release()


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` and ``--version`` exit 0."""
    assert main(["--version"]) == 0
    assert redis_lock.__version__ in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert "--kill-after" in capsys.readouterr().out


# -- connection, usage, authentication ------------------------------------------------------


def test_url_from_the_environment(redis_url: str, name: str) -> None:
    """Without ``--url`` the server comes from $REDIS_URL; ``--url`` is accepted after the subcommand too."""
    done = run_cli("status", name, REDIS_URL=redis_url)
    assert done.returncode == 1, done.stderr
    done = run_cli("status", name, "--url", redis_url)
    assert done.returncode == 1, done.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "x", "-w", "-1", "--", "true"], "-w/--wait"),
        (["run", "x", "-w", "nan", "--", "true"], "'nan'"),
        (["run", "x", "-E", "x", "--", "true"], "'x'"),
        (["run", "x", "-w", "soon", "--", "true"], "'soon'"),
        (["run", "x", "-e", "0", "--", "true"], "-e/--expire"),
        (["run", "x", "-e", "-3", "--", "true"], "'-3'"),
        (["run", "x", "-E", "256", "--", "true"], "-E/--conflict-exit-code"),
        (["run", "x", "-E", "-1", "--", "true"], "'-1'"),
        (["run", "x", "--kill-after", "-1", "--", "true"], "--kill-after"),
        (["run", "x", "-n", "-w", "1", "--", "true"], "-n/--nonblock"),
        (["run", "x", "--"], "missing the command"),
        (["run", "x"], "missing the command"),
        (["run", "x", "true"], "after '--'"),
        (["run", "x", "--fair", "--queue-lease", "0.01", "--", "true"], "--queue-lease"),
        (["run", "x", "--fair", "--queue-lease", "nan", "--", "true"], "'nan'"),
        (["run", "x", "--fair", "--queue-lease", "soon", "--", "true"], "'soon'"),
        (["run", "x", "--fair", "--queue-lease", "-2", "--", "true"], "'-2'"),
        (["run", "x", "--queue-lease", "1", "--", "true"], "needs --fair"),
        (["run", "x", "--fairly", "--", "true"], "--fairly"),
        (["status"], "NAME"),
        (["status", ""], "name must not be empty"),
        (["frobnicate"], "frobnicate"),
        ([], "SUBCOMMAND"),
    ],
)
def test_bad_usage_exits_64(
    redis_url: str, args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad usage exits 64 (EX_USAGE, not argparse's 2) with a message naming the option and the value."""
    assert main(["--url", redis_url, *args]) == 64
    err = capsys.readouterr().err
    assert named in err
    assert "usage" in err or "error" in err


def test_bad_usage_as_a_process() -> None:
    """The console module exits 64 too, before any connection (the URL here leads nowhere)."""
    done = run_cli("--url", f"redis://127.0.0.1:{free_port()}/0", "run", "x", "-E", "999", "--", "true")
    assert done.returncode == 64
    assert "-E/--conflict-exit-code" in done.stderr
    assert "999" in done.stderr
    for args in (["--fair", "--queue-lease", "0"], ["--queue-lease", "5"]):
        url = f"redis://127.0.0.1:{free_port()}/0"
        done = run_cli("--cluster", "--url", url, "run", "x", *args, "--", "true")
        assert done.returncode == 64, done.stderr
        assert "--queue-lease" in done.stderr


def test_unreachable_server_exits_69(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening at the URL: exit 69 (EX_UNAVAILABLE), naming the server, never its password."""
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    assert main(["--url", url, "status", "x"]) == 69
    err = capsys.readouterr().err
    assert "cannot reach Redis" in err
    assert "127.0.0.1" in err
    assert "hunter2" not in err


def test_bad_url_exits_64(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL redis-py cannot use is bad usage, reported with the password masked."""
    assert main(["--url", "http://user:hunter2@example.invalid/", "status", "x"]) == 64
    err = capsys.readouterr().err
    assert "--url" in err
    assert "hunter2" not in err


@pytest.fixture
def password_server() -> Iterator[RedisServer]:
    """A server of this test's own that requires the password ``right-password``."""
    with RedisServer() as server:
        with redis.Redis(unix_socket_path=server.unix_path) as admin:
            admin.config_set("requirepass", "right-password")
        yield server


@pytest.mark.parametrize("password", ["wrong-password", ""])
def test_authentication_failure_exits_77(
    password_server: RedisServer, password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong or missing password exits 77 (EX_NOPERM), and the password given is never printed."""
    url = f"redis://:{password}@127.0.0.1:{password_server.port}/0" if password else password_server.tcp_url
    done = cli(url, "status", "x")
    assert done.returncode == 77, done.stderr
    assert "authentication" in done.stderr
    if password:
        assert password not in done.stdout + done.stderr
        assert ":***@" in done.stderr
    assert main(["--url", f"redis://:right-password@127.0.0.1:{password_server.port}/0", "status", "x"]) == 1
    assert "right-password" not in str(capsys.readouterr())


def test_cluster_option_on_a_standalone_server(
    redis_server: RedisServer | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--cluster`` against a server that is not a cluster exits 78 (EX_CONFIG) and says so."""
    if redis_server is None:
        pytest.skip("needs the session's own server (REDIS_URL points elsewhere)")
    assert main(["--url", redis_server.tcp_url, "--cluster", "status", "x"]) == 78
    assert "not a Redis Cluster" in capsys.readouterr().err


def test_url_secrets() -> None:
    """The passwords to hide are found in the user part (as written and decoded) and in ``password=``."""
    assert url_secrets("--url redis://u:p%40ss@host/0 x") == {"p%40ss", "p@ss"}
    assert url_secrets("unix:///s?db=1&password=pw redis://host") == {"pw"}
    assert url_secrets("redis://u:pw@[::1") == {"pw"}


def test_name_of() -> None:
    """A lock key gives back its name, hash tag and escapes undone on a cluster."""
    for lock_name in ("job", "a}b", "back\\slash", "{x}", "x7d"):
        assert name_of("lock:" + hash_tag(lock_name), cluster=True) == lock_name
        assert name_of("lock:" + lock_name, cluster=False) == lock_name
    assert name_of("lock:job", cluster=True) == "job"


def test_status_line_on_a_terminal() -> None:
    """On a terminal the wait's status line is rewritten in place, and ended before the next message."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    out = Output(set(), io.StringIO(), terminal)
    out.status("waiting 1")
    out.status("waiting 2")
    out.err("acquired")
    assert terminal.getvalue() == (
        "\rredis-lock: waiting 1\x1b[K\rredis-lock: waiting 2\x1b[K\nredis-lock: acquired\n"
    )


def test_mask_url() -> None:
    """Passwords are masked in the user part and in a ``password=`` field; the rest stays."""
    assert mask_url("redis://user:pw@host:6380/2") == "redis://user:***@host:6380/2"
    assert mask_url("rediss://:pw@host") == "rediss://:***@host"
    assert mask_url("redis://pw@host") == "redis://***@host"
    assert mask_url("unix:///run/redis.sock?db=1&password=pw") == "unix:///run/redis.sock?db=1&password=***"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"
    assert mask_url("redis://u:pw@[::1") == "<unparsable URL>"


# -- cluster -------------------------------------------------------------------------------


def test_cluster(cluster_deployment: RedisClusterDeployment, name: str) -> None:
    """With ``--cluster``: run takes the hash-tagged key, list scans every primary, status and reset work."""
    host, port = cluster_deployment.startup_nodes[0]
    url = f"redis://{host}:{port}"
    names = [f"{name}-{n}" for n in range(6)]
    conn: redis.cluster.RedisCluster = cluster_deployment.client()
    try:
        locks = [redis_lock.Lock(conn, n, expire=30) for n in names]
        for lock in locks:
            assert lock.acquire(blocking=False)
        done = cli(url, "--cluster", "list", "--json", "--match", f"{name}-*")
        assert done.returncode == 0, done.stderr
        listed = json.loads(done.stdout)
        assert [entry["name"] for entry in listed] == names
        assert listed[0]["key"] == "lock:{" + names[0] + "}"
        assert main(["--url", url, "--cluster", "status", names[0]]) == 0
        assert main(["--url", url, "--cluster", "reset", names[0]]) == 0
        assert not locks[0].locked()
        done = cli(url, "--cluster", "run", names[1], "-n", "--", *python("pass"))
        assert done.returncode == 1
        done = cli(
            url,
            "--cluster",
            "run",
            names[0],
            "-n",
            "--",
            *python("import os; print(os.environ['REDIS_LOCK_NAME'])"),
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{names[0]}\n"
        # Without --cluster a plain client is redirected: exit 76, with a hint.
        elsewhere = next(
            n for n in names if cluster_deployment.node_for_slot(key_slot(f"lock:{n}")).port != port
        )
        done = cli(url, "status", elsewhere)
        assert done.returncode == 76
        assert "--cluster" in done.stderr
        for lock in locks[1:]:
            lock.release()
    finally:
        conn.close()


def test_cluster_fair(cluster_deployment: RedisClusterDeployment, name: str) -> None:
    """With ``--cluster``: ``run --fair`` takes a fair lock, and ``status`` counts its fair waiters by the slot's clock."""
    host, port = cluster_deployment.startup_nodes[0]
    url = f"redis://{host}:{port}"
    conn: redis.cluster.RedisCluster = cluster_deployment.client()
    holder = redis_lock.Lock(conn, name, expire=30, fair=True)
    waiter = redis_lock.Lock(conn, name, expire=30, fair=True)
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(waiter.acquire(timeout=20)))
    try:
        assert holder.acquire(blocking=False)
        thread.start()
        wait_until(lambda: conn.zcard("lock-queue:" + hash_tag(name)) == 1, "the waiter to queue")
        done = cli(url, "--cluster", "status", name, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["queued"] == 1
        holder.release()
        thread.join(timeout=20)
        assert results == [True]
        done = cli(url, "--cluster", "run", name, "--fair", "-w", "0.2", "--", *python("pass"))
        assert done.returncode == 1, done.stderr
        waiter.release()
        done = cli(url, "--cluster", "run", name, "--fair", "-n", "--", *python("print('ran')"))
        assert done.returncode == 0, done.stderr
        assert done.stdout == "ran\n"
    finally:
        thread.join(timeout=20)
        conn.close()
