"""A minimal Django project for the cache backend tests (``tests/test_django_cache.py``).

``settings`` reads the Redis URL from ``REDIS_LOCK_TEST_REDIS_URL``; the tests set it
from the harness's ``redis_url`` before ``django.setup()``, and pass it on to the
``dogpile`` worker processes. Only this package and ``caches`` may be imported
before Django is set up: django-valkey reads settings when it is imported.
"""

from __future__ import annotations

from typing import Final

#: The environment variable that carries the test server's URL.
REDIS_URL_ENV: Final = "REDIS_LOCK_TEST_REDIS_URL"
#: The settings module, for ``DJANGO_SETTINGS_MODULE``.
SETTINGS_MODULE: Final = "tests.django_project.settings"


def setup_django(redis_url: str) -> None:
    """Set Django up once per process with this project, its caches on ``redis_url``."""
    import django
    import pytest
    from django.conf import settings

    if not settings.configured:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(REDIS_URL_ENV, redis_url)
            mp.setenv("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
            django.setup()
    assert settings.CACHES["default"]["LOCATION"] == redis_url, "Django was configured by someone else"
