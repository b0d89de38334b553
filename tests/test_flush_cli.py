"""``ess-callback flush`` (SPEC 6 and 7): summary line, exit codes, errors on one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import cli_runner
from click.testing import Result

from ess_callback import Callback, SchedulerUnavailableError, Status
from ess_callback.cli import main
from ess_callback.outbox import _outbox
from ess_callback.testing import FakeScheduler

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")


def spool(folder: Path, base_url: str, request_id: int, status: str = "SUCCESS") -> Path:
    return _outbox.spool(
        folder,
        Callback(request_id, f"handle-{request_id}", status, f"ended {status}"),
        base_url=base_url,
        attempts=1,
        error=SchedulerUnavailableError("down", attempts=1),
    )


def flush(*args: str, env: dict[str, str] | None = None) -> Result:
    return cli_runner().invoke(main, ["flush", *args], env=env)


@pytest.fixture
def fake(fake: FakeScheduler) -> FakeScheduler:
    """The shared fake with requests 1 to 40 submitted, each with the handle spool() gives
    it (ESS knows every request whose status waits in an outbox)."""
    for request_id in range(1, 41):
        fake.submit(request_id, f"handle-{request_id}")
    return fake


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """The outbox the autouse clean_env points ESS_CALLBACK_OUTBOX at."""
    return tmp_path / "outbox"


def test_help_names_the_option_the_codes_and_an_example() -> None:
    """``flush --help`` documents --outbox, its variable and the exit codes."""
    result = flush("--help")
    assert result.exit_code == 0
    for text in ("--outbox DIR", "ESS_CALLBACK_OUTBOX", "75", "rejected/", "ess-callback flush"):
        assert text in result.output


def test_a_missing_outbox_is_exit_0_with_a_clear_line(box: Path) -> None:
    """Nothing to flush is a success, said in one line on stdout."""
    result = flush()
    assert result.exit_code == 0
    assert result.stdout == f"ess-callback flush: no outbox at {box}: nothing to send\n"
    assert result.stderr == ""


def test_delivers_to_the_fake_and_empties_the_outbox(fake: FakeScheduler, box: Path) -> None:
    """Two kept statuses are delivered, deleted, and summed up in one line: exit 0."""
    spool(box, fake.url, 1, "SUCCESS")
    spool(box, fake.url, 2, "BUSINESS_ERROR")
    result = flush()
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ess-callback flush: delivered 2, rejected 0, pending 0 (outbox {box})\n"
    )
    assert [(c.request_id, c.status) for c in fake.received] == [
        (1, Status.SUCCESS),
        (2, Status.BUSINESS_ERROR),
    ]
    assert fake.received[0].message == "ended SUCCESS"
    assert list(box.glob("*.json")) == []


def test_the_outbox_option_wins_over_the_variable(fake: FakeScheduler, tmp_path: Path) -> None:
    """--outbox DIR is flushed, not ESS_CALLBACK_OUTBOX."""
    other = tmp_path / "other"
    spool(other, fake.url, 3)
    result = flush("--outbox", str(other))
    assert result.exit_code == 0
    assert f"delivered 1, rejected 0, pending 0 (outbox {other})" in result.stdout


def test_the_xdg_state_folder_is_the_default(
    fake: FakeScheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no option and no ESS_CALLBACK_OUTBOX, $XDG_STATE_HOME/ess-callback/outbox."""
    monkeypatch.delenv("ESS_CALLBACK_OUTBOX")
    default = tmp_path / "state" / "ess-callback" / "outbox"
    spool(default, fake.url, 4)
    result = flush()
    assert result.exit_code == 0
    assert str(default) in result.stdout and len(fake.received) == 1


def test_a_request_the_scheduler_does_not_know_is_rejected_exit_1(
    fake: FakeScheduler, box: Path
) -> None:
    """404 moves the file to rejected/ with the reason, says so on stderr: exit 1."""
    fake.set_state(5, None)
    path = spool(box, fake.url, 5)
    result = flush()
    assert result.exit_code == 1
    assert "delivered 0, rejected 1, pending 0" in result.stdout
    assert "rejected" in result.stderr and "404" in result.stderr
    reason = json.loads((box / "rejected" / path.name).read_text())["rejected"]
    assert reason["http_status"] == 404 and reason["error_code"]
    assert not path.exists()


def test_a_status_contradicting_the_recorded_end_is_rejected(
    fake: FakeScheduler, box: Path
) -> None:
    """A kept SUCCESS for a request ESS already ended as ERROR is refused (400), never forced."""
    fake.set_state(6, "ERROR")
    spool(box, fake.url, 6, "SUCCESS")
    result = flush()
    assert result.exit_code == 1
    assert fake.received == []


@pytest.mark.integration
def test_wrong_credentials_keep_the_file_until_fixed(tmp_path: Path, box: Path) -> None:
    """401 keeps the status (exit 75); a flush with the right credentials delivers it."""
    with FakeScheduler(username="batch", password="right-pw") as ess:
        ess.submit(7, "handle-7")
        path = spool(box, ess.url, 7, "WARNING")
        wrong = flush(
            env={"ESS_USERNAME": "batch", "ESS_PASSWORD": "old-pw", "ESS_BASE_URL": ess.url}
        )
        assert wrong.exit_code == 75
        assert "delivered 0, rejected 0, pending 1" in wrong.stdout
        assert "ESS_PASSWORD" in wrong.stderr and "old-pw" not in wrong.output
        assert path.exists() and ess.received == []

        secret = tmp_path / "pw"
        secret.write_text("right-pw\n")
        fixed = flush(
            env={"ESS_USERNAME": "batch", "ESS_PASSWORD_FILE": str(secret), "ESS_BASE_URL": ess.url}
        )
        assert fixed.exit_code == 0, fixed.output
        assert [c.status for c in ess.received] == [Status.WARNING]
        assert not path.exists()


def test_an_unreachable_scheduler_keeps_everything_exit_75(
    fake: FakeScheduler, box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Still down: files stay, the summary counts them pending, exit 75. A reset may be
    one call's bad luck, so each file gets its one attempt; with no retry budget, none
    gets a second."""
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "0")
    fake.reset_next(10)
    for rid in (1, 2, 3):
        spool(box, fake.url, rid)
    result = flush()
    assert result.exit_code == 75
    assert "delivered 0, rejected 0, pending 3" in result.stdout
    assert len(list(box.glob("*.json"))) == 3
    assert len(fake.requests) == 3  # one attempt each, none sent twice


def test_a_refused_connection_gives_the_server_up_after_three_attempts(box: Path) -> None:
    """Nothing listens at the port: three attempts in a row find it so, the other files are
    not tried, and the summary says the server was given up and why."""
    with FakeScheduler() as gone:
        url = gone.url  # a port that refuses connections once the fake has stopped
    for rid in (1, 2, 3, 4, 5):
        spool(box, url, rid)
    result = flush()
    assert result.exit_code == 75
    assert "delivered 0, rejected 0, pending 5" in result.stdout
    assert f"gave up on {url} for this run: 3 attempts in a row without an answer" in (
        result.stdout
    )
    assert "connection refused" in result.stdout
    attempts = [json.loads(p.read_text())["attempts"] for p in sorted(box.glob("*.json"))]
    assert attempts == [2, 2, 2, 1, 1]  # spooled after 1; the three oldest tried once more
    assert result.stderr.count("WARNING") == 2  # the first failure, and giving up


def test_a_corrupt_file_warns_and_does_not_stop_the_flush(fake: FakeScheduler, box: Path) -> None:
    """A truncated file goes to corrupt/ with a warning naming it; the others go out, and
    the exit status is 1 (a lost status is not a success), as for a rejected one."""
    spool(box, fake.url, 1)
    bad = box / "00000000000000000001-9-success-000000.json"
    bad.write_bytes(b'{"format": 1, "status": "SUCC')
    result = flush()
    assert result.exit_code == 1
    assert "delivered 1, rejected 0, pending 0" in result.stdout
    assert bad.name in result.stderr and "Traceback" not in result.output
    assert "1 unreadable moved to" in result.stdout
    assert (box / "corrupt" / bad.name).exists() and len(fake.received) == 1


def test_quiet_hides_warnings_and_verbose_shows_each_delivery(
    fake: FakeScheduler, box: Path
) -> None:
    """-q leaves only errors on stderr; -v logs every delivered file."""
    (box).mkdir()
    (box / "00000000000000000001-9-success-000000.json").write_text("{")
    assert flush("-q").stderr == ""
    spool(box, fake.url, 2)
    verbose = flush("-v")
    assert "delivered SUCCESS for request 2" in verbose.stderr


def test_an_outbox_under_a_regular_file_is_one_line_exit_2(tmp_path: Path) -> None:
    """An outbox path that cannot be a folder: one line naming it, exit 2, no traceback."""
    (tmp_path / "plain").write_text("")
    result = flush("--outbox", str(tmp_path / "plain"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"outbox {tmp_path / 'plain'} is not a folder" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder whatever its mode")
def test_an_unreadable_outbox_is_one_line_exit_2(box: Path) -> None:
    """A folder the flush may not list: one line naming it, exit 2."""
    box.mkdir()
    box.chmod(0)
    try:
        result = flush()
    finally:
        box.chmod(0o700)
    assert result.exit_code == 2
    assert f"cannot read outbox folder {box}" in result.stderr


def test_malformed_credentials_are_exit_2_before_anything_is_sent(
    fake: FakeScheduler, box: Path
) -> None:
    """ESS_USERNAME without a password is a configuration error: one line, exit 2."""
    spool(box, fake.url, 1)
    result = flush(env={"ESS_USERNAME": "batch"})
    assert result.exit_code == 2
    assert "ESS_PASSWORD" in result.stderr and result.stderr.count("\n") == 1
    assert fake.requests == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ESS_MEDIA_TYPE", "text/plain"), ("ESS_CALLBACK_RETRY_SECONDS", "nan")],
)
def test_a_malformed_variable_is_named_without_options_flush_lacks(
    fake: FakeScheduler, box: Path, variable: str, value: str
) -> None:
    """A bad ESS_* variable is one line naming it, with no hint of an option flush does not
    have (flush has no --media-type); exit 2, nothing sent."""
    spool(box, fake.url, 1)
    result = flush(env={variable: value})
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and variable in result.stderr
    assert "(or --" not in result.stderr
    assert fake.requests == []


@pytest.mark.integration
def test_the_console_script_flushes_in_a_real_process(
    fake: FakeScheduler, box: Path, tmp_path: Path
) -> None:
    """The installed ``ess-callback flush`` delivers, prints the summary, exits 0."""
    spool(box, fake.url, 12, "CANCEL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env["ESS_CALLBACK_OUTBOX"] = str(box)
    proc = subprocess.run(
        [SCRIPT, "flush"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ess-callback flush: delivered 1, rejected 0, pending 0")
    assert [c.status for c in fake.received] == [Status.CANCEL]


@pytest.mark.integration
def test_the_console_script_reports_an_unusable_outbox_without_traceback(tmp_path: Path) -> None:
    """A real process with an outbox under a regular file: exit 2 and one line."""
    (tmp_path / "plain").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env["ESS_CALLBACK_OUTBOX"] = str(tmp_path / "plain" / "outbox")
    proc = subprocess.run(
        [SCRIPT, "flush"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("ess-callback: ") and proc.stderr.count("\n") == 1
    assert f"outbox {tmp_path / 'plain' / 'outbox'} is under a file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_during_a_flush_is_one_line_and_exit_130(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted flush says what became of the files, without a traceback."""
    from ess_callback import outbox

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(outbox, "flush_outbox", interrupted)
    result = flush()
    assert result.exit_code == 130
    assert result.stderr == (
        "ess-callback: flush interrupted; what was not delivered stays in the outbox\n"
    )


def test_dry_run_sends_nothing_and_exits_0(fake: FakeScheduler, box: Path) -> None:
    """``flush --dry-run`` prints the would-be callbacks and leaves every file in place."""
    path = spool(box, fake.url, 31, "PAUSE")
    result = flush("--dry-run")
    assert result.exit_code == 0
    assert '"status": "PAUSE"' in result.stderr and '"dry_run": true' in result.stderr
    assert result.stdout.startswith("ess-callback flush: dry run: would send 1, 0 unreadable")
    assert path.exists() and fake.requests == []


def test_a_malformed_dry_run_variable_is_exit_2(box: Path) -> None:
    """ESS_CALLBACK_DRY_RUN=maybe is a configuration error naming the variable."""
    result = flush(env={"ESS_CALLBACK_DRY_RUN": "maybe"})
    assert result.exit_code == 2
    assert "ESS_CALLBACK_DRY_RUN" in result.stderr
