"""One process of the dogpile test: wait for the start signal, then ``locked_get_or_set``.

Run as ``python -m tests.django_project.dogpile ALIAS KEY RUN`` with
``DJANGO_SETTINGS_MODULE`` and ``REDIS_LOCK_TEST_REDIS_URL`` set. The process
pushes onto ``RUN:ready`` once Django is set up, blocks on ``RUN:go`` until the
test releases every worker at once, then asks the cache for ``KEY``. The value
creator counts its calls with INCR on ``RUN:calls`` and returns this process's
pid; the process prints the value it got as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

import django

from .caches import locking_cache

#: How long the value creator works, in seconds: every other worker asks meanwhile.
CREATE_SECONDS = 0.3
#: The longest wait for the start signal, in seconds.
START_TIMEOUT = 60


def main(alias: str, key: str, run: str) -> None:
    django.setup()
    cache = locking_cache(alias)
    raw = cache.client.get_client()
    raw.rpush(f"{run}:ready", os.getpid())
    # Short BLPOPs: each must end within the client's socket timeout (5 s by default).
    deadline = time.monotonic() + START_TIMEOUT
    while not raw.blpop([f"{run}:go"], 1):
        if time.monotonic() > deadline:
            sys.exit("no start signal")

    def create() -> int:
        raw.incr(f"{run}:calls")
        time.sleep(CREATE_SECONDS)  # the expensive work
        return os.getpid()

    print(json.dumps(cache.locked_get_or_set(key, create)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
