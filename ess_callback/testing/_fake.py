"""``FakeScheduler``: a real HTTP server on loopback that behaves like ESS as Oracle documents it.

Standard library only (``http.server`` in a thread), so it adds no runtime dependency.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hmac
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from .._model import Callback
from .._status import Status
from ._faults import FaultInjection
from ._http import FakeServer, Fault, Handler, ReceivedRequest, problem
from ._requests import ENDED_STATES, STATE_AFTER, Request, SubmittedRequest, check_state
from ._watched import Step, WatchedJob, check_api

__all__ = [
    "ENDED_STATES",
    "STATE_AFTER",
    "FakeScheduler",
    "ReceivedRequest",
    "SubmittedRequest",
    "describe",
    "problem",
]

REPEAT_FINAL = ("reject", "accept")


class FakeScheduler(FaultInjection):
    """A loopback ESS that behaves as Oracle documents it (docs/howto/testing.md).

    >>> from ess_callback import JobExecution
    >>> with FakeScheduler() as ess:
    ...     request = ess.submit(42)        # requests exist only once submitted
    ...     env = ess.env(request)          # ESS_BASE_URL, ESS_REQUEST_ID, ... for the job
    ...     with JobExecution(base_url=ess.url, request_id=42, request_handle=request.handle):
    ...         pass                        # the job
    ...     ess.received                    # the accepted Callbacks, in order
    ...     ess.state(42)                   # "SUCCEEDED", "RUNNING", ...
    [Callback(request_id=42, ..., status=<Status.SUCCESS: 'SUCCESS'>, message=None)]
    'SUCCEEDED'

    Credentials given here are required of every call (Basic or bearer); with none given,
    any call is accepted. A callback for a request that was never submitted is answered 404
    (unless ``auto_submit``), one with another handle 400. A submitted request is RUNNING
    until a callback moves it: PAUSE to PAUSED, SUSPEND to HOLD (an UPDATE resumes both), a
    terminal status to SUCCEEDED, WARNING, ERROR or CANCELLED, after which another status is
    refused with 400; the same final status again is refused too with
    ``repeat_final="reject"`` (the default) or accepted with ``repeat_final="accept"``.

    Fault injection: ``fail_next``, ``reset_next``, ``reset_after_accept``, ``delay_next``
    and ``chaos``.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        *,
        auto_submit: bool = False,
        repeat_final: str = "reject",
        host: str = "127.0.0.1",
        port: int = 0,
        on_callback: Callable[[Callback], None] | None = None,
        on_request: Callable[[ReceivedRequest], None] | None = None,
        on_submit: Callable[[SubmittedRequest], None] | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if token is not None and username is not None:
            raise ValueError("give Basic credentials or a token, not both")
        if repeat_final not in REPEAT_FINAL:
            raise ValueError(f"repeat_final must be 'reject' or 'accept', not {repeat_final!r}")
        self._username = username
        self._password = password
        self._token = token
        self._host = host
        self._port = port
        #: submit an unknown request on its first callback, with that callback's handle
        self.auto_submit = auto_submit
        #: "reject" (ESS's strict reading) or "accept" the same final status sent again
        self.repeat_final = repeat_final
        #: called (in a server thread) with each accepted callback, before it is answered
        self.on_callback = on_callback
        #: called (in a server thread) with each request once its answer is decided, before
        #: the client gets it (so hooks see requests in the order their answers went out),
        #: or once it was dropped
        self.on_request = on_request
        #: called with each request submitted over HTTP or by ``auto_submit``
        self.on_submit = on_submit
        self._lock = threading.Condition()
        self._received: list[Callback] = []
        self._requests: list[ReceivedRequest] = []
        self._submitted: dict[int, Request] = {}
        self._watched: dict[tuple[str, str], WatchedJob] = {}
        self._faults: list[Fault] = []
        self._resets_after_accept = 0
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
        self,
        request_id: int | SubmittedRequest = 1,
        request_handle: str = "handle-1",
        *,
        credentials: bool = False,
    ) -> dict[str, str]:
        """The ``ESS_*`` variables a job needs to report to this fake: ``env(ess.submit())``,
        or a request id and handle (which must have been submitted for the fake to accept
        its callbacks).

        With ``credentials=True`` also the ones for the credentials it was given
        (``ESS_USERNAME`` + ``ESS_PASSWORD``, or ``ESS_TOKEN``).
        """
        if isinstance(request_id, SubmittedRequest):
            request_handle = request_id.handle
            request_id = request_id.request_id
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
        """Forget callbacks, HTTP requests and faults (submitted requests and watched jobs
        stay)."""
        with self._lock:
            self._received.clear()
            self._requests.clear()
            self._faults.clear()
            self._resets_after_accept = 0
            self._chaos = None

    # -- requests ------------------------------------------------------------------------
    def submit(self, request_id: int | None = None, handle: str | None = None) -> SubmittedRequest:
        """Submit a request, as a client of ESS would: it is RUNNING, with *handle* as the
        handle its job must send. Both are generated when not given. Submitting a known id
        again with its own handle (or none) returns it unchanged; with another handle it is
        a ``ValueError``."""
        with self._lock:
            return self._submit(request_id, handle)

    def _submit(self, request_id: int | None, handle: str | None) -> SubmittedRequest:
        if request_id is None:
            request_id = max(self._submitted, default=0) + 1
        elif isinstance(request_id, bool) or not isinstance(request_id, int) or request_id < 1:
            raise ValueError(f"request id must be a positive integer, not {request_id!r}")
        if handle is not None and (not isinstance(handle, str) or not handle):
            raise ValueError("the handle must be a non-empty string")
        known = self._submitted.get(request_id)
        if known is not None:
            if handle is not None and handle != known.handle:
                raise ValueError(f"request {request_id} was submitted with another handle")
            return known.submitted
        made = Request(request_id, handle or f"handle-{request_id}-{secrets.token_hex(4)}")
        self._submitted[request_id] = made
        return made.submitted

    @property
    def submitted(self) -> list[SubmittedRequest]:
        """The submitted requests, in the order they were submitted."""
        with self._lock:
            return [r.submitted for r in self._submitted.values()]

    def state(self, request_id: int) -> str | None:
        """The request's state: RUNNING once submitted, then where callbacks, ``cancel`` or
        ``set_state`` moved it; None for a request that was never submitted."""
        with self._lock:
            known = self._submitted.get(request_id)
            return None if known is None else known.state

    def details(self, request_id: int) -> dict[str, Any] | None:
        """The RequestDetails body a GET of the request answers (None: unknown)."""
        with self._lock:
            known = self._submitted.get(request_id)
            return None if known is None else known.details()

    def set_state(self, request_id: int, state: str | None) -> None:
        """Force a submitted request's state to one of ESS's documented states, e.g.
        ``EXPIRED``; None forgets the request (404 to its callbacks and GETs). A request that
        was never submitted is a ``KeyError``, a state ESS does not document a ``ValueError``."""
        with self._lock:
            if state is None:
                self._submitted.pop(request_id, None)
                return
            self._known(request_id).set_state(check_state(state))

    def cancel(self, request_id: int) -> str:
        """An operator's cancel, as ``POST .../requests/{id}/cancel`` does: a running request
        goes to CANCELLING (until its job reports), one that never ran to CANCELLED. Returns
        the new state; an ended request is a ``ValueError``."""
        with self._lock:
            request = self._known(request_id)
            state = request.cancel()
            if state is None:
                raise ValueError(f"request {request_id} is {request.state}: it cannot be cancelled")
            return state

    def last_check_in(self, request_id: int) -> dt.datetime | None:
        """When the request's job last called ``checkInCancelling`` (None: never)."""
        with self._lock:
            return self._known(request_id).last_check_in

    def _known(self, request_id: int) -> Request:
        known = self._submitted.get(request_id)
        if known is None:
            raise KeyError(f"request {request_id} was not submitted (use submit() first)")
        return known

    # -- watched APIs --------------------------------------------------------------------
    def add_watched(
        self, api: str, job_id: str | int, steps: Iterable[tuple[str, float | None, str | None]]
    ) -> None:
        """Fake a job of a watched API (``saas-batch``, ``paas`` or ``huawei``): each GET of
        it at the vendor's path answers the next of *steps* (``(raw_status, percent or None,
        message or None)``; the last one repeats) in the vendor's documented shape."""
        check_api(api)
        listed: list[Step] = [(str(raw), percent, message) for raw, percent, message in steps]
        if not listed:
            raise ValueError("give at least one step")
        with self._lock:
            self._watched[(api, str(job_id))] = WatchedJob(api, str(job_id), listed)

    def _watched_job(self, api: str, job_id: str) -> WatchedJob | None:
        with self._lock:
            return self._watched.get((api, job_id))

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
        """Apply one valid callback to its request: (HTTP status, refusal or None)."""
        callback = Callback(request_id, handle, status, message)
        submitted: SubmittedRequest | None = None
        with self._lock:
            request = self._submitted.get(request_id)
            if request is None and self.auto_submit:
                submitted = self._submit(request_id, handle)
                request = self._submitted[request_id]
            if request is None:
                return 404, f"Request {request_id} not found"
            if not hmac.compare_digest(handle.encode(), request.handle.encode()):
                return 400, f"requestHandle does not match the execution of request {request_id}"
            refusal = request.refusal(status, self.repeat_final)
            if refusal is not None:
                return 400, refusal
            request.apply(status, message)
            self._received.append(callback)
            self._lock.notify_all()
        if submitted is not None:
            self._submitted_hook(submitted)
        if self.on_callback is not None:
            with contextlib.suppress(Exception):  # a printing hook must never break the server
                self.on_callback(callback)
        return 200, None

    def _submit_over_http(self) -> dict[str, Any]:
        """``POST .../requests``: a new request; its RequestDetails plus ``requestHandle``."""
        with self._lock:
            submitted = self._submit(None, None)
            body = self._submitted[submitted.request_id].details()
        self._submitted_hook(submitted)
        return {**body, "requestHandle": submitted.handle}

    def _submitted_hook(self, submitted: SubmittedRequest) -> None:
        if self.on_submit is not None:
            with contextlib.suppress(Exception):  # a printing hook must never break the server
                self.on_submit(submitted)

    def _check_in(self, request_id: int, handle: object) -> tuple[int, str | bool]:
        """``checkInCancelling``: (200, is it CANCELLING) or (404/400, why not)."""
        with self._lock:
            request = self._submitted.get(request_id)
            if request is None:
                return 404, f"Request {request_id} not found"
            if not isinstance(handle, str) or not hmac.compare_digest(
                handle.encode(), request.handle.encode()
            ):
                return 400, (
                    f"requestExecutionContext does not match the execution of request {request_id}"
                )
            request.last_check_in = dt.datetime.now(dt.timezone.utc)
            return 200, request.state == "CANCELLING"

    def _cancel_over_http(self, request_id: int) -> tuple[int, str | dict[str, Any]]:
        with self._lock:
            request = self._submitted.get(request_id)
            if request is None:
                return 404, f"Request {request_id} not found"
            if request.cancel() is None:
                return (
                    400,
                    f"Unsupported state for operation: request {request_id} is {request.state}",
                )
            return 200, request.details()


def describe(callback: Callback) -> str:
    """``request 42  WARNING  3 rows skipped`` for one callback: the whole message on one
    line, line breaks and other control characters escaped (``\\n``, ``\\x1b``), so it can
    neither colour nor steer the terminal."""
    text = f"request {callback.request_id}  {callback.status.value}"
    if callback.message:
        text += "  " + escape(callback.message)
    return text


def escape(text: str) -> str:
    """*text* on one line: every character that is not printable is shown escaped."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )
