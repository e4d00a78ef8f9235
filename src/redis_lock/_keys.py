"""Key names and Redis Cluster hash slots, with no I/O.

A lock named ``<name>`` has ``lock:<name>`` (the owner id), ``lock-signal:<name>``
(the waiters' wake-up list), ``lock-released:<name>`` (a release's receipt) and,
with fencing, ``lock-fence:<name>`` (the last fencing token minted for the name).
On a cluster client the name is wrapped in a hash tag, so that every key of a
lock hashes to one slot and a script may touch them all.
"""

from __future__ import annotations

import binascii
from typing import Final

__all__ = [
    "FENCE_PREFIX",
    "LOCK_PREFIX",
    "RECEIPT_PREFIX",
    "RESET_ALL_SCAN_COUNT",
    "SIGNAL_PREFIX",
    "fence_key",
    "hash_tag",
    "key_slot",
    "keys_for",
    "keys_for_scanned",
    "receipt_key",
    "reset_all_batch",
    "reset_all_groups",
    "tag_of",
]

LOCK_PREFIX: Final = "lock:"


SIGNAL_PREFIX: Final = "lock-signal:"


#: A release's receipt: which release call deleted the lock key (see :func:`release_receipt_ttl_ms`).
RECEIPT_PREFIX: Final = "lock-released:"


#: A name's fencing counter: the last token minted for it (see ``lua/acquire.lua``).
FENCE_PREFIX: Final = "lock-fence:"


#: SCAN page size used by ``reset_all``.
RESET_ALL_SCAN_COUNT: Final = 500


def hash_tag(name: str) -> str:
    """The hash tag that puts both keys of the lock ``name`` in one cluster slot: ``{<name>}``.

    Redis hashes only what lies between the first ``{`` and the first ``}`` after
    it, so the tag must contain no ``}``. Inside the tag ``\\`` is written ``\\\\``
    and ``}`` is written ``\\x7d``: the whole name decides the slot, names with braces
    included, and distinct names keep distinct keys.
    """
    return "{" + name.replace("\\", "\\\\").replace("}", "\\x7d") + "}"


def keys_for(name: str, *, cluster: bool = False) -> tuple[str, str]:
    """The lock key and the signal key of ``name``.

    On a standalone server (and Sentinel) these are the 4.x names,
    ``lock:<name>`` and ``lock-signal:<name>``. On a cluster client both carry
    :func:`hash_tag` of the name, ``lock:{<name>}`` and ``lock-signal:{<name>}``,
    so they hash to one slot and the scripts may touch both.
    """
    suffix = hash_tag(name) if cluster else name
    return LOCK_PREFIX + suffix, SIGNAL_PREFIX + suffix


def tag_of(key: str) -> str:
    """The hash tag of ``key`` (``{...}``, as :func:`key_slot` finds it), or "" when it has none."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start : end + 1]
    return ""


def receipt_key(lock_key: str) -> str:
    """The key of a lock's release receipt: ``lock-released:<name>``, in the lock key's hash slot."""
    return RECEIPT_PREFIX + lock_key[len(LOCK_PREFIX) :]


def fence_key(lock_key: str) -> str:
    """The key of a lock's fencing counter: ``lock-fence:<name>``, in the lock key's hash slot."""
    return FENCE_PREFIX + lock_key[len(LOCK_PREFIX) :]


def key_slot(key: str | bytes) -> int:
    """The Redis Cluster hash slot (0-16383) of ``key``, honouring hash tags as Redis does."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    # CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum of the Redis
    # Cluster specification's key distribution model, is binascii.crc_hqx with 0.
    return binascii.crc_hqx(data, 0) % 16384


def reset_all_groups(keys: list[object]) -> list[tuple[tuple[str, ...], int]]:
    """Split a page of scanned lock keys into reset_all.lua calls whose keys all share one slot.

    Each call is (KEYS, number of lock keys): its lock keys, then its signal keys.
    A lock key and its signal key normally share a slot (our cluster keys carry a
    hash tag); a key some other program wrote, such as ``lock:job`` without a tag,
    has its signal key elsewhere, and each of the two then goes with its own slot.
    """
    groups: dict[int, tuple[list[str], list[str]]] = {}
    for key in keys:
        pair = keys_for_scanned(key)
        if pair is None:
            continue
        lock_key, signal_key = pair
        groups.setdefault(key_slot(lock_key), ([], []))[0].append(lock_key)
        groups.setdefault(key_slot(signal_key), ([], []))[1].append(signal_key)
    return [(tuple(locks + signals), len(locks)) for locks, signals in groups.values()]


def keys_for_scanned(key: object) -> tuple[str, str] | None:
    """Map a key found by SCAN (``lock:<name>``) to its (lock key, signal key); None if no Lock made it."""
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            return None  # names are str, sent as UTF-8, so no Lock made this key
    if not isinstance(key, str) or not key.startswith(LOCK_PREFIX):
        return None
    return key, SIGNAL_PREFIX + key[len(LOCK_PREFIX) :]


def reset_all_batch(keys: list[object]) -> tuple[tuple[str, ...], int]:
    """Turn a SCAN page of lock keys into reset_all.lua's KEYS (lock keys, then signal keys) and the lock count."""
    locks: list[str] = []
    signals: list[str] = []
    for key in keys:
        pair = keys_for_scanned(key)
        if pair is not None:
            locks.append(pair[0])
            signals.append(pair[1])
    return tuple(locks + signals), len(locks)
