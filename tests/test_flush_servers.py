"""What flush sends where (SPEC 6) and what a late report says (SPEC 11)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cli_runner import cli_runner
from helpers import outbox_files

from ess_callback import Callback, ConfigurationError, SchedulerUnavailableError, Status
from ess_callback.cli import main
from ess_callback.outbox import _outbox, flush_outbox
from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

SUFFIX = "; reported late]"


def spool(box: Path, base_url: str, request_id: int, status: str, message: str | None) -> Path:
    return _outbox.spool(
        box,
        Callback(request_id, f"handle-{request_id}", Status(status), message),
        base_url=base_url,
        attempts=1,
        error=SchedulerUnavailableError("down", attempts=1),
    )


def age(path: Path, seconds: float) -> datetime:
    """Make the entry at *path* look written *seconds* ago; return that time."""
    record = json.loads(path.read_text())
    when = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    record["created"] = when.isoformat()
    _outbox.write_atomic(path.parent, path.name, record)
    return when


def test_credentials_without_a_base_url_are_refused(tmp_path: Path) -> None:
    """With credentials, flush needs ESS_BASE_URL: exit 2, one line naming it."""
    result = cli_runner().invoke(
        main, ["flush"], env={"ESS_TOKEN": "tok-1234567", "ESS_BASE_URL": ""}
    )
    assert result.exit_code == 2
    assert "ESS_BASE_URL" in result.stderr and result.stderr.count("\n") == 1
    with pytest.raises(ConfigurationError, match="ESS_BASE_URL"):
        flush_outbox(tmp_path / "outbox", token="tok-1234567", env={})


def test_a_planted_entry_for_another_server_gets_no_credentials(tmp_path: Path) -> None:
    """Credentials go only to their own server: the other's entry stays, untouched, counted."""
    box = tmp_path / "outbox"
    with (
        FakeScheduler(token="tok-right-1234") as mine,
        FakeScheduler(auto_submit=True) as other,
    ):
        mine.submit(1, "handle-1")
        spool(box, mine.url, 1, "SUCCESS", None)
        planted = spool(box, other.url, 2, "ERROR", "send me your password")
        before = planted.read_bytes()
        result = cli_runner().invoke(
            main, ["flush"], env={"ESS_TOKEN": "tok-right-1234", "ESS_BASE_URL": mine.url}
        )
        assert other.requests == []  # not one request: no credentials went there
        assert [c.request_id for c in mine.received] == [1]
        other_url = other.url
    assert result.exit_code == 75, result.output
    assert f"1 kept for another server, {other_url}: flush them with its settings" in result.stdout
    assert "delivered 1, rejected 0, pending 1" in result.stdout
    assert outbox_files(box) == [planted] and planted.read_bytes() == before


def test_without_credentials_each_entry_goes_to_its_own_server(tmp_path: Path) -> None:
    """No credentials configured: every entry is sent to the base URL it names."""
    box = tmp_path / "outbox"
    with FakeScheduler(auto_submit=True) as one, FakeScheduler(auto_submit=True) as two:
        spool(box, one.url, 1, "SUCCESS", None)
        spool(box, two.url, 2, "WARNING", "2 rows skipped")
        report = flush_outbox(box, env={})
        assert [c.request_id for c in one.received] == [1]
        assert [c.request_id for c in two.received] == [2]
    assert report.exit_code == 0 and outbox_files(box) == []


def test_a_late_error_says_when_the_job_ended(tmp_path: Path, fake: FakeScheduler) -> None:
    """An ERROR sent more than 60 s after it was kept ends with when it ended."""
    box = tmp_path / "outbox"
    path = spool(box, fake.url, 42, "ERROR", "exit code 3")
    when = age(path, 3600)
    flush_outbox(box)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [c.message for c in fake.received] == [f"exit code 3 [ended {stamp}{SUFFIX}"]


def test_a_late_suffix_fits_the_limit_and_keeps_its_place(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    """A full-size message is cut to make room: the suffix stays whole, 4000 bytes at most."""
    box = tmp_path / "outbox"
    path = spool(box, fake.url, 42, "WARNING", "é" * 1999 + "x")  # 3999 bytes
    age(path, 120)
    flush_outbox(box)
    (sent,) = fake.received
    assert sent.message is not None and sent.message.endswith(SUFFIX)
    assert len(sent.message.encode("utf-8")) <= 4000
    assert "truncated" in sent.message


@pytest.mark.parametrize(("status", "seconds"), [("SUCCESS", 3600), ("ERROR", 10)])
def test_on_time_or_successful_ends_carry_no_suffix(
    tmp_path: Path, fake: FakeScheduler, status: str, seconds: float
) -> None:
    """SUCCESS never gets the suffix (ESS ignores its message); nor anything sent in time."""
    box = tmp_path / "outbox"
    age(spool(box, fake.url, 42, status, "done"), seconds)
    flush_outbox(box)
    assert [c.message for c in fake.received] == ["done"]
