"""The HTTP side of ``FakeScheduler``: a threading server and the request handler.

Standard library only (``http.server``), so the testing kit adds no runtime dependency. The
handler parses and validates; the state machine and fault plans live in ``_fake.py``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import attrs

from .._status import Status
from ._watched import PATHS as WATCHED_PATHS
from ._watched import TOKEN_HEADERS as WATCHED_TOKEN_HEADERS
from ._watched import not_found

if TYPE_CHECKING:
    from ._watched import WatchedJob

STATUS_PATH = re.compile(r"^/ess/rest/scheduler/v1/requests/([^/]+)/executionStatus/?$")
REQUEST_PATH = re.compile(r"^/ess/rest/scheduler/v1/requests/([^/]+)/?$")
REQUESTS_PATH = re.compile(r"^/ess/rest/scheduler/v1/requests/?$")
CANCEL_PATH = re.compile(r"^/ess/rest/scheduler/v1/requests/([^/]+)/cancel/?$")
CHECK_IN_PATH = re.compile(r"^/ess/rest/scheduler/v1/requests/([^/]+)/checkInCancelling/?$")
MEDIA_TYPES = ("application/json", "application/vnd.oracle.resource+json")
#: how ESS labels a RequestDetails body, by what the client's Accept header asks for
SINGULAR_TYPE = "application/vnd.oracle.resource+json;type=singular"
JSON_TYPE = "application/json;charset=utf-8"
MAX_BODY = 1024 * 1024
MAX_REQUEST_ID = 2**63 - 1
#: how long an idle keep-alive connection (or a client that stalls mid-request) is kept
IDLE_TIMEOUT = 30.0


@attrs.define
class Fault:
    """One injected misbehaviour, applied to the next matching calls."""

    kind: str  # "status", "reset" or "delay"
    remaining: int
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    #: a dict is answered as JSON; str (UTF-8) or bytes raw, with *content_type*
    body: dict[str, Any] | str | bytes | None = None
    content_type: str | None = None
    #: only calls with this HTTP method (None: any)
    method: str | None = None


def _masked(headers: dict[str, str]) -> str:
    """The repr of *headers* with credentials hidden: the scheme stays, the rest is ``***``."""
    out = dict(headers)
    for key, value in headers.items():
        if key.lower() in ("authorization", "proxy-authorization"):
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[key] = f"{scheme} ***".strip()
    return repr(out)


@attrs.define
class ReceivedRequest:
    """Every HTTP request the fake saw (accepted or not), for assertions on the wire.

    The repr masks ``Authorization`` (a test log must not show credentials); ``headers``
    keeps the real value for assertions.
    """

    method: str
    path: str
    headers: dict[str, str] = attrs.field(repr=_masked)
    body: bytes
    #: the HTTP status answered; None while in progress or when the connection was dropped
    answer: int | None = None
    #: the ``detail`` of a refusal, e.g. "requestHandle is missing"
    reason: str | None = None
    #: the client's (host, port): one value per TCP connection, so reuse can be counted
    client: tuple[str, int] | None = None


def problem(status: int, title: str, detail: str, code: str | None = None) -> dict[str, Any]:
    """An RFC 7807 ``SimpleExceptionDetail`` body."""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "errorCode": code or f"ESS-{status:05d}",
    }


def parse_request_id(raw: str) -> int | None:
    """The positive int64 in a path segment, or None (ASCII digits only: '²' is no id)."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_REQUEST_ID else None


class FakeServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its open connections, so that ``stop()`` can end
    idle keep-alive connections too (otherwise their threads outlive the server)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS look-up that can take
        # seconds on a badly configured machine; the fake needs no server name.
        socket.socket.bind(self.socket, self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (their handler threads then finish)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up is not worth a traceback on the job's terminal.
        pass


class Backend(Protocol):
    """What the handler asks of the fake behind it (``FakeScheduler`` is one): the
    handler speaks HTTP, the backend keeps the state."""

    _token: str | None
    _lock: threading.Condition

    def _next_fault(self, method: str) -> Fault | None: ...
    def _take_reset_after_accept(self) -> bool: ...
    def _log_request(self, request: ReceivedRequest) -> None: ...
    def _answered(self, request: ReceivedRequest) -> None: ...
    def _authorized(self, header: str | None) -> bool: ...
    def _accept(
        self, request_id: int, handle: str, status: Status, message: str | None
    ) -> tuple[int, str | None]: ...
    def _submit_over_http(self) -> dict[str, Any]: ...
    def _check_in(self, request_id: int, handle: object) -> tuple[int, str | bool]: ...
    def _cancel_over_http(self, request_id: int) -> tuple[int, str | dict[str, Any]]: ...
    def _watched_job(self, api: str, job_id: str) -> WatchedJob | None: ...
    def details(self, request_id: int) -> dict[str, Any] | None: ...


class Handler(BaseHTTPRequestHandler):
    """Speaks the executionStatus POST and the request-state GET; anything else is refused
    with a ``SimpleExceptionDetail`` body, and a malformed request never kills the server."""

    fake: Backend
    #: the request being served, until ``on_request`` has seen it
    _pending: ReceivedRequest | None = None
    protocol_version = "HTTP/1.1"
    server_version = "FakeESS/1"
    timeout = IDLE_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # An answer goes out as headers, then body: without this, Nagle's algorithm holds
        # the body back until the client's delayed ACK (tens of ms per answer with a body).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (bad request line, oversized headers) get a JSON problem too."""
        try:
            title = HTTPStatus(code).phrase
        except ValueError:
            title = "Error"
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            # Garbage parses as HTTP/0.9, which has no status line; answer as HTTP/1.0 so
            # the client sees a status code.
            self.request_version = "HTTP/1.0"
        with contextlib.suppress(OSError):
            self._answer(code, problem(code, title, message or explain or title))

    # -- plumbing ------------------------------------------------------------------------
    def _read_body(self) -> bytes | str:
        """The body, or the reason it cannot be read (the connection is then closed)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return "chunked bodies are not supported: send Content-Length"
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            return f"bad Content-Length {length!r}"
        if size < 0 or size > MAX_BODY:
            return f"Content-Length {size} is out of range (0..{MAX_BODY})"
        return self.rfile.read(size)

    def _answer(
        self,
        status: int,
        body: dict[str, Any] | str | bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        if isinstance(body, dict):
            data, kind = json.dumps(body).encode(), "application/json"
        elif isinstance(body, str):
            data, kind = body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            data, kind = body or b"", "application/octet-stream"
        self._report()  # before the client can see its answer: hooks run in request order
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type or kind)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data:
            self.wfile.write(data)
        self.wfile.flush()

    def _refuse(
        self,
        seen: ReceivedRequest,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        title = HTTPStatus(status).phrase
        # recorded before answering: a client that got its answer must find it in `requests`
        seen.answer, seen.reason = status, detail
        self._answer(status, problem(status, title, detail), headers)

    def _reset(self) -> None:
        """Close the connection abruptly (RST), as a crashed proxy would."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _apply_fault(self, seen: ReceivedRequest) -> bool:
        """Apply an injected fault; True when the call was answered (or dropped) by it."""
        fault = self.fake._next_fault(seen.method)
        if fault is None:
            return False
        if fault.kind == "delay":
            time.sleep(fault.delay)
            return False
        if fault.kind == "reset":
            self._reset()
            seen.reason = "connection reset (injected)"
            return True
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        body = fault.body
        if body is None:
            body = problem(
                fault.status,
                "Injected fault",
                f"fault injected by FakeScheduler ({fault.status})",
            )
        seen.answer, seen.reason = fault.status, "injected fault"
        self._answer(fault.status, body, headers, fault.content_type)
        return True

    def _serve(self, method: str, handle: Any) -> None:
        # Read a body whatever the method: left unread, it would be parsed as the next request.
        body = self._read_body()
        seen = ReceivedRequest(
            method,
            self.path,
            dict(self.headers.items()),
            body if isinstance(body, bytes) else b"",
            client=(str(self.client_address[0]), int(self.client_address[1])),
        )
        self.fake._log_request(seen)
        self._pending = seen
        try:
            if isinstance(body, str):
                # The rest of the stream cannot be trusted as the next request: close it.
                self.close_connection = True
                self._refuse(seen, 411 if "chunked" in body else 400, body)
            elif not self._apply_fault(seen):
                handle(seen, body)
        except OSError:
            self.close_connection = True  # the client went away; nothing to answer
        except Exception as exc:  # a bug in the fake must not look like a hung scheduler
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._refuse(seen, 500, f"FakeScheduler failed: {type(exc).__name__}: {exc}")
        self._report()  # a dropped request (reset, client gone) is reported too

    def _report(self) -> None:
        """Hand the request being served to ``on_request``, once."""
        seen, self._pending = self._pending, None
        if seen is not None:
            self.fake._answered(seen)

    # -- verbs ---------------------------------------------------------------------------
    def do_POST(self) -> None:
        self._serve("POST", self._post)

    def do_GET(self) -> None:
        self._serve("GET", self._get)

    def _other(self) -> None:
        self._serve(self.command, self._not_allowed)

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other

    def _not_allowed(self, seen: ReceivedRequest, body: bytes) -> None:
        self.close_connection = True  # its body, if any, was not read
        self._refuse(seen, 405, f"{seen.method} is not supported: use POST or GET")

    def _route(
        self, seen: ReceivedRequest, *paths: re.Pattern[str]
    ) -> tuple[re.Pattern[str], re.Match[str]] | None:
        """The first path that matches, once the credentials pass; else refused."""
        clean = self.path.split("?", 1)[0]
        for path in paths:
            match = path.match(clean)
            if match:
                break
        else:
            self._refuse(seen, 404, f"no resource at {self.path}")
            return None
        if not self.fake._authorized(self.headers.get("Authorization")):
            self._refuse(
                seen, 401, "missing or wrong credentials", {"WWW-Authenticate": 'Basic realm="ESS"'}
            )
            return None
        return path, match

    def _request_id(self, seen: ReceivedRequest, match: re.Match[str]) -> int | None:
        request_id = parse_request_id(match.group(1))
        if request_id is None:
            self._refuse(seen, 400, f"request id {match.group(1)!r} is not a positive integer")
        return request_id

    def _json_body(self, seen: ReceivedRequest, body: bytes) -> dict[str, Any] | None:
        """The JSON object of a POST with a supported Content-Type; else refused."""
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            self._refuse(
                seen,
                415,
                f"Content-Type {media or '(none)'} is not supported: use "
                + " or ".join(MEDIA_TYPES),
            )
            return None
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._refuse(seen, 400, "body is not JSON")
            return None
        if not isinstance(data, dict):
            self._refuse(seen, 400, "body is not a JSON object")
            return None
        return data

    def _json_answer(self, seen: ReceivedRequest, status: int, body: Any) -> None:
        """A JSON answer, labelled with the media type the Accept header asks for."""
        seen.answer = status
        wanted = (self.headers.get("Accept") or "").lower()
        kind = SINGULAR_TYPE if "application/vnd.oracle.resource+json" in wanted else JSON_TYPE
        self._answer(status, json.dumps(body).encode(), content_type=kind)

    def _post(self, seen: ReceivedRequest, body: bytes) -> None:
        routed = self._route(seen, STATUS_PATH, CHECK_IN_PATH, CANCEL_PATH, REQUESTS_PATH)
        if routed is None:
            return
        path, match = routed
        if path is REQUESTS_PATH:
            if self._json_body(seen, body or b"{}") is not None:
                self._json_answer(seen, 201, self.fake._submit_over_http())
            return
        request_id = self._request_id(seen, match)
        if request_id is None:
            return
        if path is CANCEL_PATH:
            code, said = self.fake._cancel_over_http(request_id)
            if isinstance(said, str):
                self._refuse(seen, code, said)
            else:
                self._json_answer(seen, code, said)
            return
        data = self._json_body(seen, body)
        if data is None:
            return
        if path is CHECK_IN_PATH:
            code, answer = self.fake._check_in(request_id, data.get("requestExecutionContext"))
            if isinstance(answer, str):
                self._refuse(seen, code, answer)
            else:
                self._json_answer(seen, code, answer)
            return
        self._execution_status(seen, request_id, data)

    def _execution_status(
        self, seen: ReceivedRequest, request_id: int, data: dict[str, Any]
    ) -> None:
        handle = data.get("requestHandle")
        if not isinstance(handle, str) or not handle:
            self._refuse(seen, 400, "requestHandle is missing")
            return
        raw_status = data.get("status")
        try:
            status = Status(raw_status)
        except (TypeError, ValueError):  # a list or object is unhashable: TypeError
            valid = ", ".join(s.value for s in Status)
            self._refuse(seen, 400, f"status {raw_status!r} is not one of {valid}")
            return
        message = data.get("statusMessage")
        if message is not None and not isinstance(message, str):
            self._refuse(seen, 400, "statusMessage must be a string")
            return
        code, refusal = self.fake._accept(request_id, handle, status, message)
        if refusal is not None:
            self._refuse(seen, code, refusal)
            return
        if self.fake._take_reset_after_accept():
            self._reset()  # the status was taken; its answer is lost on the way
            seen.reason = "connection reset after the status was taken (injected)"
            return
        seen.answer = code
        self._answer(code)

    def _get(self, seen: ReceivedRequest, body: bytes) -> None:
        clean = self.path.split("?", 1)[0]
        for api, path in WATCHED_PATHS.items():
            match = path.match(clean)
            if match:
                self._get_watched(seen, api, match)
                return
        routed = self._route(seen, REQUEST_PATH)
        if routed is None:
            return
        request_id = self._request_id(seen, routed[1])
        if request_id is None:
            return
        details = self.fake.details(request_id)
        if details is None:
            self._refuse(seen, 404, f"Request {request_id} not found")
            return
        self._json_answer(seen, 200, details)

    def _get_watched(self, seen: ReceivedRequest, api: str, match: re.Match[str]) -> None:
        """A watched API's job status, in its vendor's shape (docs/howto/testing.md)."""
        token_header = WATCHED_TOKEN_HEADERS.get(api)
        if token_header is not None:
            allowed = self.fake._token is None or self.headers.get(token_header) == self.fake._token
        else:
            allowed = self.fake._authorized(self.headers.get("Authorization"))
        if not allowed:
            self._refuse(seen, 401, "missing or wrong credentials")
            return
        job_id = unquote(match.group(match.lastindex or 1))
        job = self.fake._watched_job(api, job_id)
        if job is None:
            body, kind = not_found(api, job_id)
            seen.answer, seen.reason = 404, f"no {api} job {job_id}"
            self._answer(404, json.dumps(body).encode(), content_type=kind)
            return
        with self.fake._lock:
            answer = job.next_body(match)
        seen.answer = 200
        self._answer(200, json.dumps(answer).encode(), content_type="application/json")
