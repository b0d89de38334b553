"""Every documented status value and example body of the four watched APIs reads right
(SPEC section 9). The fixtures are built from the vendors' documented examples and schemas:
one per documented status value, plus the error bodies."""

from __future__ import annotations

import datetime as dt
import json
import string
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from ess_callback import RequestNotFoundError
from ess_callback.watch import EssReader, HuaweiReader, JobState, PaasReader, SaasBatchReader
from ess_callback.watch._readers import PAAS_STATES, SAAS_STATES
from ess_callback.watch._relay import final_status
from ess_callback.watch._state import ESS_STATES

FIXTURES = Path(__file__).parent / "fixtures" / "watch"
UTC = dt.timezone.utc
ESS = "https://ess.example.com"
SAAS = "https://fa.example.com"
PAAS = "https://apaas.us.oraclecloud.com"
HW = "https://cfw.ap-southeast-1.myhuaweicloud.com"
HW_PROJECT = "09bb24e6fe80d23d2fa2c010b53b418c"
HW_JOB = "f588ce71-e26c-400d-8981-f854355f6849"

START = dt.datetime(2026, 12, 3, 23, 0, 5, 120000, tzinfo=UTC)
END = dt.datetime(2026, 12, 3, 23, 18, 25, 431000, tzinfo=UTC)
COMPLETED = dt.datetime(2026, 12, 3, 23, 18, 26, 2000, tzinfo=UTC)
EXPIRY = dt.datetime(2026, 12, 4, 5, 0, tzinfo=UTC)

#: every ESS state Oracle documents (oracle.as.scheduler.State)
DOCUMENTED_ESS_STATES = [
    "WAIT",
    "READY",
    "RUNNING",
    "COMPLETED",
    "BLOCKED",
    "HOLD",
    "CANCELLING",
    "EXPIRED",
    "CANCELLED",
    "ERROR",
    "WARNING",
    "SUCCEEDED",
    "PAUSED",
    "PENDING_VALIDATION",
    "VALIDATION_FAILED",
    "SCHEDULE_ENDED",
    "FINISHED",
    "ERROR_AUTO_RETRY",
    "ERROR_MANUAL_RECOVERY",
]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# (fixture, state, message, started, ended, cause)
ESS_CASES = [
    ("wait", JobState.PENDING, None, None, None, "NON_TERMINAL"),
    ("ready", JobState.PENDING, None, None, None, "NON_TERMINAL"),
    (
        "blocked",
        JobState.PENDING,
        "Blocked by incompatible request 4702",
        None,
        None,
        "NON_TERMINAL",
    ),
    ("hold", JobState.PENDING, None, None, None, "NON_TERMINAL"),
    ("pending_validation", JobState.PENDING, None, None, None, "NON_TERMINAL"),
    ("running", JobState.RUNNING, None, START, None, "NON_TERMINAL"),
    ("paused", JobState.RUNNING, None, START, None, "NON_TERMINAL"),
    ("completed", JobState.RUNNING, None, START, None, "NON_TERMINAL"),
    ("cancelling", JobState.RUNNING, None, START, None, "NON_TERMINAL"),
    (
        "error_auto_retry",
        JobState.PENDING,
        "ORA-12541: TNS:no listener",
        START,
        END,
        "PROCESS_ERROR",
    ),
    ("succeeded", JobState.SUCCEEDED, "PROCESS_SUCCESS", START, END, "PROCESS_SUCCESS"),
    (
        "warning",
        JobState.SUCCEEDED,
        "3 rows skipped (missing cost centre)",
        START,
        END,
        "PROCESS_WARNING",
    ),
    ("finished", JobState.SUCCEEDED, "PROCESS_SUCCESS", START, COMPLETED, "PROCESS_SUCCESS"),
    (
        "error",
        JobState.FAILED,
        "BusinessError: accounting period 2026-10 is closed",
        START,
        END,
        "PROCESS_BIZ_ERROR",
    ),
    (
        "error_manual_recovery",
        JobState.FAILED,
        "The request requires manual recovery",
        START,
        END,
        "PROCESS_MANUAL_RECOVER_ERROR",
    ),
    (
        "validation_failed",
        JobState.FAILED,
        "Parameter submit.argument1 is not valid",
        None,
        dt.datetime(2026, 12, 3, 23, 0, 1, 250000, tzinfo=UTC),
        "VALIDATION_ERROR",
    ),
    ("cancelled", JobState.CANCELLED, "OPERATOR_CANCEL", START, END, "OPERATOR_CANCEL"),
    ("expired", JobState.CANCELLED, "REQUEST_EXPIRED", None, EXPIRY, "REQUEST_EXPIRED"),
    ("schedule_ended", JobState.CANCELLED, "REQUEST_EXPIRED", None, EXPIRY, "REQUEST_EXPIRED"),
]


def test_every_documented_ess_state_has_a_fixture_and_a_mapping() -> None:
    """Each of the 19 documented ESS states has a fixture here and a JobState that is not
    UNKNOWN."""
    assert sorted(c[0].upper() for c in ESS_CASES) == sorted(DOCUMENTED_ESS_STATES)
    assert set(DOCUMENTED_ESS_STATES) == set(ESS_STATES)


@responses.activate
@pytest.mark.parametrize(
    "media",
    ["application/json;charset=utf-8", "application/vnd.oracle.resource+json;type=singular"],
)
@pytest.mark.parametrize(("name", "state", "message", "started", "ended", "cause"), ESS_CASES)
def test_ess_request_details_read_right(
    media: str,
    name: str,
    state: JobState,
    message: str | None,
    started: dt.datetime | None,
    ended: dt.datetime | None,
    cause: str,
) -> None:
    """A RequestDetails body in either documented media type gives the state, the message
    (errorWarningMessage, else errorWarningDetail, else stateDescription, else the cause of
    an ended request), the process times (else completedTime) and the cause."""
    body = fixture(f"ess_{name}")
    responses.get(
        f"{ESS}/ess/rest/scheduler/v1/requests/4711", body=json.dumps(body), content_type=media
    )
    status = EssReader(ESS).status(4711)
    assert status.state is state
    assert status.raw_status == name.upper()
    assert status.message == message
    assert (status.started, status.ended) == (started, ended)
    assert status.cause == cause
    assert status.is_terminal == state.is_terminal


@pytest.mark.parametrize(
    ("name", "relayed"),
    [
        ("succeeded", "SUCCESS"),
        ("warning", "WARNING"),
        ("finished", "SUCCESS"),
        ("error", "ERROR"),
        ("cancelled", "CANCEL"),
        ("schedule_ended", "CANCEL"),
    ],
)
def test_ess_ends_relay_as_their_status(name: str, relayed: str) -> None:
    """A relay posts what each ended ESS request leads to; the failure keeps its reason."""
    status = EssReader(ESS).parse(fixture(f"ess_{name}"))
    sent, message = final_status("ess job 4711", status)
    assert sent.value == relayed
    if relayed == "ERROR":
        assert message is not None and "accounting period 2026-10 is closed" in message


SAAS_CASES = [
    ("enqueued", JobState.PENDING, "ENQUEUED", 0.0, "Job Request has been enqueued"),
    ("running", JobState.RUNNING, "RUNNING", 0.5, "Job status is changed to RUNNING"),
    ("in_progress", JobState.RUNNING, "IN_PROGRESS", 0.0, "Job Request is in progress"),
    ("succeeded", JobState.SUCCEEDED, "SUCCEEDED", 1.0, "Job status is changed to SUCCEEDED"),
    (
        "failed",
        JobState.FAILED,
        "FAILED",
        0.4,
        "Extract failed: view object ExtractMostLabels not found",
    ),
]


@responses.activate
@pytest.mark.parametrize(("name", "state", "raw", "progress", "message"), SAAS_CASES)
def test_saas_batch_documented_statuses_read_right(
    name: str, state: JobState, raw: str, progress: float, message: str
) -> None:
    """Each documented jobProgress.status (one fixture each) reads with its progress and
    message (a FAILED one's message holds the error)."""
    responses.get(
        f"{SAAS}/api/saas-batch/jobscheduler/v1/jobRequests/44046", json=fixture(f"saas_{name}")
    )
    status = SaasBatchReader(SAAS, "tok").status(44046)
    assert (status.state, status.raw_status, status.progress, status.message) == (
        state,
        raw,
        progress,
        message,
    )
    assert {c[2] for c in SAAS_CASES} == set(SAAS_STATES)


PAAS_CASES = [
    ("new", JobState.PENDING, "CREATE_SERVICE", None),
    ("running", JobState.RUNNING, "Initialized application creation...", None),
    (
        "succeed",
        JobState.SUCCEEDED,
        "Successfully created application...",
        dt.datetime(2017, 4, 12, 16, 10, 27, 919000, tzinfo=UTC),
    ),
    (
        "failed",
        JobState.FAILED,
        "Failed to acquire resources for instance(2G) mycache-cach-1: quota exceeded",
        dt.datetime(2017, 4, 12, 16, 10, 27, 919000, tzinfo=UTC),
    ),
    (
        "warn",
        JobState.SUCCEEDED,
        "Created application; cache warm-up skipped",
        dt.datetime(2017, 4, 12, 16, 10, 27, 919000, tzinfo=UTC),
    ),
]


@responses.activate
@pytest.mark.parametrize(("name", "state", "message", "ended"), PAAS_CASES)
def test_paas_documented_statuses_read_right(
    name: str, state: JobState, message: str, ended: dt.datetime | None
) -> None:
    """Each activity-log status reads right; the message is the last messages[] entry that
    is not a bookkeeping line ("Activity Submitted/Started/Ended"), else summaryMessage."""
    responses.get(
        f"{PAAS}/paas/api/v1.1/activitylog/ExampleIdentityDomain/job/17465",
        json=fixture(f"paas_{name}"),
    )
    status = PaasReader(PAAS, "joe", "pw", "ExampleIdentityDomain").status(17465)
    assert (status.state, status.raw_status, status.message) == (state, name.upper(), message)
    assert status.started == dt.datetime(2017, 4, 12, 16, 1, 28, 238000, tzinfo=UTC)
    assert status.ended == ended
    assert {c[0].upper() for c in PAAS_CASES} == set(PAAS_STATES)


def test_paas_warn_is_relayed_as_warning() -> None:
    """WARN is a success whose raw status is kept, so a relay posts WARNING."""
    status = PaasReader(PAAS, "u", "p", "D").parse(fixture("paas_warn"))
    assert status.is_warning
    sent, message = final_status("paas job 17465", status)
    assert sent.value == "WARNING"
    assert message == "paas job 17465 ended with WARN: Created application; cache warm-up skipped"


HW_CASES = [
    ("running", JobState.RUNNING, "Running", None),
    ("success", JobState.SUCCEEDED, "Success", dt.datetime(2022, 1, 5, 8, 15, 15, tzinfo=UTC)),
    ("failed", JobState.FAILED, "Failed", dt.datetime(2022, 1, 5, 8, 15, 15, tzinfo=UTC)),
]


@responses.activate
@pytest.mark.parametrize(("name", "state", "raw", "ended"), HW_CASES)
def test_huawei_cfw_documented_statuses_read_right(
    name: str, state: JobState, raw: str, ended: dt.datetime | None
) -> None:
    """Each Cloud Firewall job status (Running, Success, Failed) reads right, with the
    documented example's epoch-millisecond times."""
    responses.get(f"{HW}/v3/{HW_PROJECT}/jobs/{HW_JOB}", json=fixture(f"huawei_{name}"))
    status = HuaweiReader(HW, "tok", HW_PROJECT).status(HW_JOB)
    assert (status.state, status.raw_status, status.ended) == (state, raw, ended)
    assert status.started == dt.datetime(2022, 1, 5, 8, 15, 1, tzinfo=UTC)


@responses.activate
@pytest.mark.parametrize("code", [400, 404])
def test_huawei_error_body_fills_error_code_and_detail(code: int) -> None:
    """A Huawei error body {"error_code", "error_msg"} fills the error's error_code and
    detail, as an RFC 7807 body does."""
    responses.get(f"{HW}/v3/{HW_PROJECT}/jobs/{HW_JOB}", json=fixture("huawei_error"), status=code)
    with pytest.raises(Exception) as caught:
        HuaweiReader(HW, "tok", HW_PROJECT).status(HW_JOB)
    error = caught.value
    assert getattr(error, "error_code", None) == "CFW.00200005"
    assert getattr(error, "detail", None) == "The job does not exist."
    assert "CFW.00200005" in str(error) and "The job does not exist." in str(error)
    if code == 404:
        assert isinstance(error, RequestNotFoundError)


@responses.activate
def test_message_error_body_fills_detail() -> None:
    """An error body {"message": ...} fills the error's detail."""
    responses.get(
        f"{PAAS}/paas/api/v1.1/activitylog/D/job/9",
        json={"message": "Not Found. Job 9 does not exist."},
        status=404,
    )
    with pytest.raises(RequestNotFoundError) as caught:
        PaasReader(PAAS, "u", "p", "D").status(9)
    assert caught.value.detail == "Not Found. Job 9 does not exist."


@given(
    st.sampled_from(DOCUMENTED_ESS_STATES),
    st.text(alphabet=" \t", max_size=2),
    st.booleans(),
)
def test_ess_state_reading_ignores_case_and_blanks(raw: str, pad: str, lower: bool) -> None:
    """A documented state reads the same whatever its case and surrounding blanks."""
    text = pad + (raw.lower() if lower else raw) + pad
    status = EssReader(ESS).parse({"state": text})
    assert status.state is ESS_STATES[raw]
    assert status.state is not JobState.UNKNOWN


@given(st.text(alphabet=string.ascii_letters + string.digits + "_- ", min_size=1, max_size=30))
def test_unknown_status_values_never_fail_a_read(raw: str) -> None:
    """Any status value the APIs do not document reads as UNKNOWN (or its mapping) with the
    raw value kept, for all four readers; it never raises."""
    if not raw.strip():
        return
    for reader, body in (
        (EssReader(ESS), {"state": raw}),
        (SaasBatchReader(SAAS, "t"), {"jobDetails": {"jobProgress": {"status": raw}}}),
        (PaasReader(PAAS, "u", "p", "D"), {"status": raw}),
        (HuaweiReader(HW, "t", HW_PROJECT), {"data": {"status": raw}}),
    ):
        status = reader.parse(body)  # type: ignore[attr-defined]
        assert status.raw_status == raw.strip()
        assert isinstance(status.state, JobState)
