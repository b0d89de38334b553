"""``FakeScheduler``: a real HTTP server on loopback that behaves like ESS's callback API.

Standard library only (``http.server`` in a thread), so it adds no runtime dependency.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._model import Callback
from .._status import TERMINAL, Status
from ._http import FakeServer, Fault, Handler, ReceivedRequest, problem

__all__ = ["FakeScheduler", "ReceivedRequest", "describe", "problem"]

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
#: states after which a request takes no other status (set by a callback or by set_state)
ENDED_STATES = frozenset(
    {
        "SUCCEEDED",
        "WARNING",
        "ERROR",
        "CANCELLED",
        "EXPIRED",
        "FINISHED",
        "ERROR_MANUAL_RECOVERY",
        "VALIDATION_FAILED",
    }
)


class FakeScheduler:
    """A loopback ESS that accepts executionStatus callbacks and answers request-state GETs.

    >>> with FakeScheduler() as ess:
    ...     # point ESS_BASE_URL at ess.url (or use ess.env()), run the job, then:
    ...     ess.received            # the accepted Callbacks, in order
    ...     ess.state(42)           # "SUCCEEDED", "RUNNING", ...

    Credentials given here are required of every call (Basic or bearer); with none given,
    any call is accepted. Each request is RUNNING until a callback moves it: PAUSE and
    SUSPEND to PAUSED and SUSPENDED (an UPDATE resumes it), a terminal status to SUCCEEDED,
    WARNING, ERROR or CANCELLED, after which only the same terminal status is accepted again
    (a retried delivery) and anything else is refused with 400.

    Fault injection: ``fail_next``, ``reset_next``, ``delay_next`` and ``chaos``.
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
        on_request: Callable[[ReceivedRequest], None] | None = None,
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
        #: called (in a server thread) with each accepted callback, before it is answered
        self.on_callback = on_callback
        #: called (in a server thread) with each request once its answer is decided, before
        #: the client gets it (so hooks see requests in the order their answers went out),
        #: or once it was dropped
        self.on_request = on_request
        self._lock = threading.Condition()
        self._received: list[Callback] = []
        self._requests: list[ReceivedRequest] = []
        self._states: dict[int, str] = {}
        self._ended_with: dict[int, Status] = {}
        self._missing: set[int] = set()
        self._faults: list[Fault] = []
        self._chaos: tuple[float, tuple[int, ...], bool, random.Random] | None = None
        self._server: FakeServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FakeScheduler(url={self.url if self._server else None!r})"

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> FakeScheduler:
        """Bind and serve in a daemon thread. Raises ``OSError`` if the port is taken."""
        if self._server is not None:
            return self
        handler = type("BoundHandler", (Handler,), {"fake": self})
        server = FakeServer((self._host, self._port), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-scheduler",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and close the socket. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
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
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._server is not None

    @property
    def url(self) -> str:
        """Base URL to give the job (``ESS_BASE_URL``), e.g. ``http://127.0.0.1:40123``."""
        if self._server is None:
            raise RuntimeError("the fake scheduler is not running; call start()")
        host, port = self._server.server_address[:2]
        host = str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def port(self) -> int:
        """The TCP port it listens on (ephemeral unless one was asked for)."""
        if self._server is None:
            raise RuntimeError("the fake scheduler is not running; call start()")
        return int(self._server.server_address[1])

    def env(
        self, request_id: int = 1, request_handle: str = "handle-1", *, credentials: bool = False
    ) -> dict[str, str]:
        """The ``ESS_*`` variables a job needs to report to this fake.

        With ``credentials=True`` also the ones for the credentials it was given
        (``ESS_USERNAME`` + ``ESS_PASSWORD``, or ``ESS_TOKEN``).
        """
        env = {
            "ESS_BASE_URL": self.url,
            "ESS_REQUEST_ID": str(request_id),
            "ESS_REQUEST_HANDLE": request_handle,
        }
        if credentials and self._username is not None and self._password is not None:
            env.update(ESS_USERNAME=self._username, ESS_PASSWORD=self._password)
        if credentials and self._token is not None:
            env["ESS_TOKEN"] = self._token
        return env

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
        """The request's state: RUNNING until a callback moves it, then PAUSED, SUSPENDED,
        SUCCEEDED, WARNING, ERROR or CANCELLED (or what ``set_state`` put); None for a
        request made unknown."""
        with self._lock:
            if request_id in self._missing:
                return None
            return self._states.get(request_id, "RUNNING")

    def set_state(self, request_id: int, state: str | None) -> None:
        """Force a request's state, e.g. ``CANCELLING`` as an operator's cancel would;
        None makes the request unknown (404 to its callbacks and GETs)."""
        with self._lock:
            self._ended_with.pop(request_id, None)
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
        """Block until *count* callbacks were accepted (or *predicate* holds on them);
        return them. Raises ``TimeoutError`` naming what did arrive."""
        test = predicate or (lambda got: len(got) >= count)
        deadline = time.monotonic() + timeout
        with self._lock:
            while not test(list(self._received)):
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
            self._ended_with.clear()
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
        body: dict[str, Any] | str | bytes | None = None,
        content_type: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next *count* calls with *status* and a ``SimpleExceptionDetail`` body
        (or *body*), with a ``Retry-After`` header when given. *method* ("POST" or "GET")
        limits the fault to those calls; by default any call counts.

        *body* is a dict (sent as JSON), or a str (UTF-8) or bytes sent raw, e.g. a proxy's
        HTML page; *content_type* overrides the default (JSON, ``text/plain`` for a str,
        ``application/octet-stream`` for bytes). Any other body is a ``TypeError`` here.
        """
        if body is not None and not isinstance(body, dict | str | bytes):
            # Caught now: in the server it would only become a puzzling 500 for the client.
            raise TypeError(
                f"fail_next body must be a dict (JSON), str or bytes, not {type(body).__name__}"
            )
        self._add_fault(
            Fault(
                "status",
                count,
                status=status,
                body=body,
                content_type=content_type,
                retry_after=None if retry_after is None else str(retry_after),
                method=method,
            )
        )

    def reset_next(self, count: int = 1, *, method: str | None = None) -> None:
        """Drop the connection of the next *count* calls without answering (a TCP reset)."""
        self._add_fault(Fault("reset", count, method=method))

    def delay_next(
        self, count: int = 1, seconds: float = 1.0, *, method: str | None = None
    ) -> None:
        """Answer the next *count* calls only after *seconds* (then normally)."""
        self._add_fault(Fault("delay", count, delay=seconds, method=method))

    def chaos(
        self,
        rate: float,
        *,
        statuses: tuple[int, ...] = (500, 502, 503),
        resets: bool = True,
        seed: int | None = None,
    ) -> None:
        """Fail a random share (*rate*, 0..1) of calls with one of *statuses* or a reset;
        ``chaos(0)`` stops it. Planned faults (``fail_next`` ...) are applied first."""
        if not 0 <= rate <= 1:
            raise ValueError(f"chaos rate {rate} is not between 0 and 1")
        with self._lock:
            self._chaos = None if rate == 0 else (rate, statuses, resets, random.Random(seed))

    def _add_fault(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"count must be at least 1, not {fault.remaining}")
        if fault.method is not None:
            fault.method = fault.method.upper()
        with self._lock:
            self._faults.append(fault)

    def _next_fault(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method is None or fault.method == method:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
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
            expected = f"Bearer {self._token}"
        elif self._username is not None:
            pair = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            expected = f"Basic {pair}"
        else:
            return True
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    def _log_request(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _answered(self, request: ReceivedRequest) -> None:
        if self.on_request is not None:
            with contextlib.suppress(Exception):  # a printing hook must never break the server
                self.on_request(request)

    def _accept(
        self, request_id: int, handle: str, status: Status, message: str | None
    ) -> tuple[int, str | None]:
        """Apply one valid callback to the state machine: (HTTP status, refusal or None)."""
        callback = Callback(request_id, handle, status, message)
        with self._lock:
            if request_id in self._missing:
                return 404, f"Request {request_id} not found"
            current = self._states.get(request_id, "RUNNING")
            if current in ENDED_STATES:
                ended_with = self._ended_with.get(request_id)
                repeat = status is ended_with or (
                    ended_with is None and status in TERMINAL and STATE_AFTER[status] == current
                )
                if not repeat:
                    return 400, (
                        f"Request {request_id} already ended in state {current}; "
                        f"{status.value} refused"
                    )
                # at-least-once delivery: the same final status again is fine
            elif status is Status.UPDATE:
                if current in ("PAUSED", "SUSPENDED"):
                    self._states[request_id] = "RUNNING"
            else:
                self._states[request_id] = STATE_AFTER[status]
                if status in TERMINAL:
                    self._ended_with[request_id] = status
            self._received.append(callback)
            self._lock.notify_all()
        if self.on_callback is not None:
            with contextlib.suppress(Exception):  # a printing hook must never break the server
                self.on_callback(callback)
        return 200, None


def describe(callback: Callback) -> str:
    """``request 42  WARNING  3 rows skipped`` for one callback (first line of the message)."""
    text = f"request {callback.request_id}  {callback.status.value}"
    if callback.message:
        first, *rest = callback.message.splitlines() or [""]
        # Escape control characters: a message must not colour or steer the terminal.
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in first)
        text += f"  {shown}" + (f" (+{len(rest)} more lines)" if rest else "")
    return text
