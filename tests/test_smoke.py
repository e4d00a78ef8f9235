from __future__ import annotations

from typing import Any

import redis_lock


def test_acquire_release(conn: Any) -> None:
    """A free lock is acquired and released."""
    lock = redis_lock.Lock(conn, "smoke")
    assert lock.acquire()
    assert lock.owned()
    lock.release()
    assert not lock.locked()
