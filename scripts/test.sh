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
if [ -f docs/conf.py ]; then
    say "sphinx-build -W --keep-going -n (docs)"
    .venv/bin/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html
fi
say "pytest (HYPOTHESIS_PROFILE=$HYPOTHESIS_PROFILE)"
.venv/bin/pytest "$@"
