"""The Lua scripts: files on disk, the registry, SHA1s, and NOSCRIPT recovery."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import redis

import redis_lock
from redis_lock import _scripts

LUA_DIR = Path(_scripts.__file__).parent / "lua"


def test_registry_matches_the_files_on_disk() -> None:
    """Every lua/*.lua file is in the registry with its exact bytes and SHA1, and nothing else is."""
    files = {path.stem: path.read_bytes() for path in LUA_DIR.glob("*.lua")}
    expected = {"acquire", "unlock", "extend", "reset", "reset_all", "fenced_set", "wake", "fair"}
    expected |= {
        f"semaphore_{op}"
        for op in ("acquire", "release", "extend", "query", "reset", "reset_all", "set_limit")
    }
    assert set(files) == set(_scripts.SCRIPTS) == expected
    for name, script in _scripts.SCRIPTS.items():
        assert script.name == name
        assert script.source == files[name]
        assert script.sha1 == hashlib.sha1(files[name]).hexdigest()


@pytest.mark.parametrize("name", sorted(_scripts.SCRIPTS))
def test_each_script_documents_keys_argv_and_returns(name: str) -> None:
    """Each script opens with a comment block naming its KEYS, ARGV and return values."""
    header = re.match(r"(?:--[^\n]*\n)+", _scripts.SCRIPTS[name].source.decode())
    assert header is not None
    text = header.group(0)
    assert "KEYS" in text
    assert "ARGV" in text
    assert "Returns" in text


def test_old_script_names_hold_the_sources() -> None:
    """The 4.x names UNLOCK_SCRIPT, EXTEND_SCRIPT, RESET_SCRIPT, RESET_ALL_SCRIPT are the scripts' bytes."""
    assert _scripts.UNLOCK.source == redis_lock.UNLOCK_SCRIPT
    assert _scripts.EXTEND.source == redis_lock.EXTEND_SCRIPT
    assert _scripts.RESET.source == redis_lock.RESET_SCRIPT
    assert _scripts.RESET_ALL.source == redis_lock.RESET_ALL_SCRIPT


def test_sha1_equals_the_servers(plain: redis.Redis) -> None:
    """The SHA1 computed at import is what SCRIPT LOAD returns."""
    for script in _scripts.SCRIPTS.values():
        assert plain.script_load(script.source) == script.sha1


def test_lock_works_after_script_flush(conn: Any, plain: redis.Redis) -> None:
    """After SCRIPT FLUSH, every operation reloads its script and succeeds."""
    lock = redis_lock.Lock(conn, "flush", expire=10)
    plain.script_flush()
    assert lock.acquire()
    plain.script_flush()
    lock.extend(20)
    plain.script_flush()
    lock.release()
    plain.script_flush()
    lock.reset()
    plain.script_flush()
    redis_lock.Lock(conn, "flush").acquire()
    plain.script_flush()
    assert redis_lock.reset_all(conn) == 1
    assert plain.script_exists(_scripts.RESET_ALL.sha1) == [True]


def test_server_errors_other_than_noscript_propagate(plain: redis.Redis) -> None:
    """A script error that is not NOSCRIPT reaches the caller unchanged, without a reload."""
    plain.set("lock:wrongtype-signal", "x")
    plain.rpush("lock-signal:wrongtype", "not", "a", "string")
    plain.set("lock:wrongtype", "owner")
    with pytest.raises(redis.ResponseError):
        # The lock key holds a string but we pass the list as the lock key: GET on a list fails.
        _scripts.evalsha(
            plain, _scripts.UNLOCK, ("lock-signal:wrongtype", "lock:wrongtype"), ("owner", "1000")
        )
