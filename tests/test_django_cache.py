"""The Django cache backends: ``redis_lock.django_cache`` and ``redis_lock.django_valkey_cache``.

Django is set up once per session with ``tests/django_project/settings.py``,
pointed at the harness's server. Behaviour tests run on four cache aliases:
django-redis and django-valkey, each with ``decode_responses`` off and on.
Values are integers, which django-redis and django-valkey store unpickled, so
that they read back with either ``decode_responses`` setting.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import django_redis.cache
import pytest
import redis

import redis_lock

from .django_project import REDIS_URL_ENV, SETTINGS_MODULE, setup_django
from .django_project.caches import LockingCache, locking_cache

ROOT = Path(__file__).resolve().parent.parent
ALIASES = ["default", "decoded", "valkey", "valkey-decoded"]
WORKERS = 8


@pytest.fixture(scope="session")
def django_project(redis_url: str) -> str:
    """Set Django up once per session with the test project, on the session's server; returns the URL."""
    setup_django(redis_url)
    return redis_url


@pytest.fixture(params=ALIASES)
def cache(request: pytest.FixtureRequest, django_project: str, plain: redis.Redis) -> LockingCache:
    """A cache with the lock methods (django-redis or django-valkey, bytes or str replies); db flushed.

    Django gives each thread its own cache objects; the tests' threads share this
    one instead, whose connection pool is thread-safe.
    """
    alias: str = request.param
    return locking_cache(alias)


@pytest.fixture
def caches_ready(django_project: str, plain: redis.Redis) -> None:
    """Django is set up and the database is flushed."""


def test_readme_recipe(cache: LockingCache, plain: redis.Redis) -> None:
    """The 4.x README recipe runs unchanged, holding ``lock:<key>`` while it computes and freeing it after."""
    key = "readme"
    seen_inside: list[object] = []

    def function() -> int:
        val: int | None = cache.get(key)
        if not val:
            with cache.lock(key):
                val = cache.get(key)
                if not val:
                    seen_inside.append(plain.get("lock:" + key))
                    val = 42
                    cache.set(key, val)
        return val

    assert function() == 42
    assert function() == 42
    assert len(seen_inside) == 1
    assert seen_inside[0] is not None
    assert plain.exists("lock:" + key) == 0


def test_lock_is_a_redis_lock(cache: LockingCache) -> None:
    """``cache.lock()`` returns a :class:`redis_lock.Lock` (not the package's own lock) that reports its owner."""
    lock = cache.lock("owned", id="me")
    assert type(lock) is redis_lock.Lock
    assert lock.acquire()
    assert lock.get_owner_id() == "me"
    lock.release()
    assert not lock.locked()


def test_decode_responses_reaches_the_client(cache: LockingCache, plain: redis.Redis) -> None:
    """The ``-decoded`` aliases' raw clients reply with str and the others with bytes, as configured."""
    plain.set("probe", "x")
    reply = cache.client.get_client().get("probe")
    decoded = cache is locking_cache("decoded") or cache is locking_cache("valkey-decoded")
    assert reply == ("x" if decoded else b"x")


def test_lock_non_blocking(cache: LockingCache) -> None:
    """With ``blocking=False`` a busy lock makes ``acquire`` return False and ``with`` raise NotAcquired."""
    holder = cache.lock("busy")
    assert holder.acquire()
    assert cache.lock("busy").acquire(blocking=False) is False
    with pytest.raises(redis_lock.NotAcquired), cache.lock("busy", blocking=False):
        pytest.fail("the body ran without the lock")
    holder.release()
    with cache.lock("busy", blocking=False) as lock:
        assert lock.owned()


def test_lock_timeout(cache: LockingCache) -> None:
    """With ``timeout``, ``with`` gives up on a busy lock after that long, raising AcquireTimeout."""
    holder = cache.lock("slow")
    assert holder.acquire()
    started = time.monotonic()
    with pytest.raises(redis_lock.AcquireTimeout), cache.lock("slow", timeout=0.3):
        pytest.fail("the body ran without the lock")
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 5
    holder.release()


def test_lock_expire_and_signal_expire(cache: LockingCache, plain: redis.Redis) -> None:
    """``expire`` sets the lock key's TTL and ``signal_expire`` the wake-up signal's, in milliseconds."""
    lock = cache.lock("ttl", expire=30, signal_expire=60_000)
    assert lock.acquire()
    assert 25_000 < plain.pttl("lock:ttl") <= 30_000
    lock.release()
    assert 55_000 < plain.pttl("lock-signal:ttl") <= 60_000


def test_lock_validates_like_lock(cache: LockingCache) -> None:
    """Invalid option combinations raise what :class:`redis_lock.Lock` raises for them."""
    with pytest.raises(redis_lock.InvalidArgument, match="auto_renewal"):
        cache.lock("bad", auto_renewal=True)
    with pytest.raises(redis_lock.TimeoutNotUsable):
        cache.lock("bad", blocking=False, timeout=1)
    with pytest.raises(redis_lock.TimeoutTooLarge):
        cache.lock("bad", expire=1, timeout=2)


def test_lock_auto_renewal(cache: LockingCache, plain: redis.Redis) -> None:
    """With ``auto_renewal``, a lock held past its ``expire`` is still held, by the same id."""
    lock = cache.lock("renewed", expire=0.3, auto_renewal=True)
    assert lock.acquire()
    started = time.monotonic()
    # Watched for twice its lifetime, which only renewal allows.
    while time.monotonic() - started < 0.6:
        assert plain.get("lock:renewed") == lock.id.encode()
        time.sleep(0.05)
    lock.release()
    assert plain.exists("lock:renewed") == 0


def test_locked_get_or_set_creates_once(cache: LockingCache, plain: redis.Redis) -> None:
    """A cold key is created, stored with the given cache timeout, then served without calling the creator."""
    calls: list[int] = []

    def create() -> int:
        calls.append(1)
        return 7

    assert cache.locked_get_or_set("answer", create, timeout=100) == 7
    assert cache.locked_get_or_set("answer", create) == 7
    assert calls == [1]
    assert cache.get("answer") == 7
    assert 0 < plain.ttl(":1:answer") <= 100
    # The lock is named after the key, as in 4.x, and is free again.
    assert plain.exists("lock:get_or_set:answer") == 0
    assert plain.exists("lock-signal:get_or_set:answer") == 1


def test_locked_get_or_set_waits_for_the_holder(cache: LockingCache, plain: redis.Redis) -> None:
    """A caller arriving while the lock is held waits, then returns the holder's value without creating."""
    holder = cache.lock("get_or_set:shared")
    assert holder.acquire()
    result: list[int] = []
    done = threading.Event()

    def call() -> None:
        result.append(cache.locked_get_or_set("shared", lambda: 1))
        done.set()

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    _wait_until_blocked(plain)
    assert not done.is_set()
    cache.set("shared", 99)
    holder.release()
    assert done.wait(10)
    worker.join(10)
    assert result == [99]


def test_locked_get_or_set_options(cache: LockingCache, plain: redis.Redis) -> None:
    """``lock_key``, ``expire`` and ``id`` shape the lock, ``version`` the cache key; a None value raises ValueError."""
    seen: list[tuple[object, int]] = []

    def create() -> int:
        seen.append((plain.get("lock:custom"), plain.pttl("lock:custom")))
        return 3

    assert cache.locked_get_or_set("v", create, version=2, expire=20, id="me", lock_key="custom") == 3
    assert seen[0][0] == b"me"
    assert 15_000 < seen[0][1] <= 20_000
    assert plain.exists("lock:custom") == 0
    assert plain.exists(":2:v") == 1
    assert cache.get("v") is None
    assert cache.get("v", version=2) == 3
    with pytest.raises(ValueError, match="must return a value"):
        cache.locked_get_or_set("none", lambda: None)
    assert plain.exists("lock:get_or_set:none") == 0


def test_reset_all_frees_held_locks(cache: LockingCache, plain: redis.Redis) -> None:
    """``reset_all`` deletes every held lock, from the cache or elsewhere, and wakes their waiters."""
    held = cache.lock("one")
    assert held.acquire()
    other = redis_lock.Lock(plain, "two")
    assert other.acquire()
    acquired = threading.Event()

    def wait() -> None:
        if cache.lock("one").acquire(timeout=30):
            acquired.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    _wait_until_blocked(plain)
    assert cache.reset_all() == 2
    assert not other.locked()
    # Woken by the reset's signal, not by its own 30 s timeout.
    assert acquired.wait(5)
    waiter.join(5)
    with pytest.raises(redis_lock.NotAcquired):
        held.release()


def test_prefix_and_version_leave_lock_keys_alone(caches_ready: None, plain: redis.Redis) -> None:
    """KEY_PREFIX and VERSION change cache keys but not lock keys, so every alias shares one lock per name."""
    prefixed = locking_cache("prefixed")
    lock = prefixed.lock("job")
    assert lock.acquire()
    assert plain.get("lock:job") == lock.id.encode()
    assert locking_cache("default").lock("job").acquire(blocking=False) is False
    assert locking_cache("valkey").lock("job").acquire(blocking=False) is False
    lock.release()
    assert prefixed.locked_get_or_set("data", lambda: 5) == 5
    assert plain.get("site:7:data") == b"5"
    assert plain.exists("lock-signal:get_or_set:data") == 1
    assert not [key for key in plain.scan_iter("*lock*") if key.startswith(b"site")]


def test_clear_deletes_held_locks(cache: LockingCache, plain: redis.Redis) -> None:
    """``clear()`` flushes the database, held locks included (as in 4.x): the holder finds it lost."""
    lock = cache.lock("cleared")
    assert lock.acquire()
    cache.set("value", 1)
    cache.clear()
    assert plain.dbsize() == 0
    assert not lock.locked()
    assert cache.lock("cleared").acquire(blocking=False)
    with pytest.raises(redis_lock.NotAcquired):
        lock.release()


def test_backend_classes(caches_ready: None) -> None:
    """The backends are the packages' own cache classes with the lock methods added."""
    from redis_lock.django_cache import RedisCache
    from redis_lock.django_valkey_cache import ValkeyCache

    assert isinstance(locking_cache("default"), django_redis.cache.RedisCache)
    redis_cache = locking_cache("default")
    valkey_cache = locking_cache("valkey")
    assert type(redis_cache) is RedisCache
    assert type(valkey_cache) is ValkeyCache
    for name in ("lock", "locked_get_or_set", "reset_all"):
        assert getattr(RedisCache, name) is getattr(ValkeyCache, name)


def test_client_without_raw_client(caches_ready: None) -> None:
    """A CLIENT_CLASS with no raw client (ShardClient) makes ``lock`` raise NotImplementedError naming DefaultClient."""
    with pytest.raises(NotImplementedError, match=r"django_redis\.client\.DefaultClient"):
        locking_cache("sharded").lock("x")


@pytest.mark.parametrize(
    ("module", "missing", "hint"),
    [
        ("redis_lock.django_cache", "django_redis", 'pip install "python-redis-lock[django]"'),
        ("redis_lock.django_valkey_cache", "django_valkey", "pip install django-valkey"),
    ],
)
def test_import_error_hint(monkeypatch: pytest.MonkeyPatch, module: str, missing: str, hint: str) -> None:
    """Without the backend package, importing the module raises ImportError with the install command."""
    for name in list(sys.modules):
        if name == missing or name.startswith(missing + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=re.escape(hint)):
        importlib.import_module(module)


@pytest.mark.parametrize("alias", ["default", "valkey-decoded"])
def test_dogpile_processes(alias: str, django_project: str, plain: redis.Redis) -> None:
    """Eight processes asking for a cold key at once call ``value_creator`` once and all get its value."""
    run = f"dogpile-{uuid.uuid4().hex}"
    env = os.environ | {REDIS_URL_ENV: django_project, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE}
    command = [sys.executable, "-m", "tests.django_project.dogpile", alias, "cold", run]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(WORKERS)
    ]
    try:
        ready = 0
        deadline = time.monotonic() + 60
        while ready < WORKERS:
            assert time.monotonic() < deadline, f"only {ready} workers started"
            # Short BLPOPs: each must end within the client's socket timeout.
            ready += plain.blpop([f"{run}:ready"], 1) is not None
        plain.rpush(f"{run}:go", *range(WORKERS))
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [worker.returncode for worker in workers] == [0] * WORKERS, [err for _, err in outputs]
    values = {json.loads(out) for out, _ in outputs}
    pids = {worker.pid for worker in workers}
    assert plain.get(f"{run}:calls") == b"1"
    assert len(values) == 1
    assert values <= pids


def _wait_until_blocked(client: redis.Redis) -> None:
    """Return once some client is blocked in BLPOP (a lock waiter), failing after a generous deadline."""
    deadline = time.monotonic() + 10
    while client.info("clients")["blocked_clients"] < 1:
        assert time.monotonic() < deadline, "the waiter never blocked"
        time.sleep(0.01)


def test_lock_and_locked_get_or_set_take_every_lock_option(caches_ready: None) -> None:
    """``cache.lock()`` takes exactly Lock's options; ``locked_get_or_set()`` takes all but its own names for them."""
    import inspect

    from redis_lock._django import CacheLockMixin

    lock_options = list(inspect.signature(redis_lock.Lock).parameters)[2:]  # after redis_client, name
    cache_lock = inspect.signature(CacheLockMixin.lock).parameters
    assert list(cache_lock)[2:] == lock_options  # after self, key
    for option in lock_options:
        assert cache_lock[option].default == inspect.signature(redis_lock.Lock).parameters[option].default
    get_or_set = inspect.signature(CacheLockMixin.locked_get_or_set).parameters
    # blocking is always True there, and the lock's timeout is called wait_timeout
    # (timeout is the cached value's lifetime, as in 4.x).
    renamed = {"timeout": "wait_timeout", "blocking": None}
    for option in lock_options:
        name = renamed.get(option, option)
        if name is not None:
            assert name in get_or_set, f"locked_get_or_set() lacks {option!r}"


def test_locked_get_or_set_gives_up_after_wait_timeout(cache: LockingCache) -> None:
    """``wait_timeout`` bounds the wait for a busy get-or-set lock with AcquireTimeout."""
    holder = cache.lock("get_or_set:slow")
    assert holder.acquire()
    started = time.monotonic()
    with pytest.raises(redis_lock.AcquireTimeout):
        cache.locked_get_or_set("slow", lambda: 1, wait_timeout=0.2)
    assert time.monotonic() - started < 3
    holder.release()
    assert cache.locked_get_or_set("slow", lambda: 2, wait_timeout=0.2) == 2


def test_locked_get_or_set_without_expire_uses_an_expiring_renewed_lock(
    cache: LockingCache, plain: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``expire`` the lock expires (a killed worker frees the key) and is renewed while the value is made."""
    from redis_lock import _django

    monkeypatch.setattr(_django, "GET_OR_SET_DEFAULT_EXPIRE", 0.3)
    seen: list[int] = []

    def create() -> int:
        seen.append(plain.pttl("lock:get_or_set:renewed"))
        time.sleep(0.8)  # well past the lock's 0.3 s lifetime: only renewal keeps it
        seen.append(plain.pttl("lock:get_or_set:renewed"))
        return 5

    assert cache.locked_get_or_set("renewed", create) == 5
    assert 0 < seen[0] <= 300
    assert 0 < seen[1] <= 300, "the lock expired while the value was being computed"
    assert plain.exists("lock:get_or_set:renewed") == 0
    # With an explicit expire=0 the lock never expires, as 4.x's did.

    def create_forever() -> int:
        seen.append(plain.pttl("lock:get_or_set:forever"))
        return 6

    assert cache.locked_get_or_set("forever", create_forever, expire=0) == 6
    assert seen[-1] == -1
