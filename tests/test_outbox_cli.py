"""``ess-callback outbox`` (SPEC 12): list, drop and requeue from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runner import cli_runner
from click.testing import Result
from helpers import outbox_files

from ess_callback import Callback, RequestNotFoundError, SchedulerUnavailableError
from ess_callback.cli import main
from ess_callback.outbox import _outbox
from ess_callback.testing import FakeScheduler


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """The outbox the autouse clean_env points ESS_CALLBACK_OUTBOX at."""
    return tmp_path / "outbox"


def outbox(*args: str, env: dict[str, str] | None = None) -> Result:
    return cli_runner().invoke(main, ["outbox", *args], env=env)


def spool(
    folder: Path, request_id: int, status: str = "SUCCESS", error: Exception | None = None
) -> Path:
    return _outbox.spool(
        folder,
        Callback(request_id, f"handle-{request_id}", status, f"ended {status}"),
        base_url="https://ess.example.com",
        attempts=8,
        error=error or SchedulerUnavailableError("ESS answered 503", attempts=8),
    )


def reject(folder: Path, path: Path) -> Path:
    """*path* moved to rejected/ as flush does (with the reason)."""
    record = json.loads(path.read_text())
    record["rejected"] = {"message": "ESS answered 404: no such request", "http_status": 404}
    (folder / "rejected").mkdir(mode=0o700, exist_ok=True)
    target = folder / "rejected" / path.name
    target.write_text(json.dumps(record))
    path.unlink()
    return target


@pytest.fixture
def filled(box: Path) -> dict[str, Path]:
    """One pending, one rejected, one corrupt (in corrupt/), one unreadable pending file and
    one lease of a running execution."""
    pending = spool(box, 42)
    rejected = reject(box, spool(box, 43, "ERROR"))
    (box / "corrupt").mkdir(mode=0o700)
    corrupt = box / "corrupt" / "00000000000000000001-7-success-aaaaaa.json"
    corrupt.write_text("{")
    unreadable = box / "00000000000000000002-8-success-bbbbbb.json"
    unreadable.write_text("not json")
    (box / "running").mkdir(mode=0o700)
    lease = box / "running" / "run-44.json"
    lease.write_text(  # as a run wrapper writes it (SPEC 11), started long ago
        json.dumps(
            {
                "format": 1,
                "kind": "run",
                "base_url": "https://ess.example.com",
                "request_id": 44,
                "request_handle": "handle-44",
                "host": "host1",
                "boot_id": None,
                "pid": 4711,
                "pid_start_time": None,
                "pgid": 4711,
                "started": "2026-12-03T23:18:25+00:00",
                "command": "./nightly.sh",
            }
        )
    )
    return {
        "pending": pending,
        "rejected": rejected,
        "corrupt": corrupt,
        "unreadable": unreadable,
        "lease": lease,
    }


def test_json_lists_every_state_with_the_documented_fields(filled: dict[str, Path]) -> None:
    """--json: one array; pending, rejected, corrupt (both kinds) and running, each object
    with name, state, request_id, status, age_seconds, attempts and last_error."""
    result = outbox("--json")
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)
    keys = {"name", "state", "request_id", "status", "age_seconds", "attempts", "last_error"}
    assert all(set(item) == keys for item in items)
    by_name = {item["name"]: item for item in items}
    pending = by_name[filled["pending"].name]
    assert (pending["state"], pending["request_id"], pending["status"], pending["attempts"]) == (
        "pending",
        42,
        "SUCCESS",
        8,
    )
    assert pending["last_error"] == "ESS answered 503" and pending["age_seconds"] >= 0
    rejected = by_name[filled["rejected"].name]
    assert rejected["state"] == "rejected" and "404" in rejected["last_error"]
    assert by_name[filled["corrupt"].name]["state"] == "corrupt"
    unreadable = by_name[filled["unreadable"].name]
    assert unreadable["state"] == "corrupt" and unreadable["request_id"] is None
    lease = by_name[filled["lease"].name]
    assert (lease["state"], lease["request_id"]) == ("running", 44)
    assert lease["age_seconds"] > 3600


def test_text_listing_has_one_line_per_file(filled: dict[str, Path]) -> None:
    """The bare command: one line per file with state, name, request, status and error."""
    result = outbox()
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()[1:]
    assert len(lines) == 5
    line = next(line for line in lines if filled["pending"].name in line)
    for text in ("pending", "request 42", "SUCCESS", "attempts 8", "last error: ESS answered 503"):
        assert text in line


def test_an_empty_or_missing_outbox_says_so(box: Path) -> None:
    """No outbox folder: exit 0, a line saying it holds nothing; --json: []."""
    assert "nothing pending" in outbox().stdout
    assert json.loads(outbox("--json").stdout) == []


def test_last_error_is_redacted(box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A credential of this environment quoted in a last error is shown as ***."""
    spool(box, 42, error=SchedulerUnavailableError("proxy said s3cr3t-token", attempts=1))
    monkeypatch.setenv("ESS_TOKEN", "s3cr3t-token")
    result = outbox("--json")
    assert "s3cr3t-token" not in result.stdout and "***" in result.stdout


def test_drop_deletes_and_says_the_status_is_given_up(filled: dict[str, Path]) -> None:
    """drop NAME removes a pending and a rejected entry and says their status is given up."""
    result = outbox("drop", filled["pending"].name, filled["rejected"].name)
    assert result.exit_code == 0, result.stderr
    assert not filled["pending"].exists() and not filled["rejected"].exists()
    assert "SUCCESS for request 42 is given up" in result.stdout
    assert "ERROR for request 43 is given up" in result.stdout


def test_drop_of_a_missing_name_exits_1_and_drops_the_others(filled: dict[str, Path]) -> None:
    """A name that does not exist: exit 1 with a line naming it; the others still go."""
    result = outbox("drop", "nope.json", filled["corrupt"].name)
    assert result.exit_code == 1
    assert "no outbox entry nope.json" in result.stderr
    assert not filled["corrupt"].exists()


@pytest.mark.parametrize("name", ["../x.json", "rejected/a.json", "..", ".hidden.json", ""])
def test_names_cannot_leave_the_folder(box: Path, tmp_path: Path, name: str) -> None:
    """A name with a path (``../x``) is a usage error: nothing outside is touched."""
    victim = tmp_path / "x.json"
    victim.write_text("{}")
    for sub in ("drop", "requeue"):
        result = outbox(sub, name)
        assert result.exit_code == 2, result.stdout
    assert victim.exists()


def test_requeue_moves_a_rejected_entry_back_and_flush_sends_it(
    box: Path, fake: FakeScheduler
) -> None:
    """After the cause is fixed: requeue NAME puts it among the pending, flush delivers it."""
    path = _outbox.spool(
        box,
        Callback(42, "handle-42", "SUCCESS", None),
        base_url=fake.url,
        attempts=1,
        error=RequestNotFoundError("ESS answered 404", attempts=1),
    )
    rejected = reject(box, path)
    result = outbox("requeue", rejected.name)
    assert result.exit_code == 0, result.stderr
    assert outbox_files(box) == [box / rejected.name] and not rejected.exists()
    flushed = cli_runner().invoke(main, ["flush"])
    assert flushed.exit_code == 0, flushed.stderr
    assert [c.status for c in fake.received] == ["SUCCESS"]


def test_requeue_rejected_moves_them_all(box: Path) -> None:
    """--rejected requeues every rejected entry; a NAME not rejected is exit 1."""
    for rid in (1, 2):
        reject(box, spool(box, rid))
    result = outbox("requeue", "--rejected")
    assert result.exit_code == 0 and result.stdout.count("requeued") == 2
    assert len(outbox_files(box)) == 2 and outbox_files(box / "rejected") == []
    missing = outbox("requeue", "nope.json")
    assert missing.exit_code == 1 and "no rejected entry nope.json" in missing.stderr


def test_requeue_needs_names_or_rejected(box: Path) -> None:
    """Neither NAME nor --rejected (or both) is a usage error."""
    assert outbox("requeue").exit_code == 2
    assert outbox("requeue", "a.json", "--rejected").exit_code == 2


def test_outbox_option_on_the_group_and_help(tmp_path: Path) -> None:
    """--outbox DIR chooses the folder; --help shows examples of every subcommand."""
    other = tmp_path / "other"
    spool(other, 7)
    result = outbox("--outbox", str(other), "--json")
    assert [item["request_id"] for item in json.loads(result.stdout)] == [7]
    help_text = outbox("--help").stdout
    for text in ("ess-callback outbox drop", "requeue --rejected", "--json"):
        assert text in help_text
    assert os.path.isdir(other)


def test_an_outbox_that_is_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """--outbox naming a file: one line saying it cannot be read, exit 2, no traceback."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    result = outbox("--outbox", str(not_a_folder))
    assert result.exit_code == 2
    assert result.stderr.startswith("ess-callback: cannot read outbox folder")
    assert "Traceback" not in result.stderr
