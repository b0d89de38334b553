"""``JobExecution`` (SPEC section 4): how a block's end maps to a status, what propagates,
``job.outcome``, messages, delivery failures and signal handlers."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import outbox_files

from ess_callback import (
    AuthenticationError,
    BearerAuth,
    BusinessError,
    Callback,
    ConfigurationError,
    DeliveryError,
    InvalidInputError,
    JobCancelled,
    JobExecution,
    JobPaused,
    JobSuspended,
    JobWarning,
    Outcome,
    SchedulerClient,
    SchedulerUnavailableError,
    Status,
)
from ess_callback._execution import report_if_uncaught
from ess_callback._signals import STOP_SIGNALS as HANDLED_SIGNALS
from ess_callback.testing import FakeScheduler, Recorder

HERE = __file__


def raise_here(exc: BaseException) -> None:
    """Raise *exc* from a known line, ``RAISE_LINE`` (for the file:line checks)."""
    raise exc


RAISE_LINE = raise_here.__code__.co_firstlineno + 2


class Recorded:
    """Run a block under JobExecution while recording; keep what it ended with."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def end_with(self, exc: BaseException | None, **kwargs: Any) -> tuple[Callback, Any]:
        """End the block by raising *exc* (None: normal end); return (callback, propagated)."""
        propagated: BaseException | None = None
        try:
            with JobExecution(**kwargs) as self.job:
                if exc is not None:
                    raise_here(exc)
        except BaseException as caught:
            propagated = caught
        assert len(self.recorder) >= 1
        return self.recorder.last, propagated


@pytest.fixture
def fake(fake: FakeScheduler) -> FakeScheduler:
    """The shared fake with the requests these tests report to submitted: 1 (handle "h")
    and 7 (handle "h7"), besides 42."""
    fake.submit(1, "h")
    fake.submit(7, "h7")
    return fake


@pytest.fixture
def rec(ess_callbacks: Recorder) -> Recorded:
    return Recorded(ess_callbacks)


@pytest.fixture(autouse=True)
def keep_excepthook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test does to sys.excepthook is undone after it."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)


@pytest.fixture
def ess_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog on the ``ess_callback`` logger, even if a CLI test stopped its propagation."""
    logger = logging.getLogger("ess_callback")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="ess_callback")
    yield caplog
    logger.removeHandler(caplog.handler)


# -- the mapping table, row by row ---------------------------------------------------------


def test_job_cancelled_gives_cancel_with_its_reason_and_is_consumed(rec: Recorded) -> None:
    """JobCancelled("why") posts CANCEL "why" and does not leave the block."""
    callback, propagated = rec.end_with(JobCancelled("operator asked"))
    assert (callback.status, callback.message) == (Status.CANCEL, "operator asked")
    assert propagated is None


def test_job_cancelled_without_reason_has_no_message(rec: Recorded) -> None:
    """JobCancelled() posts CANCEL with no statusMessage."""
    callback, propagated = rec.end_with(JobCancelled())
    assert (callback.status, callback.message) == (Status.CANCEL, None)
    assert propagated is None


@pytest.mark.parametrize("handle_signals", [True, False])
def test_keyboard_interrupt_gives_cancel_and_propagates(
    rec: Recorded, handle_signals: bool
) -> None:
    """KeyboardInterrupt posts CANCEL "SIGINT" and still leaves the block."""
    callback, propagated = rec.end_with(KeyboardInterrupt(), handle_signals=handle_signals)
    assert (callback.status, callback.message) == (Status.CANCEL, "SIGINT")
    assert isinstance(propagated, KeyboardInterrupt)


@pytest.mark.parametrize(("args", "message"), [((), None), (("shutting down",), "shutting down")])
def test_a_cancelled_task_gives_cancel_and_propagates(
    rec: Recorded, args: tuple[str, ...], message: str | None
) -> None:
    """asyncio.CancelledError posts CANCEL (its message, if any) and leaves the block."""
    import asyncio

    callback, propagated = rec.end_with(asyncio.CancelledError(*args))
    assert (callback.status, callback.message) == (Status.CANCEL, message)
    assert isinstance(propagated, asyncio.CancelledError)


def test_concurrent_futures_cancelled_error_is_an_error(rec: Recorded) -> None:
    """concurrent.futures.CancelledError is an ordinary exception (a future, not the task
    running the block, was cancelled): ERROR, as before."""
    import concurrent.futures

    callback, propagated = rec.end_with(concurrent.futures.CancelledError())
    assert callback.status is Status.ERROR
    assert isinstance(propagated, concurrent.futures.CancelledError)


@pytest.mark.parametrize(
    ("signum", "name"),
    [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT"), (signal.SIGHUP, "SIGHUP")],
)
def test_signal_inside_the_block_gives_cancel_and_exit_128_plus_n(
    ess_callbacks: Recorder, signum: int, name: str
) -> None:
    """A real signal inside the block posts CANCEL <name>; SystemExit(128+N) leaves it."""
    with pytest.raises(SystemExit) as exit_info, JobExecution() as job:
        signal.raise_signal(signum)
        pytest.fail("the signal did not interrupt the block")  # pragma: no cover
    assert exit_info.value.code == 128 + signum
    assert ess_callbacks.statuses == [Status.CANCEL]
    assert ess_callbacks.last.message == name
    assert job.outcome == Outcome(Status.CANCEL, name, delivered=True, attempts=0)


def test_job_paused_gives_pause_with_the_state(rec: Recorded) -> None:
    """JobPaused(state) posts PAUSE with the paused state and is consumed."""
    callback, propagated = rec.end_with(JobPaused("step=3;offset=1200"))
    assert (callback.status, callback.message) == (Status.PAUSE, "step=3;offset=1200")
    assert propagated is None


def test_job_suspended_gives_suspend_with_its_text(rec: Recorded) -> None:
    """JobSuspended(text) posts SUSPEND with the text and is consumed."""
    callback, propagated = rec.end_with(JobSuspended("waiting for the bank file"))
    assert (callback.status, callback.message) == (Status.SUSPEND, "waiting for the bank file")
    assert propagated is None


def test_classify_chooses_the_status_of_another_exception(rec: Recorded) -> None:
    """A Status from classify() wins for an ordinary exception, which still propagates."""
    callback, propagated = rec.end_with(
        TimeoutError("source slow"),
        classify=lambda exc: Status.WARNING if isinstance(exc, TimeoutError) else None,
    )
    assert (callback.status, callback.message) == (Status.WARNING, "TimeoutError: source slow")
    assert isinstance(propagated, TimeoutError)


def test_classify_wins_over_business_error_which_is_still_consumed(rec: Recorded) -> None:
    """classify() comes before the BusinessError row; a BusinessError stays consumed."""
    callback, propagated = rec.end_with(
        BusinessError("period closed"), classify=lambda exc: Status.ERROR
    )
    assert (callback.status, callback.message) == (Status.ERROR, "BusinessError: period closed")
    assert propagated is None


def test_classify_may_name_the_status_as_text(rec: Recorded) -> None:
    """classify() returning the wire name (any case) counts as that Status."""
    callback, _ = rec.end_with(ValueError("x"), classify=lambda exc: "business_error")
    assert callback.status is Status.BUSINESS_ERROR


def test_classify_returning_none_falls_through(rec: Recorded) -> None:
    """classify() returning None leaves the exception to the rows below."""
    seen: list[BaseException] = []

    def classify(exc: BaseException) -> Status | None:
        seen.append(exc)
        return None

    callback, propagated = rec.end_with(BusinessError("closed"), classify=classify)
    assert (callback.status, callback.message) == (Status.BUSINESS_ERROR, "BusinessError: closed")
    assert propagated is None
    assert len(seen) == 1 and isinstance(seen[0], BusinessError)


@pytest.mark.parametrize("bad", ["raises", "not a status"])
def test_classify_that_fails_falls_through(rec: Recorded, bad: str) -> None:
    """A classify() that raises or returns nonsense is ignored: the default mapping holds."""

    def classify(exc: BaseException) -> Any:
        if bad == "raises":
            raise RuntimeError("bug in classify")
        return "DONE"

    callback, propagated = rec.end_with(ValueError("boom"), classify=classify)
    assert callback.status is Status.ERROR
    assert isinstance(propagated, ValueError)


@pytest.mark.parametrize(
    "exc", [JobCancelled("stop"), JobPaused("s"), JobSuspended("t"), KeyboardInterrupt()]
)
def test_classify_is_not_asked_about_the_rows_above_it(rec: Recorded, exc: BaseException) -> None:
    """Cancellation, pause and suspension match before classify(), which is not called."""
    asked: list[BaseException] = []

    def classify(exc: BaseException) -> Status:
        asked.append(exc)
        return Status.ERROR

    rec.end_with(exc, classify=classify)
    assert asked == []
    assert rec.recorder.last.status is not Status.ERROR


def test_classify_is_not_asked_about_system_exit(rec: Recorded) -> None:
    """classify() sees Exception subclasses only: sys.exit(0) stays a normal end."""
    callback, propagated = rec.end_with(SystemExit(0), classify=lambda exc: Status.ERROR)
    assert callback.status is Status.SUCCESS
    assert isinstance(propagated, SystemExit)


def test_business_error_gives_business_error_and_is_consumed(rec: Recorded) -> None:
    """BusinessError posts BUSINESS_ERROR "BusinessError: text" and is consumed."""
    callback, propagated = rec.end_with(BusinessError("accounting period 2026-10 is closed"))
    assert callback.status is Status.BUSINESS_ERROR
    assert callback.message == "BusinessError: accounting period 2026-10 is closed"
    assert propagated is None


def test_business_errors_classes_give_business_error_and_propagate(rec: Recorded) -> None:
    """An instance (or subclass instance) of a business_errors class is BUSINESS_ERROR and
    propagates: only the control exceptions are consumed."""
    callback, propagated = rec.end_with(KeyError("cost centre 17"), business_errors=(LookupError,))
    assert (callback.status, callback.message) == (
        Status.BUSINESS_ERROR,
        "KeyError: 'cost centre 17'",
    )
    assert isinstance(propagated, KeyError)


def test_job_warning_gives_warning_after_earlier_warnings(rec: Recorded) -> None:
    """JobWarning ends with WARNING: the job.warn texts, then its own, one per line."""
    propagated = None
    try:
        with JobExecution() as job:
            job.warn("3 rows skipped")
            job.warn("1 duplicate")
            raise JobWarning("partial extract")
    except BaseException as caught:
        propagated = caught
    assert propagated is None
    assert rec.recorder.last.status is Status.WARNING
    assert rec.recorder.last.message == "3 rows skipped\n1 duplicate\npartial extract"
    assert job.warnings == ["3 rows skipped", "1 duplicate"]


def test_job_warning_alone_carries_its_text(rec: Recorded) -> None:
    """JobWarning without earlier warnings posts WARNING with its text."""
    callback, propagated = rec.end_with(JobWarning("late input"))
    assert (callback.status, callback.message) == (Status.WARNING, "late input")
    assert propagated is None


@pytest.mark.parametrize("code", [0, None])
def test_system_exit_zero_is_a_normal_end_and_propagates(rec: Recorded, code: int | None) -> None:
    """sys.exit(0) / sys.exit() posts SUCCESS and the SystemExit goes on."""
    callback, propagated = rec.end_with(SystemExit(code))
    assert (callback.status, callback.message) == (Status.SUCCESS, None)
    assert isinstance(propagated, SystemExit) and propagated.code == code


def test_system_exit_zero_after_warn_is_warning(ess_callbacks: Recorder) -> None:
    """sys.exit(0) counts as a normal end, so earlier warnings make it WARNING."""
    with pytest.raises(SystemExit), JobExecution() as job:
        job.warn("3 rows skipped")
        sys.exit(0)
    assert (ess_callbacks.last.status, ess_callbacks.last.message) == (
        Status.WARNING,
        "3 rows skipped",
    )


def test_system_exit_with_another_code_is_error(rec: Recorded) -> None:
    """SystemExit(3) posts ERROR "SystemExit: 3" with where it was raised; it propagates."""
    callback, propagated = rec.end_with(SystemExit(3))
    assert callback.status is Status.ERROR
    assert callback.message is not None
    assert callback.message.splitlines()[0] == "SystemExit: 3"
    assert f"{HERE}:{RAISE_LINE}" in callback.message
    assert isinstance(propagated, SystemExit) and propagated.code == 3


def test_other_exception_is_error_with_type_text_and_where(rec: Recorded) -> None:
    """Any other exception posts ERROR "Type: text", then file:line where it was raised."""
    callback, propagated = rec.end_with(ValueError("bad row 17"))
    assert callback.status is Status.ERROR
    assert callback.message is not None
    first, second = callback.message.splitlines()
    assert first == "ValueError: bad row 17"
    assert f"{HERE}:{RAISE_LINE}" in second
    assert isinstance(propagated, ValueError)


def test_normal_end_after_warn_is_warning_one_per_line(rec: Recorded) -> None:
    """A normal end after job.warn() posts WARNING with the warnings in order."""
    with JobExecution() as job:
        job.warn("first")
        job.warn("second")
    assert rec.recorder.last == Callback(None, None, Status.WARNING, "first\nsecond")
    assert job.outcome is not None and job.outcome.status is Status.WARNING


def test_normal_end_is_success_without_message(rec: Recorded) -> None:
    """A normal end posts SUCCESS with no statusMessage."""
    callback, propagated = rec.end_with(None)
    assert callback == Callback(None, None, Status.SUCCESS, None)
    assert propagated is None


# -- first match wins when an exception fits several rows -----------------------------------


class CancelledBusiness(JobCancelled, BusinessError):
    """Both a cancellation and a business error."""


class PausedBusiness(JobPaused, BusinessError):
    """Both a pause and a business error."""


class SuspendedWarning(JobSuspended, JobWarning):
    """Both a suspension and a warning."""


class BusinessWarning(BusinessError, JobWarning):
    """Both a business error and a warning."""


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (CancelledBusiness("x"), Status.CANCEL),
        (PausedBusiness("x"), Status.PAUSE),
        (SuspendedWarning("x"), Status.SUSPEND),
        (BusinessWarning("x"), Status.BUSINESS_ERROR),
    ],
)
def test_first_matching_row_wins(rec: Recorded, exc: BaseException, status: Status) -> None:
    """An exception that fits several rows gets the status of the first row it fits."""
    callback, propagated = rec.end_with(exc)
    assert callback.status is status
    assert propagated is None


def test_business_errors_class_that_is_a_job_warning_is_business_error(rec: Recorded) -> None:
    """The business_errors row comes before the JobWarning row."""
    callback, _ = rec.end_with(JobWarning("x"), business_errors=(JobWarning,))
    assert callback.status is Status.BUSINESS_ERROR


class Unprintable(Exception):
    """An exception whose text cannot be had: str() raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_exception_whose_str_raises_still_posts_error_and_propagates(rec: Recorded) -> None:
    """An exception that cannot be turned into text still ends the job with ERROR, and it
    (not some error about its text) is what propagates."""
    problem = Unprintable("bad row")
    callback, propagated = rec.end_with(problem)
    assert callback.status is Status.ERROR
    assert callback.message is not None
    assert callback.message.startswith("Unprintable('bad row')")
    assert propagated is problem


class Shapeless:
    """A value that cannot be shown at all: both __str__ and __repr__ raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("control", "status"),
    [(JobCancelled, Status.CANCEL), (JobPaused, Status.PAUSE), (JobSuspended, Status.SUSPEND)],
)
def test_control_exceptions_with_unprintable_arguments_keep_their_status(
    rec: Recorded, control: Any, status: Status
) -> None:
    """JobCancelled/JobPaused/JobSuspended whose argument cannot be shown still give their
    own status and are consumed (never ERROR and a traceback)."""
    callback, propagated = rec.end_with(control(Shapeless()))
    assert callback.status is status
    assert propagated is None
    assert callback.message is not None and "unprintable" in callback.message


def test_unprintable_control_exceptions_keep_their_status(rec: Recorded) -> None:
    """JobWarning and JobSuspended whose text cannot be had still give their status."""

    class QuietWarning(JobWarning):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    callback, propagated = rec.end_with(QuietWarning())
    assert (callback.status, propagated) == (Status.WARNING, None)
    assert callback.message is not None and "QuietWarning" in callback.message


class BrokenPause(JobPaused):
    """A JobPaused whose state cannot even be read."""

    @property  # type: ignore[override]
    def state(self) -> str:
        raise RuntimeError("state lost")

    @state.setter
    def state(self, value: str) -> None:
        pass


def test_failure_while_deciding_the_status_posts_error_and_keeps_the_exception(
    rec: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever goes wrong in deciding how the block ended, a final status is posted (ERROR
    as a last resort) and the job's own exception is the one that propagates."""
    problem = BrokenPause("s1")
    callback, propagated = rec.end_with(problem)
    assert callback.status is Status.ERROR
    assert callback.message is not None and callback.message.startswith("BrokenPause")
    assert propagated is problem
    assert rec.job.outcome is not None and rec.job.outcome.delivered


def test_business_errors_must_be_exception_classes() -> None:
    """business_errors with something that is not an exception class is refused at once
    (it could only fail when the block ends)."""
    with pytest.raises(TypeError, match="business_errors"):
        JobExecution(business_errors=("NotAClass",), dry_run=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (JobPaused(123), Status.PAUSE),  # type: ignore[arg-type]
        (JobSuspended(123), Status.SUSPEND),
        (JobCancelled(123), Status.CANCEL),  # type: ignore[arg-type]
    ],
    ids=["paused", "suspended", "cancelled"],
)
def test_control_exception_with_a_non_text_argument(
    rec: Recorded, exc: BaseException, status: Status
) -> None:
    """JobPaused(123) and friends post their status with the text "123", consumed."""
    callback, propagated = rec.end_with(exc)
    assert (callback.status, callback.message, propagated) == (status, "123", None)


def test_code_after_a_consumed_exception_runs(ess_callbacks: Recorder) -> None:
    """A consumed control exception lets the code after the block run."""
    after = False
    with JobExecution():
        raise BusinessError("closed")
    after = True
    assert after
    assert ess_callbacks.last.status is Status.BUSINESS_ERROR


# -- outcome, sent, ids, messages ---------------------------------------------------------


def test_outcome_and_sent_while_recording(ess_callbacks: Recorder) -> None:
    """job.outcome describes the end; job.sent lists the callbacks in order."""
    with JobExecution(request_id="42", request_handle="h-42", update_interval=0) as job:
        assert job.outcome is None
        job.update("half way")
    assert job.outcome == Outcome(Status.SUCCESS, None, delivered=True, attempts=0)
    assert job.outcome.error is None and job.outcome.spooled_to is None
    assert job.sent == [
        Callback(42, "h-42", Status.UPDATE, "half way"),
        Callback(42, "h-42", Status.SUCCESS, None),
    ]
    assert list(ess_callbacks) == job.sent


def test_outcome_over_http(fake: FakeScheduler) -> None:
    """Over HTTP the outcome counts the attempts and the server got handle and id."""
    with JobExecution(base_url=fake.url, request_id=42, request_handle="handle-42") as job:
        job.warn("careful")
    assert job.outcome == Outcome(Status.WARNING, "careful", delivered=True, attempts=1)
    assert fake.received == [Callback(42, "handle-42", Status.WARNING, "careful")]
    assert job.sent == fake.received


def test_long_message_is_truncated_to_max_message_bytes(rec: Recorded) -> None:
    """A message longer than max_message_bytes keeps head and tail within the limit."""
    callback, _ = rec.end_with(ValueError("é" * 3000 + "THE END"), max_message_bytes=200)
    assert callback.message is not None
    assert len(callback.message.encode("utf-8")) <= 200
    assert callback.message.startswith("ValueError: é")
    assert "[truncated " in callback.message


def test_default_limit_is_4000_bytes(fake: FakeScheduler) -> None:
    """By default the posted statusMessage is at most 4000 UTF-8 bytes."""
    with JobExecution(base_url=fake.url, request_id=1, request_handle="h") as job:
        for i in range(2000):
            job.warn(f"row {i} skipped")
    sent = fake.received[-1].message
    assert sent is not None and 3900 < len(sent.encode()) <= 4000
    assert sent.startswith("row 0 skipped") and sent.endswith("row 1999 skipped")


def test_password_is_redacted_from_messages(rec: Recorded) -> None:
    """The configured password never appears in a posted message."""
    callback, _ = rec.end_with(
        ValueError("login as batch/s3cr3t-pw failed"), username="batch", password="s3cr3t-pw"
    )
    assert callback.message is not None
    assert "s3cr3t-pw" not in callback.message
    assert "batch/*** failed" in callback.message


@pytest.mark.parametrize(
    "auth", [("ops", "cl13nt-pw-SECRET"), BearerAuth("cl13nt-pw-SECRET")], ids=["basic", "bearer"]
)
def test_credentials_of_a_given_client_are_redacted(fake: FakeScheduler, auth: Any) -> None:
    """The secrets of a client= passed in are redacted like configured ones."""
    client = SchedulerClient(fake.url, auth=auth)
    with JobExecution(client=client, request_id=7, request_handle="h7", update_interval=0) as job:
        job.update("logging in with cl13nt-pw-SECRET")
        job.warn("cl13nt-pw-SECRET expires soon")
    assert [c.message for c in fake.received] == ["logging in with ***", "*** expires soon"]


def test_a_client_allowed_http_is_used_as_given(ess_callbacks: Recorder) -> None:
    """A client built with allow_http=True for a remote http:// URL is accepted by
    JobExecution (the caller allowed it explicitly); one without it is refused."""
    client = SchedulerClient("http://ess.example.com", allow_http=True)
    with JobExecution(client=client, request_id=7, request_handle="h7") as job:
        pass
    assert job.settings.base_url == "http://ess.example.com"
    assert job.settings.allow_http is True
    with pytest.raises(ConfigurationError, match="ESS_CALLBACK_ALLOW_HTTP"):
        JobExecution(base_url="http://ess.example.com", request_id=7, request_handle="h7")


def test_token_from_the_environment_is_redacted_from_warnings_and_updates(
    ess_callbacks: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token from ESS_TOKEN is replaced by *** in updates and warnings."""
    monkeypatch.setenv("ESS_TOKEN", "tok-ABC123")
    with JobExecution(update_interval=0) as job:
        job.update("calling with tok-ABC123")
        job.warn("tok-ABC123 expires soon")
    assert ess_callbacks.messages == ["calling with ***", "*** expires soon"]
    assert "tok-ABC123" not in repr(job) + repr(job.settings)


# -- delivery failure of the terminal status --------------------------------------------------


def ids(fake: FakeScheduler, request_id: int = 7, handle: str = "h7") -> dict[str, Any]:
    """JobExecution arguments that report request *request_id* to *fake*."""
    return {"base_url": fake.url, "request_id": request_id, "request_handle": handle}


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per callback, so failures are quick."""
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "0")


@pytest.mark.usefixtures("no_retries")
def test_undeliverable_success_raises_after_the_outbox_step(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    """503s: the block ends normally, the status is spooled, then DeliveryError is raised."""
    fake.fail_next(100, 503)
    with pytest.raises(SchedulerUnavailableError) as info:
        with JobExecution(**ids(fake, 42, "handle-42")) as job:
            job.warn("careful")
        pytest.fail("no DeliveryError")  # pragma: no cover
    files = outbox_files(tmp_path / "outbox")
    assert len(files) == 1, "the outbox file must exist when the error is raised"
    record = json.loads(files[0].read_text())
    assert (record["request_id"], record["request_handle"]) == (42, "handle-42")
    assert (record["status"], record["message"]) == ("WARNING", "careful")
    assert info.value.http_status == 503
    assert job.outcome is not None
    assert not job.outcome.delivered and job.outcome.spooled_to == files[0]
    assert job.outcome.error is info.value
    assert job.sent == []


@pytest.mark.usefixtures("no_retries")
def test_outbox_argument_names_the_folder(fake: FakeScheduler, tmp_path: Path) -> None:
    """outbox= wins over ESS_CALLBACK_OUTBOX for where an undelivered status is kept."""
    fake.fail_next(100, 503)
    custom = tmp_path / "custom"
    with pytest.raises(SchedulerUnavailableError), JobExecution(outbox=custom, **ids(fake)) as job:
        pass
    assert job.outcome is not None and job.outcome.spooled_to is not None
    assert job.outcome.spooled_to.parent == custom
    assert outbox_files(tmp_path / "outbox") == []


@pytest.mark.integration
@pytest.mark.usefixtures("no_retries")
def test_401_is_spooled_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401 (credentials wrong or expired) raises AuthenticationError and keeps the status."""
    with FakeScheduler(username="batch", password="right") as fake:
        fake.submit(7, "h7")
        monkeypatch.setenv("ESS_USERNAME", "batch")
        monkeypatch.setenv("ESS_PASSWORD", "wrong-pw")
        with pytest.raises(AuthenticationError), JobExecution(**ids(fake)):
            pass
    files = outbox_files(tmp_path / "outbox")
    assert len(files) == 1
    text = files[0].read_text()
    assert "wrong-pw" not in text and json.loads(text)["status"] == "SUCCESS"


@pytest.mark.usefixtures("no_retries")
def test_400_is_not_spooled(fake: FakeScheduler, tmp_path: Path) -> None:
    """A 400 rejection raises InvalidInputError and leaves nothing in the outbox."""
    fake.fail_next(1, 400)
    with pytest.raises(InvalidInputError) as info, JobExecution(**ids(fake)) as job:
        pass
    assert info.value.attempts == 1
    assert outbox_files(tmp_path / "outbox") == []
    assert job.outcome is not None and job.outcome.spooled_to is None


@pytest.mark.usefixtures("no_retries")
def test_consumed_control_exception_then_delivery_failure_raises_delivery_error(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    """A consumed BusinessError whose status is not delivered surfaces the DeliveryError."""
    fake.fail_next(100, 503)
    with pytest.raises(DeliveryError), JobExecution(**ids(fake)):
        raise BusinessError("closed")
    assert (
        json.loads(outbox_files(tmp_path / "outbox")[0].read_text())["status"] == "BUSINESS_ERROR"
    )


@pytest.mark.usefixtures("no_retries")
def test_job_exception_is_never_hidden_by_a_delivery_error(
    fake: FakeScheduler, tmp_path: Path, ess_log: pytest.LogCaptureFixture
) -> None:
    """When the job's own exception propagates, it is what leaves the block; the delivery
    failure is logged and the status is still spooled."""
    fake.fail_next(100, 503)
    with pytest.raises(ValueError, match="bad row"), JobExecution(**ids(fake)) as job:
        raise ValueError("bad row")
    assert job.outcome is not None and not job.outcome.delivered
    assert json.loads(outbox_files(tmp_path / "outbox")[0].read_text())["status"] == "ERROR"
    assert "final status ERROR was not delivered" in ess_log.text and "outbox" in ess_log.text


@pytest.mark.usefixtures("no_retries")
def test_signal_exit_is_never_hidden_by_a_delivery_error(fake: FakeScheduler) -> None:
    """After a signal, SystemExit(143) leaves the block even when CANCEL is not delivered."""
    fake.fail_next(100, 503)
    with pytest.raises(SystemExit) as info, JobExecution(**ids(fake)):
        signal.raise_signal(signal.SIGTERM)
    assert info.value.code == 143


@pytest.mark.usefixtures("no_retries")
@pytest.mark.parametrize("code", [0, None])
def test_exit_zero_with_a_spooled_status_leaves_with_75(
    fake: FakeScheduler, tmp_path: Path, capsys: pytest.CaptureFixture[str], code: int | None
) -> None:
    """sys.exit(0) in the block while the final status could only be kept in the outbox:
    one line says so, and SystemExit(75) leaves the block (as run does)."""
    fake.fail_next(100, 503)
    with pytest.raises(SystemExit) as info, JobExecution(**ids(fake, 42, "handle-42")):
        sys.exit(code)
    assert info.value.code == 75
    (spooled,) = outbox_files(tmp_path / "outbox")
    lines = capsys.readouterr().err.splitlines()
    assert (
        len(lines) == 1
        and "final status SUCCESS was not delivered" in lines[0]
        and str(spooled) in lines[0]
    )


@pytest.mark.usefixtures("no_retries")
def test_exit_zero_with_a_rejected_status_leaves_with_1(
    fake: FakeScheduler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sys.exit(0) while the final status was rejected (not kept): SystemExit(1), one line."""
    fake.fail_next(1, 404)
    with pytest.raises(SystemExit) as info, JobExecution(**ids(fake)):
        sys.exit(0)
    assert info.value.code == 1
    assert outbox_files(tmp_path / "outbox") == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "404" in lines[0]


@pytest.mark.usefixtures("no_retries")
def test_exit_with_another_code_is_never_replaced(fake: FakeScheduler) -> None:
    """sys.exit(3) with an undelivered ERROR still leaves with 3: never hidden."""
    fake.fail_next(100, 503)
    with pytest.raises(SystemExit) as info, JobExecution(**ids(fake)):
        sys.exit(3)
    assert info.value.code == 3


class BrokenClient(SchedulerClient):
    """A custom client with a bug: posting raises something that is not a DeliveryError."""

    def post_status(self, *args: Any, **kwargs: Any) -> Outcome:
        raise RuntimeError("bug in a custom client")


def test_a_broken_client_surfaces_after_a_normal_end() -> None:
    """A sender that fails in an unexpected way is not silently ignored."""
    job = JobExecution(client=BrokenClient("http://127.0.0.1:9"), request_id=1, request_handle="h")
    with pytest.raises(RuntimeError, match="bug in a custom client"), job:
        pass
    assert job.outcome is not None and not job.outcome.delivered


def test_a_broken_client_never_hides_the_job_exception() -> None:
    """The job's own exception still propagates when the sender itself breaks."""
    job = JobExecution(client=BrokenClient("http://127.0.0.1:9"), request_id=1, request_handle="h")
    with pytest.raises(ValueError, match="bad row"), job:
        raise ValueError("bad row")
    assert job.outcome is not None and job.outcome.status is Status.ERROR


def test_uncaught_delivery_error_is_reported_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error marked by JobExecution, if uncaught, prints one line and exits with its code;
    other exceptions keep the default hook."""
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    error = SchedulerUnavailableError("ESS answered 503")
    report_if_uncaught(error, "SUCCESS not delivered (ESS answered 503); kept in the outbox", 75)
    hook = sys.excepthook
    assert hook is not sys.__excepthook__
    with pytest.raises(SystemExit) as info:
        hook(type(error), error, None)
    assert info.value.code == 75
    assert capsys.readouterr().err == (
        "ess-callback: SUCCESS not delivered (ESS answered 503); kept in the outbox\n"
    )
    other = RuntimeError("not ours")
    hook(type(other), other, None)
    assert "RuntimeError: not ours" in capsys.readouterr().err


def test_an_application_excepthook_is_left_in_charge(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook the application installed is not replaced."""

    def mine(*args: Any) -> None:
        pass  # pragma: no cover

    monkeypatch.setattr(sys, "excepthook", mine)
    report_if_uncaught(ValueError("x"), "line", 2)
    assert sys.excepthook is mine


# -- signal handlers ----------------------------------------------------------------------


def test_signal_while_the_final_status_is_sent_finishes_it_then_ends_as_signalled(
    fake: FakeScheduler, ess_log: pytest.LogCaptureFixture
) -> None:
    """A SIGTERM that arrives while the final status is on its way is logged; the sending
    finishes (the status already on its way is not changed), and then the block still ends
    as signalled: SystemExit(143), so a job its scheduler stopped does not carry on."""
    fake.delay_next(1, seconds=1.0)
    stop = threading.Event()
    late: list[int] = []

    def signal_once_the_post_arrived() -> None:
        while not any(r.method == "POST" for r in fake.requests):
            if stop.wait(0.01):
                return
        os.kill(os.getpid(), signal.SIGTERM)

    # Should the signal come after the block, it lands here instead of ending pytest.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: late.append(signum))
    sender = threading.Thread(target=signal_once_the_post_arrived)
    sender.start()
    try:
        with pytest.raises(SystemExit) as ended, JobExecution(**ids(fake)) as job:
            pass
    finally:
        stop.set()
        sender.join(10)
        signal.signal(signal.SIGTERM, previous)
    assert late == [], "the signal arrived after the block: the test proved nothing"
    assert ended.value.code == 128 + signal.SIGTERM
    assert job.outcome is not None and job.outcome.delivered
    assert [c.status for c in fake.received] == [Status.SUCCESS]
    assert "SIGTERM received while reporting the end" in ess_log.text


def current_handlers() -> dict[int, Any]:
    return {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}


def test_handlers_installed_in_the_main_thread_and_restored(ess_callbacks: Recorder) -> None:
    """Inside the block SIGTERM/SIGINT/SIGHUP are ours; afterwards the old ones are back."""
    before = current_handlers()
    with JobExecution():
        inside = current_handlers()
    assert all(inside[s] != before[s] for s in HANDLED_SIGNALS)
    assert current_handlers() == before


def test_a_custom_previous_handler_is_restored(ess_callbacks: Recorder) -> None:
    """A handler the application set before the block is the one restored after it."""
    calls: list[int] = []

    def mine(signum: int, frame: Any) -> None:
        calls.append(signum)

    old = signal.signal(signal.SIGHUP, mine)
    try:
        with JobExecution():
            pass
        assert signal.getsignal(signal.SIGHUP) is mine
        signal.raise_signal(signal.SIGHUP)
        assert calls == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, old)


def test_handlers_restored_after_an_exception(ess_callbacks: Recorder) -> None:
    """The old handlers come back however the block ends."""
    before = current_handlers()
    with pytest.raises(ValueError), JobExecution():
        raise ValueError("x")
    assert current_handlers() == before


def test_worker_thread_does_not_touch_signal_handlers(ess_callbacks: Recorder) -> None:
    """A JobExecution in a worker thread leaves the process's handlers alone."""
    before = current_handlers()
    seen: dict[str, Any] = {}

    def work() -> None:
        with JobExecution() as job:
            seen["inside"] = current_handlers()
        seen["outcome"] = job.outcome

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(10)
    assert seen["inside"] == before
    assert current_handlers() == before
    assert seen["outcome"].status is Status.SUCCESS


def test_handle_signals_false_leaves_handlers_alone(ess_callbacks: Recorder) -> None:
    """handle_signals=False installs nothing."""
    before = current_handlers()
    with JobExecution(handle_signals=False):
        assert current_handlers() == before
    assert current_handlers() == before
