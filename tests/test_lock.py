"""What only redis_lock.Lock has: its renewal thread, gevent and eventlet, 4.x's Lock subclasses, sync clients.

The behaviour both flavours share is written once, in ``test_behaviour.py``.
Tests named ``test_fixes_4x_*`` cover a python-redis-lock 4.x bug that 5.x fixes
on purpose (DESIGN.md section 3); each asserts what 4.x got wrong.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import redis_lock

# -- auto-renewal ----------------------------------------------------------------------


def test_auto_renewal_never_keeps_the_process_alive(redis_url: str) -> None:
    """A process that exits while holding a renewed lock exits promptly: the renewal thread is a daemon."""
    code = textwrap.dedent(
        f"""
        import redis, redis_lock
        lock = redis_lock.Lock(redis.Redis.from_url({redis_url!r}), "daemon", expire=60, auto_renewal=True)
        assert lock.acquire()
        print("held", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "held\n"


# -- scripts are module data --------------------------------------------------------------


def test_fixes_4x_subclass_instantiated_first(redis_url: str) -> None:
    """Instantiating a subclass first does not break the base class (4.x left Lock's scripts as None)."""
    code = textwrap.dedent(
        f"""
        import redis, redis_lock
        client = redis.Redis.from_url({redis_url!r})
        class Sub(redis_lock.Lock):
            pass
        Sub(client, "sub-first")
        lock = redis_lock.Lock(client, "sub-first")
        assert lock.acquire()
        lock.release()
        redis_lock.reset_all(client)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout == "ok\n", done.stderr


# -- clients ---------------------------------------------------------------------------------


def test_asyncio_client_is_rejected(redis_url: str) -> None:
    """An asyncio client is rejected with a TypeError pointing to AsyncLock, even with strict=False."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    with pytest.raises(TypeError, match="AsyncLock"):
        redis_lock.Lock(client, "async", strict=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncLock"):
        redis_lock.reset_all(client)  # type: ignore[arg-type]


# -- gevent and eventlet --------------------------------------------------------------------------

GREEN_PROGRAM = """
import time
import redis, redis_lock
url = {url!r}
lock = redis_lock.Lock(redis.Redis.from_url(url), "green", expire=0.3, auto_renewal=True)
assert lock.acquire()
order = []
def contender():
    other = redis_lock.Lock(redis.Redis.from_url(url), "green")
    assert other.acquire(timeout=10)
    order.append("contender")
    other.release()
waiter = spawn(contender)
sleep(0.8)  # the holder keeps the lock past two expiries thanks to renewal
assert lock.owned(), "renewal did not run under monkey-patching"
order.append("holder")
lock.release()
waiter.wait() if hasattr(waiter, "wait") else waiter.join()
assert order == ["holder", "contender"], order
print("ok")
"""


@pytest.mark.parametrize(
    "prelude",
    [
        "from gevent import monkey; monkey.patch_all()\nfrom gevent import spawn, sleep\n",
        "import eventlet; eventlet.monkey_patch()\nfrom eventlet import spawn, sleep\n",
    ],
    ids=["gevent", "eventlet"],
)
def test_works_under_monkey_patching(redis_url: str, prelude: str) -> None:
    """Under gevent and eventlet monkey-patching, blocking waits and auto-renewal work."""
    code = prelude + GREEN_PROGRAM.format(url=redis_url)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip().endswith("ok"), done.stdout + done.stderr
