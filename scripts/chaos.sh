#!/usr/bin/env bash
# Chaos soak of fencing tokens (tests/chaos/harness.py, whose docstring explains the design): worker processes
# take Lock(..., fencing=True, expire=0.2) and write a SQLite resource with their tokens while the harness SIGSTOPs
# holders past their lease, restarts its own redis-server (AOF, appendfsync always), and sends CLIENT PAUSE and
# CLIENT KILL; then a checker reads the resource's log. Prints a summary.
#
#   scripts/chaos.sh --minutes 10               with the guard (... WHERE fence <= :token): exits non-zero on
#                                               any violation (or if the harness itself failed)
#   scripts/chaos.sh --minutes 10 --no-guard    a plain lease lock: exits non-zero if the checker finds NO stale
#                                               write (it must, or the checker could not fail)
#   more options: --workers N, --seed N (the schedule; random and printed by default), --keep DIR (keep the
#   SQLite database); see --help.
#
# Sets itself up first (see _bootstrap.sh). The server is one the harness starts on a unix socket and stops at the
# end; no other server is touched (REDIS_URL is ignored).
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"

say "chaos soak: python -m tests.chaos.harness $*"
exec .venv/bin/python -m tests.chaos.harness "$@"
