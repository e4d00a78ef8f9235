"""Hypothesis settings profiles for the property tests, chosen with ``HYPOTHESIS_PROFILE``.

- ``dev``: a quick look while editing (about 20 examples per machine);
- ``ci``: the default, used when the variable is unset (100 examples per machine,
  sized to fit about a minute for all of ``tests/property``, the sync and the
  asyncio machine, on two cores);
- ``nightly``: thousands of examples, for a scheduled job.

Profiles are process-wide in Hypothesis: loading one here also sets the defaults of
``@given`` tests elsewhere that do not pass their own ``@settings``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Every example talks to a real Redis, so per-example timing varies with the machine's
# load: no deadline, and no health check that would fail a run for being slow.
_SLOW_IO = [HealthCheck.too_slow, HealthCheck.filter_too_much]

settings.register_profile(
    "dev", max_examples=20, stateful_step_count=20, deadline=None, suppress_health_check=_SLOW_IO
)
settings.register_profile(
    "ci",
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=_SLOW_IO,
    print_blob=True,
)
settings.register_profile(
    "nightly",
    max_examples=5000,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=_SLOW_IO,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
