"""record_callbacks() (SPEC section 8): recording instead of sending, for JobExecution and
SchedulerClient, as a context manager or a plain call, nesting, and across threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from ess_callback import (
    BusinessError,
    Callback,
    ConfigurationError,
    JobExecution,
    SchedulerClient,
    Status,
)
from ess_callback._recording import active_recorder
from ess_callback.testing import Recorder, record_callbacks


@pytest.fixture(autouse=True)
def no_network() -> Iterator[responses.RequestsMock]:
    """Any HTTP call made through requests fails the test (no URL is registered)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
    assert len(mock.calls) == 0, "recording must not reach the network"


@pytest.fixture(autouse=True)
def no_recorder_leaks() -> Iterator[None]:
    """Each test leaves no recording active behind it."""
    assert active_recorder() is None
    yield
    assert active_recorder() is None


def test_job_execution_records_without_any_setting(tmp_path: Path) -> None:
    """While recording, a JobExecution needs no setting, and its callbacks are recorded."""
    with record_callbacks() as calls, JobExecution(update_interval=0) as job:
        job.update("extracted 10 rows")
    assert list(calls) == [
        Callback(None, None, Status.UPDATE, "extracted 10 rows"),
        Callback(None, None, Status.SUCCESS, None),
    ]
    assert job.outcome is not None
    assert (job.outcome.delivered, job.outcome.attempts) == (True, 0)
    assert job.sent == list(calls)


def test_given_settings_are_recorded_and_still_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from the environment show in the Callback; a malformed one is still an error."""
    monkeypatch.setenv("ESS_REQUEST_ID", "42")
    monkeypatch.setenv("ESS_REQUEST_HANDLE", "h-42")
    with record_callbacks() as calls:
        with JobExecution():
            pass
        assert calls.last == Callback(42, "h-42", Status.SUCCESS, None)
        with pytest.raises(ConfigurationError, match="ESS_REQUEST_ID"):
            JobExecution(request_id="abc")


def test_nothing_reaches_the_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with a base URL that cannot be reached, recording writes no outbox file."""
    outbox = tmp_path / "box"
    monkeypatch.setenv("ESS_CALLBACK_OUTBOX", str(outbox))
    with (
        record_callbacks() as calls,
        JobExecution(base_url="http://127.0.0.1:9", request_id=1, request_handle="h"),
    ):
        raise BusinessError("period closed")
    assert calls.statuses == [Status.BUSINESS_ERROR]
    assert not outbox.exists()


def test_recording_wins_over_dry_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ESS_CALLBACK_DRY_RUN=1 too, callbacks are recorded and nothing is printed."""
    monkeypatch.setenv("ESS_CALLBACK_DRY_RUN", "1")
    with record_callbacks() as calls, JobExecution():
        pass
    assert calls.statuses == [Status.SUCCESS]
    assert capsys.readouterr().err == ""


def test_exceptions_are_recorded_and_still_propagate() -> None:
    """An ERROR end is recorded with the exception's type and text, and the exception leaves."""
    with record_callbacks() as calls, pytest.raises(KeyError), JobExecution():
        raise KeyError("cost centre")
    assert calls.statuses == [Status.ERROR]
    assert calls.messages[0] is not None and calls.messages[0].startswith("KeyError: ")


def test_throttling_is_recorded_as_it_would_be_sent() -> None:
    """Recording sees what would be sent: with a 10 s interval only the first update is due."""
    with record_callbacks() as calls, JobExecution(update_interval=10) as job:
        job.update("first")
        job.update("second")
    assert [(c.status, c.message) for c in calls] == [
        (Status.UPDATE, "first"),
        (Status.SUCCESS, None),
    ]


def test_scheduler_client_records_instead_of_posting() -> None:
    """SchedulerClient.post_status records, validating the id, and reports 0 attempts."""
    client = SchedulerClient("https://ess.invalid")
    with record_callbacks() as calls:
        outcome = client.post_status("7", "h-7", "warning", "2 rows skipped")
        with pytest.raises(ConfigurationError):
            client.post_status("seven", "h-7", "SUCCESS")
    assert calls == [Callback(7, "h-7", Status.WARNING, "2 rows skipped")]
    assert (outcome.delivered, outcome.attempts) == (True, 0)


def test_job_with_its_own_client_is_recorded() -> None:
    """A JobExecution given client= is recorded too, not sent through that client."""
    client = SchedulerClient("https://ess.invalid")
    with (
        record_callbacks() as calls,
        JobExecution(client=client, request_id=3, request_handle="h-3"),
    ):
        pass
    assert calls == [Callback(3, "h-3", Status.SUCCESS, None)]


def test_plain_call_then_stop_restores_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    """calls = record_callbacks(); ...; calls.stop() works, and afterwards settings are needed
    again."""
    calls = record_callbacks()
    try:
        with JobExecution():
            pass
    finally:
        calls.stop()
    assert calls.statuses == [Status.SUCCESS]
    assert not calls.active
    with pytest.raises(ConfigurationError, match="ESS_BASE_URL"):
        JobExecution()


def test_stop_is_idempotent_and_a_recorder_can_restart() -> None:
    """stop() twice is harmless; `with recorder:` starts a stopped recorder again."""
    calls = record_callbacks()
    calls.stop()
    calls.stop()
    assert active_recorder() is None
    with calls:
        assert active_recorder() is calls
        with JobExecution():
            pass
    assert calls.statuses == [Status.SUCCESS]
    assert active_recorder() is None


def test_context_manager_stops_even_when_the_block_raises() -> None:
    """An exception in the with block still stops the recording."""
    with pytest.raises(RuntimeError), record_callbacks():
        raise RuntimeError("boom")
    assert active_recorder() is None


def test_recordings_nest_and_the_innermost_wins() -> None:
    """An inner recording gets the callbacks; when it ends the outer one gets them again."""
    with record_callbacks() as outer:
        with JobExecution(request_id=1):
            pass
        with record_callbacks() as inner, JobExecution(request_id=2):
            pass
        with JobExecution(request_id=3):
            pass
    assert [c.request_id for c in outer] == [1, 3]
    assert [c.request_id for c in inner] == [2]


def test_stopping_an_outer_recording_keeps_the_inner_active() -> None:
    """Stopping a recorder that is not innermost removes only that one."""
    outer = record_callbacks()
    inner = record_callbacks()
    outer.stop()
    assert active_recorder() is inner
    inner.stop()
    assert active_recorder() is None


def test_recording_reaches_jobs_in_other_threads() -> None:
    """Jobs running in worker threads record into the recorder started by the test."""
    errors: list[BaseException] = []

    def job(number: int) -> None:
        try:
            with JobExecution(
                request_id=number, request_handle=f"h-{number}", update_interval=0
            ) as j:
                for step in range(10):
                    j.update(f"{number}:{step}")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with record_callbacks() as calls:
        threads = [threading.Thread(target=job, args=(n,)) for n in range(1, 9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert errors == []
    assert len(calls) == 8 * 11
    for number in range(1, 9):
        mine = [c for c in calls if c.request_id == number]
        assert [c.message for c in mine[:-1]] == [f"{number}:{s}" for s in range(10)]
        assert mine[-1].status is Status.SUCCESS


def test_starting_and_stopping_from_many_threads_is_safe() -> None:
    """Recorders started and stopped concurrently leave no recording behind."""
    barrier = threading.Barrier(16)

    def churn() -> None:
        barrier.wait()
        for _ in range(200):
            with record_callbacks() as calls:
                calls.append(Callback(1, "h", Status.UPDATE))

    threads = [threading.Thread(target=churn) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert active_recorder() is None


def test_recorder_is_list_like() -> None:
    """A Recorder indexes, slices, iterates, compares to a list and has helpers."""
    with record_callbacks() as calls:
        client = SchedulerClient("https://ess.invalid")
        client.post_status(1, "h", "UPDATE", "a")
        client.post_status(1, "h", "SUCCESS")
    first = Callback(1, "h", Status.UPDATE, "a")
    assert len(calls) == 2
    assert calls[0] == first
    assert calls[-1].status is Status.SUCCESS
    assert calls[:1] == [first]
    assert first in calls
    assert calls == [first, Callback(1, "h", Status.SUCCESS, None)]
    assert calls.statuses == [Status.UPDATE, Status.SUCCESS]
    assert calls.messages == ["a", None]
    assert calls.last.status is Status.SUCCESS
    assert "UPDATE" in repr(calls)
    calls.clear()
    assert len(calls) == 0
    with pytest.raises(IndexError, match="no callback"):
        _ = calls.last


def test_recorder_is_not_hashable_and_compares_by_content() -> None:
    """Two recorders with the same callbacks are equal; recorders are mutable, so unhashable."""
    a, b = Recorder(), Recorder()
    a.append(Callback(1, "h", Status.SUCCESS))
    b.append(Callback(1, "h", Status.SUCCESS))
    assert a == b
    assert a != [Callback(1, "h", Status.ERROR)]
    with pytest.raises(TypeError):
        hash(a)
    assert not a.active
