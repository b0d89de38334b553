"""One HTTP exchange, bounded in time and memory: a wall-clock deadline and a capped body.

requests' ``timeout`` bounds each wait for the socket, not the exchange: a server that drips
one byte every few seconds keeps a call alive for as long as it likes, and ``.content``
reads a body of any size into memory. Every HTTP call here goes through :func:`exchange`
instead: the answer's body is streamed and read up to :data:`BODY_CAP` bytes only, and a
watchdog shuts the connection's socket down when the attempt's deadline passes (headers,
TLS handshake and body alike), which ends a blocked read at once.

The watchdog is a ``threading.Timer``. When no thread can be started (the user's process
limit reached), the exchange still runs, bounded by the per-read timeout only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import requests

#: the most of an answer's body ever read (docs/reference/wire-format.md)
BODY_CAP = 8192

_local = threading.local()


@attrs.frozen
class Answer:
    """What a server answered: status, reason, headers and at most ``BODY_CAP`` bytes."""

    status_code: int
    reason: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    #: True when the body was longer than the cap (and cut there)
    truncated: bool = False


class _Watch:
    """The sockets of one exchange, shut down together when its deadline passes."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.expired = False
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's (which drops its TLS object under a
    # reader in another thread): the blocked recv of the reading thread returns at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _register(sock: Any) -> None:
    watch: _Watch | None = getattr(_local, "watch", None)
    if watch is not None and isinstance(sock, socket.socket):
        watch.add(sock)


def _pool_classes() -> dict[str, Any]:
    """Connection pools whose new sockets join the running exchange's watch."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> Any:
            # urllib3 1.26's stubs (types-requests) do not declare _new_conn
            sock = super()._new_conn()  # type: ignore[misc,unused-ignore]
            _register(sock)
            return sock

    class WatchedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> Any:
            # urllib3 1.26's stubs (types-requests) do not declare _new_conn
            sock = super()._new_conn()  # type: ignore[misc,unused-ignore]
            _register(sock)
            return sock

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


def watched_adapter() -> Any:
    """A requests ``HTTPAdapter`` whose connections a deadline can cut (SOCKS proxies
    excepted: their pools are PySocks'; the per-read timeout still bounds them)."""
    import requests.adapters

    classes = _pool_classes()

    class WatchedAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)  # type: ignore[no-untyped-call,unused-ignore]
            self.poolmanager.pool_classes_by_scheme = classes

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)  # type: ignore[no-untyped-call,unused-ignore]
            if not proxy.lower().startswith("socks"):
                manager.pool_classes_by_scheme = classes
            return manager

    return WatchedAdapter()


def mount_watched(session: requests.Session) -> None:
    """Route *session*'s http:// and https:// calls through :func:`watched_adapter`."""
    adapter = watched_adapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)


class DeadlinePassed(Exception):
    """The exchange did not finish within its wall-clock deadline."""


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    seconds: float,
    cap: int = BODY_CAP,
    **kwargs: Any,
) -> Answer:
    """Send one request and read its answer within *seconds* of wall-clock time.

    Raises what requests raises; when the deadline cut the exchange short, a
    ``requests.Timeout`` saying so (whatever the cut socket made requests raise).
    Redirects are never followed.
    """
    import requests

    seconds = max(0.05, seconds)
    watch = _Watch()
    timer = threading.Timer(seconds, watch.expire)
    timer.daemon = True
    # No thread to spare (the user's process limit): the per-read timeout still bounds
    # each wait, and the exchange goes on.
    with contextlib.suppress(RuntimeError):
        timer.start()
    previous = getattr(_local, "watch", None)
    _local.watch = watch
    try:
        response = session.request(
            method, url, timeout=seconds, stream=True, allow_redirects=False, **kwargs
        )
        try:
            body, truncated = _read_capped(response, cap)
        finally:
            response.close()
        if watch.expired:
            raise DeadlinePassed
        return Answer(
            response.status_code,
            response.reason or "",
            response.headers,  # case-insensitive, as HTTP header names are
            body,
            truncated,
        )
    except (requests.RequestException, DeadlinePassed, OSError) as exc:
        if watch.expired:
            raise requests.Timeout(f"no complete answer within {seconds:.1f} s") from None
        if isinstance(exc, DeadlinePassed):  # pragma: no cover - expired is set first
            raise requests.Timeout(f"no complete answer within {seconds:.1f} s") from None
        raise
    finally:
        _local.watch = previous
        timer.cancel()


def _read_capped(response: requests.Response, cap: int) -> tuple[bytes, bool]:
    """At most *cap* bytes of the (decoded) body; True when there was more."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def certificate_names(url: str, ca_bundle: str | None, seconds: float = 3.0) -> list[str]:
    """The names (DNS and IP subject alternative names) the certificate at *url* is valid
    for, read over a direct connection whose chain is verified but whose host name is not
    checked; empty when that cannot be done (a proxy in the way, another failure). Used
    only to word a hostname-mismatch error."""
    import ssl
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 443
        if not host:
            return []
        context = ssl.create_default_context(cafile=ca_bundle)
        context.check_hostname = False
        # as strict as the HTTP stack, no stricter (Python 3.13 adds X509_STRICT here)
        context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        with (
            socket.create_connection((host, port), timeout=seconds) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
    except (OSError, ValueError):
        return []
    names: Any = cert.get("subjectAltName", ())
    return [str(pair[1]) for pair in names if pair[0] in ("DNS", "IP Address")]
