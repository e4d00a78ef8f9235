"""The benchmark suite: redis_lock against its peers and a hand-written limit (run ``bash scripts/bench.sh``)."""
