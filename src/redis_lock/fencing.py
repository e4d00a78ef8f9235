"""The resource side of fencing tokens: a Redis value that refuses writes with an older token.

A lock with an expiry cannot stop a holder that pauses (a long GC pause, a
swapped-out VM, a stalled network) past its lease: the lock is granted to
another client meanwhile, and when the first one wakes it still believes it
holds the lock and writes. Fencing makes such a late write harmless. With
``fencing=True`` every grant of a lock mints a *fencing token*
(:attr:`Lock.fencing_token <redis_lock.Lock.fencing_token>`), greater than
every token minted for that lock name before. Writers pass their token with
every write, and the resource refuses a write whose token is older than the
last one it accepted::

    holder A (token 41)          Redis lock            guard fenced:report
      |-- acquire -------------->| granted, token 41      |
      |   ... paused, lease ends |                        |
      |                          |<-- acquire: token 42 --| holder B
      |                          |   fenced_set(42) ----->| accepted, last = 42
      |-- fenced_set(41) --------------------------------->| refused: 41 < 42
      |<-- StaleToken ------------------------------------|

This module is that check for a resource that is itself a value in Redis:
:func:`fenced_set` stores the value only if its token is not older than the
last accepted one (equal is accepted: one holder may write several times), in
one Lua script, so the check and the write are atomic; :func:`fenced_get`
reads the last accepted token and value. A refused write raises
:exc:`~redis_lock.StaleToken` and changes nothing. Use it when the data the
lock protects lives in Redis; for another store, do the same check there (for
example ``UPDATE ... WHERE token <= :token`` in SQL), with this module as the
model.

Every resource is one Redis hash, ``fenced:<resource>``, with the fields
``token`` (the last accepted token, in decimal) and ``value``. One key per
resource, so it works unchanged on Redis Cluster. The key never expires:
deleting it forgets the last token, and any token is then accepted again.
All writers of a resource must take their tokens from the same lock name
(tokens of different names are not ordered); the guard may live on another
Redis than the lock.

Each operation is written once, as engine steps (``_engine``) that
:func:`fenced_set` and :func:`fenced_get` drive with a synchronous client and
:func:`async_fenced_set` and :func:`async_fenced_get` with an asyncio one.
Every argument is checked before any Redis call.

.. versionadded:: 5.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from . import _clients
from ._core import check_encodable, is_array, validate_name
from ._engine import Call, Steps, drive, drive_async
from ._exceptions import InvalidArgument, InvalidArgumentType, RedisLockError, StaleToken
from ._scripts import FENCED_SET, run

if TYPE_CHECKING:
    from .typing import AsyncRedisClient, RedisClient

__all__ = ["StaleToken", "async_fenced_get", "async_fenced_set", "fenced_get", "fenced_set"]

#: The prefix of a resource's guard key: ``fenced:<resource>``.
_KEY_PREFIX: Final = "fenced:"

#: Tokens are below 2**53, so Lua's doubles hold them exactly (acquire.lua mints about 1.8e15).
_TOKEN_LIMIT: Final = 2**53

#: The client option that makes redis-py and valkey-py return a reply's bytes undecoded.
_NEVER_DECODE: Final = "NEVER_DECODE"


def fenced_set(client: RedisClient, resource: str, token: int, value: str | bytes) -> None:
    """Store ``value`` for ``resource`` if ``token`` is not older than the last token accepted for it.

    The check and the write are one Lua script, so they are atomic: of two
    writers, the one with the older token can never overwrite the newer one's
    value. An equal token is accepted (one holder may write several times).

    :param client: a synchronous client: ``redis.Redis``, ``valkey.Valkey``, or
        their cluster clients.
    :param resource: the resource's name, a non-empty ``str``; its key is
        ``fenced:<resource>``.
    :param token: the writer's fencing token, :attr:`Lock.fencing_token
        <redis_lock.Lock.fencing_token>` of a lock made with ``fencing=True``:
        an ``int``, ``0 < token < 2**53``.
    :param value: the value to store; a ``str`` is stored UTF-8 encoded.
    :raises StaleToken: ``token`` is older than the last token accepted for
        ``resource``; nothing was changed.
    :raises InvalidArgumentType: (a :class:`TypeError`) an argument of the wrong
        type, including an asyncio client (use :func:`async_fenced_set`).
    :raises InvalidArgument: (a :class:`ValueError`) an unusable value.

    .. versionadded:: 5.0
    """
    drive(client, _set_steps(client, resource, token, value, flavour="sync"))


def fenced_get(client: RedisClient, resource: str) -> tuple[int, bytes] | None:
    """The last token accepted for ``resource`` and the value written with it.

    :param client: a synchronous client, as for :func:`fenced_set`.
    :param resource: the resource's name, a non-empty ``str``.
    :returns: ``(token, value)``, the value as ``bytes`` whatever the client's
        ``decode_responses``; None if no write was accepted yet.
    :raises InvalidArgumentType: (a :class:`TypeError`) an argument of the wrong
        type, including an asyncio client (use :func:`async_fenced_get`).
    :raises InvalidArgument: (a :class:`ValueError`) an unusable value.

    .. versionadded:: 5.0
    """
    return drive(client, _get_steps(client, resource, flavour="sync"))


async def async_fenced_set(client: AsyncRedisClient, resource: str, token: int, value: str | bytes) -> None:
    """The asyncio twin of :func:`fenced_set`: the same check, script and errors.

    :param client: an asyncio client: ``redis.asyncio.Redis``,
        ``valkey.asyncio.Valkey``, or their cluster clients.
    :param resource: the resource's name, a non-empty ``str``.
    :param token: the writer's fencing token, an ``int``, ``0 < token < 2**53``.
    :param value: the value to store; a ``str`` is stored UTF-8 encoded.
    :raises StaleToken: ``token`` is older than the last token accepted for
        ``resource``; nothing was changed.
    :raises InvalidArgumentType: (a :class:`TypeError`) an argument of the wrong
        type, including a synchronous client (use :func:`fenced_set`).
    :raises InvalidArgument: (a :class:`ValueError`) an unusable value.

    .. versionadded:: 5.0
    """
    await drive_async(client, _set_steps(client, resource, token, value, flavour="async"))


async def async_fenced_get(client: AsyncRedisClient, resource: str) -> tuple[int, bytes] | None:
    """The asyncio twin of :func:`fenced_get`.

    :param client: an asyncio client, as for :func:`async_fenced_set`.
    :param resource: the resource's name, a non-empty ``str``.
    :returns: ``(token, value)``, the value as ``bytes``; None if no write was accepted yet.
    :raises InvalidArgumentType: (a :class:`TypeError`) an argument of the wrong
        type, including a synchronous client (use :func:`fenced_get`).
    :raises InvalidArgument: (a :class:`ValueError`) an unusable value.

    .. versionadded:: 5.0
    """
    return await drive_async(client, _get_steps(client, resource, flavour="async"))


# ---------------------------------------------------------------------------
# The steps, written once for both flavours. Each validates its arguments before
# its first effect: the drivers start a generator at once, so a bad argument is
# raised before any Redis call.


def _set_steps(
    client: object, resource: object, token: object, value: object, *, flavour: str
) -> Steps[None]:
    _check_client(client, flavour)
    name = validate_name(resource, "resource")
    number = _validate_token(token)
    data = _validate_value(value)
    reply = yield from run(
        FENCED_SET, (_KEY_PREFIX + name,), (str(number), data), cluster=_clients.is_cluster_client(client)
    )
    accepted, last = _parse_set_reply(reply)
    if not accepted:
        raise StaleToken(name, number, last)


def _get_steps(client: object, resource: object, *, flavour: str) -> Steps[tuple[int, bytes] | None]:
    _check_client(client, flavour)
    key = _KEY_PREFIX + validate_name(resource, "resource")
    # Undecoded, so a value written as bytes reads back as those bytes on a decode_responses client too.
    reply = yield Call("execute_command", ("HMGET", key, "token", "value"), {_NEVER_DECODE: True})
    return _parse_get_reply(reply)


# ---------------------------------------------------------------------------
# Validation and replies, with no I/O.


def _check_client(client: object, flavour: str) -> None:
    """Reject what is not a known client of ``flavour``, naming the function to use instead."""
    try:
        _clients.check_client(client, strict=True, flavour=flavour)
    except (InvalidArgument, InvalidArgumentType) as exc:
        sync = flavour == "sync"
        expected = (
            "a synchronous client (redis.Redis, valkey.Valkey or their cluster clients)"
            if sync
            else "an asyncio client (redis.asyncio.Redis, valkey.asyncio.Valkey or their cluster clients)"
        )
        got = f"{type(client).__module__}.{type(client).__qualname__}"
        hint = ""
        if isinstance(client, _clients.accepted_types("async" if sync else "sync")):
            hint = (
                "; use async_fenced_set and async_fenced_get with it"
                if sync
                else "; use fenced_set and fenced_get with it"
            )
        raise type(exc)(f"client must be {expected}, got {got}{hint}", argument="client") from None


def _validate_token(token: object) -> int:
    if not isinstance(token, int) or isinstance(token, bool):
        raise InvalidArgumentType(
            f"token must be an int fencing token, not {type(token).__name__}: token={token!r}",
            argument="token",
        )
    if not 0 < token < _TOKEN_LIMIT:
        raise InvalidArgument(
            f"token must be greater than 0 and less than 2**53: token={token!r}", argument="token"
        )
    return int(token)  # a plain int: an int subclass (IntEnum, ...) may print otherwise


def _validate_value(value: object) -> bytes:
    """The bytes to store: ``value`` itself, or a str UTF-8 encoded (whatever the client's own encoding)."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise InvalidArgumentType(
            f"value must be a str or bytes, not {type(value).__name__}: value={value!r}", argument="value"
        )
    check_encodable(value, "value")
    return value.encode("utf-8")


def _as_token(value: object, reply: object, what: str) -> int:
    """A token from a reply: an int, or its decimal digits (bytes or str); else an unexpected reply."""
    if isinstance(value, bytes | str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise RedisLockError(f"Unexpected reply {what}: {reply!r}")


def _parse_set_reply(reply: object) -> tuple[bool, int]:
    """fenced_set.lua's ``{1, token}`` (accepted) or ``{0, last}`` (refused) as ``(accepted, token)``."""
    if is_array(reply) and len(reply) == 2 and reply[0] in (0, 1):
        return reply[0] == 1, _as_token(reply[1], reply, "from the fenced_set script")
    raise RedisLockError(f"Unexpected reply from the fenced_set script: {reply!r}")


def _parse_get_reply(reply: object) -> tuple[int, bytes] | None:
    """HMGET token value: None when nothing was accepted yet, else ``(token, value)``."""
    if is_array(reply) and len(reply) == 2:
        token, value = reply
        if token is None and value is None:
            return None
        if isinstance(value, bytes):
            return _as_token(token, reply, "to HMGET on a fencing guard"), value
    raise RedisLockError(f"Unexpected reply to HMGET on a fencing guard: {reply!r}")
