"""``FakeScheduler``: a real HTTP server on loopback that behaves like ESS's callback API.

Standard library only (``http.server`` in a thread), so it adds no runtime dependency.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import attrs

from .._model import Callback
from .._status import TERMINAL, Status

STATUS_PATH = re.compile(r"^/ess/rest/scheduler/v1/requests/([^/]+)/executionStatus/?$")
REQUEST_PATH = re.compile(r"^/ess/rest/scheduler/v1/requests/([^/]+)/?$")
MEDIA_TYPES = ("application/json", "application/vnd.oracle.resource+json")
MAX_BODY = 1024 * 1024

#: the request state a status leads to
STATE_AFTER = {
    Status.SUCCESS: "SUCCEEDED",
    Status.WARNING: "WARNING",
    Status.ERROR: "ERROR",
    Status.BUSINESS_ERROR: "ERROR",
    Status.CANCEL: "CANCELLED",
    Status.PAUSE: "PAUSED",
    Status.SUSPEND: "SUSPENDED",
}


@attrs.define
class Fault:
    """One injected misbehaviour, applied to the next calls."""

    kind: str  # "status", "reset" or "delay"
    remaining: int
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    body: dict[str, Any] | None = None


@attrs.define
class ReceivedRequest:
    """Every HTTP request the fake saw (accepted or not), for assertions on the wire."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: the HTTP status answered; None while in progress or when the connection was dropped
    answer: int | None = None


class FakeScheduler:
    """A loopback ESS that accepts executionStatus callbacks and answers request-state GETs.

    >>> with FakeScheduler() as ess:
    ...     # point ESS_BASE_URL at ess.url, run the job, then:
    ...     ess.received            # the accepted Callbacks, in order
    ...     ess.state(42)           # "SUCCEEDED", "RUNNING", ...

    Credentials given here are required of every call (Basic or bearer); with none given,
    any call is accepted. Fault injection: ``fail_next``, ``reset_next``, ``delay_next``,
    ``chaos``.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_callback: Callable[[Callback], None] | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if token is not None and username is not None:
            raise ValueError("give Basic credentials or a token, not both")
        self._username = username
        self._password = password
        self._token = token
        self._host = host
        self._port = port
        self.on_callback = on_callback
        self._lock = threading.Condition()
        self._received: list[Callback] = []
        self._requests: list[ReceivedRequest] = []
        self._states: dict[int, str] = {}
        self._missing: set[int] = set()
        self._faults: list[Fault] = []
        self._chaos: tuple[float, tuple[int, ...], bool, random.Random] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FakeScheduler(url={self.url if self._server else None!r})"

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> FakeScheduler:
        """Bind and serve in a daemon thread. Raises OSError if the port is taken."""
        if self._server is not None:
            return self
        handler = type("Handler", (_Handler,), {"fake": self})
        server = _Server((self._host, self._port), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fake-scheduler",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeScheduler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to give the job (``ESS_BASE_URL``)."""
        if self._server is None:
            raise RuntimeError("the fake scheduler is not running; call start()")
        host, port = self._server.server_address[:2]
        host = str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake scheduler is not running; call start()")
        return int(self._server.server_address[1])

    def env(self, request_id: int = 1, request_handle: str = "handle-1") -> dict[str, str]:
        """The ``ESS_*`` variables a job needs to report to this fake (no credentials)."""
        return {
            "ESS_BASE_URL": self.url,
            "ESS_REQUEST_ID": str(request_id),
            "ESS_REQUEST_HANDLE": request_handle,
        }

    # -- what it saw ---------------------------------------------------------------------
    @property
    def received(self) -> list[Callback]:
        """The accepted callbacks, in the order they arrived."""
        with self._lock:
            return list(self._received)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every HTTP request seen, accepted or refused, in order."""
        with self._lock:
            return list(self._requests)

    def callbacks_for(self, request_id: int) -> list[Callback]:
        """The accepted callbacks of one request."""
        return [c for c in self.received if c.request_id == request_id]

    def state(self, request_id: int) -> str | None:
        """The request's state: RUNNING until a final callback, then SUCCEEDED, WARNING,
        ERROR, CANCELLED, PAUSED or SUSPENDED; None for a request made missing."""
        with self._lock:
            if request_id in self._missing:
                return None
            return self._states.get(request_id, "RUNNING")

    def set_state(self, request_id: int, state: str | None) -> None:
        """Force a request's state, e.g. ``CANCELLING`` as an operator's cancel would;
        None makes the request unknown (404)."""
        with self._lock:
            if state is None:
                self._missing.add(request_id)
                self._states.pop(request_id, None)
            else:
                self._missing.discard(request_id)
                self._states[request_id] = state

    def wait_for(
        self,
        count: int = 1,
        *,
        timeout: float = 10.0,
        predicate: Callable[[list[Callback]], bool] | None = None,
    ) -> list[Callback]:
        """Block until *count* callbacks arrived (or *predicate* holds); return them.

        Raises ``TimeoutError`` naming what did arrive.
        """
        test = predicate or (lambda got: len(got) >= count)
        deadline = time.monotonic() + timeout
        with self._lock:
            while not test(self._received):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"waited {timeout} s; received {[str(c.status) for c in self._received]}"
                    )
                self._lock.wait(left)
            return list(self._received)

    def clear(self) -> None:
        """Forget callbacks, requests, states and faults."""
        with self._lock:
            self._received.clear()
            self._requests.clear()
            self._states.clear()
            self._missing.clear()
            self._faults.clear()
            self._chaos = None

    # -- fault injection -----------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        retry_after: str | float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next *count* calls with *status* (and a SimpleExceptionDetail body)."""
        with self._lock:
            self._faults.append(
                Fault(
                    "status",
                    count,
                    status=status,
                    body=body,
                    retry_after=None if retry_after is None else str(retry_after),
                )
            )

    def reset_next(self, count: int = 1) -> None:
        """Drop the connection of the next *count* calls without answering."""
        with self._lock:
            self._faults.append(Fault("reset", count))

    def delay_next(self, count: int = 1, seconds: float = 1.0) -> None:
        """Answer the next *count* calls only after *seconds*."""
        with self._lock:
            self._faults.append(Fault("delay", count, delay=seconds))

    def chaos(
        self,
        rate: float,
        *,
        statuses: tuple[int, ...] = (500, 502, 503),
        resets: bool = True,
        seed: int | None = None,
    ) -> None:
        """Fail a random share (*rate*, 0..1) of calls with one of *statuses* or a reset;
        ``chaos(0)`` stops it."""
        with self._lock:
            self._chaos = None if rate <= 0 else (rate, statuses, resets, random.Random(seed))

    def _next_fault(self) -> Fault | None:
        with self._lock:
            while self._faults:
                fault = self._faults[0]
                if fault.remaining <= 0:
                    self._faults.pop(0)
                    continue
                fault.remaining -= 1
                return attrs.evolve(fault)
            if self._chaos is not None:
                rate, statuses, resets, rng = self._chaos
                if rng.random() < rate:
                    choices = [*statuses, *((0,) if resets else ())]
                    pick = rng.choice(choices)
                    return Fault("reset", 1) if pick == 0 else Fault("status", 1, status=pick)
            return None

    # -- request handling (called from server threads) -----------------------------------
    def _authorized(self, header: str | None) -> bool:
        if self._token is not None:
            return header is not None and hmac.compare_digest(
                header.encode(), f"Bearer {self._token}".encode()
            )
        if self._username is not None:
            expected = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            return header is not None and hmac.compare_digest(
                header.encode(), f"Basic {expected}".encode()
            )
        return True

    def _log_request(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _accept(
        self, request_id: int, handle: str, status: Status, message: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        """Apply one valid callback to the state machine; return (HTTP status, problem)."""
        callback = Callback(request_id, handle, status, message)
        with self._lock:
            if request_id in self._missing:
                return 404, problem(
                    404, "Not Found", f"Request {request_id} not found", "ESS-00404"
                )
            current = self._states.get(request_id, "RUNNING")
            done = {STATE_AFTER[s] for s in TERMINAL} | {"CANCELLED"}
            if current in done:
                if STATE_AFTER.get(status) == current and status in TERMINAL:
                    self._received.append(callback)  # at-least-once: a repeat is fine
                    self._lock.notify_all()
                    return 200, None
                return 400, problem(
                    400,
                    "Bad Request",
                    f"Request {request_id} already ended in state {current}; "
                    f"{status.value} refused",
                    "ESS-00400",
                )
            if status is not Status.UPDATE:
                self._states[request_id] = STATE_AFTER[status]
            elif current in ("PAUSED", "SUSPENDED"):
                self._states[request_id] = "RUNNING"
            self._received.append(callback)
            self._lock.notify_all()
        if self.on_callback is not None:
            with contextlib.suppress(Exception):  # a printing hook must never break the server
                self.on_callback(callback)
        return 200, None


def problem(status: int, title: str, detail: str, code: str) -> dict[str, Any]:
    """An RFC 7807 ``SimpleExceptionDetail`` body."""
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "errorCode": code,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up is not worth a traceback on the job's terminal.
        pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeScheduler
    protocol_version = "HTTP/1.1"
    server_version = "FakeESS/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ------------------------------------------------------------------------
    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            return None
        if size < 0 or size > MAX_BODY:
            return None
        return self.rfile.read(size)

    def _answer(
        self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _reset(self) -> None:
        """Close the connection abruptly (RST), as a crashed proxy would."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _apply_fault(self) -> bool:
        """Apply an injected fault; True when the call was answered (or dropped) by it."""
        fault = self.fake._next_fault()
        if fault is None:
            return False
        if fault.kind == "delay":
            time.sleep(fault.delay)
            return False
        if fault.kind == "reset":
            self._reset()
            return True
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        body = fault.body or problem(
            fault.status,
            "Injected fault",
            f"fault injected by FakeScheduler ({fault.status})",
            f"ESS-{fault.status:05d}",
        )
        self._answer(fault.status, body, headers)
        return True

    # -- verbs ---------------------------------------------------------------------------
    def do_POST(self) -> None:
        body = self._read_body()
        seen = ReceivedRequest("POST", self.path, dict(self.headers.items()), body or b"")
        self.fake._log_request(seen)
        seen.answer = self._handle_post(body)

    def _handle_post(self, body: bytes | None) -> int | None:
        if body is None:
            self._answer(400, problem(400, "Bad Request", "bad Content-Length", "ESS-00400"))
            self.close_connection = True
            return 400
        if self._apply_fault():
            return None
        match = STATUS_PATH.match(self.path.split("?", 1)[0])
        if not match:
            self._answer(404, problem(404, "Not Found", f"no resource at {self.path}", "ESS-00404"))
            return 404
        if not self.fake._authorized(self.headers.get("Authorization")):
            self._answer(
                401,
                problem(401, "Unauthorized", "missing or wrong credentials", "ESS-00401"),
                {"WWW-Authenticate": 'Basic realm="ESS"'},
            )
            return 401
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            self._answer(
                415,
                problem(
                    415,
                    "Unsupported Media Type",
                    f"Content-Type {media or '(none)'} is not supported",
                    "ESS-00415",
                ),
            )
            return 415
        raw_id = match.group(1)
        if not raw_id.isdigit() or int(raw_id) <= 0 or int(raw_id) > 2**63 - 1:
            return self._bad(f"request id {raw_id!r} is not a positive integer")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._bad("body is not JSON")
        if not isinstance(data, dict):
            return self._bad("body is not a JSON object")
        handle = data.get("requestHandle")
        if not isinstance(handle, str) or not handle:
            return self._bad("requestHandle is missing")
        raw_status = data.get("status")
        try:
            status = Status(raw_status)
        except ValueError:
            return self._bad(
                f"status {raw_status!r} is not one of " + ", ".join(s.value for s in Status)
            )
        message = data.get("statusMessage")
        if message is not None and not isinstance(message, str):
            return self._bad("statusMessage must be a string")
        code, problem_body = self.fake._accept(int(raw_id), handle, status, message)
        self._answer(code, problem_body)
        return code

    def _bad(self, detail: str) -> int:
        self._answer(400, problem(400, "Bad Request", detail, "ESS-00400"))
        return 400

    def do_GET(self) -> None:
        seen = ReceivedRequest("GET", self.path, dict(self.headers.items()), b"")
        self.fake._log_request(seen)
        seen.answer = self._handle_get()

    def _handle_get(self) -> int | None:
        if self._apply_fault():
            return None
        match = REQUEST_PATH.match(self.path.split("?", 1)[0])
        if not match:
            self._answer(404, problem(404, "Not Found", f"no resource at {self.path}", "ESS-00404"))
            return 404
        if not self.fake._authorized(self.headers.get("Authorization")):
            self._answer(
                401, problem(401, "Unauthorized", "missing or wrong credentials", "ESS-00401")
            )
            return 401
        raw_id = match.group(1)
        if not raw_id.isdigit() or int(raw_id) <= 0:
            return self._bad(f"request id {raw_id!r} is not a positive integer")
        state = self.fake.state(int(raw_id))
        if state is None:
            self._answer(404, problem(404, "Not Found", f"Request {raw_id} not found", "ESS-00404"))
            return 404
        self._answer(200, {"requestId": int(raw_id), "state": state})
        return 200

    def do_PUT(self) -> None:
        self._answer(405, problem(405, "Method Not Allowed", "use POST", "ESS-00405"))

    do_DELETE = do_PUT
    do_PATCH = do_PUT


def describe(callback: Callback) -> str:
    """``request 42  SUCCESS  message`` for one callback."""
    text = f"request {callback.request_id}  {callback.status.value}"
    if callback.message:
        first, *rest = callback.message.splitlines() or [""]
        text += f"  {first}" + (f" (+{len(rest)} more lines)" if rest else "")
    return text
