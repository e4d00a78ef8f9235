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
say "pytest (HYPOTHESIS_PROFILE=$HYPOTHESIS_PROFILE)"
.venv/bin/pytest "$@"
