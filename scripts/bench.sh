#!/usr/bin/env bash
# The benchmark suite: redis_lock against python-redis-lock 4.0.1, redis-py's Lock, pottery's Redlock and a
# hand-written limit, on a throwaway local redis-server. Prints the machine's load, a verdict (one line per
# measure) and the full table; draws SVG charts into .benchmarks/ next to the JSON.
#   bash scripts/bench.sh [--quick] [--unix] [--pin] [--processes N] [-v] [--targets] [pytest args...]
# Sets itself up first (see _bootstrap.sh). Details: scripts/bench.py and docs/performance.rst.
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"

# python-redis-lock 4.0.1 lives beside the virtualenv (it is also the module redis_lock).
ensure_prl401

say "running the benchmarks (a full run takes about 5 minutes; --quick under 1)"
exec .venv/bin/python scripts/bench.py "$@"
