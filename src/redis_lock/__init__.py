"""redis_lock: a distributed lock for Python on Redis.

This file is the public facade; the implementation lives in private modules:

- ``_engine``: the engine's effects (call, pipeline, sleep, ...) and the two
  drivers, ``drive`` (sync) and ``drive_async``, that perform them:
  every operation is written once, as steps that yield effects;
- ``_holdcore``: what a lock and a semaphore share, written once: the local
  gate, the acquire loop (try, wait through the hub, try again), the hold's
  lease and renewal, the release and the ``with`` block's exit;
- ``_lockcore``: the lock written once: its state and the steps of acquire
  (both modes: the usual one and fair mode's queue), release, extend, reset,
  the queries and ``reset_all``;
- ``_core``: every decision, with no I/O (validation, ids, waits, leases,
  script replies to results or exceptions), shared by both flavours;
- ``_keys``: key names and Redis Cluster hash slots;
- ``_clients``: what a client is (flavour, cluster, socket timeout), decided
  once per client class;
- ``_scripts``: the Lua scripts in ``lua/``, loaded at import, run with EVALSHA;
- ``_local``: the local gate that makes threads (or tasks) sharing one lock
  object take turns;
- ``_sync``: :class:`Lock` and :func:`reset_all`, which drive those steps with a
  synchronous client (and start the renewal thread);
- ``_async``: :class:`AsyncLock` and :func:`async_reset_all`, which drive them
  with an asyncio client (and start the renewal task);
- ``_waiting``: waiting at scale: one blocking connection per client (a thread,
  or a task per event loop) watches the signal lists for every waiter of the
  process, which sleeps locally;
- ``_semcore``: the semaphore written once (its decisions, state and steps,
  no I/O): permits are leases in one sorted set, on the server's clock;
- ``_semaphore``: :class:`Semaphore`, :class:`AsyncSemaphore` and
  :func:`reset_all_semaphores`, which drive those steps (sync and asyncio);
- ``_renewal``: auto-renewal, one scheduler per client (a thread, or a task per
  event loop) over many locks, with pipelined extends;
- ``_exceptions``: the exception hierarchy;
- ``fencing``: the resource side of fencing tokens, public: a Redis value
  written only with a token not older than the last one accepted
  (``fenced_set``, ``fenced_get`` and their asyncio twins), as engine steps
  either flavour drives;
- ``hooks``: the :class:`~redis_lock.hooks.LockObserver` protocol a lock reports
  its waits, holds, renewals and losses to (public);
- ``_cli``: the ``redis-lock`` command line (``python -m redis_lock``): run a
  command under a lock, and inspect or reset locks;
- ``_decorator``: :func:`locked`, which runs a function (plain or ``async def``)
  under a lock named from the call's arguments;
- ``otel``: an observer that records lock metrics through OpenTelemetry
  (public; needs the ``otel`` extra, so it is not imported here);
- ``typing``: the client Protocols, public so users can annotate with them;
- ``django_cache`` and ``django_valkey_cache``: the Django cache backends (not
  imported here), sharing ``_django``.

Every name python-redis-lock 4.x exported is still importable from here,
including the ``*_SCRIPT`` byte strings (now the sources of our scripts).
"""

from __future__ import annotations

from typing import Final as _Final

from ._async import AsyncLock as AsyncLock
from ._async import async_reset_all as async_reset_all
from ._decorator import locked as locked
from ._exceptions import AcquireTimeout as AcquireTimeout
from ._exceptions import AlreadyAcquired as AlreadyAcquired
from ._exceptions import AlreadyStarted as AlreadyStarted
from ._exceptions import InvalidArgument as InvalidArgument
from ._exceptions import InvalidArgumentType as InvalidArgumentType
from ._exceptions import InvalidTimeout as InvalidTimeout
from ._exceptions import LockLost as LockLost
from ._exceptions import NotAcquired as NotAcquired
from ._exceptions import NotExpirable as NotExpirable
from ._exceptions import NotReplicated as NotReplicated
from ._exceptions import RedisLockError as RedisLockError
from ._exceptions import StaleToken as StaleToken
from ._exceptions import TimeoutNotUsable as TimeoutNotUsable
from ._exceptions import TimeoutTooLarge as TimeoutTooLarge
from ._scripts import EXTEND as _EXTEND
from ._scripts import RESET as _RESET
from ._scripts import RESET_ALL as _RESET_ALL
from ._scripts import UNLOCK as _UNLOCK
from ._semaphore import AsyncSemaphore as AsyncSemaphore
from ._semaphore import Semaphore as Semaphore
from ._semaphore import async_reset_all_semaphores as async_reset_all_semaphores
from ._semaphore import reset_all_semaphores as reset_all_semaphores
from ._semcore import LimitMismatch as LimitMismatch
from ._sync import Lock as Lock
from ._sync import reset_all as reset_all

__version__: _Final = "5.0.0.dev0"

#: Source of the release script (4.x name).
UNLOCK_SCRIPT: _Final[bytes] = _UNLOCK.source
#: Source of the extend script (4.x name).
EXTEND_SCRIPT: _Final[bytes] = _EXTEND.source
#: Source of the reset script (4.x name).
RESET_SCRIPT: _Final[bytes] = _RESET.source
#: Source of the reset-all script (4.x name); it now resets one SCAN page of locks.
RESET_ALL_SCRIPT: _Final[bytes] = _RESET_ALL.source

__all__ = [
    "EXTEND_SCRIPT",
    "RESET_ALL_SCRIPT",
    "RESET_SCRIPT",
    "UNLOCK_SCRIPT",
    "AcquireTimeout",
    "AlreadyAcquired",
    "AlreadyStarted",
    "AsyncLock",
    "AsyncSemaphore",
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidTimeout",
    "LimitMismatch",
    "Lock",
    "LockLost",
    "NotAcquired",
    "NotExpirable",
    "NotReplicated",
    "RedisLockError",
    "Semaphore",
    "StaleToken",
    "TimeoutNotUsable",
    "TimeoutTooLarge",
    "__version__",
    "async_reset_all",
    "async_reset_all_semaphores",
    "locked",
    "reset_all",
    "reset_all_semaphores",
]
