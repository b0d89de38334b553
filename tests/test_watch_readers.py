"""SPEC section 9: the four status readers against recorded bodies (served by ``responses``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from ess_callback import (
    AuthenticationError,
    BearerAuth,
    ConfigurationError,
    NotAllowedError,
    RejectedError,
    RequestNotFoundError,
    SchedulerUnavailableError,
)
from ess_callback.watch import (
    EssReader,
    HuaweiReader,
    JobState,
    JobStatus,
    MalformedAnswerError,
    PaasReader,
    SaasBatchReader,
)
from ess_callback.watch._state import parse_percentage, parse_time

FIXTURES = Path(__file__).parent / "fixtures" / "watch"
ESS = "https://ess.example.com"
FA = "https://fa.example.com"
PAAS = "https://apaas.us.oraclecloud.com"
HW = "https://cfw.cn-north-4.myhuaweicloud.com"
UTC = dt.timezone.utc


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def ess_url(job: int) -> str:
    return f"{ESS}/ess/rest/scheduler/v1/requests/{job}"


def saas_url(job: int | str) -> str:
    return f"{FA}/api/saas-batch/jobscheduler/v1/jobRequests/{job}"


def paas_url(job: int | str, domain: str = "ExampleIdentityDomain") -> str:
    return f"{PAAS}/paas/api/v1.1/activitylog/{domain}/job/{job}"


HW_PROJECT = "09bb24e6fe80d23d2fa2c010b53b418c"
HW_JOB = "f588ce71-e26c-400d-8981-f854355f6849"


def hw_url(job: str = HW_JOB) -> str:
    return f"{HW}/v3/{HW_PROJECT}/jobs/{job}"


# -- ESS --------------------------------------------------------------------------------

ESS_TABLE = [
    ("WAIT", JobState.PENDING),
    ("READY", JobState.PENDING),
    ("BLOCKED", JobState.PENDING),
    ("HOLD", JobState.PENDING),
    ("PENDING_VALIDATION", JobState.PENDING),
    ("ERROR_AUTO_RETRY", JobState.PENDING),
    ("RUNNING", JobState.RUNNING),
    ("COMPLETED", JobState.RUNNING),
    ("PAUSED", JobState.RUNNING),
    ("CANCELLING", JobState.RUNNING),
    ("SUCCEEDED", JobState.SUCCEEDED),
    ("WARNING", JobState.SUCCEEDED),
    ("FINISHED", JobState.SUCCEEDED),
    ("ERROR", JobState.FAILED),
    ("ERROR_MANUAL_RECOVERY", JobState.FAILED),
    ("VALIDATION_FAILED", JobState.FAILED),
    ("CANCELLED", JobState.CANCELLED),
    ("EXPIRED", JobState.CANCELLED),
    ("SCHEDULE_ENDED", JobState.CANCELLED),
    ("SOMETHING_NEW", JobState.UNKNOWN),
]


@responses.activate
@pytest.mark.parametrize(("raw", "state"), ESS_TABLE)
def test_ess_states_normalise_as_the_spec_says(raw: str, state: JobState) -> None:
    """Every documented ESS request state maps to its JobState; the raw value is kept."""
    responses.get(ess_url(43), json={"requestId": 43, "state": raw})
    status = EssReader(ESS).status(43)
    assert status.state is state
    assert status.raw_status == raw
    assert status.raw == {"requestId": 43, "state": raw}


@responses.activate
@pytest.mark.parametrize("key", ["requestState", "status"])
def test_ess_reader_reads_the_documented_state_field_only(key: str) -> None:
    """RequestDetails carries the state in ``state``; a body that names it otherwise is not
    a RequestDetails body and is refused as malformed rather than guessed at."""
    responses.get(ess_url(43), json={key: "ERROR"})
    with pytest.raises(MalformedAnswerError, match="no state"):
        EssReader(ESS).status("43")


@responses.activate
def test_ess_warning_end_is_a_success_with_a_warning() -> None:
    """ESS WARNING is SUCCEEDED, and the status says it was a warning."""
    responses.get(ess_url(43), json={"state": "WARNING"})
    status = EssReader(ESS).status(43)
    assert status.state is JobState.SUCCEEDED
    assert status.is_warning and status.is_terminal


@responses.activate
def test_ess_reader_sends_basic_auth_and_accept_json() -> None:
    """Basic credentials given as a tuple go out as an Authorization header."""
    responses.get(ess_url(43), json={"state": "RUNNING"})
    EssReader(ESS + "/", auth=("joe", "s3cret")).status(43)
    sent = responses.calls[0].request
    expected = base64.b64encode(b"joe:s3cret").decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["User-Agent"].startswith("ess-callback/")


@responses.activate
def test_ess_reader_sends_bearer_auth() -> None:
    """A BearerAuth goes out as a bearer token."""
    responses.get(ess_url(43), json={"state": "RUNNING"})
    EssReader(ESS, auth=BearerAuth("tok-123")).status(43)
    assert responses.calls[0].request.headers["Authorization"] == "Bearer tok-123"


@responses.activate
def test_reader_without_credentials_sends_no_authorization() -> None:
    """No credentials: no Authorization header (and ~/.netrc is never consulted)."""
    responses.get(ess_url(43), json={"state": "RUNNING"})
    EssReader(ESS).status(43)
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_reader_keeps_one_session() -> None:
    """Consecutive reads reuse the reader's one requests.Session."""
    responses.get(ess_url(43), json={"state": "RUNNING"})
    reader = EssReader(ESS)
    reader.status(43)
    first = reader.session
    reader.status(43)
    assert reader.session is first
    reader.close()


@pytest.mark.parametrize("job", ["abc", "0", "-3", ""])
def test_ess_job_id_must_be_a_request_number(job: str) -> None:
    """An ESS job id that is not a positive integer is a ConfigurationError before any network."""
    with pytest.raises(ConfigurationError, match="job id"):
        EssReader(ESS).status(job)


@pytest.mark.parametrize("url", ["ess.example.com", "ftp://ess.example.com", "https://u:p@h.com"])
def test_bad_base_url_is_a_configuration_error(url: str) -> None:
    """A base URL that is not a plain http(s) URL is refused at construction."""
    with pytest.raises(ConfigurationError, match="base URL"):
        EssReader(url)


# -- HTTP errors ------------------------------------------------------------------------


@responses.activate
@pytest.mark.parametrize(
    ("code", "error"),
    [
        (404, RequestNotFoundError),
        (401, AuthenticationError),
        (403, NotAllowedError),
        (500, SchedulerUnavailableError),
        (503, SchedulerUnavailableError),
        (429, SchedulerUnavailableError),
    ],
)
def test_http_errors_map_to_typed_errors(code: int, error: type[Exception]) -> None:
    """404, 401, 403 and 5xx/429 answers raise the matching typed error."""
    problem = {"title": "Nope", "status": code, "detail": "said no", "errorCode": f"ESS-{code:05d}"}
    responses.get(saas_url(1), json=problem, status=code)
    with pytest.raises(error) as caught:
        SaasBatchReader(FA, "tok").status(1)
    assert caught.value.http_status == code  # type: ignore[attr-defined]
    assert f"ESS-{code:05d}" in str(caught.value)
    assert "Fusion Job Scheduler answered" in str(caught.value)


@responses.activate
def test_401_names_what_to_set_and_never_the_token() -> None:
    """A 401 message carries the reader's credential hint, never the secret."""
    responses.get(hw_url(), status=401, body="denied")
    reader = HuaweiReader(HW, "top-secret-token", HW_PROJECT, credential_hint="set WATCH_TOKEN")
    with pytest.raises(AuthenticationError) as caught:
        reader.status(HW_JOB)
    assert "set WATCH_TOKEN" in str(caught.value)
    assert "ESS_USERNAME" not in str(caught.value)
    assert "top-secret-token" not in str(caught.value) + repr(caught.value) + repr(reader)


@responses.activate
def test_network_failure_is_scheduler_unavailable() -> None:
    """A connection error is a SchedulerUnavailableError naming the API and host."""
    responses.get(ess_url(43), body=requests.ConnectionError("Connection refused"))
    with pytest.raises(SchedulerUnavailableError, match="cannot reach ESS at https://ess"):
        EssReader(ESS).status(43)


@responses.activate
def test_redirect_is_not_followed() -> None:
    """A 3xx is an error, not followed (a token header would follow it to another host)."""
    responses.get(hw_url(), status=302, headers={"Location": "https://evil.example.com/"})
    with pytest.raises(RejectedError, match="302") as caught:
        HuaweiReader(HW, "tok", HW_PROJECT).status(HW_JOB)
    assert "ESS_BASE_URL" not in str(caught.value)
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize(
    "body",
    ["<html>login</html>", "[1, 2]", '{"requestId": 43}', '{"state": {"nested": 1}}'],
)
def test_malformed_ess_body_is_a_clear_error(body: str) -> None:
    """A 2xx body without a readable state raises MalformedAnswerError, not a crash."""
    responses.get(ess_url(43), body=body, content_type="application/json")
    with pytest.raises(MalformedAnswerError, match="ESS"):
        EssReader(ESS).status(43)


# -- Fusion Job Scheduler (saas-batch) --------------------------------------------------


@responses.activate
@pytest.mark.parametrize(
    ("name", "state", "raw", "progress", "message"),
    [
        ("saas_enqueued", JobState.PENDING, "ENQUEUED", 0.0, "Job Request has been enqueued"),
        ("saas_running", JobState.RUNNING, "RUNNING", 0.5, "Job status is changed to RUNNING"),
        ("saas_in_progress", JobState.RUNNING, "IN_PROGRESS", 0.0, "Job Request is in progress"),
        (
            "saas_succeeded",
            JobState.SUCCEEDED,
            "SUCCEEDED",
            1.0,
            "Job status is changed to SUCCEEDED",
        ),
    ],
)
def test_saas_seed_examples(
    name: str, state: JobState, raw: str, progress: float, message: str
) -> None:
    """The reference's four example bodies read as documented (percentage string -> 0..1)."""
    body = fixture(name)
    responses.get(saas_url(44046), json=body)
    status = SaasBatchReader(FA, "tok").status(44046)
    assert (status.state, status.raw_status, status.progress, status.message) == (
        state,
        raw,
        progress,
        message,
    )
    assert status.raw == body
    assert responses.calls[0].request.headers["Authorization"] == "Bearer tok"


@responses.activate
def test_saas_enqueued_example_has_aware_times() -> None:
    """startTime/endTime become timezone-aware datetimes."""
    responses.get(saas_url(44046), json=fixture("saas_enqueued"))
    status = SaasBatchReader(FA, "tok").status(44046)
    assert status.started == dt.datetime(2025, 12, 18, 7, 38, 58, tzinfo=UTC)
    assert status.ended == dt.datetime(2025, 12, 18, 7, 38, 59, tzinfo=UTC)


@responses.activate
def test_saas_failed_carries_the_error_message() -> None:
    """FAILED is FAILED, with jobProgress.message as the message."""
    body = {
        "jobDetails": {
            "jobRequestId": 7,
            "jobStatus": "FAILED",
            "jobProgress": {"status": "FAILED", "message": "ORA-01555: snapshot too old"},
        }
    }
    responses.get(saas_url(7), json=body)
    status = SaasBatchReader(FA, "tok").status(7)
    assert status.state is JobState.FAILED
    assert status.message == "ORA-01555: snapshot too old"


@responses.activate
def test_saas_succeeded_but_not_completed_is_still_running() -> None:
    """SUCCEEDED counts only with completed true; completed false is still running."""
    body = {"jobDetails": {"jobProgress": {"status": "SUCCEEDED", "completed": False}}}
    responses.get(saas_url(7), json=body)
    assert SaasBatchReader(FA, "tok").status(7).state is JobState.RUNNING


@responses.activate
def test_saas_falls_back_to_job_status() -> None:
    """Without jobProgress.status, jobDetails.jobStatus gives the state."""
    responses.get(saas_url(7), json={"jobDetails": {"jobStatus": "ENQUEUED"}})
    status = SaasBatchReader(FA, "tok").status(7)
    assert (status.state, status.raw_status, status.progress) == (
        JobState.PENDING,
        "ENQUEUED",
        None,
    )


@responses.activate
def test_saas_unknown_status_is_kept_raw() -> None:
    """An undocumented status is UNKNOWN with the raw value kept."""
    responses.get(saas_url(7), json={"jobDetails": {"jobProgress": {"status": "PAUSED_X"}}})
    status = SaasBatchReader(FA, "tok").status(7)
    assert (status.state, status.raw_status) == (JobState.UNKNOWN, "PAUSED_X")


@responses.activate
@pytest.mark.parametrize("body", [{}, {"jobDetails": "x"}, {"jobDetails": {"jobProgress": {}}}])
def test_saas_malformed_body(body: dict[str, Any]) -> None:
    """A body without jobDetails or any status is a MalformedAnswerError."""
    responses.get(saas_url(7), json=body)
    with pytest.raises(MalformedAnswerError, match="Fusion"):
        SaasBatchReader(FA, "tok").status(7)


def test_saas_needs_a_token() -> None:
    """A SaasBatchReader without a token is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="token"):
        SaasBatchReader(FA, "")


# -- PaaS activity log ------------------------------------------------------------------


@responses.activate
def test_paas_seed_example() -> None:
    """The reference's body: SUCCEED, the last messages[] entry that is not a bookkeeping
    line, start and end dates with +0000."""
    body = fixture("paas_succeed")
    responses.get(paas_url(17465), json=body)
    reader = PaasReader(PAAS, "joe@example.com", "joePassword", "ExampleIdentityDomain")
    status = reader.status(17465)
    assert status.state is JobState.SUCCEEDED
    assert status.raw_status == "SUCCEED"
    assert status.message == "Successfully created application..."
    assert status.progress is None
    assert status.started == dt.datetime(2017, 4, 12, 16, 1, 28, 238000, tzinfo=UTC)
    assert status.ended == dt.datetime(2017, 4, 12, 16, 10, 27, 919000, tzinfo=UTC)
    sent = responses.calls[0].request
    assert sent.headers["X-ID-TENANT-NAME"] == "ExampleIdentityDomain"
    expected = base64.b64encode(b"joe@example.com:joePassword").decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"


@responses.activate
@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("NEW", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("SUCCEED", JobState.SUCCEEDED),
        ("FAILED", JobState.FAILED),
        ("WARN", JobState.SUCCEEDED),
        ("ROLLED_BACK", JobState.UNKNOWN),
    ],
)
def test_paas_states(raw: str, state: JobState) -> None:
    """Each PaaS status maps to its JobState; others are UNKNOWN with the raw value."""
    responses.get(paas_url(5), json={"status": raw, "messages": [{"message": "m"}]})
    status = PaasReader(PAAS, "u", "p", "ExampleIdentityDomain").status(5)
    assert (status.state, status.raw_status, status.message) == (state, raw, "m")


@responses.activate
def test_paas_404_means_no_such_job() -> None:
    """The PaaS API answers 404 for a job id that does not exist."""
    responses.get(paas_url(99), status=404, body="")
    with pytest.raises(RequestNotFoundError, match="404"):
        PaasReader(PAAS, "u", "p", "ExampleIdentityDomain").status(99)


def test_paas_needs_an_identity_domain() -> None:
    """A PaasReader without an identity domain is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="identity domain"):
        PaasReader(PAAS, "u", "p", " ")


# -- Huawei Cloud -----------------------------------------------------------------------


@responses.activate
def test_huawei_seed_example_epoch_milliseconds() -> None:
    """The reference's body: Success, begin/end as epoch milliseconds; X-Auth-Token sent."""
    body = fixture("huawei_success")
    responses.get(hw_url(), json=body)
    status = HuaweiReader(HW, "tok-hw", HW_PROJECT).status(HW_JOB)
    assert status.state is JobState.SUCCEEDED
    assert status.raw_status == "Success"
    assert status.started == dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)
    assert status.ended == dt.datetime(2022, 1, 5, 8, 15, 15, tzinfo=UTC)
    sent = responses.calls[0].request
    assert sent.headers["X-Auth-Token"] == "tok-hw"
    assert "Authorization" not in sent.headers


@responses.activate
@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("Running", JobState.RUNNING),
        ("Success", JobState.SUCCEEDED),
        ("Failed", JobState.FAILED),
        ("Queued", JobState.UNKNOWN),
    ],
)
def test_huawei_states(raw: str, state: JobState) -> None:
    """Each Huawei status maps to its JobState; others are UNKNOWN with the raw value."""
    responses.get(hw_url(), json={"data": {"id": HW_JOB, "status": raw}})
    status = HuaweiReader(HW, "tok", HW_PROJECT).status(HW_JOB)
    assert (status.state, status.raw_status) == (state, raw)


@responses.activate
def test_huawei_failure_message_and_string_times() -> None:
    """error_code/error_msg become the message; ISO times with +0800 and numeric strings parse."""
    body = {
        "error_code": "DLF.0100",
        "error_msg": "The job failed",
        "data": {
            "status": "Failed",
            "begin_time": "2022-01-05T16:15:01+0800",
            "end_time": "1641370515000",
        },
    }
    responses.get(hw_url(), json=body)
    status = HuaweiReader(HW, "tok", HW_PROJECT).status(HW_JOB)
    assert status.state is JobState.FAILED
    assert status.message == "DLF.0100: The job failed"
    assert status.started == dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)
    assert status.ended == dt.datetime(2022, 1, 5, 8, 15, 15, tzinfo=UTC)


@responses.activate
def test_huawei_body_without_data_is_malformed_and_says_why() -> None:
    """An error body without data is a MalformedAnswerError carrying the API's error."""
    responses.get(hw_url(), json={"error_code": "DLF.0815", "error_msg": "Job not found"})
    with pytest.raises(MalformedAnswerError, match=r"DLF\.0815: Job not found"):
        HuaweiReader(HW, "tok", HW_PROJECT).status(HW_JOB)


def test_huawei_needs_token_and_project() -> None:
    """HuaweiReader requires a token and a project id."""
    with pytest.raises(ConfigurationError, match="token"):
        HuaweiReader(HW, "", HW_PROJECT)
    with pytest.raises(ConfigurationError, match="project id"):
        HuaweiReader(HW, "tok", "")


@responses.activate
def test_job_ids_are_quoted_into_the_path() -> None:
    """A job id with reserved characters cannot change the path it is read from."""
    responses.get(f"{HW}/v3/{HW_PROJECT}/jobs/a%2F..%2Fb", json={"data": {"status": "Running"}})
    assert HuaweiReader(HW, "tok", HW_PROJECT).status("a/../b").state is JobState.RUNNING


# -- shared parsers and the value object -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1641370501000, dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)),
        ("1641370501000", dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)),
        (1641370501, dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)),
        ("2022-01-05T08:15:01Z", dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)),
        ("2022-01-05T16:15:01+08:00", dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)),
        ("2022-01-05T03:15:01-0500", dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)),
        ("2022-01-05T08:15:01", dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)),
        ("2017-04-12T16:01:28.238+0000", dt.datetime(2017, 4, 12, 16, 1, 28, 238000, tzinfo=UTC)),
        ("not a time", None),
        ("2022-13-45T99:00:00Z", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_time(value: object, expected: dt.datetime | None) -> None:
    """Epoch ms/s and ISO-like text with any offset parse to aware datetimes; junk gives None."""
    parsed = parse_time(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50", 0.5),
        ("0", 0.0),
        ("100", 1.0),
        (75, 0.75),
        ("12.5%", 0.125),
        ("250", 1.0),
        ("n/a", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_percentage(value: object, expected: float | None) -> None:
    """completedPercentage strings become 0..1 (clamped); non-numbers give None."""
    assert parse_percentage(value) == expected


def test_job_status_is_frozen_and_validated() -> None:
    """JobStatus is immutable, progress stays in 0..1, times must be timezone-aware."""
    status = JobStatus(JobState.RUNNING, "RUNNING", progress=0.5)
    with pytest.raises(AttributeError):
        status.progress = 0.7  # type: ignore[misc]
    with pytest.raises(ValueError, match="progress"):
        JobStatus(JobState.RUNNING, "RUNNING", progress=1.5)
    with pytest.raises(ValueError, match="timezone"):
        JobStatus(JobState.RUNNING, "RUNNING", started=dt.datetime(2022, 1, 1))
    assert status.describe() == "RUNNING 50%"
    assert JobStatus("FAILED", "ERROR", message="boom").describe() == "FAILED (ERROR) - boom"
