"""FakeScheduler (SPEC section 8): the wire format of section 2, the GET of section 9, the
per-request state machine, credentials, fault injection and robustness against bad clients."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import ess_callback
from ess_callback import BearerAuth, Callback, JobExecution, SchedulerClient, Status
from ess_callback._client import RetryPolicy
from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

PROBLEM_KEYS = {"type", "title", "status", "detail", "errorCode"}


def status_url(fake: FakeScheduler, request_id: object = 42) -> str:
    return f"{fake.url}/ess/rest/scheduler/v1/requests/{request_id}/executionStatus"


def post(
    fake: FakeScheduler,
    body: Any = None,
    *,
    request_id: object = 42,
    data: bytes | None = None,
    content_type: str | None = "application/json",
    auth: Any = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """POST to the fake's executionStatus resource, by default a valid UPDATE."""
    if data is None:
        handle = f"handle-{request_id}"
        payload = body if body is not None else {"requestHandle": handle, "status": "UPDATE"}
        data = json.dumps(payload).encode()
    sent_headers = dict(headers or {})
    if content_type is not None:
        sent_headers["Content-Type"] = content_type
    return requests.post(
        status_url(fake, request_id), data=data, headers=sent_headers, auth=auth, timeout=5
    )


def send(fake: FakeScheduler, status: str, message: str | None = None, request_id: int = 42) -> int:
    body: dict[str, Any] = {"requestHandle": f"handle-{request_id}", "status": status}
    if message is not None:
        body["statusMessage"] = message
    return post(fake, body, request_id=request_id).status_code


def get_state(fake: FakeScheduler, request_id: object = 42, **kw: Any) -> requests.Response:
    return requests.get(f"{fake.url}/ess/rest/scheduler/v1/requests/{request_id}", timeout=5, **kw)


def assert_problem(response: requests.Response, status: int, *words: str) -> dict[str, Any]:
    """The answer is *status* with a complete SimpleExceptionDetail body mentioning *words*."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert body["errorCode"] == f"ESS-{status:05d}"
    for word in words:
        assert word in body["detail"]
    return dict(body)


def read_response(sock: socket.socket) -> bytes:
    """Read one HTTP response (headers and Content-Length body) from a kept-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


def raw_exchange(fake: FakeScheduler, payload: bytes) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


# -- life cycle -----------------------------------------------------------------------------
def test_context_manager_serves_on_an_ephemeral_loopback_port_and_stops() -> None:
    """As a context manager it listens on 127.0.0.1 on a free port, and refuses after exit."""
    with FakeScheduler() as fake:
        assert fake.running
        assert fake.url == f"http://127.0.0.1:{fake.port}"
        assert fake.port > 0
        fake.submit(42, "handle-42")
        assert send(fake, "UPDATE") == 200
        port = fake.port
    assert not fake.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url


def test_two_fakes_get_different_ports() -> None:
    """Ephemeral ports mean fakes never collide, so tests can run side by side."""
    with FakeScheduler() as one, FakeScheduler() as two:
        assert one.port != two.port


def test_stop_ends_idle_keep_alive_connections_and_is_idempotent() -> None:
    """stop() closes kept-alive client connections too, and calling it twice is harmless."""
    fake = FakeScheduler().start()
    fake.submit(1)
    request = b"GET /ess/rest/scheduler/v1/requests/1 HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(request)
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        assert b'"state": "RUNNING"' in first
        started = time.monotonic()
        fake.stop()
        assert sock.recv(65536) == b""  # EOF: the server closed the idle connection
        assert time.monotonic() - started < 5
    fake.stop()
    assert not fake.running


def test_env_names_the_fake_and_optionally_its_credentials() -> None:
    """env() gives the ESS_* settings for the fake; credentials only when asked."""
    with FakeScheduler("alice", "s3cret") as fake:
        assert fake.env(7, "h-7") == {
            "ESS_BASE_URL": fake.url,
            "ESS_REQUEST_ID": "7",
            "ESS_REQUEST_HANDLE": "h-7",
        }
        assert fake.env(credentials=True)["ESS_PASSWORD"] == "s3cret"
    with FakeScheduler(token="tok") as fake:
        assert fake.env(credentials=True)["ESS_TOKEN"] == "tok"


def test_repr_never_shows_credentials() -> None:
    """The repr shows the URL, never the password or token."""
    with FakeScheduler("alice", "s3cret") as fake:
        assert "s3cret" not in repr(fake)
        assert fake.url in repr(fake)


def test_constructor_refuses_half_or_double_credentials() -> None:
    """A username without password, or Basic and token at once, is a ValueError."""
    with pytest.raises(ValueError, match="both username and password"):
        FakeScheduler(username="alice")
    with pytest.raises(ValueError, match="not both"):
        FakeScheduler("alice", "pw", token="tok")


def test_ipv6_loopback_url_is_bracketed() -> None:
    """On ::1 the URL puts the address in brackets, and it serves."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        fake = FakeScheduler(host="::1").start()
    except OSError:
        pytest.skip("cannot bind ::1 here")
    try:
        assert fake.url == f"http://[::1]:{fake.port}"
        fake.submit(42, "handle-42")
        assert send(fake, "SUCCESS") == 200
    finally:
        fake.stop()


# -- the wire format --------------------------------------------------------------------------
def test_accepts_a_valid_callback_and_records_it(fake: FakeScheduler) -> None:
    """A valid POST is answered 200 and becomes a Callback in `received`."""
    response = post(
        fake, {"requestHandle": "handle-42", "status": "WARNING", "statusMessage": "3 rows"}
    )
    assert response.status_code == 200
    assert fake.received == [Callback(42, "handle-42", Status.WARNING, "3 rows")]


def test_message_is_optional(fake: FakeScheduler) -> None:
    """A body without statusMessage is valid; the Callback's message is None."""
    assert send(fake, "SUCCESS") == 200
    assert fake.received[0].message is None


@pytest.mark.parametrize("media", ["application/json", "application/vnd.oracle.resource+json"])
def test_both_media_types_are_accepted(fake: FakeScheduler, media: str) -> None:
    """Both documented media types (parameters like charset allowed) are accepted."""
    assert post(fake, content_type=f"{media}; charset=utf-8").status_code == 200


@pytest.mark.parametrize("media", ["text/plain", "application/xml", None])
def test_other_media_types_are_refused_with_415(fake: FakeScheduler, media: str | None) -> None:
    """Any other Content-Type, or none, is 415 with a problem body naming the valid ones."""
    assert_problem(post(fake, content_type=media), 415, "application/json")
    assert fake.received == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"requestHandle": "h", "status": "DONE"}, ["'DONE'", "SUCCESS"]),
        ({"requestHandle": "h", "status": "success"}, ["'success'"]),
        ({"requestHandle": "h"}, ["None"]),
        ({"requestHandle": "h", "status": ["SUCCESS"]}, ["is not one of"]),
        ({"status": "SUCCESS"}, ["requestHandle is missing"]),
        ({"requestHandle": "", "status": "SUCCESS"}, ["requestHandle is missing"]),
        ({"requestHandle": 7, "status": "SUCCESS"}, ["requestHandle is missing"]),
        ({"requestHandle": "h", "status": "ERROR", "statusMessage": 5}, ["must be a string"]),
        (["SUCCESS"], ["not a JSON object"]),
    ],
)
def test_invalid_bodies_are_refused_with_400(
    fake: FakeScheduler, body: Any, words: list[str]
) -> None:
    """A bad status, a missing handle or a non-object body is 400 with SimpleExceptionDetail."""
    assert_problem(post(fake, body), 400, *words)
    assert fake.received == []


@pytest.mark.parametrize("data", [b"not json", b"", b"\xff\xfe{", b'{"requestHandle": '])
def test_non_json_is_refused_with_400(fake: FakeScheduler, data: bytes) -> None:
    """A body that is not UTF-8 JSON is 400 'body is not JSON'."""
    assert_problem(post(fake, data=data), 400, "not JSON")


@pytest.mark.parametrize("request_id", ["abc", "0", "-3", "1.5", "9223372036854775808", "%C2%B2"])
def test_bad_request_ids_are_refused_with_400(fake: FakeScheduler, request_id: str) -> None:
    """A request id that is not a positive int64 is 400, never a crash."""
    assert_problem(post(fake, request_id=request_id), 400, "not a positive integer")


def test_largest_int64_request_id_is_accepted(fake: FakeScheduler) -> None:
    """The largest int64 is a valid request id."""
    fake.submit(2**63 - 1, f"handle-{2**63 - 1}")
    assert post(fake, request_id=2**63 - 1).status_code == 200
    assert fake.received[0].request_id == 2**63 - 1


def test_trailing_slash_and_query_are_tolerated(fake: FakeScheduler) -> None:
    """A trailing slash or a query string does not change the resource."""
    url = status_url(fake) + "/?x=1"
    body = json.dumps({"requestHandle": "handle-42", "status": "UPDATE"})
    headers = {"Content-Type": "application/json"}
    assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 200


def test_unknown_paths_and_methods_are_refused(fake: FakeScheduler) -> None:
    """Another path is 404 and another method 405, both with problem bodies."""
    bad_path = requests.post(f"{fake.url}/ess/rest/other", json={}, timeout=5)
    assert_problem(bad_path, 404, "/ess/rest/other")
    assert_problem(requests.put(status_url(fake), data=b"{}", timeout=5), 405, "PUT")
    assert_problem(requests.delete(status_url(fake), timeout=5), 405, "DELETE")


# -- credentials ----------------------------------------------------------------------------
def test_without_credentials_any_request_is_accepted(fake: FakeScheduler) -> None:
    """A fake given no credentials accepts calls with or without an Authorization header."""
    assert post(fake).status_code == 200
    assert post(fake, auth=("anyone", "anything")).status_code == 200
    assert post(fake, headers={"Authorization": "Bearer whatever"}).status_code == 200


def test_basic_credentials_are_checked() -> None:
    """With Basic credentials, none or wrong ones are 401 with WWW-Authenticate; right ones 200."""
    with FakeScheduler("alice", "s3cret") as fake:
        fake.submit(42, "handle-42")
        refused = post(fake)
        assert_problem(refused, 401, "credentials")
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
        assert_problem(post(fake, auth=("alice", "wrong")), 401)
        assert_problem(post(fake, headers={"Authorization": "Bearer s3cret"}), 401)
        assert post(fake, auth=("alice", "s3cret")).status_code == 200
        assert len(fake.received) == 1
        assert_problem(get_state(fake), 401)
        assert get_state(fake, auth=("alice", "s3cret")).status_code == 200


def test_bearer_token_is_checked() -> None:
    """With a token, only 'Bearer <token>' is accepted."""
    with FakeScheduler(token="tok-1") as fake:
        fake.submit(42, "handle-42")
        assert_problem(post(fake), 401)
        assert_problem(post(fake, headers={"Authorization": "Bearer tok-2"}), 401)
        token_user = base64.b64encode(b"tok-1:").decode()
        assert_problem(post(fake, headers={"Authorization": f"Basic {token_user}"}), 401)
        assert post(fake, headers={"Authorization": "Bearer tok-1"}).status_code == 200


def test_scheduler_client_credentials_work_against_the_fake() -> None:
    """SchedulerClient's Basic and bearer auth are what the fake expects."""
    with FakeScheduler("alice", "s3cret") as basic:
        basic.submit(1, "h")
        client = SchedulerClient(basic.url, auth=("alice", "s3cret"))
        assert client.post_status(1, "h", "SUCCESS").delivered
        client.close()
    with FakeScheduler(token="tok") as bearer:
        bearer.submit(1, "h")
        client = SchedulerClient(bearer.url, auth=BearerAuth("tok"))
        assert client.post_status(1, "h", "SUCCESS").delivered
        client.close()


# -- the state machine ------------------------------------------------------------------------
def test_request_state_follows_the_callbacks(fake: FakeScheduler) -> None:
    """RUNNING, PAUSED by PAUSE, RUNNING again on UPDATE, HOLD after SUSPEND (ESS documents
    no SUSPENDED state), then the terminal state."""
    assert fake.state(42) == "RUNNING"
    assert send(fake, "UPDATE", "1 of 3") == 200
    assert fake.state(42) == "RUNNING"
    assert send(fake, "PAUSE", "waiting for sub-requests") == 200
    assert fake.state(42) == "PAUSED"
    assert send(fake, "UPDATE", "2 of 3") == 200
    assert fake.state(42) == "RUNNING"
    assert send(fake, "SUSPEND") == 200
    assert fake.state(42) == "HOLD"
    assert send(fake, "SUCCESS") == 200
    assert fake.state(42) == "SUCCEEDED"
    assert [c.status for c in fake.received] == [
        Status.UPDATE,
        Status.PAUSE,
        Status.UPDATE,
        Status.SUSPEND,
        Status.SUCCESS,
    ]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("SUCCESS", "SUCCEEDED"),
        ("WARNING", "WARNING"),
        ("ERROR", "ERROR"),
        ("BUSINESS_ERROR", "ERROR"),
        ("CANCEL", "CANCELLED"),
    ],
)
def test_terminal_status_ends_the_request(fake: FakeScheduler, status: str, state: str) -> None:
    """Each terminal status leads to its state; the GET's RequestDetails show it, with the
    cause and the times."""
    assert send(fake, status, "what happened") == 200
    assert fake.state(42) == state
    details = get_state(fake).json()
    assert (details["requestId"], details["state"]) == (42, state)
    assert details["isAsynchronous"] is True
    assert (
        details["cause"]
        == {
            "SUCCESS": "PROCESS_SUCCESS",
            "WARNING": "PROCESS_WARNING",
            "ERROR": "PROCESS_ERROR",
            "BUSINESS_ERROR": "PROCESS_BIZ_ERROR",
            "CANCEL": "PROCESS_CANCEL",
        }[status]
    )
    assert details["processStartTime"] <= details["processEndTime"]
    kept = status in ("WARNING", "ERROR", "BUSINESS_ERROR")
    assert details.get("errorWarningMessage") == ("what happened" if kept else None)


def test_same_terminal_status_again_is_refused_by_default(fake: FakeScheduler) -> None:
    """The same final status again is refused with 400 by default (ESS does not document
    accepting it), and not recorded."""
    assert send(fake, "SUCCESS") == 200
    assert_problem(post(fake, {"requestHandle": "handle-42", "status": "SUCCESS"}), 400, "again")
    assert [c.status for c in fake.received] == [Status.SUCCESS]


def test_same_terminal_status_again_is_accepted_when_told() -> None:
    """With repeat_final="accept" a retried final status is accepted and recorded again;
    another status is still refused."""
    with FakeScheduler(repeat_final="accept") as fake:
        fake.submit(42, "handle-42")
        assert send(fake, "SUCCESS") == 200
        assert send(fake, "SUCCESS") == 200
        assert send(fake, "ERROR") == 400
        assert [c.status for c in fake.received] == [Status.SUCCESS, Status.SUCCESS]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("SUCCESS", "ERROR"),
        ("ERROR", "BUSINESS_ERROR"),
        ("BUSINESS_ERROR", "ERROR"),
        ("CANCEL", "SUCCESS"),
        ("WARNING", "UPDATE"),
        ("SUCCESS", "PAUSE"),
    ],
)
def test_anything_else_after_a_terminal_status_is_refused(
    fake: FakeScheduler, first: str, then: str
) -> None:
    """After a terminal status a different status is 400 and not recorded; the state stays."""
    assert send(fake, first) == 200
    state = fake.state(42)
    response = post(fake, {"requestHandle": "handle-42", "status": then})
    assert_problem(response, 400, "already ended", then)
    assert [c.status.value for c in fake.received] == [first]
    assert fake.state(42) == state


def test_requests_have_independent_states(fake: FakeScheduler) -> None:
    """One request's end does not touch another's state."""
    for request_id in (1, 2, 3):
        fake.submit(request_id, f"handle-{request_id}")
    assert send(fake, "SUCCESS", request_id=1) == 200
    assert send(fake, "ERROR", request_id=2) == 200
    assert send(fake, "UPDATE", request_id=3) == 200
    assert (fake.state(1), fake.state(2), fake.state(3)) == ("SUCCEEDED", "ERROR", "RUNNING")
    assert [c.request_id for c in fake.callbacks_for(2)] == [2]


def test_operator_cancel_then_job_reports_cancel(fake: FakeScheduler) -> None:
    """set_state('CANCELLING') shows in the GET; the job's CANCEL then ends it CANCELLED."""
    fake.set_state(42, "CANCELLING")
    assert get_state(fake).json()["state"] == "CANCELLING"
    assert send(fake, "UPDATE") == 200
    assert fake.state(42) == "CANCELLING"
    assert send(fake, "CANCEL", "SIGTERM") == 200
    assert fake.state(42) == "CANCELLED"


def test_forced_final_state_accepts_only_its_matching_status(fake: FakeScheduler) -> None:
    """A request forced to an ended state refuses every status, the matching one too."""
    fake.set_state(42, "SUCCEEDED")
    assert send(fake, "SUCCESS") == 400
    assert send(fake, "ERROR") == 400
    assert fake.received == []


def test_unknown_request_is_404_for_post_and_get(fake: FakeScheduler) -> None:
    """set_state(id, None) makes a request unknown: 404 to its callbacks and its GET."""
    fake.set_state(42, None)
    assert fake.state(42) is None
    assert_problem(post(fake), 404, "42")
    assert_problem(get_state(fake), 404, "42")
    fake.submit(42, "handle-42")
    assert send(fake, "SUCCESS") == 200


def test_get_validates_its_path(fake: FakeScheduler) -> None:
    """GET of a bad id is 400, of another path 404, of an unsubmitted id 404; a submitted
    request is RUNNING."""
    assert_problem(get_state(fake, 7), 404, "7")
    fake.submit(7)
    assert get_state(fake, 7).json()["state"] == "RUNNING"
    assert_problem(get_state(fake, "x7"), 400, "'x7'")
    assert_problem(requests.get(f"{fake.url}/nothing", timeout=5), 404)


def test_clear_forgets_everything(fake: FakeScheduler) -> None:
    """clear() forgets callbacks, HTTP requests and planned faults; submitted requests
    keep their state."""
    send(fake, "UPDATE")
    fake.fail_next(5)
    fake.reset_after_accept(2)
    fake.clear()
    assert fake.received == [] and fake.requests == []
    assert fake.state(42) == "RUNNING"
    assert send(fake, "ERROR") == 200
    assert fake.state(42) == "ERROR"


# -- what it saw ------------------------------------------------------------------------------
def test_requests_log_keeps_refusals_with_their_reason(fake: FakeScheduler) -> None:
    """`requests` holds every call, with the answer and, for refusals, the reason."""
    post(fake, {"status": "SUCCESS"})
    send(fake, "SUCCESS")
    first, second = fake.requests
    assert (first.method, first.answer, first.reason) == ("POST", 400, "requestHandle is missing")
    assert (second.answer, second.reason) == (200, None)
    assert json.loads(second.body) == {"requestHandle": "handle-42", "status": "SUCCESS"}
    assert second.headers["Content-Type"] == "application/json"


def test_wait_for_returns_once_enough_arrived(fake: FakeScheduler) -> None:
    """wait_for blocks until the count (or predicate) holds, across threads."""
    threading.Timer(0.2, lambda: send(fake, "SUCCESS")).start()
    got = fake.wait_for(1, timeout=5)
    assert [c.status for c in got] == [Status.SUCCESS]
    got = fake.wait_for(predicate=lambda cs: cs[-1].status is Status.SUCCESS, timeout=1)
    assert len(got) == 1


def test_wait_for_times_out_naming_what_arrived(fake: FakeScheduler) -> None:
    """A wait that is not satisfied raises TimeoutError listing the statuses received."""
    send(fake, "UPDATE")
    with pytest.raises(TimeoutError, match="UPDATE"):
        fake.wait_for(2, timeout=0.2)


def test_hooks_see_callbacks_and_a_failing_hook_breaks_nothing() -> None:
    """on_callback sees accepted callbacks; on_request sees every answer; a raising hook is
    ignored and the caller still gets its answer."""
    seen: list[Callback] = []
    answers: list[int | None] = []

    def explode(callback: Callback) -> None:
        seen.append(callback)
        raise RuntimeError("hook bug")

    with FakeScheduler(on_callback=explode, on_request=lambda r: answers.append(r.answer)) as fake:
        fake.submit(42, "handle-42")
        assert send(fake, "SUCCESS") == 200
        assert post(fake, {"status": "X"}).status_code == 400
    assert [c.status for c in seen] == [Status.SUCCESS]
    assert answers == [200, 400]


def test_on_request_has_run_when_the_client_gets_its_answer() -> None:
    """A client holding its answer finds on_request already called for it, in order: the
    hook runs before the answer is sent (a printer of each request never lags behind)."""
    answers: list[int | None] = []
    with FakeScheduler(on_request=lambda r: answers.append(r.answer), auto_submit=True) as fake:
        for number in range(1, 21):
            expected = 200 if number % 2 else 400
            body = {"requestHandle": "h", "status": "UPDATE" if number % 2 else "NOPE"}
            assert post(fake, body, request_id=number).status_code == expected
            assert answers[-1] == expected and len(answers) == number


# -- fault injection --------------------------------------------------------------------------
def test_fail_next_answers_the_next_calls_with_the_status_and_retry_after(
    fake: FakeScheduler,
) -> None:
    """fail_next(2, 503, retry_after=7) fails exactly two calls, with the header, then serves."""
    fake.fail_next(2, 503, retry_after=7)
    for _ in range(2):
        failed = post(fake)
        assert_problem(failed, 503)
        assert failed.headers["Retry-After"] == "7"
    assert post(fake).status_code == 200
    assert len(fake.received) == 1


def test_fail_next_with_a_custom_body(fake: FakeScheduler) -> None:
    """A given body is answered as is."""
    fake.fail_next(1, 500, body={"title": "Boom", "errorCode": "ESS-12345"})
    response = post(fake)
    assert response.status_code == 500
    assert response.json() == {"title": "Boom", "errorCode": "ESS-12345"}


def test_faults_apply_in_the_order_planned(fake: FakeScheduler) -> None:
    """Planned faults are used up one after the other."""
    fake.fail_next(1, 429)
    fake.fail_next(1, 502)
    assert [post(fake).status_code for _ in range(3)] == [429, 502, 200]


def test_fault_limited_to_a_method_leaves_other_calls_alone(fake: FakeScheduler) -> None:
    """fail_next(method='POST') is not used up by request-state GETs (a cancel poller)."""
    fake.fail_next(1, 503, method="post")
    assert get_state(fake).status_code == 200
    assert post(fake).status_code == 503
    assert post(fake).status_code == 200


def test_reset_next_drops_the_connection(fake: FakeScheduler) -> None:
    """reset_next makes the client see a connection error, then the fake serves again."""
    fake.reset_next(1)
    with pytest.raises(requests.ConnectionError):
        post(fake)
    assert post(fake).status_code == 200
    assert fake.requests[0].answer is None
    assert len(fake.received) == 1


def test_delay_next_answers_late_but_answers(fake: FakeScheduler) -> None:
    """delay_next holds the answer for the given time; a short client timeout then fails."""
    fake.delay_next(1, seconds=0.5)
    started = time.monotonic()
    assert post(fake).status_code == 200
    assert time.monotonic() - started >= 0.5
    fake.delay_next(1, seconds=1.0)
    with pytest.raises(requests.Timeout):
        requests.post(
            status_url(fake),
            json={"requestHandle": "h", "status": "UPDATE"},
            timeout=0.2,
        )


def test_fault_counts_must_be_positive(fake: FakeScheduler) -> None:
    """A count below one is a ValueError, not a silently ignored plan."""
    with pytest.raises(ValueError, match="at least 1"):
        fake.fail_next(0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        fake.chaos(1.5)


def test_chaos_fails_a_share_of_calls_reproducibly(fake: FakeScheduler) -> None:
    """chaos(rate, seed) fails about that share with the given statuses; chaos(0) stops it."""

    def run(seed: int) -> list[int]:
        fake.chaos(0.5, statuses=(502,), resets=False, seed=seed)
        return [post(fake).status_code for _ in range(40)]

    first, second = run(1), run(1)
    assert first == second
    assert set(first) == {200, 502}
    assert 8 <= first.count(502) <= 32
    fake.chaos(1.0, statuses=(500,), resets=False)
    assert post(fake).status_code == 500
    fake.chaos(0)
    assert all(post(fake).status_code == 200 for _ in range(10))


def test_chaos_resets_connections_too(fake: FakeScheduler) -> None:
    """With resets on and only resets possible, every call sees a connection error."""
    fake.chaos(1.0, statuses=(), resets=True)
    with pytest.raises(requests.ConnectionError):
        post(fake)


def test_client_retries_through_injected_faults(fake: FakeScheduler) -> None:
    """SchedulerClient delivers after two 503s and a reset: four attempts, one callback."""
    fake.fail_next(2, 503, retry_after=0)
    fake.reset_next(1)
    policy = RetryPolicy(sleep=lambda s: None)
    with SchedulerClient(fake.url, retry=policy) as client:
        outcome = client.post_status(42, "handle-42", "SUCCESS")
    assert outcome.delivered and outcome.attempts == 4
    assert fake.received == [Callback(42, "handle-42", Status.SUCCESS, None)]


def test_job_execution_reports_over_real_http(fake: FakeScheduler) -> None:
    """A JobExecution pointed at the fake delivers UPDATE then the terminal status."""
    with JobExecution(
        base_url=fake.url,
        request_id=42,
        request_handle="handle-42",
        update_interval=0,
        handle_signals=False,
    ) as job:
        job.update("half way")
        job.warn("1 row skipped")
    assert job.outcome is not None and job.outcome.delivered
    assert [(c.status, c.message) for c in fake.received] == [
        (Status.UPDATE, "half way"),
        (Status.WARNING, "1 row skipped"),
    ]
    assert fake.state(42) == "WARNING"


# -- robustness -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /x HTTP/1.1\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
    ],
)
def test_raw_garbage_gets_an_error_and_the_server_lives_on(
    fake: FakeScheduler, garbage: bytes
) -> None:
    """Malformed requests are answered with an error (or dropped), never crash the server."""
    answer = raw_exchange(fake, garbage)
    assert answer == b"" or answer.startswith(b"HTTP/1.")
    if answer:
        status = int(answer.split()[1])
        assert 400 <= status < 600
    assert send(fake, "SUCCESS") == 200


def test_bad_content_length_is_400_and_closes(fake: FakeScheduler) -> None:
    """An unparsable or oversized Content-Length is 400 and the connection is closed."""
    path = "/ess/rest/scheduler/v1/requests/1/executionStatus"
    for length in (b"abc", b"-1", b"99999999"):
        answer = raw_exchange(
            fake,
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
            + b"Content-Length: "
            + length
            + b"\r\n\r\n{}",
        )
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"Content-Length" in answer.split(b"\r\n\r\n", 1)[1]
    assert send(fake, "SUCCESS") == 200


def test_chunked_body_is_411(fake: FakeScheduler) -> None:
    """A chunked body is refused with 411 Length Required instead of being misread."""
    path = "/ess/rest/scheduler/v1/requests/1/executionStatus"
    answer = raw_exchange(
        fake,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 411")


def test_client_that_hangs_up_mid_request_does_not_hurt(fake: FakeScheduler) -> None:
    """A client closing before sending its body leaves the server serving others."""
    path = "/ess/rest/scheduler/v1/requests/1/executionStatus"
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5):
        pass  # connect and leave without a word
    assert send(fake, "SUCCESS") == 200


def test_keep_alive_connection_serves_many_calls(fake: FakeScheduler) -> None:
    """One requests.Session reuses its connection for many callbacks."""
    with requests.Session() as session:
        for i in range(20):
            response = session.post(
                status_url(fake),
                json={"requestHandle": "handle-42", "status": "UPDATE", "statusMessage": str(i)},
                timeout=5,
            )
            assert response.status_code == 200
    assert [c.message for c in fake.received] == [str(i) for i in range(20)]


def test_concurrent_callbacks_are_all_recorded(fake: FakeScheduler) -> None:
    """Callbacks from many threads at once are all accepted and recorded."""
    errors: list[BaseException] = []

    def worker(request_id: int) -> None:
        try:
            for _ in range(5):
                assert send(fake, "UPDATE", request_id=request_id) == 200
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    for request_id in range(1, 9):
        fake.submit(request_id, f"handle-{request_id}")
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == []
    assert len(fake.received) == 40
    assert {c.request_id for c in fake.received} == set(range(1, 9))


@pytest.fixture
def basic_fake() -> Iterator[FakeScheduler]:
    with FakeScheduler("alice", "s3cret") as fake:
        yield fake


def test_fault_applies_before_credentials_are_checked(basic_fake: FakeScheduler) -> None:
    """An injected fault answers whatever the credentials (a proxy in front of ESS)."""
    basic_fake.fail_next(1, 502)
    assert post(basic_fake).status_code == 502
    assert post(basic_fake).status_code == 401


def test_describe_escapes_control_characters() -> None:
    """fake-server's line for a callback shows the whole message on one line, and never
    carries raw control characters (a message must not colour or steer the terminal)."""
    from ess_callback.testing._fake import describe

    line = describe(Callback(7, "h", Status.ERROR, "first\x1b[31mRED\x07\nsecond"))
    assert "\x1b" not in line and "\x07" not in line
    assert line == "request 7  ERROR  first\\x1b[31mRED\\x07\\nsecond"


def test_fail_next_with_a_raw_html_body_reaches_the_client_excerpt(fake: FakeScheduler) -> None:
    """A str body is answered raw as text/plain (or the given content_type); the client
    quotes it in its fallback excerpt."""
    page = "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
    fake.fail_next(1, 400, body=page, content_type="text/html")
    client = SchedulerClient(fake.url, retry=RetryPolicy(attempts=1))
    with pytest.raises(ess_callback.RejectedError) as caught:
        client.post_status(42, "handle-42", Status.SUCCESS)
    assert "<h1>502 Bad Gateway</h1>nginx" in str(caught.value)
    answered = fake.requests[-1]
    assert answered.answer == 400
    fake.fail_next(1, 503, body="down for maintenance")
    response = post(fake)
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "down for maintenance"


def test_fail_next_with_a_bytes_body_is_sent_as_is(fake: FakeScheduler) -> None:
    """A bytes body goes out byte for byte, with the content_type given."""
    fake.fail_next(1, 500, body=b"\xff\x00raw", content_type="application/octet-stream")
    response = post(fake)
    assert response.status_code == 500
    assert response.content == b"\xff\x00raw"
    assert response.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("body", [["a", "list"], 42, object()])
def test_fail_next_refuses_a_body_it_cannot_send(fake: FakeScheduler, body: Any) -> None:
    """Anything but a dict, str or bytes body is a TypeError when planned, not a silent 500."""
    with pytest.raises(TypeError, match="body"):
        fake.fail_next(1, 500, body=body)
    assert post(fake).status_code == 200  # nothing was planned


@pytest.mark.parametrize(
    ("auth", "secret"),
    [(("ops", "pa55-w0rd"), base64.b64encode(b"ops:pa55-w0rd").decode()), (None, "tok-123")],
)
def test_request_repr_masks_the_authorization_header(
    fake: FakeScheduler, auth: Any, secret: str
) -> None:
    """repr(fake.requests) never shows credentials; .headers still has the real value."""
    headers = None if auth else {"Authorization": "Bearer tok-123"}
    post(fake, auth=auth, headers=headers)
    seen = fake.requests[-1]
    assert secret not in repr(fake.requests) and secret not in repr(seen)
    assert "***" in repr(seen)
    assert secret in seen.headers["Authorization"]


# -- as ESS documents it: submission, handles, RequestDetails, cancel, check-in ---------------
def test_a_request_exists_only_once_submitted(fake: FakeScheduler) -> None:
    """A callback or GET for an id never submitted is 404 with a problem body; submit()
    makes it RUNNING with the handle given (or generated ones)."""
    assert_problem(post(fake, request_id=7), 404, "Request 7 not found")
    assert_problem(get_state(fake, 7), 404, "7")
    assert fake.state(7) is None
    made = fake.submit(7, "handle-7")
    assert (made.request_id, made.handle) == (7, "handle-7")
    assert send(fake, "UPDATE", request_id=7) == 200
    generated = fake.submit()
    assert generated.request_id not in (7, 42) and generated.handle
    assert fake.state(generated.request_id) == "RUNNING"
    assert [r.request_id for r in fake.submitted] == [42, 7, generated.request_id]


def test_submit_again_returns_the_request_or_refuses_another_handle(fake: FakeScheduler) -> None:
    """Submitting a known id with its own handle (or none) returns it; another handle is a
    ValueError; ids must be positive integers."""
    assert fake.submit(42) == fake.submit(42, "handle-42")
    with pytest.raises(ValueError, match="another handle"):
        fake.submit(42, "other")
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="positive integer"):
            fake.submit(bad)


def test_another_handle_is_refused_with_400_even_after_the_end(fake: FakeScheduler) -> None:
    """A callback with a handle that is not the request's is 400 and not recorded, before
    and after the request ended."""
    body = {"requestHandle": "someone-else", "status": "SUCCESS"}
    assert_problem(post(fake, body), 400, "requestHandle does not match")
    assert send(fake, "SUCCESS") == 200
    assert_problem(post(fake, body), 400, "requestHandle does not match")
    assert [c.status for c in fake.received] == [Status.SUCCESS]


def test_auto_submit_takes_an_unknown_request_with_its_first_handle() -> None:
    """auto_submit submits an unknown request on its first callback, with that handle;
    another handle for it afterwards is 400; on_submit hears of it."""
    heard: list[object] = []
    with FakeScheduler(auto_submit=True, on_submit=heard.append) as fake:
        assert send(fake, "UPDATE", request_id=9) == 200
        assert fake.state(9) == "RUNNING"
        assert (
            post(fake, {"requestHandle": "x", "status": "SUCCESS"}, request_id=9).status_code == 400
        )
    assert [(r.request_id, r.handle) for r in heard] == [(9, "handle-9")]  # type: ignore[attr-defined]


def test_post_requests_submits_and_answers_201_with_the_handle(fake: FakeScheduler) -> None:
    """POST .../requests (any JSON body) is 201 with RequestDetails plus requestHandle; the
    job can then report with that handle."""
    made = requests.post(
        f"{fake.url}/ess/rest/scheduler/v1/requests", json={"jobDefinition": "x"}, timeout=5
    )
    assert made.status_code == 201
    details = made.json()
    assert details["state"] == "RUNNING" and details["isAsynchronous"] is True
    rid, handle = details["requestId"], details["requestHandle"]
    body = {"requestHandle": handle, "status": "SUCCESS"}
    assert post(fake, body, request_id=rid).status_code == 200
    assert fake.state(rid) == "SUCCEEDED"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "application/json;charset=utf-8"),
        ("application/json", "application/json;charset=utf-8"),
        (
            "application/vnd.oracle.resource+json",
            "application/vnd.oracle.resource+json;type=singular",
        ),
        (
            "application/vnd.oracle.resource+json;type=singular",
            "application/vnd.oracle.resource+json;type=singular",
        ),
    ],
)
def test_request_details_in_the_media_type_asked_for(
    fake: FakeScheduler, accept: str | None, content_type: str
) -> None:
    """The GET answers a RequestDetails body labelled as the Accept header asks."""
    headers = {"Accept": accept} if accept else {}
    response = get_state(fake, headers=headers)
    assert response.headers["Content-Type"] == content_type
    details = response.json()
    assert details["requestId"] == 42 and details["state"] == "RUNNING"
    assert "processStartTime" in details and "processEndTime" not in details
    assert "cause" not in details


def test_the_ess_reader_reads_the_fake_request_details(fake: FakeScheduler) -> None:
    """The ESS reader reads the fake's RequestDetails: state, cause, message and times."""
    from ess_callback.watch import EssReader, JobState

    assert send(fake, "BUSINESS_ERROR", "period closed") == 200
    status = EssReader(fake.url).status(42)
    assert status.state is JobState.FAILED and status.raw_status == "ERROR"
    assert (status.cause, status.message) == ("PROCESS_BIZ_ERROR", "period closed")
    assert status.started is not None and status.ended is not None


def test_set_state_takes_documented_states_of_submitted_requests(fake: FakeScheduler) -> None:
    """set_state refuses a state ESS does not document (there is no SUSPENDED) and an id
    never submitted."""
    with pytest.raises(ValueError, match="not an ESS request state"):
        fake.set_state(42, "SUSPENDED")
    with pytest.raises(KeyError, match="not submitted"):
        fake.set_state(7, "RUNNING")
    fake.set_state(42, "SCHEDULE_ENDED")
    assert send(fake, "SUCCESS") == 400


def test_cancel_endpoint_and_method_follow_oracles_rules(fake: FakeScheduler) -> None:
    """POST .../cancel turns a RUNNING request CANCELLING (until the job reports CANCEL);
    one that never ran goes CANCELLED at once; an ended one is 400; an unknown one 404."""
    cancel = f"{fake.url}/ess/rest/scheduler/v1/requests/42/cancel"
    answered = requests.post(cancel, timeout=5)
    assert answered.status_code == 200 and answered.json()["state"] == "CANCELLING"
    assert send(fake, "CANCEL", "SIGTERM") == 200
    assert fake.state(42) == "CANCELLED"
    assert_problem(requests.post(cancel, timeout=5), 400, "Unsupported state")
    assert_problem(requests.post(cancel.replace("/42/", "/7/"), timeout=5), 404, "7")
    waiting = fake.submit(8)
    fake.set_state(8, "WAIT")
    assert fake.cancel(waiting.request_id) == "CANCELLED"
    assert fake.details(8)["cause"] == "OPERATOR_CANCEL"  # type: ignore[index]
    with pytest.raises(ValueError, match="cannot be cancelled"):
        fake.cancel(8)


def test_check_in_cancelling_answers_a_boolean_and_records_the_check_in(
    fake: FakeScheduler,
) -> None:
    """checkInCancelling with the handle answers false, then true once cancelled, and keeps
    the time of the last check-in; another handle is 400, an unknown request 404."""
    url = f"{fake.url}/ess/rest/scheduler/v1/requests/42/checkInCancelling"
    assert fake.last_check_in(42) is None
    first = requests.post(url, json={"requestExecutionContext": "handle-42"}, timeout=5)
    assert first.status_code == 200 and first.json() is False
    assert first.headers["Content-Type"] == "application/json;charset=utf-8"
    seen = fake.last_check_in(42)
    assert seen is not None and seen.tzinfo is not None
    fake.cancel(42)
    again = requests.post(url, json={"requestExecutionContext": "handle-42"}, timeout=5)
    assert again.json() is True
    assert fake.last_check_in(42) >= seen  # type: ignore[operator]
    wrong = requests.post(url, json={"requestExecutionContext": "nope"}, timeout=5)
    assert_problem(wrong, 400, "requestExecutionContext")
    unknown = requests.post(url.replace("/42/", "/7/"), json={}, timeout=5)
    assert_problem(unknown, 404, "7")


def test_reset_after_accept_takes_the_status_and_loses_the_answer(fake: FakeScheduler) -> None:
    """The status is taken (the request moves) but the connection drops before the answer;
    the same final status again is then refused (repeat_final="reject")."""
    fake.reset_after_accept(1)
    with pytest.raises(requests.ConnectionError):
        post(fake, {"requestHandle": "handle-42", "status": "SUCCESS"})
    assert fake.state(42) == "SUCCEEDED"
    assert [c.status for c in fake.received] == [Status.SUCCESS]
    assert fake.requests[0].answer is None
    assert "after the status was taken" in (fake.requests[0].reason or "")
    assert_problem(post(fake, {"requestHandle": "handle-42", "status": "SUCCESS"}), 400, "again")
    with pytest.raises(ValueError):
        fake.reset_after_accept(0)


def test_repeat_final_must_be_reject_or_accept() -> None:
    """Any other repeat_final is a ValueError."""
    with pytest.raises(ValueError, match="repeat_final"):
        FakeScheduler(repeat_final="maybe")


# -- the watched APIs -------------------------------------------------------------------------
def test_watched_saas_batch_job_steps_through_and_reads_right(fake: FakeScheduler) -> None:
    """add_watched('saas-batch'): each GET answers the next step in the Fusion shape (the
    last repeats); the reader reads progress and message; an unknown job is 404."""
    from ess_callback import RequestNotFoundError
    from ess_callback.watch import JobState, SaasBatchReader

    fake.add_watched("saas-batch", 44046, [("RUNNING", 50, None), ("FAILED", 40, "no view")])
    reader = SaasBatchReader(fake.url, "tok")
    first, second, third = (reader.status(44046) for _ in range(3))
    assert (first.state, first.progress, first.message) == (
        JobState.RUNNING,
        0.5,
        "Job status is changed to RUNNING",
    )
    assert (
        (second.state, second.message)
        == (JobState.FAILED, "no view")
        == (
            third.state,
            third.message,
        )
    )
    assert second.raw["jobDetails"]["jobProgress"]["completed"] is True
    with pytest.raises(RequestNotFoundError):
        reader.status(1)


def test_watched_paas_job_reads_right_with_its_messages(fake: FakeScheduler) -> None:
    """add_watched('paas'): the activity-log shape, bookkeeping lines around the message;
    WARN reads as a warning success; an unknown job is 404 with a message body."""
    from ess_callback import RequestNotFoundError
    from ess_callback.watch import JobState, PaasReader

    fake.add_watched("paas", 17465, [("WARN", None, "cache warm-up skipped")])
    reader = PaasReader(fake.url, "joe", "pw", "ExampleIdentityDomain")
    status = reader.status(17465)
    assert (status.state, status.message, status.is_warning) == (
        JobState.SUCCEEDED,
        "cache warm-up skipped",
        True,
    )
    assert [m["message"] for m in status.raw["messages"]] == [
        "Activity Submitted",
        "Activity Started",
        "cache warm-up skipped",
        "Activity Ended",
    ]
    assert status.started is not None and status.ended is not None
    with pytest.raises(RequestNotFoundError) as missing:
        reader.status(1)
    assert "does not exist" in (missing.value.detail or "")


def test_watched_huawei_job_reads_right_and_404_fills_error_code(fake: FakeScheduler) -> None:
    """add_watched('huawei'): the CFW shape with epoch-millisecond times; an unknown job is
    404 with {"error_code", "error_msg"}, which fill the error."""
    from ess_callback import RequestNotFoundError
    from ess_callback.watch import HuaweiReader, JobState

    job = "f588ce71-e26c-400d-8981-f854355f6849"
    fake.add_watched("huawei", job, [("Running", None, None), ("Success", None, None)])
    reader = HuaweiReader(fake.url, "tok", "09bb24e6fe80d23d2fa2c010b53b418c")
    assert reader.status(job).state is JobState.RUNNING
    done = reader.status(job)
    assert done.state is JobState.SUCCEEDED and done.ended is not None
    assert isinstance(done.raw["data"]["begin_time"], int)
    with pytest.raises(RequestNotFoundError) as missing:
        reader.status("other")
    assert missing.value.error_code == "CFW.00200005"
    assert missing.value.detail == "The job other does not exist."


def test_add_watched_refuses_unknown_apis_and_empty_steps(fake: FakeScheduler) -> None:
    """Only saas-batch, paas and huawei are watched APIs; steps must not be empty."""
    with pytest.raises(ValueError, match="not one of"):
        fake.add_watched("jira", 1, [("DONE", None, None)])
    with pytest.raises(ValueError, match="at least one step"):
        fake.add_watched("paas", 1, [])
