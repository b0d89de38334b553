"""``ess-callback send`` as a real process (SPEC sections 6 and 7): a signal during the
retries keeps the final status in the outbox, and a certificate that does not verify is
kept for a flush with the right CA bundle."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli_runner
from helpers import outbox_files, wait_until

from ess_callback.cli import main
from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")


def child_env(fake_env: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without ESS_*, plus the fake's variables and *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env.update(fake_env)
    env["ESS_CALLBACK_OUTBOX"] = str(tmp_path / "outbox")
    env.update(extra)
    return env


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_during_retries_keeps_the_status_in_the_outbox(
    fake: FakeScheduler, tmp_path: Path, signum: signal.Signals
) -> None:
    """A signal while send is still retrying stops the retries: the final status goes to
    the outbox, one line says so (naming the signal), and the exit is 75."""
    fake.fail_next(10_000, 503)
    env = child_env(
        fake.env(42, "handle-42"), tmp_path, ESS_CALLBACK_RETRY_SECONDS="60", ESS_TOKEN="tok"
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [SCRIPT, "send", "SUCCESS", "-m", "all rows loaded"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Ready: the scheduler has seen the first attempt, so send is inside its retries.
        wait_until(lambda: len(fake.requests) >= 1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 75, err
    assert time.monotonic() - started < 30  # far from the 60 s budget
    # The retry notice (SPEC 5) comes first when the signal arrives after the first answer.
    notices = [line for line in err.splitlines() if "not delivered yet" in line]
    lines = [line for line in err.splitlines() if line not in notices]
    assert len(notices) <= 1 and len(lines) == 1, err
    assert "Traceback" not in err and "Aborted" not in err
    (spooled,) = outbox_files(tmp_path / "outbox")
    assert lines[0].startswith("ess-callback: final status SUCCESS was not delivered")
    assert signum.name in lines[0] and str(spooled) in lines[0]
    record = json.loads(spooled.read_text())
    assert (record["status"], record["message"], record["request_id"]) == (
        "SUCCESS",
        "all rows loaded",
        42,
    )
    assert "tok" not in json.dumps(record["last_error"])
    assert fake.received == []


def test_signal_during_a_slow_answer_keeps_the_status(fake: FakeScheduler, tmp_path: Path) -> None:
    """A signal while the scheduler is still holding the answer stops the wait at once."""
    fake.delay_next(1, seconds=30)
    env = child_env(fake.env(42, "handle-42"), tmp_path, ESS_CALLBACK_RETRY_SECONDS="60")
    proc = subprocess.Popen(
        [SCRIPT, "send", "ERROR", "-m", "disk full"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(fake.requests) >= 1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 75, err
    assert time.monotonic() - started < 10
    (spooled,) = outbox_files(tmp_path / "outbox")
    assert json.loads(spooled.read_text())["status"] == "ERROR"
    assert len(err.splitlines()) == 1 and "SIGTERM" in err


# -- TLS: a certificate that does not verify ----------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Accepts every POST with 200 and keeps its JSON body."""

    protocol_version = "HTTP/1.1"
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.received.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client refusing our certificate is the point of the test


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[dict[str, Any]]]]:
    """An HTTPS server on loopback with a self-signed certificate: (URL, cert, bodies)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _TLSServer(("127.0.0.1", 0), _Handler)
    server.received = []  # type: ignore[attr-defined]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}", cert, server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_untrusted_certificate_fails_at_once_and_flush_delivers_with_the_bundle(
    tls_server: tuple[str, Path, list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A self-signed certificate is not retried for the whole budget: send exits 75 at
    once, naming ESS_CA_BUNDLE; with ESS_CA_BUNDLE set, flush then delivers the status."""
    url, cert, received = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    env = {
        "ESS_BASE_URL": url,
        "ESS_REQUEST_ID": "42",
        "ESS_REQUEST_HANDLE": "handle-42",
        "ESS_CALLBACK_RETRY_SECONDS": "60",
        "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
    }
    started = time.monotonic()
    result = cli_runner().invoke(main, ["send", "SUCCESS", "-m", "done"], env=env)
    assert result.exit_code == 75, result.stderr
    assert time.monotonic() - started < 20
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "ESS_CA_BUNDLE" in lines[0] and "certificate" in lines[0]
    assert received == []
    assert len(outbox_files(tmp_path / "outbox")) == 1

    flushed = cli_runner().invoke(main, ["flush"], env={**env, "ESS_CA_BUNDLE": str(cert)})
    assert flushed.exit_code == 0, flushed.stderr
    assert received == [
        {"requestHandle": "handle-42", "status": "SUCCESS", "statusMessage": "done"}
    ]
    assert outbox_files(tmp_path / "outbox") == []
