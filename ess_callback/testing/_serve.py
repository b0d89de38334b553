"""``ess-callback fake-server``: a FakeScheduler in the foreground, one line per callback.

The click command in ``cli.py`` parses the options and calls :func:`serve`; this module
prints, handles SIGINT/SIGTERM/SIGHUP and turns a port that cannot be bound into one clear
error.
"""

from __future__ import annotations

import errno
import logging
import shlex
import signal
import sys
import threading
import time
from types import FrameType
from typing import IO, Any

from .._errors import EssCallbackError
from .._model import Callback
from .._posix import missing as missing  # imported first: a clear error off POSIX
from .._settings import is_loopback
from ._fake import FakeScheduler, ReceivedRequest, SubmittedRequest, describe
from ._watched import Step

log = logging.getLogger("ess_callback")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class ServerStartError(EssCallbackError):
    """The fake server could not listen (port in use, unknown host, no permission)."""

    exit_code = 2


class _Stop(BaseException):
    """Raised in the main thread by the signal handler to leave the serving loop."""


class Console:
    """Writes the banner and one flushed line per callback; lines from server threads are
    serialised so that two callbacks never interleave."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.count = 0

    def line(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def callback(self, callback: Callback) -> None:
        with self._lock:
            self.count += 1
        self.line(f"{time.strftime('%H:%M:%S')}  {describe(callback)}")

    def submitted(self, request: SubmittedRequest) -> None:
        """A request submitted over HTTP or by --auto-submit: its job needs the handle."""
        self.line(
            f"{time.strftime('%H:%M:%S')}  submitted request {request.request_id}  "
            f"handle {request.handle}"
        )

    def request(self, request: ReceivedRequest) -> None:
        """Refusals are what a user debugging a job needs to see (wrong credentials ...)."""
        answer = "no answer (connection reset)" if request.answer is None else request.answer
        if request.answer is not None and request.answer >= 400:
            log.warning(
                "refused %s %s: %s %s", request.method, request.path, answer, request.reason
            )
        else:
            log.info("%s %s -> %s", request.method, request.path, answer)


def advertised_url(fake: FakeScheduler, host: str) -> str:
    """The URL a job should use: a wildcard address is reached through loopback."""
    if host in WILDCARD_HOSTS:
        return f"http://{'[::1]' if ':' in host else '127.0.0.1'}:{fake.port}"
    return fake.url


def banner(
    url: str,
    *,
    host: str,
    username: str | None,
    token: str | None,
    submitted: list[SubmittedRequest] | None = None,
    auto_submit: bool = False,
    watched: list[tuple[str, str, list[Step]]] | None = None,
) -> list[str]:
    """The lines printed at start: the URL, the submitted requests with their handles, the
    watched jobs, then ``export`` lines a shell can take as is (everything else is a ``#``
    comment, so the whole block can be pasted)."""
    lines = [f"# fake ESS scheduler listening on {url}  (Ctrl-C to stop)"]
    for request in submitted or []:
        lines.append(f"# submitted request {request.request_id}  handle {request.handle}")
    if auto_submit:
        lines.append("# --auto-submit: an unknown request is submitted on its first callback")
    for api, job_id, steps in watched or []:
        shown = ", ".join(f"{raw}" + ("" if p is None else f" {p:g}%") for raw, p, _ in steps)
        lines.append(f"# watched {api} job {job_id}: {shown}")
    first = (submitted or [SubmittedRequest(1, "handle-1")])[0]
    lines += [
        f"# point a job at it (request {first.request_id}):",
        f"export ESS_BASE_URL={shlex.quote(url)}",
        f"export ESS_REQUEST_ID={first.request_id}",
        f"export ESS_REQUEST_HANDLE={shlex.quote(first.handle)}",
    ]
    if host not in WILDCARD_HOSTS and not is_loopback(host):
        # credentials would travel in clear: the SDK refuses http:// off loopback unless told
        lines.append("export ESS_CALLBACK_ALLOW_HTTP=1")
    if username is not None:
        lines.append(f"export ESS_USERNAME={shlex.quote(username)}")
        lines.append("# and ESS_PASSWORD (or ESS_PASSWORD_FILE): the --password given here")
    elif token is not None:
        lines.append("# and ESS_TOKEN (or ESS_TOKEN_FILE): the --token given here")
    else:
        lines.append("# no credentials required (start with --username/--password or --token)")
    return lines


def bind_error(host: str, port: int, exc: OSError) -> str:
    """One clear line for a socket that cannot listen, saying what to do."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"fake-server: port {port} on {host} is already in use; "
            "choose another with --port (0 picks a free one)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"fake-server: no permission to listen on {where}; use a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"fake-server: {host} is not an address of this machine; use --host 127.0.0.1"
    reason = exc.strerror or str(exc)
    return f"fake-server: cannot listen on {where}: {reason}; check --host and --port"


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    requests: list[tuple[int | None, str | None]] | None = None,
    auto_submit: bool = False,
    watched: list[tuple[str, str, list[Step]]] | None = None,
    out: IO[str] | None = None,
) -> int:
    """Serve until SIGINT, SIGTERM or SIGHUP; return the number of callbacks accepted.

    *requests* are ``(request id, handle)`` pairs to submit at start (None: generated);
    with none and without *auto_submit*, one request is submitted. *watched* are the fake
    jobs of the watched APIs, as ``fake-server --watched`` gives them.

    Must run in the main thread (signal handlers). Raises ``ServerStartError`` when the
    address cannot be bound.
    """
    console = Console(out or sys.stdout)
    fake = FakeScheduler(
        username,
        password,
        token,
        auto_submit=auto_submit,
        host=host,
        port=port,
        on_callback=console.callback,
        on_request=console.request,
        on_submit=console.submitted,
    )
    wanted = list(requests or ([] if auto_submit else [(None, None)]))
    submitted = [fake.submit(request_id, handle) for request_id, handle in wanted]
    for api, job_id, steps in watched or []:
        fake.add_watched(api, job_id, steps)
    try:
        fake.start()
    except OSError as exc:
        raise ServerStartError(bind_error(host, port, exc)) from None
    previous: dict[int, Any] = {}

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, stop)
        url = advertised_url(fake, host)
        for text in banner(
            url,
            host=host,
            username=username,
            token=token,
            submitted=submitted,
            auto_submit=auto_submit,
            watched=watched,
        ):
            console.line(text)
        while True:
            signal.pause()  # only a signal can end the wait; the server runs in its thread
    except _Stop:
        pass
    finally:
        # A second Ctrl-C while shutting down must not turn into a traceback.
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        fake.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    console.line(f"# stopped; {console.count} callback(s) received")
    return console.count
