"""Dry run (SPEC section 7): one JSON line per callback on stderr, nothing sent, nothing
spooled, no setting required."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli_runner

from ess_callback import Callback, ConfigurationError, JobExecution, JobPaused, Outcome, Status
from ess_callback.cli import main
from ess_callback.testing import FakeScheduler

KEYS = ["dry_run", "request_id", "requestHandle", "status", "statusMessage"]


def json_lines(err: str) -> list[dict[str, Any]]:
    """The dry-run JSON lines in *err* (every line must be one)."""
    return [json.loads(line) for line in err.splitlines()]


def test_json_line_with_no_settings_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    """With nothing configured, the line has null id and handle and nothing else is printed."""
    with JobExecution(dry_run=True) as job:
        pass
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = json_lines(captured.err)
    assert line == {
        "dry_run": True,
        "request_id": None,
        "requestHandle": None,
        "status": "SUCCESS",
        "statusMessage": None,
    }
    assert list(line) == KEYS
    assert job.sent == [Callback(None, None, Status.SUCCESS, None)]


def test_json_line_with_id_handle_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    """Given id and handle appear as such; the message is the statusMessage."""
    with JobExecution(dry_run=True, request_id="42", request_handle="h-42") as job:
        job.warn("3 rows skipped")
    (line,) = json_lines(capsys.readouterr().err)
    assert line == {
        "dry_run": True,
        "request_id": 42,
        "requestHandle": "h-42",
        "status": "WARNING",
        "statusMessage": "3 rows skipped",
    }
    assert job.sent == [Callback(42, "h-42", Status.WARNING, "3 rows skipped")]


def test_outcome_is_delivered_with_no_attempts() -> None:
    """In dry run the outcome says delivered, 0 attempts, no error, nothing spooled (and
    control exceptions map as usual)."""
    with JobExecution(dry_run=True) as job:
        raise JobPaused("step=2")
    assert job.outcome == Outcome(Status.PAUSE, "step=2", delivered=True, attempts=0)
    assert job.outcome.error is None and job.outcome.spooled_to is None


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({"request_id": "abc"}, "ESS_REQUEST_ID"),
        ({"request_id": 0}, "ESS_REQUEST_ID"),
        ({"request_handle": ""}, "ESS_REQUEST_HANDLE"),
        ({"base_url": "ftp://ess.example.com"}, "ESS_BASE_URL"),
    ],
)
def test_present_settings_are_still_validated(kwargs: dict[str, Any], variable: str) -> None:
    """A given but malformed setting is a ConfigurationError naming its variable."""
    with pytest.raises(ConfigurationError, match=variable):
        JobExecution(dry_run=True, **kwargs)


def test_malformed_variable_is_validated_in_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """ESS_REQUEST_ID from the environment is validated too."""
    monkeypatch.setenv("ESS_CALLBACK_DRY_RUN", "1")
    monkeypatch.setenv("ESS_REQUEST_ID", "-5")
    with pytest.raises(ConfigurationError, match="ESS_REQUEST_ID"):
        JobExecution()


@pytest.mark.parametrize("word", ["1", "true", "yes", "TRUE"])
def test_nothing_is_sent_and_nothing_spooled(
    fake: FakeScheduler,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    word: str,
) -> None:
    """ESS_CALLBACK_DRY_RUN: the configured (real) scheduler sees no request at all, even for
    updates and an error end, and the outbox stays empty."""
    for name, value in fake.env(42, "handle-42").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ESS_CALLBACK_DRY_RUN", word)
    with pytest.raises(ValueError), JobExecution(update_interval=0) as job:
        job.update("half way")
        raise ValueError("bad row")
    assert fake.requests == []
    assert not (tmp_path / "outbox").exists()
    lines = json_lines(capsys.readouterr().err)
    assert [(line["status"], line["request_id"]) for line in lines] == [
        ("UPDATE", 42),
        ("ERROR", 42),
    ]
    assert lines[1]["statusMessage"].startswith("ValueError: bad row\n  at ")
    assert job.outcome is not None and job.outcome.delivered and job.outcome.attempts == 0


def test_dry_run_argument_beats_the_environment(
    fake: FakeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dry_run=False sends even when ESS_CALLBACK_DRY_RUN=1 (explicit arguments win)."""
    monkeypatch.setenv("ESS_CALLBACK_DRY_RUN", "1")
    with JobExecution(dry_run=False, **_ids(fake)):
        pass
    assert [c.status for c in fake.received] == [Status.SUCCESS]


def test_updates_are_throttled_as_they_would_be(capsys: pytest.CaptureFixture[str]) -> None:
    """Dry run shows exactly what would be sent: the throttle holds back later updates."""
    with JobExecution(dry_run=True, update_interval=60) as job:
        for i in range(10):
            job.update(f"step {i}")
    statuses = [
        (line["status"], line["statusMessage"]) for line in json_lines(capsys.readouterr().err)
    ]
    assert statuses == [("UPDATE", "step 0"), ("SUCCESS", None)]
    assert [c.status for c in job.sent] == [Status.UPDATE, Status.SUCCESS]


def test_zero_interval_shows_every_update(capsys: pytest.CaptureFixture[str]) -> None:
    """update_interval=0 prints every update, in order, then the terminal status."""
    with JobExecution(dry_run=True, update_interval=0) as job:
        for i in range(5):
            job.update(f"step {i}")
    lines = json_lines(capsys.readouterr().err)
    assert [line["statusMessage"] for line in lines] == [
        "step 0",
        "step 1",
        "step 2",
        "step 3",
        "step 4",
        None,
    ]
    assert len(job.sent) == 6


def test_secrets_never_reach_the_dry_run_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password from the environment is redacted from the printed message."""
    monkeypatch.setenv("ESS_USERNAME", "batch")
    monkeypatch.setenv("ESS_PASSWORD", "pw-9f8e7d")
    with JobExecution(dry_run=True) as job:
        job.warn("connect string batch/pw-9f8e7d@db")
    err = capsys.readouterr().err
    assert "pw-9f8e7d" not in err
    assert json_lines(err)[0]["statusMessage"] == "connect string batch/***@db"
    assert "pw-9f8e7d" not in repr(job.settings)


def test_long_message_is_truncated_in_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed message is the one that would be sent: within max_message_bytes."""
    with JobExecution(dry_run=True, max_message_bytes=120) as job:
        job.warn("x" * 1000)
    message = json_lines(capsys.readouterr().err)[0]["statusMessage"]
    assert len(message.encode()) <= 120 and "[truncated" in message


# -- the command line ---------------------------------------------------------------------


def test_send_dry_run_prints_the_line_and_sends_nothing(fake: FakeScheduler) -> None:
    """``send --dry-run`` prints the JSON line and exits 0 without any request."""
    result = cli_runner().invoke(
        main,
        ["send", "warning", "-m", "3 rows skipped", "--dry-run"],
        env=fake.env(42, "handle-42"),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert json_lines(result.stderr) == [
        {
            "dry_run": True,
            "request_id": 42,
            "requestHandle": "handle-42",
            "status": "WARNING",
            "statusMessage": "3 rows skipped",
        }
    ]
    assert fake.requests == []


def test_send_dry_run_needs_no_setting(tmp_path: Path) -> None:
    """ESS_CALLBACK_DRY_RUN=1 alone is enough for ``send``; nothing lands in the outbox."""
    result = cli_runner().invoke(main, ["send", "SUCCESS"], env={"ESS_CALLBACK_DRY_RUN": "1"})
    assert result.exit_code == 0, result.stderr
    (line,) = json_lines(result.stderr)
    assert line["request_id"] is None and line["requestHandle"] is None
    assert line["status"] == "SUCCESS"
    assert not (tmp_path / "outbox").exists()


def test_send_dry_run_still_validates_a_given_request_id() -> None:
    """A malformed request id is a configuration error (exit 2) even in dry run."""
    result = cli_runner().invoke(main, ["send", "SUCCESS", "--dry-run", "--request-id", "x1"])
    assert result.exit_code == 2
    assert "ESS_REQUEST_ID" in result.stderr
    assert "dry_run" not in result.stderr


def _ids(fake: FakeScheduler) -> dict[str, Any]:
    return {"base_url": fake.url, "request_id": 42, "request_handle": "handle-42"}
