#!/usr/bin/env bash
# The demo: several processes contend for one lock on a throwaway local Redis, print who held it when,
# and check from the recorded intervals that no two holds overlapped (exit status 1 if any did).
#   bash scripts/demo.sh [--processes N] [--rounds N] [--hold SECONDS] [--history FILE]
# Sets itself up first (see _bootstrap.sh).
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
exec .venv/bin/python scripts/demo.py "$@"
