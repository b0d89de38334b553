"""Hostile servers (issue 14, SPEC 2, 3 and 5): bounded time and memory against endless,
huge and dripping answers, and no secret echoed back by a gateway reaches any output."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from cli_runner import cli_runner
from helpers import outbox_files
from hostile import Behaviour, HostileServer, drip, echoing_gateway, endless_chunked, huge_body

from ess_callback import DeliveryError, SchedulerClient, Status
from ess_callback._client import RetryPolicy
from ess_callback.cli import main
from ess_callback.watch import EssReader

pytestmark = pytest.mark.integration

TOKEN = "tok-5ecret-Value"
PASSWORD = "pa ss/wörd+?&"
WRAPPER = os.path.join(os.path.dirname(sys.executable), "ess-callback")
QUICK = RetryPolicy(attempts=2, budget=3, timeout=2, backoff=0.01)


def forms_of(secret: str, user: str = "ops") -> list[str]:
    """The forms a secret must never appear in: literal, base64 Basic, URL-encoded."""
    from urllib.parse import quote, quote_plus

    pair = f"{user}:{secret}".encode()
    return [
        secret,
        base64.b64encode(pair).decode(),
        quote(secret, safe=""),
        quote_plus(secret),
    ]


def assert_hidden(text: str, secret: str = TOKEN) -> None:
    """None of *secret*'s forms is in *text*."""
    for form in forms_of(secret):
        assert form not in text, (form, text)


@pytest.mark.parametrize("status", [200, 500])
def test_an_endless_chunked_body_is_read_only_up_to_the_cap(status: int) -> None:
    """An endless chunked body on a 200 or a 500 ends in bounded time and memory."""
    with HostileServer(endless_chunked(status)) as server:
        client = SchedulerClient(server.url, retry=QUICK)
        tracemalloc.start()
        started = time.monotonic()
        try:
            if status == 200:
                assert client.post_status(42, "h", Status.SUCCESS).delivered
            else:
                with pytest.raises(DeliveryError, match="500"):
                    client.post_status(42, "h", Status.SUCCESS)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert time.monotonic() - started < 5
        assert peak < 20_000_000


def test_a_2_gb_declared_body_is_not_read_whole() -> None:
    """A 500 declaring a 2 GB body costs a few KB, and its excerpt is short."""
    with HostileServer(huge_body(500)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(DeliveryError) as info:
                SchedulerClient(server.url, retry=QUICK).post_status(42, "h", Status.ERROR)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < 20_000_000
    assert len(str(info.value)) < 400


def test_a_slow_drip_cannot_hold_an_attempt_past_its_deadline() -> None:
    """One byte every 2 s, each under the read timeout: the budget still ends the call."""
    policy = RetryPolicy(attempts=8, budget=3, timeout=10)
    with HostileServer(drip(2.0)) as server:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out"):
            SchedulerClient(server.url, retry=policy).post_status(42, "h", Status.SUCCESS)
        assert time.monotonic() - started < 5


def test_the_readers_and_the_check_in_read_a_capped_body() -> None:
    """The watched-API readers and the cancel poller's reads are capped and bounded too."""
    with HostileServer(endless_chunked(200)) as server:
        started = time.monotonic()
        with pytest.raises(Exception, match="not JSON"):
            EssReader(server.url, timeout=3).status(42)
        assert time.monotonic() - started < 5
    with HostileServer(drip(2.0)) as server:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out"):
            EssReader(server.url, timeout=2).status(42)
        assert time.monotonic() - started < 4


def run_cli(args: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, str, float]:
    """``ess-callback ARGS`` in a child process: exit status, stderr and seconds taken."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    full.update(env)
    started = time.monotonic()
    done = subprocess.run(
        [WRAPPER, *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.fixture
def drip_env(tmp_path: Path) -> tuple[HostileServer, dict[str, str]]:
    """A drip server (a byte every 3 s) and a job environment that reports to it."""
    server = HostileServer(drip(3.0)).__enter__()
    env = {
        "ESS_BASE_URL": server.url,
        "ESS_REQUEST_ID": "42",
        "ESS_REQUEST_HANDLE": "h-42",
        "ESS_CALLBACK_RETRY_SECONDS": "5",
        "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
    }
    yield server, env
    server.__exit__(None, None, None)


def test_send_run_and_wait_end_within_the_budget_against_a_drip(
    drip_env: tuple[HostileServer, dict[str, str]], tmp_path: Path
) -> None:
    """send, run -- true and wait --timeout 5 end within their budget; the status is spooled."""
    _, env = drip_env
    # The drip alone would hold each for minutes; about 5 s each here (the bounds leave
    # room for a child's start-up on a loaded machine).
    code, err, took = run_cli(["send", "SUCCESS"], env)
    assert code == 75 and took < 12, (code, err, took)
    code, err, took = run_cli(["run", "--", "true"], env)
    assert code == 75 and took < 12, (code, err, took)
    assert len(outbox_files(tmp_path / "outbox")) == 2
    code, err, took = run_cli(["wait", "ess", "42", "--timeout", "5", "--poll", "1"], env)
    assert code == 75 and took < 12, (code, err, took)
    assert "Traceback" not in err


def test_a_gateway_quoting_the_token_never_shows_it(tmp_path: Path) -> None:
    """str/repr/detail/title of the error, send's stderr, the spooled and flushed files and
    flush's warnings hold no form of the token a gateway quoted back."""
    with HostileServer(echoing_gateway(503)) as server:
        client = SchedulerClient(server.url, auth=_bearer(), retry=QUICK)
        with pytest.raises(DeliveryError) as info:
            client.post_status(42, "h", Status.SUCCESS)
        error = info.value
        assert "Bearer" in str(server.requests[0])
        for text in (str(error), repr(error), error.detail or "", error.title or ""):
            assert_hidden(text)
        assert "***" in str(error)
        outbox = tmp_path / "outbox"
        env = {
            "ESS_BASE_URL": server.url,
            "ESS_REQUEST_ID": "42",
            "ESS_REQUEST_HANDLE": "h-42",
            "ESS_TOKEN": TOKEN,
            "ESS_CALLBACK_RETRY_SECONDS": "0",
            "ESS_CALLBACK_OUTBOX": str(outbox),
        }
        result = cli_runner().invoke(main, ["send", "SUCCESS"], env=env)
        assert result.exit_code == 75, result.stderr
        assert_hidden(result.stderr)
        result = cli_runner().invoke(main, ["flush"], env=env)
        assert_hidden(result.stderr + result.stdout)
        server.behave = echoing_gateway(400)  # now refused for good: moved to rejected/
        result = cli_runner().invoke(main, ["flush"], env=env)
        assert result.exit_code == 1, result.stderr
        assert_hidden(result.stderr + result.stdout)
        assert len(outbox_files(outbox / "rejected")) == 1
        for path in outbox.rglob("*.json"):
            assert_hidden(path.read_text(encoding="utf-8"))
            assert json.loads(path.read_text(encoding="utf-8"))["last_error"]


def test_a_gateway_quoting_basic_credentials_never_shows_them(tmp_path: Path) -> None:
    """The base64 Basic header and the URL-encoded password are hidden like the password."""
    with HostileServer(echoing_gateway(503)) as server:
        client = SchedulerClient(server.url, auth=("ops", PASSWORD), retry=QUICK)
        with pytest.raises(DeliveryError) as info:
            client.post_status(42, "h", Status.SUCCESS)
    assert "Basic" in str(info.value)
    for form in forms_of(PASSWORD):
        assert form not in str(info.value) + repr(info.value)


def test_wait_never_shows_a_quoted_token() -> None:
    """wait's output hides a token the watched API quotes back."""
    with HostileServer(echoing_gateway(401)) as server:
        env = {"WATCH_TOKEN": TOKEN}
        result = cli_runner().invoke(
            main, ["wait", "ess", "42", "--base-url", server.url, "--timeout", "2"], env=env
        )
    assert result.exit_code in (1, 2, 75), result.stderr
    assert_hidden(result.stderr + result.stdout)


def _bearer() -> object:
    from ess_callback import BearerAuth

    return BearerAuth(TOKEN)


def test_run_hides_encoded_credentials_in_the_stderr_tail(fake: object, tmp_path: Path) -> None:
    """A command printing the Basic header and the URL-encoded password (as ``curl -v``
    does): the ERROR message posted and the wrapper's own lines hold none of their forms."""
    from ess_callback.testing import FakeScheduler

    assert isinstance(fake, FakeScheduler)
    pair = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    from urllib.parse import quote

    script = (
        "import sys; "
        f"sys.stderr.write('> Authorization: Basic {pair}\\n'); "
        f"sys.stderr.write('> GET /x?pw={quote(PASSWORD, safe='')} HTTP/1.1\\n'); "
        "sys.exit(3)"
    )
    env = {
        **fake.env(request_id=42, request_handle="handle-42"),
        "ESS_USERNAME": "ops",
        "ESS_PASSWORD": PASSWORD,
        "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
    }
    code, err, _ = run_cli(["run", "--", sys.executable, "-c", script], env)
    assert code == 3, err
    message = fake.received[-1].message or ""
    assert "exit code 3" in message and "***" in message
    for form in forms_of(PASSWORD):
        assert form not in message


def test_run_delivers_when_no_thread_can_be_started(fake: object, tmp_path: Path) -> None:
    """With every ``threading.Thread.start`` refused (as when the user's process limit is
    reached; ``ulimit -u`` does not bind root, so a sitecustomize refuses them here), run
    still relays the command's output and delivers its UPDATE and final status."""
    from ess_callback.testing import FakeScheduler

    assert isinstance(fake, FakeScheduler)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import threading\n"
        "def _refuse(self):\n"
        '    raise RuntimeError("can\'t start new thread")\n'
        "threading.Thread.start = _refuse\n"
    )
    env = {
        **fake.env(request_id=42, request_handle="handle-42"),
        "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
        "ESS_CALLBACK_CANCEL_POLL": "5",
        "PYTHONPATH": str(site),
    }
    script = (
        "import os, sys; sys.stderr.write('x' * 200000 + 'the end'); "
        "os.write(int(os.environ['ESS_CALLBACK_FD']), b'UPDATE half\\n'); sys.exit(3)"
    )
    code, err, _ = run_cli(["run", "--", sys.executable, "-c", script], env)
    assert code == 3, err[-2000:]
    assert "Traceback" not in err and err.count("x") >= 200000
    statuses = [(c.status, (c.message or "")[-7:]) for c in fake.received]
    assert statuses == [(Status.UPDATE, "half"[-7:]), (Status.ERROR, "the end")], statuses


def test_a_signal_during_the_final_delivery_spools_it(tmp_path: Path) -> None:
    """SIGTERM while run delivers to a drip server: the status is spooled at once and the
    wrapper ends as signalled, long before the budget (so SIGKILL is never needed)."""
    import signal

    from helpers import wait_until

    with HostileServer(drip(3.0)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
        env.update(
            {
                "ESS_BASE_URL": server.url,
                "ESS_REQUEST_ID": "42",
                "ESS_REQUEST_HANDLE": "h-42",
                "ESS_CALLBACK_RETRY_SECONDS": "60",
                "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
            }
        )
        proc = subprocess.Popen(
            [WRAPPER, "run", "--", "true"], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_until(lambda: server.requests, timeout=20, what="the final POST")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert time.monotonic() - started < 5
    assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), (proc.returncode, err)
    assert "Traceback" not in err
    kept = outbox_files(tmp_path / "outbox")
    assert len(kept) == 1 and json.loads(kept[0].read_text())["status"] == "SUCCESS"


def test_the_cancel_poller_reads_a_capped_body_in_bounded_time() -> None:
    """checkInCancelling answered with an endless body, then a drip: each poll ends within
    its timeout, in bounded memory, and the job is not cancelled."""
    from ess_callback._cancel import CancelWatcher
    from ess_callback._settings import resolve_settings

    for behave in (endless_chunked(200), drip(2.0)):
        with HostileServer(behave) as server:
            settings = resolve_settings(
                env={
                    "ESS_BASE_URL": server.url,
                    "ESS_REQUEST_ID": "42",
                    "ESS_REQUEST_HANDLE": "h-42",
                }
            )
            watcher = CancelWatcher(settings, lambda reason: None, interval=1.0)
            reader = EssReader(server.url, timeout=1.0)
            tracemalloc.start()
            started = time.monotonic()
            try:
                assert watcher._poll(reader, 42) is None
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                reader.close()
            assert time.monotonic() - started < 4
            assert peak < 20_000_000


def redirect_to(location: str) -> Behaviour:
    """A 302 answer pointing at *location*."""

    def behave(server: HostileServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )

    return behave


def test_send_spools_a_redirected_final_status_naming_the_location(tmp_path: Path) -> None:
    """A 302 on a final status: not followed, spooled (exit 75), the Location named."""
    where = "https://login.example.com/sso"
    with HostileServer(redirect_to(where)) as server:
        env = {
            "ESS_BASE_URL": server.url,
            "ESS_REQUEST_ID": "42",
            "ESS_REQUEST_HANDLE": "h-42",
            "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
        }
        result = cli_runner().invoke(main, ["send", "SUCCESS"], env=env)
        assert len(server.requests) == 1
    assert result.exit_code == 75, result.stderr
    assert where in result.stderr
    kept = outbox_files(tmp_path / "outbox")
    assert len(kept) == 1 and where in kept[0].read_text()


def test_header_names_are_read_case_insensitively(tmp_path: Path) -> None:
    """A lower-case ``location`` header is the Location all the same."""

    def behave(server: HostileServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(
            b"HTTP/1.1 307 Temporary Redirect\r\nlocation: https://other.example.com/x\r\n"
            b"content-length: 0\r\nconnection: close\r\n\r\n"
        )

    with HostileServer(behave) as server, pytest.raises(DeliveryError) as info:
        SchedulerClient(server.url, retry=QUICK).post_status(42, "h", Status.SUCCESS)
    assert "https://other.example.com/x" in str(info.value)
