# Sourced by test.sh (after _bootstrap.sh): python-redis-lock 4.0.1's OWN test suite, the tests/ folder of its
# sdist (conftest.py, config.py, helper.py, test_redis_lock.py, test_django_integration.py, test_project/), run
# unchanged against OUR redis_lock as a drop-in check. It lives in .venv/side/, so our own pytest never collects it.
#
#   ensure_prl401_suite  fetches the sdist and what its conftest needs (process-tests; pytest-xdist to run it in
#                        parallel), all pinned by hash, into $PRL401_SUITE_DIR; does nothing when they are there;
#                        exits non-zero when it cannot install them (it never skips).
#   run_prl401_suite     runs it with .venv's Python and pytest, its own rootdir and a small ini (not our
#                        pyproject), minus PRL401_SUITE_DESELECT; returns non-zero when a test fails. Extra
#                        arguments go to pytest (e.g. -x, -k NAME).
#
# It imports our redis_lock (the editable install in .venv), never 4.0.1's (.venv/side/prl401 is not on its
# PYTHONPATH). Its redis_server fixture starts `redis-server` from PATH ($REDIS_SERVER is put first on PATH).
# scripts/_prl401_suite_plugin.py saves it three minutes of waiting for those servers to exit on their own, and
# keeps hiredis from its eventlet helpers (redis-py 8 + eventlet, not us; 4.0.1 fails there the same way).
#
# REDIS_LOCK_TEST_TIMEOUT (4.x's knob, 10 s there) bounds its waits for a helper process's output, delays the start
# of test_no_overlap's 125 contenders by half of it and sets test_expire's expiries to a quarter of it (whole
# seconds, as 4.x needs). 8 leaves the helpers room when six workers share two CPUs; about 50 s in all.

PRL401_SUITE_DIR="${PRL401_SUITE_DIR:-.venv/side/prl401-suite}"
PRL401_SUITE_SDIST_SHA256=57995e13dce196301138d710d4f132d667c200cd814718e081bf299d6cf11d70
# Installed beside the suite (pip --target, on PYTHONPATH for this run only), not into .venv.
PRL401_SUITE_SITE_REQUIREMENTS="\
process-tests==3.0.0 --hash=sha256:704aa9aad27cf9fdcc50212ae1518f7fed36faef5ddb4e0195ebeeb20306f47d
pytest-xdist==3.8.0 --hash=sha256:202ca578cfeb7370784a8c33d6d05bc6e13b4f25b5053c30a152269fd10f0b88
execnet==2.1.2 --hash=sha256:67fba928dd5a544b783f6056f449e5e3931a5c378b128bc18501f7ea79e296ec"
# Its tests mostly sleep, each beside its own redis-server, so more workers than CPUs still pay.
PRL401_SUITE_WORKERS="${PRL401_SUITE_WORKERS:-6}"

# The only place that leaves tests out. Node ids are prefixes (pytest --deselect), relative to the suite's root.
# Only three kinds belong here: (a) tests of 4.x internals, (b) string durations, which 4.x int()-converted and
# 5.x rejects on purpose, and (c) checks timed to the millisecond, which fail against 4.0.1 itself as often.
# A behaviour that differs from 4.x otherwise is a bug to fix, not a line to add.
PRL401_SUITE_DESELECT=(
    # (a) asserts a threading.Thread per lock in _lock_renewal_thread and a _lock_renewal_stop Event; 5.x renews
    #     from one scheduler per client. Renewal itself: test_simple_auto_renewal, test_timeout_expire_with_renewal.
    "tests/test_redis_lock.py::test_auto_renewal["
    # (a)+(b) reads the private _expire after Lock(object(), ..., expire="1"/"123") (numbers: test_borken_expires).
    "tests/test_redis_lock.py::test_expire_int_conversion"
    # (b) timeout="0" (id 0_1; 0_0 is the int 0, which runs) and timeout="123", under each of its 4 connections.
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=True-decode_responses=True-0_1]"
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=True-decode_responses=True-123]"
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=True-decode_responses=False-0_1]"
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=True-decode_responses=False-123]"
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=False-decode_responses=True-0_1]"
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=False-decode_responses=True-123]"
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=False-decode_responses=False-0_1]"
    "tests/test_redis_lock.py::test_timeout_int_conversion[decode_responses=False-decode_responses=False-123]"
    # (c) sleeps exactly signal_expire after the release and requires the signal gone; Redis deletes a key only once
    #     its expiry millisecond has passed (now > when), so when the sleeps overran by under a millisecond the key
    #     is still there (1 of 3 runs on 2026-12-01). The signal's lifetime (PTTL at most signal_expire after a
    #     release) is tested in tests/test_behaviour.py.
    "tests/test_redis_lock.py::test_signal_expiration["
)
# Run first and alone: 125 contending processes each, which would starve the parallel tests' helpers and
# renewals (expire=1 leaves a renewal a third of a second) on a two-CPU machine.
PRL401_SUITE_SERIAL=(
    "tests/test_redis_lock.py::test_no_overlap"
    "tests/test_redis_lock.py::test_no_overlap2"
)

ensure_prl401_suite() {
    local dir="$PRL401_SUITE_DIR" tmp stamp
    stamp="$(printf '%s\n' "$PRL401_SUITE_SDIST_SHA256" "$PRL401_SUITE_SITE_REQUIREMENTS" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    say "fetching python-redis-lock 4.0.1's own tests (its sdist) and process-tests into $dir"
    # Into a fresh directory first, so an interrupted install leaves nothing half-done.
    mkdir -p "$(dirname "$dir")"
    tmp="$(mktemp -d "${dir%/}.tmp.XXXXXX")"
    printf 'python-redis-lock==4.0.1 --hash=sha256:%s\n' "$PRL401_SUITE_SDIST_SHA256" > "$tmp/sdist.txt"
    printf '%s\n' "$PRL401_SUITE_SITE_REQUIREMENTS" > "$tmp/site.txt"
    if ! .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
            --require-hashes -r "$tmp/sdist.txt" -d "$tmp/dl" ||
        ! tar --no-same-owner -xzf "$tmp/dl/python_redis_lock-4.0.1.tar.gz" -C "$tmp" python_redis_lock-4.0.1/tests ||
        ! .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
            --require-hashes -r "$tmp/site.txt" --target "$tmp/site"; then
        rm -rf "$tmp"
        echo "error: could not install python-redis-lock 4.0.1's test suite into $dir (scripts/_prl401_suite.sh)." >&2
        exit 1
    fi
    # A hiredis whose import fails, put first on PYTHONPATH for helper.py under eventlet only (see the plugin).
    mkdir -p "$tmp/no-hiredis"
    echo 'raise ImportError("hidden from eventlet helpers by scripts/_prl401_suite_plugin.py")' \
        > "$tmp/no-hiredis/hiredis.py"
    mkdir -p "$dir"
    rm -rf "$dir/tests" "$dir/site" "$dir/no-hiredis"
    mv "$tmp/python_redis_lock-4.0.1/tests" "$tmp/site" "$tmp/no-hiredis" "$dir"/
    rm -rf "$tmp"
    echo "$stamp" > "$dir/.installed"
}

# One pytest over the suite; reads run_prl401_suite's locals dir, path and deselect.
_prl401_suite_pytest() {
    (
        cd "$dir" &&
            PATH="$path" \
            PYTHONPATH="$PWD/tests:$PWD/site:$ROOT/scripts" \
            DJANGO_SETTINGS_MODULE=test_project.settings \
            REDIS_LOCK_TEST_TIMEOUT="${REDIS_LOCK_TEST_TIMEOUT:-8}" \
            PYTHONUNBUFFERED=yes \
            PRL401_SUITE_NO_HIREDIS="$PWD/no-hiredis" \
            "$ROOT/.venv/bin/pytest" -c pytest.ini --rootdir . -p _prl401_suite_plugin "${deselect[@]}" "$@"
    )
}

run_prl401_suite() {
    local dir="$PRL401_SUITE_DIR" path="$PATH" test deselect=() serial=() rc1=0 rc2=0
    ensure_prl401_suite
    if [ -n "${REDIS_SERVER:-}" ]; then
        mkdir -p "$dir/bin"
        ln -sf "$(readlink -f "$REDIS_SERVER")" "$dir/bin/redis-server"
        path="$(readlink -f "$dir/bin"):$PATH"
    fi
    if ! PATH="$path" command -v redis-server >/dev/null 2>&1; then
        echo "error: python-redis-lock 4.0.1's tests start their own redis-server: none on PATH (set REDIS_SERVER)." >&2
        return 1
    fi
    # Its own pytest.ini is for its repository (doctests of *.rst, --ignore of its files). This one keeps what
    # matters to the tests (strict markers, warnings are errors), adds a timeout per test against hangs, and turns
    # off the plugins of .venv that it does not use (pytest-asyncio warns without its setting). It forks
    # (multiprocessing, os.fork) from a process with threads (xdist's, our waiters'): Python 3.12+ warns of that.
    cat > "$dir/pytest.ini" <<'INI'
[pytest]
testpaths = tests
addopts = -ra --strict-markers --tb=short -p no:cacheprovider -p no:asyncio -p no:benchmark
timeout = 120
filterwarnings =
    error
    ignore:This process .* is multi-threaded, use of fork\(\) may lead to deadlocks:DeprecationWarning
INI
    for test in "${PRL401_SUITE_DESELECT[@]}"; do
        deselect+=(--deselect "$test")
    done
    for test in "${PRL401_SUITE_SERIAL[@]}"; do
        serial+=(--deselect "$test")
    done
    if [ "${#PRL401_SUITE_SERIAL[@]}" -gt 0 ]; then
        say "python-redis-lock 4.0.1's own tests against ours: the contention tests, alone"
        _prl401_suite_pytest -p no:xdist "$@" "${PRL401_SUITE_SERIAL[@]}" || rc1=$?
    fi
    say "python-redis-lock 4.0.1's own tests against ours: the rest ($PRL401_SUITE_WORKERS workers)"
    _prl401_suite_pytest -n "$PRL401_SUITE_WORKERS" --dist worksteal "${serial[@]}" "$@" || rc2=$?
    # 5 is "no tests ran", as when a -k given here selects only from one part; both parts empty is a failure.
    if { [ "$rc1" = 0 ] || [ "$rc1" = 5 ]; } && { [ "$rc2" = 0 ] || [ "$rc2" = 5 ]; } &&
        ! { [ "$rc1" = 5 ] && [ "$rc2" = 5 ]; }; then
        return 0
    fi
    echo "error: python-redis-lock 4.0.1's own tests failed against ours (scripts/_prl401_suite.sh)." >&2
    return 1
}
