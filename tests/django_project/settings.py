"""Settings of the test project: one cache alias per backend configuration under test.

The URL comes from the test harness through ``REDIS_LOCK_TEST_REDIS_URL``, so these
caches use the session's own Redis server (never a default port).
"""

from __future__ import annotations

import os
from typing import Any, Final

from . import REDIS_URL_ENV

REDIS_URL: Final = os.environ[REDIS_URL_ENV]

SECRET_KEY = "redis-lock-tests-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, Any] = {}

# django-redis and django-valkey keep one connection pool per LOCATION string per
# process, created with the kwargs of the first cache that uses it: a decoded cache
# on the same string would get the bytes pool. A no-op query argument (0 is the
# default) makes the decoded caches' LOCATION distinct, hence their pool too.
DECODED_URL: Final = REDIS_URL + ("&" if "?" in REDIS_URL else "?") + "health_check_interval=0"

_REDIS_CLIENT: Final = {"CLIENT_CLASS": "django_redis.client.DefaultClient"}
_VALKEY_CLIENT: Final = {"CLIENT_CLASS": "django_valkey.client.DefaultClient"}
_DECODED: Final = {"CONNECTION_POOL_KWARGS": {"decode_responses": True}}

CACHES: dict[str, dict[str, Any]] = {
    # The 4.x README configuration.
    "default": {
        "BACKEND": "redis_lock.django_cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": _REDIS_CLIENT,
    },
    "decoded": {
        "BACKEND": "redis_lock.django_cache.RedisCache",
        "LOCATION": DECODED_URL,
        "OPTIONS": _REDIS_CLIENT | _DECODED,
    },
    # A prefix and a version: cache keys change, lock keys must not (as in 4.x).
    "prefixed": {
        "BACKEND": "redis_lock.django_cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "site",
        "VERSION": 7,
        "OPTIONS": _REDIS_CLIENT,
    },
    # django-redis's sharding client has no single raw client to lock on.
    "sharded": {
        "BACKEND": "redis_lock.django_cache.RedisCache",
        "LOCATION": [REDIS_URL],
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
    },
    "valkey": {
        "BACKEND": "redis_lock.django_valkey_cache.ValkeyCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": _VALKEY_CLIENT,
    },
    "valkey-decoded": {
        "BACKEND": "redis_lock.django_valkey_cache.ValkeyCache",
        "LOCATION": DECODED_URL,
        "OPTIONS": _VALKEY_CLIENT | _DECODED,
    },
}
