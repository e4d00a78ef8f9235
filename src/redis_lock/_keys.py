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
    "QUEUED_PREFIX",
    "QUEUE_PREFIX",
    "RECEIPT_PREFIX",
    "RESET_ALL_SCAN_COUNT",
    "SEMAPHORE_LIMIT_PREFIX",
    "SEMAPHORE_PREFIX",
    "SEMAPHORE_RECEIPT_PREFIX",
    "SEMAPHORE_SIGNAL_PREFIX",
    "SIGNAL_PREFIX",
    "WAKE_PREFIX",
    "fair_keys",
    "fence_key",
    "hash_tag",
    "key_slot",
    "keys_for",
    "keys_for_scanned",
    "lock_key_of_queue",
    "receipt_key",
    "reset_all_batch",
    "reset_all_groups",
    "semaphore_keys",
    "semaphore_receipt_key",
    "semaphore_suffix_of_scanned",
    "tag_of",
]

LOCK_PREFIX: Final = "lock:"


SIGNAL_PREFIX: Final = "lock-signal:"


#: A release's receipt: which release call deleted the lock key (see :func:`release_receipt_ttl_ms`).
RECEIPT_PREFIX: Final = "lock-released:"


#: A name's fencing counter: the last token minted for it (see ``lua/acquire.lua``).
FENCE_PREFIX: Final = "lock-fence:"


#: Fair mode's queue of waiting calls: a sorted set of tokens by ticket (see ``lua/fair.lua``).
QUEUE_PREFIX: Final = "lock-queue:"


#: Fair mode's waiters: a hash of each queued call's lease, expire, fencing and id (see ``lua/fair.lua``).
QUEUED_PREFIX: Final = "lock-queued:"


#: A fair waiter's own wake-up list: ``lock-wake:<name>:<token>``; it gets the lock handed over there.
WAKE_PREFIX: Final = "lock-wake:"


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


def fair_keys(lock_key: str) -> tuple[str, str, str]:
    """Fair mode's keys for a lock key: the queue, the waiters hash, and the prefix of each waiter's wake list.

    All in the lock key's hash slot (they carry its suffix, with its hash tag on a cluster).
    """
    suffix = lock_key[len(LOCK_PREFIX) :]
    return QUEUE_PREFIX + suffix, QUEUED_PREFIX + suffix, WAKE_PREFIX + suffix + ":"


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


def lock_key_of_queue(key: object) -> str | None:
    """Map a fair queue found by SCAN (``lock-queue:<name>``) to its lock key; None if no Lock made it."""
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(key, str) or not key.startswith(QUEUE_PREFIX):
        return None
    return LOCK_PREFIX + key[len(QUEUE_PREFIX) :]


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


# ---------------------------------------------------------------------------
# Semaphores (``_semcore``): ``sem:<name>`` holds the permits (a sorted set of holder
# ids scored by their expiry), ``sem-signal:<name>`` the waiters' wake-up list and
# ``sem-limit:<name>`` the stored limit; ``sem:{<name>}`` ... on a cluster client.

SEMAPHORE_PREFIX: Final = "sem:"
SEMAPHORE_SIGNAL_PREFIX: Final = "sem-signal:"
SEMAPHORE_LIMIT_PREFIX: Final = "sem-limit:"


def semaphore_keys(name: str, *, cluster: bool = False) -> tuple[str, str, str]:
    """The permits key, signal key and limit key of the semaphore ``name`` (hash-tagged on a cluster)."""
    suffix = hash_tag(name) if cluster else name
    return SEMAPHORE_PREFIX + suffix, SEMAPHORE_SIGNAL_PREFIX + suffix, SEMAPHORE_LIMIT_PREFIX + suffix


#: A semaphore's release receipts: a hash of holder id to the nonce of its last release call.
SEMAPHORE_RECEIPT_PREFIX: Final = "sem-released:"


def semaphore_receipt_key(permits_key: str) -> str:
    """The release receipts of a semaphore (``sem-released:<name>``), in its permits key's hash slot."""
    return SEMAPHORE_RECEIPT_PREFIX + permits_key[len(SEMAPHORE_PREFIX) :]


def semaphore_suffix_of_scanned(key: object) -> str | None:
    """The name part (with its hash tag) of a scanned ``sem:`` or ``sem-limit:`` key; None for any other key."""
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            return None  # names are str, sent as UTF-8, so no Semaphore made this key
    if not isinstance(key, str):
        return None
    for prefix in (SEMAPHORE_PREFIX, SEMAPHORE_LIMIT_PREFIX):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return None
