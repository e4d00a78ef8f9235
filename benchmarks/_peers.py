"""The locks the suite compares, behind one small interface.

Every contender is made by a :class:`Peer` from a client, a lock name and an
expiry in seconds, and offers ``acquire()`` (blocking, no timeout) and
``release()``. Library objects are returned as they are, with no wrapper, so
their own per-call overhead is what gets measured.

Contenders:

- ``redis_lock``: this project's :class:`redis_lock.Lock`;
- ``redis_lock-fencing`` (uncontended cycle only): the same with ``fencing=True``,
  whose every grant mints a fencing token: the cost of fencing;
- ``redis_lock-fair`` (hand-off and contended rows): the same with ``fair=True``:
  waiters queue in arrival order and a release hands the lock straight to the
  first of them, whose ``acquire()`` returns without another request;
- ``prl401``: python-redis-lock 4.0.1, also importable only as ``redis_lock``,
  so it is installed beside the virtualenv (``scripts/bench.sh`` puts it in
  ``.venv/side/prl401``) and loaded under the module name ``prl401`` by
  ``tests/_prl401.py``, which the interop tests share;
- ``redis-py-0.1`` / ``redis-py-0.001``: :class:`redis.lock.Lock`, which polls
  with ``time.sleep(sleep)`` between attempts (0.1 s is its default);
- ``pottery``: ``pottery.Redlock`` with one master;
- ``limit``: the practical limit, hand-written: ``SET NX PX`` to take, a
  compare-and-delete Lua script that also pushes a wake-up signal to release,
  ``BLPOP`` on the signal list to wait. Two round trips per uncontended cycle;
- ``blpop-token`` (hand-off only): the lock is a list holding one token;
  ``BLPOP`` takes it and ``LPUSH`` gives it back. The server hands the token to
  the blocked waiter inside the ``LPUSH``, so this is the floor for hand-off.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis
from tests import _prl401

import redis_lock

#: python-redis-lock 4.0.1, imported as the module ``prl401`` (the loader is shared with the interop tests).
prl401: Final = _prl401.prl401


class BenchLock(Protocol):
    """What the suite calls on every contender."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


# -- counting round trips --------------------------------------------------------


class RequestCounter:
    """Requests this process sent to Redis: one per ``send_packed_command`` (a pipeline is one)."""

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.count += 1

    def reset(self) -> None:
        with self.lock:
            self.count = 0


REQUESTS: Final = RequestCounter()


# redis-py leaves these unannotated; calling them through Any keeps mypy strict elsewhere.
_SEND_TCP: Any = redis.Connection.send_packed_command
_SEND_UNIX: Any = redis.UnixDomainSocketConnection.send_packed_command


class CountingConnection(redis.Connection):
    """A TCP connection that counts the requests it sends in :data:`REQUESTS`."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REQUESTS.add()
        _SEND_TCP(self, command, check_health)


class CountingUnixConnection(redis.UnixDomainSocketConnection):
    """A unix-socket connection that counts the requests it sends in :data:`REQUESTS`."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REQUESTS.add()
        _SEND_UNIX(self, command, check_health)


def make_client(url: str, *, counting: bool = False) -> redis.Redis:
    """A bytes redis-py client for ``url``; with ``counting``, every request it sends is counted."""
    if not counting:
        return redis.Redis.from_url(url)
    connection_class: type[redis.Connection] | type[redis.UnixDomainSocketConnection] = (
        CountingUnixConnection if url.startswith("unix://") else CountingConnection
    )
    pool = redis.ConnectionPool.from_url(url, connection_class=connection_class)
    return redis.Redis(connection_pool=pool)


# -- the hand-written limit and floor -------------------------------------------------

_RELEASE_SOURCE: Final = b"""
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
redis.call('del', KEYS[2])
redis.call('lpush', KEYS[2], 1)
redis.call('pexpire', KEYS[2], 1000)
return 1
"""
_EXTEND_SOURCE: Final = b"""
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('pexpire', KEYS[1], ARGV[2])
"""


def _run_script(
    client: redis.Redis, source: bytes, keys: tuple[str, ...], args: tuple[str | int, ...]
) -> Any:
    sha = _sha1(source)
    try:
        return client.evalsha(sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        client.script_load(source)
        return client.evalsha(sha, len(keys), *keys, *args)


@functools.cache
def _sha1(source: bytes) -> str:
    return hashlib.sha1(source).hexdigest()


class HandWrittenLock:
    """The practical limit: ``SET NX PX``; compare-and-delete in Lua; ``BLPOP`` on a signal list to wait."""

    def __init__(self, client: redis.Redis, name: str, expire: float) -> None:
        self.client = client
        self.key = f"limit:{name}"
        self.signal = f"limit-signal:{name}"
        self.px = round(expire * 1000)
        self.token = uuid.uuid4().hex

    def acquire(self) -> bool:
        while not self.client.set(self.key, self.token, nx=True, px=self.px):
            # The holder's TTL is unknown here: re-check at least every 100 ms.
            self.client.blpop([self.signal], 0.1)
        return True

    def release(self) -> None:
        if not _run_script(self.client, _RELEASE_SOURCE, (self.key, self.signal), (self.token,)):
            raise RuntimeError(f"{self.key} was not held")

    def extend_many_args(self) -> tuple[tuple[str], tuple[str, int]]:
        return (self.key,), (self.token, self.px)


class TokenHandoff:
    """The floor for a hand-off: the lock is a one-token list; ``BLPOP`` takes it, ``LPUSH`` returns it."""

    def __init__(self, client: redis.Redis, name: str, expire: float) -> None:
        self.client = client
        self.key = f"token:{name}"

    def acquire(self) -> bool:
        return self.client.blpop([self.key], 0) is not None

    def release(self) -> None:
        self.client.lpush(self.key, 1)


# -- the registry ------------------------------------------------------------


def _make_ours(client: redis.Redis, name: str, expire: float) -> BenchLock:
    return redis_lock.Lock(client, name, expire=expire)


def _make_ours_fencing(client: redis.Redis, name: str, expire: float) -> BenchLock:
    return redis_lock.Lock(client, name, expire=expire, fencing=True)


def _make_ours_fair(client: redis.Redis, name: str, expire: float) -> BenchLock:
    return redis_lock.Lock(client, name, expire=expire, fair=True)


def _make_prl401(client: redis.Redis, name: str, expire: float) -> BenchLock:
    lock: BenchLock = prl401().Lock(client, name, expire=max(1, round(expire)))
    return lock


def _make_redis_py(sleep: float) -> Callable[[redis.Redis, str, float], BenchLock]:
    def make(client: redis.Redis, name: str, expire: float) -> BenchLock:
        return redis.lock.Lock(client, name, timeout=expire, sleep=sleep)

    return make


def _make_pottery(client: redis.Redis, name: str, expire: float) -> BenchLock:
    from pottery import Redlock

    lock: BenchLock = Redlock(key=name, masters={client}, auto_release_time=expire)
    return lock


def _prepare_token(client: redis.Redis, name: str) -> None:
    client.delete(f"token:{name}")
    client.lpush(f"token:{name}", 1)


def _no_preparation(client: redis.Redis, name: str) -> None:
    return None


@dataclass(frozen=True)
class Peer:
    """One contender: how to make it, where its key lives, and how it waits."""

    id: str
    label: str
    make: Callable[[redis.Redis, str, float], BenchLock]
    key: Callable[[str], str]
    #: True when a waiter parks in a blocking command on the server (BLPOP); False when it polls.
    parks: bool
    #: For a polling waiter, the longest pause between two attempts, in seconds.
    poll_interval: float = 0.0
    #: Runs once before a hand-off series (the token floor puts its token in the list).
    prepare: Callable[[redis.Redis, str], None] = _no_preparation


OURS: Final = Peer("redis_lock", "redis_lock 5 (ours)", _make_ours, lambda n: f"lock:{n}", parks=True)
#: Ours with fencing tokens (a token minted by every grant): the cost of fencing=True, beside OURS.
OURS_FENCING: Final = Peer(
    "redis_lock-fencing", "redis_lock 5, fencing=True", _make_ours_fencing, lambda n: f"lock:{n}", parks=True
)
#: Ours in fair mode (first come, first served; a release hands the lock to the next waiter), beside OURS.
OURS_FAIR: Final = Peer(
    "redis_lock-fair", "redis_lock 5, fair=True", _make_ours_fair, lambda n: f"lock:{n}", parks=True
)
PRL401: Final = Peer("prl401", "python-redis-lock 4.0.1", _make_prl401, lambda n: f"lock:{n}", parks=True)
REDIS_PY_DEFAULT: Final = Peer(
    "redis-py-0.1",
    "redis-py Lock sleep=0.1",
    _make_redis_py(0.1),
    lambda n: n,
    parks=False,
    poll_interval=0.1,
)
REDIS_PY_FAST: Final = Peer(
    "redis-py-0.001",
    "redis-py Lock sleep=0.001",
    _make_redis_py(0.001),
    lambda n: n,
    parks=False,
    poll_interval=0.001,
)
POTTERY: Final = Peer(
    "pottery",
    "pottery Redlock (1 master)",
    _make_pottery,
    lambda n: f"redlock:{n}",
    parks=False,
    poll_interval=0.2,
)
LIMIT: Final = Peer(
    "limit", "limit: SET NX PX + Lua CAD", HandWrittenLock, lambda n: f"limit:{n}", parks=True
)
TOKEN: Final = Peer(
    "blpop-token",
    "floor: BLPOP token hand-off",
    TokenHandoff,
    lambda n: f"token:{n}",
    parks=True,
    prepare=_prepare_token,
)

#: The libraries compared everywhere.
LIBRARIES: Final = (OURS, PRL401, REDIS_PY_DEFAULT, REDIS_PY_FAST, POTTERY)
PEERS: Final = {peer.id: peer for peer in (*LIBRARIES, OURS_FENCING, OURS_FAIR, LIMIT, TOKEN)}


def monotonic() -> float:
    """The one clock every latency in the suite is measured with (system-wide, so valid across processes)."""
    return time.monotonic()
