"""The ``redis-lock`` command line: run a command under a lock, inspect and reset locks.

``redis-lock run NAME [options] -- CMD ...`` follows ``flock(1)``: it waits for
the lock (``-w SECS``, or not at all with ``-n``), exits 1 (or ``-E CODE``) when
the lock stays busy, and otherwise passes the command's exit status through
(128+N when it died of signal N). ``status``, ``list``, ``reset`` and
``reset-all`` inspect and clear locks. Errors exit with the ``<sysexits.h>``
codes: 64 bad usage, 69 Redis unreachable, 77 authentication refused, 70 when
the lock was lost while the command ran, 76 for another error reply, 78 for
``--cluster`` with a server that is not a cluster (``docs/cli.rst`` has the table).

How ``run`` keeps its promises:

* the lock is taken with ``expire`` and ``auto_renewal``: the renewal runs in
  this process, never in a helper, so it dies with it and a dead ``redis-lock``
  leaves a lock that expires on its own;
* the command runs in a session (process group) of its own, so the signals this
  process forwards (SIGINT, SIGTERM, SIGHUP) reach everything it started, and
  on Linux it is killed (``PR_SET_PDEATHSIG``) if this process is killed;
* while the command runs, this process polls :attr:`Lock.lost` every 100 ms (no
  Redis traffic: renewal records the loss); on a loss the command's group gets
  SIGTERM, then SIGKILL after ``--kill-after`` seconds, and the exit code is 70.
* with ``--fair`` the wait is one ``acquire`` call, not chunks: each call has
  its own place in the queue. A signal raises :class:`WaitInterrupted` into it,
  and the library leaves the queue; ``--verbose`` reports from a thread, with
  the place found by the lock's id (:class:`FairQueue`).

Only the standard library and the redis-py synchronous client are used. This
module is POSIX only (process groups, ``os.killpg``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fnmatch
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import IO, TYPE_CHECKING, Final, NoReturn, Protocol, TypeAlias

import redis
import redis.cluster
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthorizationError,
    ClusterCrossSlotError,
    ClusterDownError,
    RedisClusterException,
)

from . import __version__
from ._core import DEFAULT_QUEUE_LEASE, MAX_SECONDS, MIN_QUEUE_LEASE, is_array
from ._exceptions import InvalidArgument, NotAcquired, RedisLockError
from ._keys import LOCK_PREFIX, fair_keys, fence_key, keys_for
from ._sync import Lock, reset_all

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType

__all__ = ["main"]

#: A synchronous client of either topology.
Client: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"

DEFAULT_URL: Final = "redis://localhost:6379/0"
DEFAULT_EXPIRE: Final = 30.0
DEFAULT_KILL_AFTER: Final = 5.0
#: How often ``run`` looks at the child and at :attr:`Lock.lost` (seconds).
POLL_INTERVAL: Final = 0.1
#: The longest single ``acquire`` of a wait, so that the wait can report and react between them.
WAIT_CHUNK: Final = 1.0

# <sysexits.h> codes, and the shell's codes for a command that cannot run.
EX_OK: Final = 0
EX_CONFLICT: Final = 1
EX_USAGE: Final = 64
EX_UNAVAILABLE: Final = 69
EX_SOFTWARE: Final = 70
EX_PROTOCOL: Final = 76
EX_NOPERM: Final = 77
EX_CONFIG: Final = 78
EX_CANNOT_EXECUTE: Final = 126
EX_NOT_FOUND: Final = 127
#: The exit code of ``run`` when the lock was lost while the command ran (EX_SOFTWARE).
EX_LOST: Final = EX_SOFTWARE

FORWARDED_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_AUTH_REPLIES: Final = ("WRONGPASS", "NOAUTH", "NOPERM")
_PR_SET_PDEATHSIG: Final = 1


class UsageError(Exception):
    """Bad usage: exit 64 with this message (and the usage line of the (sub)command, if known)."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


# -- output ------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (in the user part and in a ``password=`` query field)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        # A lone user part may be a password too (redis://secret@host): hide it as well.
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = "&".join(
        f"{key}=***" if key.lower() == "password" else field
        for field in parts.query.split("&")
        if field
        for key in (field.partition("=")[0],)
    )
    # Put together by hand: urlunsplit would drop the empty host of unix:///path.
    masked = f"{parts.scheme}://{netloc}{parts.path}"
    return masked + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def url_secrets(text: str) -> set[str]:
    """The passwords (as written and decoded) of every URL-looking word in ``text``."""
    found: set[str] = set()
    for word in text.split():
        if "://" not in word:
            continue
        try:
            parts = urllib.parse.urlsplit(word)
        except ValueError:  # unparsable (a bad IPv6 host): still hide what looks like a user part
            parts = None
        netloc = word.split("://", 1)[1].split("/", 1)[0] if parts is None else parts.netloc
        userinfo = netloc.rpartition("@")[0]
        if userinfo:
            raw = userinfo.partition(":")[2] or userinfo
            found.update({raw, urllib.parse.unquote(raw)})
        for key, value in urllib.parse.parse_qsl("" if parts is None else parts.query):
            if key.lower() == "password" and value:
                found.update({value, urllib.parse.quote(value, safe="")})
    return {secret for secret in found if secret}


class _LogHandler(logging.Handler):
    """Prints the library's errors (a lost lock, say) as ``redis-lock: ...`` lines; drops the rest.

    Attached to the ``redis_lock`` logger while :func:`main` runs, so that Python's
    last-resort handler does not print its warnings ("Failed to acquire ...") as well.
    """

    def __init__(self, out: Output) -> None:
        super().__init__(logging.ERROR)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.out.err(record.getMessage())
        except Exception:  # a logging handler must not raise
            self.handleError(record)


class Output:
    """Writes to stdout and stderr, with every known password replaced by ``***``."""

    def __init__(self, secrets: set[str], stdout: IO[str], stderr: IO[str]) -> None:
        # Longest first, so that a password containing another is hidden whole.
        self._secrets = sorted(secrets, key=len, reverse=True)
        self.stdout = stdout
        self.stderr = stderr
        self.status_line = False

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def out(self, text: str) -> None:
        self.stdout.write(self.scrub(text) + "\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.end_status()
        self.stderr.write(self.scrub(f"redis-lock: {text}") + "\n")
        self.stderr.flush()

    def status(self, text: str) -> None:
        """One status line, rewritten in place on a terminal, else a line per call."""
        line = self.scrub(f"redis-lock: {text}")
        if self.stderr.isatty():
            self.stderr.write("\r" + line + "\x1b[K")
            self.status_line = True
        else:
            self.stderr.write(line + "\n")
        self.stderr.flush()

    def end_status(self) -> None:
        if self.status_line:
            self.stderr.write("\n")
            self.status_line = False


# -- arguments ---------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors exit 64 (EX_USAGE), not 2, through :class:`UsageError`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds up to {MAX_SECONDS}: {text!r}")
    return value


def wait_seconds(text: str) -> float:
    """``-w``/``--kill-after``: seconds, fractions allowed, 0 or more."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text!r}")
    return value


def expire_seconds(text: str) -> float:
    """``-e``: more than 0 seconds, with millisecond precision (so at least 0.001)."""
    value = _number(text)
    if value < 0.001:
        raise argparse.ArgumentTypeError(f"must be at least 0.001 seconds (more than 0), not {text!r}")
    return value


def queue_lease_seconds(text: str) -> float:
    """``--queue-lease``: the fair queue's lease, from 0.03 seconds (as ``Lock(queue_lease=...)``)."""
    value = _number(text)
    if value < MIN_QUEUE_LEASE:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_QUEUE_LEASE} seconds, not {text!r}")
    return value


def exit_code(text: str) -> int:
    """``-E``: an exit status, 0 to 255."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an exit code (an integer from 0 to 255): {text!r}") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"must be an exit code from 0 to 255, not {text!r}")
    return value


def _add_connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the subcommand; after it, only a given option overrides (SUPPRESS).
    parser.add_argument(
        "-u",
        "--url",
        metavar="URL",
        default=None if top else argparse.SUPPRESS,
        help=f"the server: redis://, rediss:// or unix:// (default: $REDIS_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="the URL names a node of a Redis Cluster",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="report the wait on stderr (run)",
    )


def build_parser() -> ArgumentParser:
    """The parser of ``redis-lock`` and its subcommands."""
    parser = ArgumentParser(
        prog="redis-lock",
        description="Run a command under a Redis lock, or inspect and reset locks.",
        epilog="Exit codes: see the subcommands; 64 bad usage, 69 Redis unreachable, 77 authentication refused.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"redis-lock {__version__}")
    _add_connection_options(parser, top=True)
    commands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    common = ArgumentParser(add_help=False, allow_abbrev=False)
    _add_connection_options(common, top=False)

    run = commands.add_parser(
        "run",
        parents=[common],
        allow_abbrev=False,
        help="run a command while holding a lock",
        usage=(
            "redis-lock run NAME [-w SECS | -n] [-e EXPIRE] [-E CODE] [--fencing] [--fair [--queue-lease SECS]] "
            "[--kill-after SECS] -- CMD ..."
        ),
        description=(
            "Wait for the lock NAME, run CMD while keeping the lock renewed, then release it. Exits with "
            "CMD's status (128+N if it died of signal N), 1 (or -E) if the lock stays busy, 70 if the lock "
            "is lost while CMD runs."
        ),
    )
    run.add_argument("name", metavar="NAME", help="the lock's name (key lock:NAME)")
    wait = run.add_mutually_exclusive_group()
    wait.add_argument(
        "-w",
        "--wait",
        dest="wait",
        type=wait_seconds,
        metavar="SECS",
        help="give up after waiting SECS seconds (fractions allowed; 0 means -n); default: wait for ever",
    )
    wait.add_argument("-n", "--nonblock", action="store_true", help="give up at once if the lock is busy")
    run.add_argument(
        "-e",
        "--expire",
        type=expire_seconds,
        default=DEFAULT_EXPIRE,
        metavar="SECS",
        help=f"the lock's lifetime, renewed while CMD runs (default {DEFAULT_EXPIRE:g})",
    )
    run.add_argument(
        "-E",
        "--conflict-exit-code",
        type=exit_code,
        default=EX_CONFLICT,
        metavar="CODE",
        help="exit code when the lock stays busy (default 1)",
    )
    run.add_argument(
        "--fencing",
        action="store_true",
        help="mint a fencing token: $REDIS_LOCK_FENCING_TOKEN in CMD's environment",
    )
    run.add_argument(
        "--fair",
        action="store_true",
        help="first come, first served: wait in the lock's queue, in arrival order (Lock(fair=True))",
    )
    run.add_argument(
        "--queue-lease",
        type=queue_lease_seconds,
        metavar="SECS",
        help=(
            "with --fair: how long a waiter that died holds up the queue "
            f"(at least {MIN_QUEUE_LEASE:g}; default {DEFAULT_QUEUE_LEASE:g})"
        ),
    )
    run.add_argument(
        "--kill-after",
        type=wait_seconds,
        default=DEFAULT_KILL_AFTER,
        metavar="SECS",
        help=f"after a lost lock, SIGKILL CMD this long after SIGTERM (default {DEFAULT_KILL_AFTER:g})",
    )
    # Catches words given without the "--" separator, to say where they belong.
    run.add_argument("stray", nargs="*", help=argparse.SUPPRESS)

    status = commands.add_parser(
        "status",
        parents=[common],
        allow_abbrev=False,
        help="show one lock (exit 0 if held, 1 if free)",
        description="Show the lock NAME: held or free, remaining lifetime, fencing token. Exits 0 if held, 1 if free.",
    )
    status.add_argument("name", metavar="NAME")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.add_argument("--show-id", action="store_true", help="show the holder's id")

    listing = commands.add_parser(
        "list",
        parents=[common],
        allow_abbrev=False,
        help="list held locks",
        description="List the held locks (SCAN lock:*, on every primary of a cluster).",
    )
    listing.add_argument(
        "--match", metavar="GLOB", help="only names matching this shell-style pattern (*, ?, [seq])"
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.add_argument("--show-id", action="store_true", help="show each holder's id")

    reset = commands.add_parser(
        "reset",
        parents=[common],
        allow_abbrev=False,
        help="forcibly delete one lock",
        description="Forcibly delete the lock NAME, whoever holds it, and wake one waiter.",
    )
    reset.add_argument("name", metavar="NAME")

    reset_every = commands.add_parser(
        "reset-all",
        parents=[common],
        allow_abbrev=False,
        help="forcibly delete every lock (a dry run without --yes)",
        description="List the locks that would be reset; with --yes, forcibly delete them.",
    )
    reset_every.add_argument("--match", metavar="GLOB", help="only names matching this shell-style pattern")
    reset_every.add_argument("--yes", action="store_true", help="really reset them (default: a dry run)")
    return parser


def _split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """For ``run``: the arguments before the first ``--`` and the command after it (None without ``--``).

    Other subcommands get their arguments unsplit (argparse reads ``--`` itself,
    as in ``redis-lock reset -- -odd-name``).
    """
    words = iter(argv)
    for word in words:
        if word in ("-u", "--url"):
            next(words, None)
        elif word == "--" or not word.startswith("-"):
            if word != "run" or "--" not in argv:
                return argv, None
            cut = argv.index("--")
            return argv[:cut], argv[cut + 1 :]
    return argv, None


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse and validate ``argv``; raise :class:`UsageError` (exit 64) for anything unusable."""
    parser = build_parser()
    head, command = _split_command(argv)
    options = parser.parse_args(head)
    if options.subcommand == "run":
        run_usage = "usage: redis-lock run NAME [options] -- CMD ...\n"
        if options.stray:
            raise UsageError(
                f"put the command after '--' (redis-lock run NAME [options] -- CMD ...), not {options.stray[0]!r}",
                run_usage,
            )
        if not command:
            raise UsageError("missing the command to run after '--'", run_usage)
        options.command = command
        if options.queue_lease is not None and not options.fair:
            raise UsageError(
                f"argument --queue-lease: needs --fair (it bounds how long a dead waiter holds up the fair "
                f"queue): {options.queue_lease:g}",
                run_usage,
            )
        if options.wait == 0:
            options.nonblock = True
    return options


# -- connection and errors -------------------------------------------------------------


def connect(url: str, *, cluster: bool) -> Client:
    """A client for ``url`` (redis-py parses it). A cluster client connects here; a plain one on first use."""
    # Defaults the URL's own query fields (?socket_connect_timeout=...) override.
    if cluster:
        return redis.cluster.RedisCluster(url=url, socket_connect_timeout=5)
    return _client_from_url(redis.Redis, url)


class _FromUrl(Protocol):
    """``redis.Redis`` as a factory (its ``from_url`` takes untyped ``**kwargs``)."""

    def from_url(self, url: str, *, socket_connect_timeout: float) -> redis.Redis: ...


def _client_from_url(factory: _FromUrl, url: str) -> redis.Redis:
    return factory.from_url(url, socket_connect_timeout=5)


def _is_auth_error(error: BaseException) -> bool:
    if isinstance(error, AuthenticationError | AuthorizationError):
        return True
    return isinstance(error, redis.ResponseError) and str(error).upper().startswith(_AUTH_REPLIES)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def error_exit(error: Exception, url: str, out: Output) -> int:
    """Report a Redis error and return its exit code: 77 auth, 69 unreachable, else 76 (or 78)."""
    where = mask_url(url)
    chain = list(_causes(error))
    if any(_is_auth_error(cause) for cause in chain):
        out.err(f"authentication refused by Redis at {where}: {error}")
        return EX_NOPERM
    if "cluster mode is not enabled" in str(error).lower():
        out.err(f"the server at {where} is not a Redis Cluster (drop --cluster): {error}")
        return EX_CONFIG
    if any(isinstance(cause, redis.ConnectionError | redis.TimeoutError) for cause in chain) or (
        isinstance(error, RedisClusterException) and "cannot be connected" in str(error)
    ):
        out.err(f"cannot reach Redis at {where}: {error}")
        return EX_UNAVAILABLE
    if isinstance(error, RedisClusterException):
        out.err(f"cannot use the Redis Cluster at {where}: {error}")
        return EX_CONFIG
    hint = ""
    # A plain client sent to a cluster node (redis-py turns MOVED into MovedError, an AskError).
    if isinstance(error, AskError | ClusterDownError | ClusterCrossSlotError):
        hint = f" ({type(error).__name__}: is it a Redis Cluster? then pass --cluster)"
    out.err(f"Redis at {where} replied with an error: {error}{hint}")
    return EX_PROTOCOL


# -- helpers on replies -----------------------------------------------------------------


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _text(value)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _ttl_seconds(pttl: int) -> float | None:
    """PTTL in seconds, None when the key has no expiry (-1)."""
    return None if pttl < 0 else pttl / 1000


def _describe_ttl(ttl: float | None) -> str:
    return "no expiry" if ttl is None else f"{ttl:.3f} s"


def name_of(key: str, *, cluster: bool) -> str:
    """The lock name in a lock key: ``lock:<name>``, or ``lock:{<name>}`` on a cluster (see ``_keys.hash_tag``)."""
    suffix = key[len(LOCK_PREFIX) :]
    if not (cluster and len(suffix) >= 2 and suffix[0] == "{" and suffix[-1] == "}"):
        return suffix
    tagged, index = suffix[1:-1], 0
    name: list[str] = []
    while index < len(tagged):
        if tagged.startswith("\\\\", index):
            name.append("\\")
            index += 2
        elif tagged.startswith("\\x7d", index):
            name.append("}")
            index += 4
        else:
            name.append(tagged[index])
            index += 1
    return "".join(name)


def _lock_info(
    client: Client, key: str, name: str, *, show_id: bool, cluster: bool
) -> dict[str, object] | None:
    """What ``status``/``list`` print about one lock key; None if the key does not exist."""
    pttl = _integer(client.pttl(key))
    if pttl is None or pttl == -2:
        return None
    info: dict[str, object] = {"name": name, "key": key, "ttl": _ttl_seconds(pttl)}
    info["fencing_token"] = _integer(client.get(fence_key(key)))
    info["queued"] = FairQueue(client, key, cluster=cluster).waiting()
    if show_id:
        info["id"] = _text(client.get(key))
    return info


class _SlotClock(Protocol):
    """What :func:`_server_ms` needs of a cluster client: its nodes by key, and TIME sent to one of them."""

    def get_node_from_key(self, key: str) -> object: ...

    def time(self, *, target_nodes: object) -> object: ...


class _QueueReader(Protocol):
    """The two reads of :class:`FairQueue` whose redis-py signatures are partly untyped."""

    def zrange(self, name: str, start: int, end: int) -> object: ...

    def time(self) -> object: ...


def _server_ms(client: Client, key: str, *, cluster: bool) -> int | None:
    """The server's clock (TIME) in ms, from the node that serves ``key`` on a cluster; None if unreadable."""
    reply = _slot_time(client, key) if cluster and not isinstance(client, redis.Redis) else _time(client)
    if not is_array(reply) or len(reply) != 2:
        return None
    seconds, micros = (_integer(part) for part in (reply[0], reply[1]))
    return None if seconds is None or micros is None else seconds * 1000 + micros // 1000


def _time(client: _QueueReader) -> object:
    return client.time()


def _tokens(client: _QueueReader, key: str) -> list[str | None]:
    """A fair queue's tokens in arrival order (``ZRANGE key 0 -1``)."""
    reply = client.zrange(key, 0, -1)
    return [_text(token) for token in reply] if is_array(reply) else []


def _slot_time(client: _SlotClock, key: str) -> object:
    return client.time(target_nodes=client.get_node_from_key(key))


class FairQueue:
    """A read-only view of a fair lock's queue (see ``lua/fair.lua``): who waits, in arrival order.

    ``lock-queue:NAME`` orders the waiting calls' tokens by ticket; ``lock-queued:NAME``
    holds each token's ``<lease end ms>|<expire>|<fencing>|<owner id>`` (and the field
    ``""``, a hand-off in progress). A place whose lease ended on the server's clock
    belongs to a waiter that died: the scripts skip it, so it is not counted. The
    reads are not atomic (a status line, not a decision), and cost O(waiters).
    """

    def __init__(self, client: Client, lock_key: str, *, cluster: bool) -> None:
        self.client = client
        self.lock_key = lock_key
        self.cluster = cluster
        self.queue_key, self.waiters_key, _ = fair_keys(lock_key)

    def _leases(self) -> dict[str, tuple[int, str]]:
        """Each queued token's lease end (server ms) and owner id."""
        found: dict[str, tuple[int, str]] = {}
        for field, value in self.client.hgetall(self.waiters_key).items():
            token, text = _text(field), _text(value)
            if not token or text is None:  # "": the hand-off marker, not a waiter
                continue
            lease, _, rest = text.partition("|")
            owner = rest.split("|", 2)[-1]
            if lease.isdigit() and rest.count("|") >= 2:
                found[token] = (int(lease), owner)
        return found

    def _live(self) -> dict[str, tuple[int, str]]:
        leases = self._leases()
        if not leases:
            return leases
        now = _server_ms(self.client, self.waiters_key, cluster=self.cluster)
        return leases if now is None else {token: entry for token, entry in leases.items() if entry[0] > now}

    def waiting(self) -> int:
        """How many live fair waiters the queue holds (0 for a lock without fair waiters)."""
        return len(self._live())

    def position(self, lock_id: str) -> tuple[int | None, int]:
        """The place (1: next) of the waiter whose lock has ``lock_id``, None if not queued; and the live count."""
        live = self._live()
        ahead = 0
        for token in _tokens(self.client, self.queue_key):
            if token is None or token not in live:
                continue
            if live[token][1] == lock_id:
                return ahead + 1, len(live)
            ahead += 1
        return None, len(live)


class _Scanner(Protocol):
    """``scan_iter`` as redis-py's clients have it (on a cluster client it visits every primary)."""

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[object]: ...


def _lock_keys(client: _Scanner) -> Iterator[object]:
    return client.scan_iter(match=LOCK_PREFIX + "*", count=500)


def scan_locks(client: Client, match: str | None, *, cluster: bool) -> Iterator[tuple[str, str]]:
    """(name, key) of every ``lock:*`` key whose name matches ``match``, sorted by name."""
    found: dict[str, str] = {}
    for raw in _lock_keys(client):
        try:
            key = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            continue  # lock names are str, sent as UTF-8: no Lock made this key
        name = name_of(key, cluster=cluster)
        if match is None or fnmatch.fnmatchcase(name, match):
            found[key] = name
    return iter(sorted((name, key) for key, name in found.items()))


# -- subcommands ------------------------------------------------------------------------


def command_status(options: argparse.Namespace, client: Client, out: Output, *, cluster: bool) -> int:
    """``status NAME``: exit 0 if held, 1 if free."""
    name: str = options.name
    Lock(client, name)  # validates the name before any Redis call
    key = keys_for(name, cluster=cluster)[0]
    found = _lock_info(client, key, name, show_id=options.show_id, cluster=cluster)
    held = found is not None
    if found is None:
        found = {"name": name, "key": key, "ttl": None, "fencing_token": _integer(client.get(fence_key(key)))}
        found["queued"] = FairQueue(client, key, cluster=cluster).waiting()
        if options.show_id:
            found["id"] = None
    info: dict[str, object] = {"name": name, "key": key, "held": held}
    info.update((field, value) for field, value in found.items() if field not in info)
    if options.json:
        out.out(json.dumps(info))
        return EX_OK if held else 1
    out.out(f"name: {name}")
    out.out(f"key: {key}")
    out.out(f"state: {'held' if held else 'free'}")
    if held:
        ttl = info["ttl"]
        out.out(f"ttl: {_describe_ttl(ttl if isinstance(ttl, float) else None)}")
    token = info["fencing_token"]
    out.out(f"fencing token: {'none' if token is None else token}")
    out.out(f"queued: {info['queued']}")
    if options.show_id:
        out.out(f"id: {info['id'] or 'none'}")
    return EX_OK if held else 1


def command_list(options: argparse.Namespace, client: Client, out: Output, *, cluster: bool) -> int:
    """``list``: every held lock, sorted by name."""
    locks: list[dict[str, object]] = []
    for name, key in scan_locks(client, options.match, cluster=cluster):
        info = _lock_info(client, key, name, show_id=options.show_id, cluster=cluster)
        if info is not None:
            locks.append(info)
    if options.json:
        out.out(json.dumps(locks))
        return EX_OK
    for info in locks:
        ttl = info["ttl"]
        fields = [str(info["name"]), _describe_ttl(ttl if isinstance(ttl, float) else None)]
        fields.append(f"token {info['fencing_token']}" if info["fencing_token"] is not None else "no token")
        if options.show_id:
            fields.append(f"id {info['id']}")
        out.out("\t".join(fields))
    return EX_OK


def command_reset(options: argparse.Namespace, client: Client, out: Output, *, cluster: bool) -> int:
    """``reset NAME``: forcibly delete one lock."""
    lock = Lock(client, options.name)
    held = lock.locked()
    lock.reset()
    out.out(f"reset {options.name}" + ("" if held else " (it was not held)"))
    return EX_OK


def command_reset_all(options: argparse.Namespace, client: Client, out: Output, *, cluster: bool) -> int:
    """``reset-all``: a dry run unless ``--yes``; with ``--match``, one reset per matching lock."""
    if options.yes and options.match is None:
        count = reset_all(client)
        out.out(f"reset {count} lock{'' if count == 1 else 's'}")
        return EX_OK
    locks = list(scan_locks(client, options.match, cluster=cluster))
    count = 0
    for name, key in locks:
        if not options.yes:
            out.out(name)
            continue
        if keys_for(name, cluster=cluster)[0] != key:
            out.err(f"skipped {key!r}: not a key this library makes for {name!r}")
            continue
        Lock(client, name).reset()
        out.out(f"reset {name}")
        count += 1
    if not options.yes:
        out.err(f"dry run: would reset {len(locks)} lock{'' if len(locks) == 1 else 's'}; add --yes to reset")
    else:
        out.err(f"reset {count} lock{'' if count == 1 else 's'}")
    return EX_OK


# -- run ----------------------------------------------------------------------------------


class WaitInterrupted(Exception):
    """Raised by the signal handler into a fair wait (``--fair``), which then leaves the queue.

    An :class:`Exception`, not a :class:`BaseException`: the library throws it into
    its acquire steps, which run fair.lua's cancel before it propagates (the place
    is left, and a lock handed to this call meanwhile goes to the next waiter).
    """


class Signals:
    """SIGINT, SIGTERM and SIGHUP: remembered, and sent on to the child's process group once it exists.

    While ``interrupting`` is set (a fair wait, which is one ``acquire`` call), the
    first signal also raises :class:`WaitInterrupted` in the main thread, once.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.child_group: int | None = None
        self.interrupting = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Signals:
        # Handlers can only be set from the main thread (main() called elsewhere keeps the defaults).
        if threading.current_thread() is threading.main_thread():
            for number in FORWARDED_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(
                number, previous if callable(previous) or isinstance(previous, int) else signal.SIG_DFL
            )

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.received.append(number)
        if self.child_group is not None:
            _kill_group(self.child_group, number)
        elif self.interrupting:
            self.interrupting = False
            raise WaitInterrupted(number)

    def attach(self, group: int) -> None:
        """Forward from now on to ``group``, and forward what arrived while it was being started."""
        self.child_group = group
        for number in list(self.received):
            _kill_group(group, number)


def _kill_group(group: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(group, number)


def _exit_status(returncode: int) -> int:
    """A child's status as a shell reports it: its exit code, or 128+N if signal N ended it."""
    return 128 - returncode if returncode < 0 else returncode


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that makes the child get SIGKILL when this process dies; else None.

    The kernel sends it when the thread that forked the child ends: that is the
    main thread here, which lives as long as the process.
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover - the test machines run Linux
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a Linux without a C library's prctl
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def set_death_signal() -> None:
        # Runs in the child between fork and exec: only a foreign call and system calls, no Python locks.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return set_death_signal


def _holder_state(client: Client, key: str) -> str:
    """The holder's side of a ``--verbose`` status line."""
    pttl = _integer(client.pttl(key))
    if pttl == -2:
        return "the lock was just released"
    if pttl is None or pttl < 0:
        return "the holder's lock has no expiry"
    return f"the holder's lock expires in {pttl / 1000:.1f} s"


def _wait_for_lock(
    lock: Lock, key: str, options: argparse.Namespace, client: Client, out: Output, signals: Signals
) -> bool:
    """Acquire, within ``-w``/``-n``; in chunks of at most a second, reporting (``-v``) and watching signals between them.

    A fair lock waits in one ``acquire`` call instead (:func:`_wait_in_queue`):
    each call queues with a token of its own, so chunks would lose the place.
    """
    if options.nonblock:
        return lock.acquire(blocking=False)
    if options.fair:
        return _wait_in_queue(lock, key, options, client, out, signals)
    started = time.monotonic()
    deadline = None if options.wait is None else started + options.wait
    while not signals.received:
        now = time.monotonic()
        remaining = WAIT_CHUNK if deadline is None else deadline - now
        if remaining <= 0:
            return False
        if lock.acquire(timeout=min(WAIT_CHUNK, remaining)):
            return True
        if options.verbose and not signals.received:
            limit = "" if options.wait is None else f" of {options.wait:g} s"
            out.status(
                f"waiting for {options.name!r}: {time.monotonic() - started:.1f} s{limit} so far; "
                f"{_holder_state(client, key)}"
            )
    return False


def _wait_in_queue(
    lock: Lock, key: str, options: argparse.Namespace, client: Client, out: Output, signals: Signals
) -> bool:
    """A fair wait: one ``acquire`` call for the whole ``-w`` (the call's place in the queue is its own).

    A signal raises :class:`WaitInterrupted` into it; the library then leaves the
    queue. The lock may have been taken just before the signal landed: it is
    released (fair.lua's release acts only for this lock's id, and hands it on).
    With ``--verbose`` a thread prints the status line every second, with this
    waiter's place in the queue (:meth:`FairQueue.position`).
    """
    stop = threading.Event()
    reporter = None
    if options.verbose:
        reporter = threading.Thread(
            target=_report_queue,
            args=(lock, key, options, client, out, stop),
            name="redis-lock status",
            daemon=True,
        )
        reporter.start()
    try:
        signals.interrupting = True
        try:
            if signals.received:  # arrived before the wait could be interrupted
                return False
            return lock.acquire(timeout=options.wait)
        finally:
            signals.interrupting = False
    except WaitInterrupted:
        _release_quietly(lock)
        return False
    finally:
        stop.set()
        if reporter is not None:
            reporter.join()


def _report_queue(
    lock: Lock, key: str, options: argparse.Namespace, client: Client, out: Output, stop: threading.Event
) -> None:
    """``--verbose`` for a fair wait: every second, the time waited, the place in the queue, the holder's expiry."""
    started = time.monotonic()
    queue = FairQueue(client, key, cluster=options.cluster)
    limit = "" if options.wait is None else f" of {options.wait:g} s"
    while not stop.wait(WAIT_CHUNK):
        try:
            place, waiting = queue.position(lock.id)
            holder = _holder_state(client, key)
        except (redis.RedisError, RedisClusterException):
            continue  # a status line is best effort: the wait itself reports what matters
        where = "not in the queue" if place is None else f"{_ordinal(place)} in the queue of {waiting}"
        if not stop.is_set():
            out.status(
                f"waiting for {options.name!r}: {time.monotonic() - started:.1f} s{limit} so far; {where}; {holder}"
            )


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def command_run(options: argparse.Namespace, client: Client, out: Output, *, cluster: bool) -> int:
    """``run NAME -- CMD``: see the module docstring."""
    name: str = options.name
    lock = Lock(
        client,
        name,
        expire=options.expire,
        auto_renewal=True,
        fencing=options.fencing,
        fair=options.fair,
        queue_lease=options.queue_lease,
    )
    key = keys_for(name, cluster=cluster)[0]
    with Signals() as signals:
        started = time.monotonic()
        acquired = _wait_for_lock(lock, key, options, client, out, signals)
        out.end_status()
        if not acquired:
            if signals.received:
                return 128 + signals.received[0]
            if options.verbose:
                out.err(f"{name!r} is busy: giving up after {time.monotonic() - started:.3f} s")
            return int(options.conflict_exit_code)
        if options.verbose:
            out.err(f"acquired {name!r} after {time.monotonic() - started:.3f} s")
        try:
            return _run_holding(lock, options, out, signals)
        except BaseException:
            _release_quietly(lock)
            raise


def _release_quietly(lock: Lock) -> None:
    with contextlib.suppress(RedisLockError, redis.RedisError):  # a lock we cannot release expires on its own
        lock.release()


def _run_holding(lock: Lock, options: argparse.Namespace, out: Output, signals: Signals) -> int:
    """Run the command while ``lock`` is held; release it; return the exit code."""
    name: str = options.name
    if signals.received:  # arrived while the lock was being taken
        _release_quietly(lock)
        return 128 + signals.received[0]
    env = dict(os.environ, REDIS_LOCK_NAME=name, REDIS_LOCK_ID=lock.id)
    if options.fencing:
        env["REDIS_LOCK_FENCING_TOKEN"] = str(lock.fencing_token)
    try:
        child = subprocess.Popen(
            options.command,
            env=env,
            start_new_session=True,
            # The spec'd way to set PR_SET_PDEATHSIG; the function only calls prctl and getppid.
            preexec_fn=_parent_death_signal(),  # noqa: PLW1509
        )
    except OSError as exc:
        _release_quietly(lock)
        out.err(f"cannot run {options.command[0]!r}: {exc.strerror or exc}")
        return EX_NOT_FOUND if isinstance(exc, FileNotFoundError) else EX_CANNOT_EXECUTE
    lost = False
    try:
        signals.attach(child.pid)
        while True:
            try:
                child.wait(timeout=POLL_INTERVAL)
                break
            except subprocess.TimeoutExpired:
                pass
            if lock.lost:
                lost = True
                out.err(
                    f"lost the lock {name!r} while the command ran: sending SIGTERM to the command, "
                    f"SIGKILL after {options.kill_after:g} s"
                )
                _stop(child, options.kill_after)
                break
    finally:
        if child.returncode is None:  # an unexpected error here: the command must not run unlocked
            _stop(child, 0)
        signals.child_group = None
    status = _exit_status(child.wait())  # reaped already: returns at once
    if lost:
        _release_quietly(lock)
        return EX_LOST
    try:
        lock.release()
    except NotAcquired as exc:
        out.err(f"the lock {name!r} was lost before the command ended: {exc}")
        return EX_LOST if status == EX_OK else status
    except redis.RedisError as exc:
        out.err(
            f"could not release the lock {name!r} ({exc}); it expires on its own within {options.expire:g} s"
        )
    return status


def _stop(child: subprocess.Popen[bytes], kill_after: float) -> None:
    """SIGTERM the child's group, then SIGKILL it if the child is still alive ``kill_after`` seconds later."""
    _kill_group(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        _kill_group(child.pid, signal.SIGKILL)
        child.wait()


# -- main ---------------------------------------------------------------------------------

_COMMANDS: Final = {
    "run": command_run,
    "status": command_status,
    "list": command_list,
    "reset": command_reset,
    "reset-all": command_reset_all,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``redis-lock`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    environment_url = os.environ.get("REDIS_URL") or ""
    out = Output(url_secrets(" ".join([*args, environment_url])), sys.stdout, sys.stderr)
    try:
        options = parse_arguments(args)
    except UsageError as exc:
        out.stderr.write(out.scrub(exc.usage))
        out.err(f"error: {exc}")
        return EX_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EX_OK
    handler = _LogHandler(out)
    library_logger = logging.getLogger("redis_lock")
    library_logger.addHandler(handler)
    try:
        return _connect_and_run(options, out, environment_url)
    finally:
        library_logger.removeHandler(handler)


def _connect_and_run(options: argparse.Namespace, out: Output, environment_url: str) -> int:
    url: str = options.url or environment_url or DEFAULT_URL
    try:
        client = connect(url, cluster=options.cluster)
    except ValueError as exc:
        out.err(f"error: argument -u/--url: {exc}: {mask_url(url)!r}")
        return EX_USAGE
    except (redis.RedisError, RedisClusterException) as exc:
        return error_exit(exc, url, out)
    try:
        return _COMMANDS[options.subcommand](options, client, out, cluster=options.cluster)
    except InvalidArgument as exc:
        out.err(f"error: {exc}")
        return EX_USAGE
    except (redis.RedisError, RedisClusterException) as exc:
        return error_exit(exc, url, out)
    except KeyboardInterrupt:
        out.end_status()
        return 128 + signal.SIGINT
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
