"""``ess-callback fake-server`` (SPEC sections 7 and 8): prints its URL and export lines, one
line per callback, stops cleanly on SIGINT/SIGTERM, and a port in use is one line, exit 2."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

import pytest
import requests
from cli_runner import cli_runner

from ess_callback.cli import main

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")
URL_LINE = re.compile(r"listening on (http://\S+)")


class Lines:
    """Lines of a child's stream, read by a thread so a test can wait with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first new line matching *pattern*; fails naming what was seen instead."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r}; saw {self.seen}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stream ended before {pattern!r}; saw {self.seen}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def rest(self, timeout: float = 10.0) -> list[str]:
        """Every remaining line, until the stream closes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                return self.seen
            self.seen.append(line)
        raise AssertionError(f"stream did not close; saw {self.seen}")


class Server:
    """A running `ess-callback fake-server` child with its output readers."""

    def __init__(self, *args: str) -> None:
        # Any value of PYTHONUNBUFFERED turns buffering off: drop it, the command must flush.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        self.proc = subprocess.Popen(
            [SCRIPT, "fake-server", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)
        self.url = self.out.expect(URL_LINE.pattern).group(1)

    def post(self, body: dict[str, object], request_id: int = 1, **kw: object) -> int:
        response = requests.post(
            f"{self.url}/ess/rest/scheduler/v1/requests/{request_id}/executionStatus",
            json=body,
            timeout=5,
            **kw,  # type: ignore[arg-type]
        )
        return response.status_code

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=10)


@pytest.fixture
def server_factory() -> Iterator[list[Server]]:
    """Servers started by a test are killed at its end if still running."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)


def start(started: list[Server], *args: str) -> Server:
    server = Server(*args)
    started.append(server)
    return server


@pytest.mark.integration
def test_prints_url_and_exports_then_one_line_per_callback_and_stops_on_sigterm(
    server_factory: list[Server],
) -> None:
    """The URL, the submitted requests with their handles and pasteable export lines come
    first; each callback prints a line at once, its whole message on one line; SIGTERM
    stops it with exit 0 and a closing line."""
    server = start(server_factory, "--request", "1:h", "--request", "42")
    server.out.expect(r"^# submitted request 1  handle h$")
    handle = server.out.expect(r"^# submitted request 42  handle (\S+)$").group(1)
    server.out.expect(rf"^export ESS_BASE_URL={re.escape(server.url)}$")
    server.out.expect(r"^export ESS_REQUEST_ID=1$")
    server.out.expect(r"^export ESS_REQUEST_HANDLE=h$")
    body = {"requestHandle": "h", "status": "UPDATE", "statusMessage": "1 of 2\nrows\x1b[31m"}
    assert server.post(body) == 200
    server.out.expect(r"request 1  UPDATE  1 of 2\\nrows\\x1b\[31m$")
    assert server.post({"requestHandle": handle, "status": "SUCCESS"}, request_id=42) == 200
    server.out.expect(r"^\d\d:\d\d:\d\d  request 42  SUCCESS$")
    assert server.stop(signal.SIGTERM) == 0
    assert server.out.rest()[-1] == "# stopped; 2 callback(s) received"
    assert "Traceback" not in "\n".join(server.err.rest())


@pytest.mark.integration
def test_ctrl_c_stops_cleanly(server_factory: list[Server]) -> None:
    """SIGINT (Ctrl-C) also ends it with exit 0 and no traceback."""
    server = start(server_factory)
    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in "\n".join(server.err.rest())


@pytest.mark.integration
def test_the_printed_exports_drive_a_real_send(server_factory: list[Server]) -> None:
    """The printed export lines, as they are, point `ess-callback send` at the server."""
    server = start(server_factory)
    server.out.expect(r"^# no credentials required")  # the end of the banner
    exports = dict(
        re.fullmatch(r"export (\w+)=(\S+)", line).groups()  # type: ignore[union-attr]
        for line in server.out.seen
        if line.startswith("export ")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    done = subprocess.run(
        [SCRIPT, "send", "warning", "-m", "3 rows skipped"],
        env={**env, **exports},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    server.out.expect(r"request 1  WARNING  3 rows skipped$")
    assert server.stop() == 0


@pytest.mark.integration
def test_credentials_are_required_and_never_printed(server_factory: list[Server]) -> None:
    """With --username/--password, calls without them are refused (logged on stderr), with
    them accepted; the password appears in no output."""
    server = start(
        server_factory, "--request", "1:h", "--username", "alice", "--password", "s3cret-pw"
    )
    server.out.expect(r"^export ESS_USERNAME=alice$")
    assert server.post({"requestHandle": "h", "status": "SUCCESS"}) == 401
    server.err.expect(r"refused POST .*: 401 missing or wrong credentials")
    assert server.post({"requestHandle": "h", "status": "SUCCESS"}, auth=("alice", "s3cret-pw"))
    server.out.expect(r"request 1  SUCCESS$")
    assert server.stop() == 0
    output = "\n".join(server.out.rest() + server.err.rest())
    assert "s3cret-pw" not in output


@pytest.mark.integration
def test_token_is_required(server_factory: list[Server]) -> None:
    """With --token, only that bearer token is accepted."""
    server = start(server_factory, "--request", "1:h", "--token", "tok-123")
    body = {"requestHandle": "h", "status": "SUCCESS"}
    assert server.post(body) == 401
    assert server.post(body, headers={"Authorization": "Bearer tok-123"}) == 200
    assert server.stop() == 0
    assert "tok-123" not in "\n".join(server.out.rest())


@pytest.mark.integration
def test_port_in_use_is_one_line_and_exit_2() -> None:
    """A port already taken gives one clear stderr line naming the port, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [SCRIPT, "fake-server", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0]
    assert done.stdout == ""


@pytest.mark.integration
def test_address_not_on_this_machine_is_one_line_and_exit_2() -> None:
    """--host with an address this machine does not have is one line, exit 2."""
    result = cli_runner().invoke(main, ["fake-server", "--host", "192.0.2.1", "--port", "0"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "ess-callback: fake-server: 192.0.2.1 is not an address of this machine; "
        "use --host 127.0.0.1"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--username", "alice"], "--username and --password go together"),
        (["--password", "pw"], "--username and --password go together"),
        (["--username", "a", "--password", "p", "--token", "t"], "not both"),
        (["--port", "70000"], "70000 is not in the range"),
        (["--port", "http"], "is not a valid integer"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args: list[str], message: str) -> None:
    """Half credentials, both kinds, or a bad port are usage errors: exit 2, a clear line."""
    result = cli_runner().invoke(main, ["fake-server", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_help_shows_options_and_examples() -> None:
    """`fake-server --help` documents the options and shows examples; the group lists it."""
    result = cli_runner().invoke(main, ["fake-server", "--help"])
    assert result.exit_code == 0
    for word in ("--host", "--port", "--username", "--token", "Examples:", "8765"):
        assert word in result.output
    assert "fake-server" in cli_runner().invoke(main, ["--help"]).output


@pytest.mark.integration
def test_unknown_requests_and_wrong_handles_are_refused_as_ess_does(
    server_factory: list[Server],
) -> None:
    """A callback for a request never submitted is 404, one with another handle 400; both
    are logged on stderr and print no callback line."""
    server = start(server_factory, "--request", "1:h")
    assert server.post({"requestHandle": "h", "status": "SUCCESS"}, request_id=2) == 404
    server.err.expect(r"refused POST .*/requests/2/executionStatus: 404 Request 2 not found")
    assert server.post({"requestHandle": "other", "status": "SUCCESS"}) == 400
    server.err.expect(r"refused POST .*: 400 requestHandle does not match")
    assert server.stop() == 0
    assert server.out.rest()[-1] == "# stopped; 0 callback(s) received"


@pytest.mark.integration
def test_auto_submit_and_submission_over_http_print_the_request_and_handle(
    server_factory: list[Server],
) -> None:
    """--auto-submit takes an unknown request on its first callback; POST .../requests
    submits one (201 with its requestHandle); both print the request and its handle."""
    server = start(server_factory, "--auto-submit")
    server.out.expect(r"^# --auto-submit")
    assert server.post({"requestHandle": "h-9", "status": "UPDATE"}, request_id=9) == 200
    server.out.expect(r"  submitted request 9  handle h-9$")
    server.out.expect(r"  request 9  UPDATE$")
    made = requests.post(f"{server.url}/ess/rest/scheduler/v1/requests", json={}, timeout=5)
    assert made.status_code == 201
    details = made.json()
    assert details["state"] == "RUNNING"
    handle = re.escape(details["requestHandle"])
    server.out.expect(rf"  submitted request {details['requestId']}  handle {handle}$")
    assert server.stop() == 0


@pytest.mark.integration
def test_watched_jobs_answer_at_the_vendor_paths(server_factory: list[Server]) -> None:
    """--watched fakes a saas-batch job: each GET answers the next status, the last repeats."""
    server = start(server_factory, "--watched", "saas-batch:44046:ENQUEUED,RUNNING@50,SUCCEEDED")
    server.out.expect(r"^# watched saas-batch job 44046: ENQUEUED, RUNNING 50%, SUCCEEDED$")
    url = f"{server.url}/api/saas-batch/jobscheduler/v1/jobRequests/44046"
    seen = [requests.get(url, timeout=5).json()["jobDetails"]["jobProgress"] for _ in range(4)]
    assert [(p["status"], p["completedPercentage"]) for p in seen] == [
        ("ENQUEUED", "0"),
        ("RUNNING", "50"),
        ("SUCCEEDED", "100"),
        ("SUCCEEDED", "100"),
    ]
    missing = requests.get(url.replace("44046", "1"), timeout=5)
    assert missing.status_code == 404
    assert server.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--request", "x"], "ID[:HANDLE]"),
        (["--request", "0"], "ID[:HANDLE]"),
        (["--request", "4:"], "ID[:HANDLE]"),
        (["--request", "4", "--request", "4:h"], "given twice"),
        (["--watched", "saas-batch:1"], "API:JOB_ID:STATUS"),
        (["--watched", "jira:1:DONE"], "not one of saas-batch, paas, huawei"),
        (["--watched", "paas:1:DONE"], "not a status paas documents"),
        (["--watched", "huawei:1:Running@150"], "between 0 and 100"),
    ],
)
def test_bad_request_and_watched_options_are_usage_errors(args: list[str], message: str) -> None:
    """A malformed --request or --watched is a usage error (exit 2) naming the option."""
    result = cli_runner().invoke(main, ["fake-server", "--port", "0", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr
