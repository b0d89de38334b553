"""SPEC sections 2, 4 (``SchedulerClient``) and 5: the executionStatus call on the wire,
the answers, and the retries.

Unit tests use ``responses`` and a fake clock (no test really sleeps); the integration tests
at the end talk to the real loopback ``FakeScheduler``.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from urllib3.exceptions import LocationParseError

import ess_callback
from ess_callback import (
    AuthenticationError,
    BearerAuth,
    Callback,
    ConfigurationError,
    DeliveryError,
    InvalidInputError,
    NotAllowedError,
    RejectedError,
    RequestNotFoundError,
    SchedulerClient,
    SchedulerUnavailableError,
    Status,
)
from ess_callback._client import (
    RetryPolicy,
    error_for_response,
    is_spoolable,
    retry_after_seconds,
)
from ess_callback._errors import DeliveryInterrupted
from ess_callback._settings import BasicAuth
from ess_callback.testing import FakeScheduler, record_callbacks

BASE = "https://ess.example.com"
URL = f"{BASE}/ess/rest/scheduler/v1/requests/42/executionStatus"
SECRET = "pa55-w0rd-never-shown"
TOKEN = "eyJ-token-never-shown"


class FakeTime:
    """A clock that only moves when the client sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    """The fake clock the clients of a test share."""
    return FakeTime()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """Intercepts every request made through requests; unmatched ones fail."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def client(
    fake_time: FakeTime, base_url: str = BASE, *, attempts: int = 8, budget: float = 60.0, **kw: Any
) -> SchedulerClient:
    """A client whose retries wait on *fake_time*."""
    policy = RetryPolicy(
        attempts=attempts, budget=budget, sleep=fake_time.sleep, clock=fake_time.clock
    )
    return SchedulerClient(base_url, retry=policy, **kw)


def problem(status: int, title: str, detail: str, code: str) -> dict[str, Any]:
    """A SimpleExceptionDetail body as ESS sends it."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "errorCode": code}  # fmt: skip


def body_of(call: Any) -> dict[str, Any]:
    raw = call.request.body
    return dict(json.loads(raw.decode() if isinstance(raw, bytes) else raw))


# -- the request on the wire ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://ess.example.com", URL),
        ("https://ess.example.com/", URL),
        (
            "https://ess.example.com:8443/gateway",
            "https://ess.example.com:8443/gateway/ess/rest/scheduler/v1/requests/42/executionStatus",
        ),
        (
            "https://ess.example.com:8443/gateway/",
            "https://ess.example.com:8443/gateway/ess/rest/scheduler/v1/requests/42/executionStatus",
        ),
    ],
)
def test_posts_to_the_execution_status_path(
    mock: responses.RequestsMock, fake_time: FakeTime, base_url: str, expected: str
) -> None:
    """POST {base}/ess/rest/scheduler/v1/requests/{id}/executionStatus, prefix kept."""
    mock.post(expected, status=200)
    client(fake_time, base_url).post_status(42, "h", Status.SUCCESS)
    assert len(mock.calls) == 1
    assert mock.calls[0].request.method == "POST"
    assert mock.calls[0].request.url == expected


def test_json_body(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """The body is requestHandle, status and statusMessage, nothing else."""
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "opaque/handle==", "warning", "3 rows skipped\nsee log")
    assert body_of(mock.calls[0]) == {
        "requestHandle": "opaque/handle==",
        "status": "WARNING",
        "statusMessage": "3 rows skipped\nsee log",
    }


@pytest.mark.parametrize("message", [None, ""])
def test_status_message_omitted_without_message(
    mock: responses.RequestsMock, fake_time: FakeTime, message: str | None
) -> None:
    """statusMessage is left out when there is no message."""
    mock.post(URL, status=200)
    client(fake_time).post_status("42", "h", Status.SUCCESS, message)
    assert body_of(mock.calls[0]) == {"requestHandle": "h", "status": "SUCCESS"}


def test_long_message_truncated(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """A message past max_message_bytes is cut to it, head and tail kept."""
    mock.post(URL, status=200)
    text = "start " + "é" * 5000 + " end"
    outcome = client(fake_time).post_status(42, "h", Status.ERROR, text)
    sent = body_of(mock.calls[0])["statusMessage"]
    assert len(sent.encode()) <= 4000
    assert sent.startswith("start ") and sent.endswith(" end")
    assert "truncated" in sent
    assert outcome.message == sent
    mock.post(URL, status=200)
    client(fake_time, max_message_bytes=100).post_status(42, "h", Status.ERROR, text)
    assert len(body_of(mock.calls[1])["statusMessage"].encode()) <= 100


@pytest.mark.parametrize("media_type", ["application/json", "application/vnd.oracle.resource+json"])
def test_headers(mock: responses.RequestsMock, fake_time: FakeTime, media_type: str) -> None:
    """Content-Type is the chosen media type; Accept is JSON; User-Agent names us."""
    mock.post(URL, status=200)
    client(fake_time, media_type=media_type).post_status(42, "h", Status.UPDATE, "50%")
    headers = mock.calls[0].request.headers
    assert headers["Content-Type"] == media_type
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith(f"ess-callback/{ess_callback.__version__} ")


def test_unknown_media_type_refused() -> None:
    """A media type ESS does not take is a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        SchedulerClient(BASE, media_type="text/plain")


@pytest.mark.parametrize("auth", [("ops", SECRET), BasicAuth("ops", SECRET)])
def test_basic_auth_header(mock: responses.RequestsMock, fake_time: FakeTime, auth: Any) -> None:
    """A (username, password) tuple is sent as HTTP Basic."""
    mock.post(URL, status=200)
    client(fake_time, auth=auth).post_status(42, "h", Status.SUCCESS)
    expected = base64.b64encode(f"ops:{SECRET}".encode()).decode()
    assert mock.calls[0].request.headers["Authorization"] == f"Basic {expected}"


def test_basic_auth_non_latin1_password(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """A password outside Latin-1 is sent as UTF-8 (RFC 7617), not a crash; Latin-1
    credentials keep the Latin-1 bytes requests has always sent."""
    mock.post(URL, status=200)
    client(fake_time, auth=("jürgen", "€uro-密码")).post_status(42, "h", Status.SUCCESS)
    client(fake_time, auth=("jürgen", "pässwort")).post_status(42, "h", Status.SUCCESS)
    utf8 = base64.b64encode("jürgen:€uro-密码".encode()).decode()
    latin1 = base64.b64encode("jürgen:pässwort".encode("latin-1")).decode()
    assert mock.calls[0].request.headers["Authorization"] == f"Basic {utf8}"
    assert mock.calls[1].request.headers["Authorization"] == f"Basic {latin1}"


def test_bearer_auth_header(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """BearerAuth(token) is sent as ``Authorization: Bearer <token>``."""
    mock.post(URL, status=200)
    client(fake_time, auth=BearerAuth(TOKEN)).post_status(42, "h", Status.SUCCESS)
    assert mock.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_no_auth_ignores_netrc(
    mock: responses.RequestsMock,
    fake_time: FakeTime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without credentials no Authorization is sent, even when ~/.netrc has some."""
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"machine ess.example.com login netrc-user password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    mock.post(URL, status=200)
    # The set-up is live: plain requests would pick these credentials up.
    requests.Session().post(URL, data=b"{}")
    assert mock.calls[0].request.headers["Authorization"].startswith("Basic ")
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert "Authorization" not in mock.calls[1].request.headers


def test_one_session_for_all_calls(
    mock: responses.RequestsMock, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call of a client goes through one requests.Session."""
    created: list[requests.Session] = []
    original = requests.Session.__init__

    def counting_init(self: requests.Session) -> None:
        created.append(self)
        original(self)

    monkeypatch.setattr(requests.Session, "__init__", counting_init)
    mock.post(URL, status=200)
    sender = client(fake_time)
    for status in (Status.UPDATE, Status.UPDATE, Status.SUCCESS):
        sender.post_status(42, "h", status)
    assert len(mock.calls) == 3
    assert len(created) == 1
    assert sender.session is created[0]


def test_tls_verification(
    mock: responses.RequestsMock,
    fake_time: FakeTime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TLS is verified by default; a CA bundle replaces the default trust store."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    client(fake_time, ca_bundle=str(bundle)).post_status(42, "h", Status.SUCCESS)
    assert mock.calls[0].request.req_kwargs["verify"] is True
    assert mock.calls[1].request.req_kwargs["verify"] == str(bundle)


def test_requests_ca_bundle_honoured(
    mock: responses.RequestsMock,
    fake_time: FakeTime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REQUESTS_CA_BUNDLE is honoured as requests does when no CA bundle is given."""
    bundle = tmp_path / "corp.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert mock.calls[0].request.req_kwargs["verify"] == str(bundle)


def test_proxy_variables_honoured(
    mock: responses.RequestsMock, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY is used as requests does, and NO_PROXY exempts the scheduler."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert mock.calls[0].request.req_kwargs["proxies"].get("https") == (
        "http://proxy.example.com:3128"
    )
    monkeypatch.setenv("NO_PROXY", "ess.example.com")
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert "https" not in mock.calls[1].request.req_kwargs["proxies"]


def test_missing_ca_bundle_refused(tmp_path: Path) -> None:
    """A CA bundle that does not exist is a ConfigurationError, not an OSError later."""
    with pytest.raises(ConfigurationError, match="CA bundle"):
        SchedulerClient(BASE, ca_bundle=str(tmp_path / "missing.pem"))


def test_per_attempt_timeout(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """Each attempt has the policy's timeout (10 s by default, or ``timeout=``)."""
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    client(fake_time, timeout=3.5).post_status(42, "h", Status.SUCCESS)
    assert mock.calls[0].request.req_kwargs["timeout"] == 10.0
    assert mock.calls[1].request.req_kwargs["timeout"] == 3.5
    assert RetryPolicy() == RetryPolicy(attempts=8, budget=60.0, timeout=10.0)


@pytest.mark.parametrize("request_id", [0, -1, 2**63, "abc", "1.5", None])
def test_bad_request_id_refused_before_network(
    mock: responses.RequestsMock, fake_time: FakeTime, request_id: Any
) -> None:
    """A request id that is not a positive int64 is a ConfigurationError; nothing is sent."""
    mock.post(URL, status=200)
    with pytest.raises(ConfigurationError, match="request id"):
        client(fake_time).post_status(request_id, "h", Status.SUCCESS)
    assert len(mock.calls) == 0


def test_missing_handle_refused_before_network(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """An empty request handle is a ConfigurationError; nothing is sent."""
    mock.post(URL, status=200)
    with pytest.raises(ConfigurationError, match="ESS_REQUEST_HANDLE"):
        client(fake_time).post_status(42, "", Status.SUCCESS)
    assert len(mock.calls) == 0


def test_unknown_status_refused(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """A status that is not one of the eight is refused before the network."""
    with pytest.raises(ValueError, match="BUSINESS_ERROR"):
        client(fake_time).post_status(42, "h", "DONE")
    assert len(mock.calls) == 0


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_redirect_not_followed(
    mock: responses.RequestsMock, fake_time: FakeTime, code: int
) -> None:
    """A redirect is not followed nor retried, names its Location, and is spooled (SPEC 5)."""
    elsewhere = "https://login.example.com/sso"
    mock.post(URL, status=code, headers={"Location": elsewhere})
    mock.post(elsewhere, status=200)
    with pytest.raises(DeliveryError) as info:
        client(fake_time, auth=("ops", SECRET)).post_status(42, "h", Status.SUCCESS)
    assert [c.request.url for c in mock.calls] == [URL]
    assert info.value.http_status == code
    assert "ESS_BASE_URL" in str(info.value)
    assert elsewhere in str(info.value)
    assert is_spoolable(info.value)


def test_recording_replaces_sending(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """Under record_callbacks() the client records the callback and sends nothing."""
    with record_callbacks() as calls:
        outcome = client(fake_time, auth=("ops", SECRET)).post_status(42, "h", "error", "boom")
    assert len(mock.calls) == 0
    assert list(calls) == [Callback(42, "h", Status.ERROR, "boom")]
    assert outcome.delivered and outcome.attempts == 0


def test_repr_has_no_secret() -> None:
    """repr(client) names the server and the kind of auth, never the secret."""
    for auth in (("ops", SECRET), BearerAuth(TOKEN)):
        text = repr(SchedulerClient(BASE, auth=auth))
        assert BASE in text
        assert SECRET not in text and TOKEN not in text


def test_logs_never_show_credentials(
    mock: responses.RequestsMock, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """Even at DEBUG, with retries and a 401, no log line shows a password or token."""
    caplog.set_level(logging.DEBUG)
    mock.post(URL, status=503)
    mock.post(URL, body=requests.ConnectionError("Connection reset by peer"))
    mock.post(URL, status=401, json=problem(401, "Unauthorized", "bad credentials", "ESS-401"))
    for auth in (("ops", SECRET), BearerAuth(TOKEN)):
        with pytest.raises(AuthenticationError):
            client(fake_time, auth=auth).post_status(42, "h", Status.SUCCESS)
    assert "retrying" in caplog.text
    assert SECRET not in caplog.text and TOKEN not in caplog.text
    assert base64.b64encode(f"ops:{SECRET}".encode()).decode() not in caplog.text


def test_keyword_only_options() -> None:
    """Everything but the base URL is keyword-only."""
    with pytest.raises(TypeError):
        SchedulerClient(BASE, ("ops", SECRET))  # type: ignore[misc]


@pytest.mark.parametrize(
    "failure",
    [
        ValueError("Invalid header value b'Bearer LEAKYTOKEN123\\n'"),
        requests.exceptions.InvalidHeader("Invalid return character in header: 'Bearer LEAKY'"),
        UnicodeEncodeError("latin-1", "Bearer LEAKY€", 12, 13, "ordinal not in range"),
        LocationParseError("LEAKY..example.com"),
    ],
    ids=["value-error", "invalid-header", "unicode", "location-parse"],
)
def test_error_inside_the_http_library_is_one_delivery_error(
    mock: responses.RequestsMock, fake_time: FakeTime, failure: Exception
) -> None:
    """An error requests raises before the request leaves (a header or URL it cannot
    encode) is a DeliveryError that quotes no header value, and is not retried."""
    mock.post(URL, body=failure)
    with pytest.raises(DeliveryError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert "LEAKY" not in str(info.value) and "LEAKY" not in repr(info.value)
    assert BASE in str(info.value)
    assert info.value.attempts == 1
    assert len(mock.calls) == 1
    assert not is_spoolable(info.value)


def test_certificate_failure_is_not_retried_and_names_the_bundle_variable(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A TLS certificate that does not verify fails at once (retrying cannot fix it), says
    to set ESS_CA_BUNDLE, and is kept for the outbox (flush once the bundle is fixed)."""
    mock.post(
        URL,
        body=requests.exceptions.SSLError(
            "HTTPSConnectionPool(host='ess.example.com', port=443): Max retries exceeded "
            "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
            "certificate verify failed: self-signed certificate (_ssl.c:1006)')))"
        ),
    )
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    text = str(info.value)
    assert "ESS_CA_BUNDLE" in text
    assert "self-signed certificate" in text
    assert "\n" not in text
    assert len(mock.calls) == 1
    assert fake_time.sleeps == []
    assert is_spoolable(info.value)


def test_unusable_requests_ca_bundle_is_not_retried(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """requests' OSError for an unusable REQUESTS_CA_BUNDLE fails at once, kept for flush."""
    mock.post(URL, body=OSError("Could not find a suitable TLS CA certificate bundle"))
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert "CA certificate bundle" in str(info.value)
    assert len(mock.calls) == 1
    assert is_spoolable(info.value)


@pytest.mark.parametrize(
    "url", ["http://ess.example.com", "http://10.0.0.5:8080/prefix", "http://[2001:db8::1]"]
)
def test_plain_http_to_a_remote_host_refused(url: str) -> None:
    """SchedulerClient refuses http:// to a host that is not loopback unless allow_http, and
    says so with its argument (it does not read ESS_CALLBACK_ALLOW_HTTP)."""
    with pytest.raises(ConfigurationError, match="allow_http=True") as info:
        SchedulerClient(url)
    assert "ESS_CALLBACK_ALLOW_HTTP" not in str(info.value)
    assert SchedulerClient(url, allow_http=True).base_url == url


def test_flush_passes_allow_http_to_its_clients(
    mock: responses.RequestsMock, tmp_path: Path
) -> None:
    """flush builds its clients with ESS_CALLBACK_ALLOW_HTTP, so a kept http:// status for a
    remote host is sent when allowed (the client itself refuses it by default)."""
    from ess_callback.outbox import _outbox, flush_outbox

    remote = "http://ess.example.com"
    _outbox.spool(tmp_path, Callback(5, "h", "SUCCESS"), base_url=remote, attempts=1, error=None)
    mock.post(f"{remote}/ess/rest/scheduler/v1/requests/5/executionStatus", status=200)
    report = flush_outbox(tmp_path, env={"ESS_CALLBACK_ALLOW_HTTP": "1"})
    assert [r.result for r in report.results] == ["delivered"]
    assert len(mock.calls) == 1


def test_plain_http_to_loopback_needs_no_switch() -> None:
    """http:// to loopback is fine (credentials never leave the machine)."""
    assert SchedulerClient("http://127.0.0.1:8765").base_url == "http://127.0.0.1:8765"


@pytest.mark.parametrize("url", ["https://a..b.com", "https://exa mple.com", "https://[x]"])
def test_invalid_host_refused_by_the_client(url: str) -> None:
    """A base URL whose host is not valid is a ConfigurationError when the client is made."""
    with pytest.raises(ConfigurationError, match="base URL"):
        SchedulerClient(url)


def test_secrets_are_listed_for_redaction() -> None:
    """client.secrets() gives the secret values its credentials hold, for redaction."""
    assert SchedulerClient(BASE, auth=("ops", SECRET)).secrets() == [SECRET]
    assert SchedulerClient(BASE, auth=BearerAuth(TOKEN)).secrets() == [TOKEN]
    assert SchedulerClient(BASE).secrets() == []


def test_debug_log_shows_each_attempt_without_secrets(
    mock: responses.RequestsMock, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG each attempt is logged with method, URL, number, answer and time; never a
    credential, header or the request handle."""
    caplog.set_level(logging.DEBUG, logger="ess_callback")
    mock.post(URL, status=503)
    mock.post(URL, body=requests.ConnectionError("Connection refused"))
    mock.post(URL, status=200)
    client(fake_time, auth=BearerAuth(TOKEN)).post_status(42, "handle-SECRET", Status.SUCCESS)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(f"POST {URL}" in m and "attempt 1 of 8" in m for m in debug), debug
    assert any("attempt 3 of 8" in m for m in debug), debug
    assert any("503" in m and " s" in m for m in debug), debug
    assert any("200" in m for m in debug), debug
    assert any("connection refused" in m for m in debug), debug
    assert TOKEN not in caplog.text
    assert "handle-SECRET" not in caplog.text
    assert "Authorization" not in caplog.text


def test_interrupted_delivery_is_spoolable_with_its_attempts(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A signal that stops the retries (DeliveryInterrupted) ends them at once with a
    SchedulerUnavailableError naming the signal and counting the attempts made."""
    mock.post(URL, status=503)

    def interrupted(seconds: float) -> None:
        raise DeliveryInterrupted(signal.SIGTERM)

    policy = RetryPolicy(sleep=interrupted, clock=fake_time.clock)
    with pytest.raises(SchedulerUnavailableError) as info:
        SchedulerClient(BASE, retry=policy).post_status(42, "h", Status.SUCCESS)
    assert "SIGTERM" in str(info.value)
    assert info.value.attempts == 1
    assert len(mock.calls) == 1
    assert is_spoolable(info.value)


# -- the answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 202, 204])
def test_any_2xx_is_delivered(mock: responses.RequestsMock, fake_time: FakeTime, code: int) -> None:
    """Any 2xx answer means delivered, in one attempt."""
    mock.post(URL, status=code)
    outcome = client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert outcome.delivered is True
    assert outcome.attempts == 1
    assert outcome.status is Status.SUCCESS
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("code", "cls", "title"),
    [
        (400, InvalidInputError, "Invalid input"),
        (401, AuthenticationError, "Unauthorized"),
        (403, NotAllowedError, "Not allowed for this operation"),
        (404, RequestNotFoundError, "Request ID not found"),
    ],
)
def test_rejections_are_typed_and_parsed(
    mock: responses.RequestsMock, fake_time: FakeTime, code: int, cls: type, title: str
) -> None:
    """400/401/403/404 raise their RejectedError subclass with the parsed problem, unretried."""
    detail = f"request 42: {title.lower()}"
    mock.post(URL, status=code, json=problem(code, title, detail, f"ESS-00{code}"),
              content_type="application/problem+json")  # fmt: skip
    with pytest.raises(RejectedError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    error = info.value
    assert type(error) is cls
    assert (error.http_status, error.error_code, error.title, error.detail, error.attempts) == (
        code, f"ESS-00{code}", title, detail, 1
    )  # fmt: skip
    assert f"ESS-00{code}" in str(error) and detail in str(error)
    assert len(mock.calls) == 1
    assert fake_time.sleeps == []
    assert not error.retryable


def test_401_names_the_credential_variables(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A 401 says which variables to set, and never shows the credentials used."""
    mock.post(URL, status=401, body="")
    with pytest.raises(AuthenticationError) as info:
        client(fake_time, auth=("ops", SECRET)).post_status(42, "h", Status.SUCCESS)
    text = str(info.value)
    for name in ("ESS_USERNAME", "ESS_PASSWORD", "ESS_TOKEN"):
        assert name in text
    assert SECRET not in text and SECRET not in repr(info.value)
    assert is_spoolable(info.value)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"message": "handle mismatch"}, "handle mismatch"),
        ({"error": "handle mismatch", "status": 400}, None),
    ],
)
def test_json_error_body_without_problem_fields_is_quoted(
    mock: responses.RequestsMock, fake_time: FakeTime, body: dict[str, Any], detail: str | None
) -> None:
    """A JSON error body that is not a SimpleExceptionDetail is quoted, not dropped; a
    {"message": ...} body fills the detail (SPEC section 9)."""
    mock.post(URL, status=400, json=body)
    with pytest.raises(InvalidInputError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert "handle mismatch" in str(info.value)
    assert info.value.title is None and info.value.detail == detail


def test_non_json_error_body_gives_short_excerpt(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A body that is not a problem document is quoted as a short, one-line excerpt."""
    page = "<html>\n<body><h1>Forbidden</h1>" + "x" * 5000 + "</body></html>"
    mock.post(URL, status=403, body=page, content_type="text/html")
    with pytest.raises(NotAllowedError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    text = str(info.value)
    assert "<h1>Forbidden</h1>" in text
    assert "\n" not in text
    assert len(text) < 400
    assert info.value.error_code is None and info.value.detail is None


@pytest.mark.parametrize("code", [402, 405, 409, 410, 413, 415, 422])
def test_other_4xx_never_retried(
    mock: responses.RequestsMock, fake_time: FakeTime, code: int
) -> None:
    """Other 4xx answers are rejections, tried once."""
    mock.post(URL, status=code)
    with pytest.raises(RejectedError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert info.value.http_status == code
    assert len(mock.calls) == 1
    assert not is_spoolable(info.value)


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_retried(
    mock: responses.RequestsMock, fake_time: FakeTime, code: int
) -> None:
    """408, 429, 500, 502, 503 and 504 are retried; the outcome counts the attempts."""
    mock.post(URL, status=code)
    mock.post(URL, status=code)
    mock.post(URL, status=200)
    outcome = client(fake_time).post_status(42, "h", Status.SUCCESS, "done")
    assert outcome.delivered and outcome.attempts == 3
    assert len(mock.calls) == 3
    assert len(fake_time.sleeps) == 2
    assert [body_of(c) for c in mock.calls] == [body_of(mock.calls[0])] * 3


def test_501_not_retried(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """5xx outside the retry list (501) is tried once, as SchedulerUnavailableError."""
    mock.post(URL, status=501)
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert len(mock.calls) == 1
    assert info.value.attempts == 1


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("Connection refused"),
        requests.ConnectTimeout("connect timed out"),
        requests.ReadTimeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("Connection broken: reset by peer"),
    ],
    ids=["refused", "connect-timeout", "read-timeout", "broken-answer"],
)
def test_network_failures_retried(
    mock: responses.RequestsMock, fake_time: FakeTime, failure: Exception
) -> None:
    """Connection errors, timeouts and answers cut off mid-way are retried."""
    mock.post(URL, body=failure)
    mock.post(URL, status=200)
    outcome = client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert outcome.attempts == 2
    assert len(fake_time.sleeps) == 1


def test_attempts_spent(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """After 8 failed attempts (the default) SchedulerUnavailableError carries them."""
    mock.post(URL, status=503, json=problem(503, "Unavailable", "ESS is down", "ESS-00500"))
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time, budget=10_000).post_status(42, "h", Status.SUCCESS)
    assert len(mock.calls) == 8
    assert info.value.attempts == 8
    assert info.value.http_status == 503
    assert info.value.error_code == "ESS-00500"
    assert len(fake_time.sleeps) == 7
    assert is_spoolable(info.value)


def test_network_failure_spent(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """A scheduler that cannot be reached gives SchedulerUnavailableError, one line."""
    mock.post(URL, body=requests.ConnectionError("Connection refused"))
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time, attempts=3, auth=("ops", SECRET)).post_status(42, "h", Status.SUCCESS)
    assert info.value.attempts == 3
    assert info.value.http_status is None
    text = str(info.value)
    assert BASE in text and "\n" not in text and SECRET not in text


def test_backoff_exponential_with_jitter_capped(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """Waits double from 0.5 s, each between half and all of its step, never over 30 s."""
    mock.post(URL, status=500)
    with pytest.raises(SchedulerUnavailableError):
        client(fake_time, attempts=12, budget=10_000).post_status(42, "h", Status.SUCCESS)
    assert len(fake_time.sleeps) == 11
    for n, wait in enumerate(fake_time.sleeps, start=1):
        step = min(30.0, 0.5 * 2 ** (n - 1))
        assert step / 2 <= wait <= step, (n, wait)
    assert max(fake_time.sleeps) <= 30.0
    assert fake_time.sleeps[-1] >= 15.0


def test_backoff_is_jittered() -> None:
    """Two clients failing together do not wait in lockstep."""
    policy = RetryPolicy()
    waits = {policy.backoff_wait(4) for _ in range(50)}
    assert len(waits) > 10
    assert all(2.0 <= w <= 4.0 for w in waits)


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_seconds_honoured(
    mock: responses.RequestsMock, fake_time: FakeTime, code: int
) -> None:
    """Retry-After in seconds is waited exactly."""
    mock.post(URL, status=code, headers={"Retry-After": "7"})
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert fake_time.sleeps == [7.0]


def test_retry_after_capped_at_30_seconds(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A Retry-After over 30 s waits 30 s."""
    mock.post(URL, status=503, headers={"Retry-After": "3600"})
    mock.post(URL, status=200)
    client(fake_time, budget=10_000).post_status(42, "h", Status.SUCCESS)
    assert fake_time.sleeps == [30.0]


def test_retry_after_http_date(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """Retry-After as an HTTP date waits until then."""
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    mock.post(URL, status=503, headers={"Retry-After": email.utils.format_datetime(when, True)})
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    (wait,) = fake_time.sleeps
    assert 18.0 <= wait <= 20.0


def test_retry_after_date_in_the_past(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """A Retry-After date already past means retry at once."""
    mock.post(URL, status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    assert fake_time.sleeps == [0.0]


def test_retry_after_asctime_date_is_gmt(monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTTP date without a zone (asctime form) is GMT, whatever the local zone."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        now = 1_700_000_000.0
        stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(now + 20))
        assert retry_after_seconds(stamp, now=now) == pytest.approx(20.0)
        assert retry_after_seconds(email.utils.formatdate(now + 5, usegmt=True), now=now) == 5.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("value", ["soon", "-5", "1e3", "nan", ""])
def test_malformed_retry_after_falls_back_to_backoff(
    mock: responses.RequestsMock, fake_time: FakeTime, value: str
) -> None:
    """A Retry-After that is neither whole seconds nor a date is ignored (backoff is used)."""
    mock.post(URL, status=503, headers={"Retry-After": value})
    mock.post(URL, status=200)
    client(fake_time).post_status(42, "h", Status.SUCCESS)
    (wait,) = fake_time.sleeps
    assert 0.25 <= wait <= 0.5


def test_retry_after_never_past_the_budget(
    mock: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A Retry-After longer than what is left of the budget does not overrun it."""
    mock.post(URL, status=503, headers={"Retry-After": "25"})
    start = fake_time.now
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time, budget=20).post_status(42, "h", Status.SUCCESS)
    assert fake_time.now - start <= 20
    assert all(w <= 20 for w in fake_time.sleeps)
    assert info.value.attempts == len(mock.calls) >= 1


def test_budget_spent(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """When the time budget runs out, SchedulerUnavailableError carries the attempts made."""
    mock.post(URL, status=502)
    start = fake_time.now
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time, attempts=1000, budget=10).post_status(42, "h", Status.SUCCESS)
    assert fake_time.now - start <= 10
    assert 4 <= len(mock.calls) < 20
    assert info.value.attempts == len(mock.calls)
    assert info.value.http_status == 502


def test_later_attempts_fit_the_budget(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """A retry's timeout is cut to what is left of the budget."""
    mock.post(URL, status=503, headers={"Retry-After": "8"})
    with pytest.raises(SchedulerUnavailableError):
        client(fake_time, attempts=5, budget=12).post_status(42, "h", Status.SUCCESS)
    assert len(mock.calls) >= 2
    second = mock.calls[1].request.req_kwargs["timeout"]
    assert second <= 12 - 8


def test_zero_budget_tries_once(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """A budget of 0 s (ESS_CALLBACK_RETRY_SECONDS=0) means one attempt, no waiting."""
    mock.post(URL, status=503)
    with pytest.raises(SchedulerUnavailableError) as info:
        client(fake_time, budget=0).post_status(42, "h", Status.SUCCESS)
    assert info.value.attempts == 1
    assert fake_time.sleeps == []


def test_policy_override_per_call(mock: responses.RequestsMock, fake_time: FakeTime) -> None:
    """post_status(retry=...) uses that policy for this call only."""
    mock.post(URL, status=503)
    sender = client(fake_time)
    quick = RetryPolicy(attempts=2, sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(SchedulerUnavailableError) as info:
        sender.post_status(42, "h", Status.UPDATE, retry=quick)
    assert info.value.attempts == 2


def test_real_sleep_is_the_default() -> None:
    """Without injection the policy really sleeps on the monotonic clock."""
    policy = RetryPolicy()
    assert policy.sleep is time.sleep
    assert policy.clock is time.monotonic


# -- against the real loopback fake --------------------------------------------------------


@pytest.mark.integration
def test_real_server_roundtrip_and_connection_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a real HTTP server, callbacks arrive and share one TCP connection."""
    import urllib3.util.connection

    opened: list[Any] = []
    original = urllib3.util.connection.create_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    with FakeScheduler(token=TOKEN) as ess, SchedulerClient(ess.url, auth=BearerAuth(TOKEN)) as c:
        ess.submit(42, "handle-42")
        c.post_status(42, "handle-42", Status.UPDATE, "half way")
        c.post_status(42, "handle-42", Status.UPDATE, "nearly")
        c.post_status(42, "handle-42", Status.SUCCESS)
        assert [cb.status for cb in ess.received] == [Status.UPDATE, Status.UPDATE, Status.SUCCESS]
        assert ess.received[0] == Callback(42, "handle-42", Status.UPDATE, "half way")
        assert ess.state(42) == "SUCCEEDED"
    assert len(opened) == 1


@pytest.mark.integration
def test_real_server_reset_and_503_retried() -> None:
    """A dropped connection and a 503 from a real server are retried to delivery."""
    with FakeScheduler() as ess:
        ess.submit(7, "h7")
        ess.reset_next(1)
        ess.fail_next(1, 503, retry_after=0)
        policy = RetryPolicy(backoff=0.01)
        outcome = SchedulerClient(ess.url, retry=policy).post_status(7, "h7", Status.WARNING, "w")
        assert outcome.attempts == 3
        assert ess.received == [Callback(7, "h7", Status.WARNING, "w")]


@pytest.mark.integration
def test_real_server_wrong_credentials() -> None:
    """Wrong credentials against a real server give AuthenticationError without retries."""
    with FakeScheduler("ops", SECRET) as ess:
        ess.submit(7, "h7")
        sender = SchedulerClient(ess.url, auth=("ops", "wrong"))
        with pytest.raises(AuthenticationError) as info:
            sender.post_status(7, "h7", Status.SUCCESS)
        assert info.value.attempts == 1
        assert ess.received == []
        ok = SchedulerClient(ess.url, auth=("ops", SECRET)).post_status(7, "h7", Status.SUCCESS)
        assert ok.delivered


@pytest.mark.integration
def test_real_server_unreachable() -> None:
    """Nothing listening: SchedulerUnavailableError within the budget, named clearly."""
    with FakeScheduler() as ess:
        url = ess.url
    policy = RetryPolicy(attempts=3, backoff=0.01, budget=5)
    started = time.monotonic()
    with pytest.raises(SchedulerUnavailableError) as info:
        SchedulerClient(url, retry=policy).post_status(7, "h7", Status.SUCCESS)
    assert time.monotonic() - started < 5
    assert info.value.attempts == 3
    assert "connection refused" in str(info.value)
    assert os.linesep not in str(info.value)


@pytest.mark.parametrize(
    "auth", ["user:s3cr3t-pw", b"user:s3cr3t-pw", ("user", "s3cr3t-pw", "extra"), ("user", 7)]
)
def test_unsupported_auth_refused_at_construction(auth: Any) -> None:
    """An auth that is not a (user, password) tuple, BasicAuth, BearerAuth or None is a
    TypeError naming the accepted forms when the client is built, never echoing the value."""
    with pytest.raises(TypeError) as caught:
        SchedulerClient("https://ess.example.com", auth=auth)
    text = str(caught.value)
    assert "BasicAuth" in text and "BearerAuth" in text and "tuple" in text
    assert "s3cr3t-pw" not in text


def test_control_characters_in_a_plain_error_body_never_reach_the_message() -> None:
    """A raw 400 body with newlines and an ANSI escape is quoted on one line, escape shown
    as text, so it cannot colour a terminal or split a log line."""
    error = error_for_response(400, "Bad Request", b"line1\nline2\r\n\x1b[31mred", 1)
    text = str(error)
    assert "\x1b" not in text and "\n" not in text and "\r" not in text
    assert "line1 line2" in text and "[31mred" in text


def test_control_characters_in_problem_fields_never_reach_the_message() -> None:
    """title, detail and errorCode of a problem body lose their control characters too."""
    body = json.dumps(
        {"title": "Bad\x1b[2J title", "detail": "two\nlines\x07", "errorCode": "E\x1b1\r\n"}
    ).encode()
    error = error_for_response(400, "Bad Request", body, 1)
    text = str(error)
    assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text), repr(text)
    assert "Bad" in text and "two lines" in text
    assert error.title is not None and "\x1b" not in error.title
    assert error.detail is not None and "\n" not in error.detail


def test_long_problem_detail_and_title_are_capped() -> None:
    """A 6000-character detail (or title) is cut to about 200 characters with an ellipsis."""
    body = json.dumps({"title": "T" * 6000, "detail": "D" * 6000}).encode()
    error = error_for_response(400, "Bad Request", body, 1)
    assert len(str(error)) < 600
    assert error.detail is not None and error.detail.endswith("...")
    assert len(error.detail) <= 210 and len(error.title or "") <= 210


@pytest.mark.parametrize(
    "url",
    [
        "https://ess.example.com/ess/rest/scheduler/v1",
        "https://ess.example.com/ess/rest/scheduler",
        "https://ess.example.com/fa/ESS/REST/Scheduler/v1/requests/42/executionStatus",
    ],
)
def test_base_url_holding_the_api_path_is_refused_before_any_network(url: str) -> None:
    """A base URL with the API path in it is a ConfigurationError naming ESS_BASE_URL and
    the base to give instead (the path would otherwise be sent twice, to no resource)."""
    with pytest.raises(ConfigurationError, match="ESS_BASE_URL") as info:
        SchedulerClient(url)
    assert "already holds the API path" in str(info.value)
    assert repr(url.lower().split("/ess/")[0]) in str(info.value).lower()


@pytest.mark.parametrize(
    "url", ["https://ess.example.com/essentials", "https://ess.example.com/ess/rest/other"]
)
def test_a_path_prefix_that_is_not_the_api_path_is_kept(url: str) -> None:
    """Only the API path itself is refused; other prefixes stay as given."""
    assert SchedulerClient(url).base_url == url
