"""Messages name the real cause (issue 14): a certificate for another host, an expired one
and an untrusted CA read differently, and only the last blames ESS_CA_BUNDLE; a proxy that
is down is named as the proxy. Real TLS on loopback, certificates made at test time."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_certs import make_ca, make_leaf, needs_openssl

from ess_callback import DeliveryError, SchedulerClient, Status
from ess_callback._client import RetryPolicy

pytestmark = [pytest.mark.integration, needs_openssl]
ONCE = RetryPolicy(attempts=1, budget=5, timeout=5)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve_tls(cert: Path, key: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 with *cert*; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a good certificate for 127.0.0.1, one for another host, an expired one, and a
    second CA that signed none of them."""
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    good = make_leaf(ca, "good", "IP:127.0.0.1,DNS:localhost")
    other = make_leaf(ca, "other", "DNS:other.example.com")
    expired = make_leaf(ca, "expired", "IP:127.0.0.1", expired=True)
    stranger = make_ca(folder / "stranger", "stranger")
    return {
        "ca": ca,
        "good": good[0],
        "good.key": good[1],
        "other": other[0],
        "other.key": other[1],
        "expired": expired[0],
        "expired.key": expired[1],
        "stranger": stranger,
    }


def failure(url: str, bundle: Path) -> str:
    with pytest.raises(DeliveryError) as info:
        SchedulerClient(url, ca_bundle=str(bundle), retry=ONCE).post_status(42, "h", Status.SUCCESS)
    return str(info.value)


def test_the_right_certificate_is_delivered(pki: dict[str, Path]) -> None:
    """The set-up itself: the good certificate with its CA bundle is delivered."""
    for url in serve_tls(pki["good"], pki["good.key"]):
        client = SchedulerClient(url, ca_bundle=str(pki["ca"]), retry=ONCE)
        assert client.post_status(42, "h", Status.SUCCESS).delivered


def test_a_certificate_for_another_host_names_the_host(pki: dict[str, Path]) -> None:
    """A hostname mismatch names the host and does not blame ESS_CA_BUNDLE."""
    for url in serve_tls(pki["other"], pki["other.key"]):
        text = failure(url, pki["ca"])
    assert "not valid for host 127.0.0.1" in text, text
    assert "valid for other.example.com only" in text, text
    assert "valid for ;" not in text and "does not hold the CA" not in text


def test_an_expired_certificate_is_not_blamed_on_the_bundle(pki: dict[str, Path]) -> None:
    """An expired certificate says so; ESS_CA_BUNDLE is not blamed."""
    for url in serve_tls(pki["expired"], pki["expired.key"]):
        text = failure(url, pki["ca"])
    assert "expired" in text and "does not hold the CA" not in text, text


def test_an_untrusted_ca_blames_the_bundle(pki: dict[str, Path]) -> None:
    """A bundle without the signing CA is named as the thing to fix."""
    for url in serve_tls(pki["good"], pki["good.key"]):
        text = failure(url, pki["stranger"])
    assert "ESS_CA_BUNDLE" in text and "does not hold the CA" in text, text


def test_a_proxy_that_is_down_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy nobody listens on reads as the proxy (named without its password), not as
    an unreachable scheduler."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://ops:pr0xy-secret@127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(DeliveryError) as info:
        SchedulerClient("https://ess.example.com", retry=ONCE).post_status(42, "h", Status.SUCCESS)
    text = str(info.value)
    assert f"through the proxy http://127.0.0.1:{port}" in text, text
    assert "pr0xy-secret" not in text and "ops:" not in text
