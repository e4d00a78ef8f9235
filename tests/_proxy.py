"""A TCP proxy in front of a test server that can stop forwarding: a network partition, for real.

``freeze()`` stops moving bytes in both directions without closing anything, as a
partitioned network does: the client's writes sit in socket buffers and its reads
wait until its own socket timeout fires. ``thaw()`` lets the held bytes through.
Connections are accepted and relayed by daemon threads; ``close()`` ends them all.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Final

#: How often a relay thread looks at the freeze flag while idle, in seconds.
POLL: Final = 0.01


class PartitionProxy:
    """Listens on a free loopback port and relays every connection to ``(host, port)``."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._guard = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def freeze(self) -> None:
        """Stop forwarding bytes, both ways, on every connection (new ones are accepted and held too)."""
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._guard:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._guard:
                self._sockets += [client, upstream]
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                if self._frozen.is_set():
                    self._closed.wait(POLL)
                    continue
                readable, _, _ = select.select(list(peers), [], [], POLL)
                for sock in readable:
                    if self._frozen.is_set():
                        break  # the bytes wait in the socket buffer until thawed
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in peers:
                with contextlib.suppress(OSError):
                    sock.close()
