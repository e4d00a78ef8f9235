#!/usr/bin/env bash
# The main job, for now: several processes contend for one lock on a throwaway local Redis and
# print who held it when. Sets itself up first (see _bootstrap.sh).
source "$(dirname "${BASH_SOURCE[0]}")/_bootstrap.sh"
exec .venv/bin/python scripts/demo.py "$@"
