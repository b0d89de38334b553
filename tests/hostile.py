"""A hostile loopback HTTP server for the tests: endless or huge bodies, a slow drip, a
gateway that quotes the request's ``Authorization`` header back. Raw sockets, so that it
can misbehave in ways no well-behaved HTTP server library allows."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from types import TracebackType

Behaviour = Callable[["HostileServer", socket.socket, bytes], None]


class HostileServer:
    """Answers every request on an ephemeral loopback port with *behave*; ``requests``
    holds the raw request heads received, ``url`` the base URL."""

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                self.requests.append(head)
                self.behave(self, conn, head)
            except OSError:
                pass  # the client went away: what these behaviours expect

    def header(self, head: bytes, name: str) -> str | None:
        """A request header's value, or None."""
        for line in head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def endless_chunked(status: int = 200) -> Behaviour:
    """A chunked body that never ends."""

    def behave(server: HostileServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        while not server.stop.is_set():
            conn.sendall(chunk)

    return behave


def huge_body(status: int = 500, size: int = 2_000_000_000) -> Behaviour:
    """A body declared *size* bytes long (2 GB by default), sent as fast as it is read."""

    def behave(server: HostileServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} Whatever\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        block = b"y" * 0x10000
        while not server.stop.is_set():
            conn.sendall(block)

    return behave


def drip(interval: float = 2.0, status: int = 200) -> Behaviour:
    """A whole answer sent one byte every *interval* seconds (each under a read timeout)."""

    def behave(server: HostileServer, conn: socket.socket, head: bytes) -> None:
        answer = f"HTTP/1.1 {status} OK\r\nContent-Length: 2\r\n\r\n{{}}".encode()
        for byte in answer:
            conn.sendall(bytes([byte]))
            if server.stop.wait(interval):
                return

    return behave


def echoing_gateway(status: int = 503) -> Behaviour:
    """An answer whose problem detail (and a plain-text excerpt) quotes the request's
    ``Authorization`` header back, as some gateways do."""

    def behave(server: HostileServer, conn: socket.socket, head: bytes) -> None:
        auth = server.header(head, "Authorization") or "none"
        body = json.dumps(
            {
                "title": f"Upstream said no to {auth}",
                "status": status,
                "detail": f"request had Authorization: {auth}",
                "errorCode": "GW-1",
            }
        ).encode()
        conn.sendall(
            f"HTTP/1.1 {status} Unavailable {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    return behave
