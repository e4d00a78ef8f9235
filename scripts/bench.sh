#!/usr/bin/env bash
# The benchmark suite: redis_lock against python-redis-lock 4.0.1, redis-py's Lock, pottery's Redlock and a
# hand-written limit, on a throwaway local redis-server; prints one comparison table and keeps the JSON.
#   bash scripts/bench.sh [--quick] [--unix] [--pin] [--processes N] [pytest args, e.g. --benchmark-compare]
# Sets itself up first (see _bootstrap.sh). Details: scripts/bench.py and docs/performance.rst.
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"

# python-redis-lock 4.0.1 lives beside the virtualenv (it is also the module redis_lock).
ensure_prl401

say "running the benchmarks (a full run takes about 5 minutes; --quick about 1)"
exec .venv/bin/python scripts/bench.py "$@"
