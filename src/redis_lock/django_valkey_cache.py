"""A django-valkey cache backend with distributed locks (``pip install django-valkey``).

Use ``redis_lock.django_valkey_cache.ValkeyCache`` as the ``BACKEND`` of a
django-valkey cache: it is django-valkey's ``ValkeyCache`` plus the methods of
:class:`redis_lock.django_cache.RedisCache`, from the same code (see :doc:`/django`).

.. versionadded:: 5.0
"""

from __future__ import annotations

try:
    # django-valkey ships no types (mypy.ini lets them be Any likewise).
    from django_valkey.cache import ValkeyCache as PlainValkeyCache  # pyright: ignore[reportMissingTypeStubs]
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without django-valkey
    raise ImportError(
        f"redis_lock.django_valkey_cache needs Django and django-valkey ({exc}): pip install django-valkey",
        name=exc.name,
        path=exc.path,
    ) from exc

from ._django import CacheLockMixin

__all__ = ["ValkeyCache"]


class ValkeyCache(CacheLockMixin, PlainValkeyCache):
    """django-valkey's cache backend with ``lock``, ``locked_get_or_set`` and ``reset_all``.

    Its ``lock`` replaces django-valkey's own ``lock`` (a valkey-py lock). The
    ``CLIENT_CLASS`` must give a raw client (``django_valkey.client.DefaultClient``,
    ``HerdClient`` or ``SentinelClient``).

    .. versionadded:: 5.0
    """
