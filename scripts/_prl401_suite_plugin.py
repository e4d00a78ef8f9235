"""pytest plugin for python-redis-lock 4.0.1's own test suite (``scripts/_prl401_suite.sh`` loads it with ``-p``).

It changes no test, only two things about the processes the suite starts with ``process_tests.TestProcess``:

* Its ``redis_server`` fixture starts a ``redis-server`` per test, and ``TestProcess``'s exit first polls for a
  second for the process to end on its own, which a server never does, before terminating it: over about 170
  tests, three minutes of sleeping. A still-running ``redis-server`` is terminated and reaped first here; the
  original exit then finds it ended and collects its output as before.
* ``helper.py`` under eventlet imports redis-py before ``eventlet.monkey_patch()``, which removes
  ``select.poll``; redis-py 8's hiredis parser decided at import to use it, so every command fails with
  ``AttributeError: module 'select' has no attribute 'poll'`` (python-redis-lock 4.0.1 itself fails the same
  way). Those helpers get ``$PRL401_SUITE_NO_HIREDIS`` first on ``PYTHONPATH``, which makes ``import hiredis``
  fail, so redis-py uses its pure-Python parser there. Everything else keeps hiredis.

It also refuses to run when ``redis_lock`` is not this project's (4.0.1's copy on the path by mistake).
"""

from __future__ import annotations

import importlib
import os
import subprocess
from typing import Any

_redis_lock = importlib.import_module("redis_lock")
if int(_redis_lock.__version__.split(".")[0]) < 5:
    raise ImportError(f"the 4.x suite must test this project's redis_lock, not {_redis_lock.__file__}")

_process_tests = importlib.import_module("process_tests")
_original_init = _process_tests.TestProcess.__init__
_original_exit = _process_tests.TestProcess.__exit__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    no_hiredis = os.environ.get("PRL401_SUITE_NO_HIREDIS")
    if no_hiredis and any(str(arg).endswith(":eventlet") for arg in args):
        env = dict(kwargs.get("env", os.environ))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [no_hiredis, env.get("PYTHONPATH")]))
        kwargs["env"] = env
    _original_init(self, *args, **kwargs)


def _exit(self: Any, *exc_info: object) -> None:
    proc = self.proc
    if proc.args[0] == "redis-server" and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _original_exit(self, *exc_info)


_process_tests.TestProcess.__init__ = _init
_process_tests.TestProcess.__exit__ = _exit
_process_tests.TestProcess.close = _exit
