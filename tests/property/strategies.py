"""Hypothesis strategies shared by the property tests.

The values are drawn from small pools on purpose: a state machine finds bugs when
several handles collide on the same names and ids, not when every value is new.
"""

from __future__ import annotations

from base64 import b64encode

from hypothesis import strategies as st

#: Lock names the machines play with. Besides plain ASCII they carry the characters
#: most likely to break key building or SCAN patterns (braces, colons, glob
#: characters, spaces, newlines, non-ASCII), all of which are valid names.
NAMES: tuple[str, ...] = ("a", "b", "n{ä}:* \n?")

#: Ids a handle may be given. ``None`` draws a random id; ``"id-1"`` and ``b"id-1"`` are
#: the same id (ASCII bytes are decoded), so handles built from them share the lock;
#: non-ASCII bytes are base64-encoded, as in 4.x.
IDS: tuple[str | bytes | None, ...] = (None, None, "id-1", b"id-1", "id-2", "idé", b"\xff\x00id")

#: Constructor ``expire`` values: None and 0 mean "never expires"; the others are long
#: enough never to run out during a test, so only the machine's own rules expire a lock.
EXPIRES: tuple[float | None, ...] = (None, 0, 30, 100.5)

#: ``extend()`` arguments: None means "the constructor's expire".
EXTEND_EXPIRES: tuple[float | None, ...] = (None, 20, 45.25)

#: Timeouts for blocking acquires: short, so a busy lock costs the suite little time.
TIMEOUTS: tuple[float, ...] = (0.01, 0.03)

#: Client kinds: (library, decode_responses).
CLIENT_KINDS: tuple[tuple[str, bool], ...] = (
    ("redis", False),
    ("redis", True),
    ("valkey", False),
    ("valkey", True),
)

names = st.sampled_from(NAMES)
ids = st.sampled_from(IDS)
expires = st.sampled_from(EXPIRES)
extend_expires = st.sampled_from(EXTEND_EXPIRES)
timeouts = st.sampled_from(TIMEOUTS)
client_kinds = st.sampled_from(CLIENT_KINDS)


def expected_id(id: str | bytes | None, actual: str) -> str:
    """The id a Lock built with ``id`` must report (``actual`` is accepted for a random id)."""
    if id is None:
        return actual
    if isinstance(id, str):
        return id
    try:
        return id.decode("ascii")
    except UnicodeDecodeError:
        return b64encode(id).decode("ascii")
