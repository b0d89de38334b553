"""The outbox (SPEC 6): atomic spooling, reading back, claims, and ``flush_outbox``."""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import stat
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from cli_runner import cli_runner
from helpers import outbox_files

from ess_callback import (
    BusinessError,
    Callback,
    ConfigurationError,
    JobExecution,
    SchedulerClient,
    SchedulerUnavailableError,
    Status,
)
from ess_callback._client import RetryPolicy
from ess_callback._errors import AuthenticationError
from ess_callback._sender import HttpSender
from ess_callback.outbox import (
    CorruptEntryError,
    OutboxError,
    _folders,
    _outbox,
    flush_outbox,
    list_outbox,
    read_entry,
)

BASE = "https://ess.example.com"
OTHER = "https://other.example.com"
PASSWORD = "pa55-w0rd-SECRET"
TOKEN = "tok-3f9a1c77-SECRET"


def url(request_id: int, base: str = BASE) -> str:
    return f"{base}/ess/rest/scheduler/v1/requests/{request_id}/executionStatus"


def no_sleep(seconds: float) -> None:
    """Retries in these tests must not wait."""


def spool(
    folder: Path,
    request_id: int = 42,
    status: str = "SUCCESS",
    message: str | None = None,
    base_url: str = BASE,
) -> Path:
    error = SchedulerUnavailableError(
        "ESS answered 503", http_status=503, error_code="ESS-00503", attempts=3
    )
    return _outbox.spool(
        folder,
        Callback(request_id, f"handle-{request_id}", status, message),
        base_url=base_url,
        attempts=3,
        error=error,
    )


@pytest.fixture
def box(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


# -- spooling --------------------------------------------------------------------------------
def test_spool_writes_every_field_and_no_credentials(box: Path) -> None:
    """A spooled file holds the callback, base URL, time, attempts, last error and format."""
    path = spool(box, 42, "WARNING", "3 rows skipped")
    data = json.loads(path.read_text())
    assert data["format"] == _outbox.FORMAT_VERSION == 1
    assert data["base_url"] == BASE
    assert (data["request_id"], data["request_handle"]) == (42, "handle-42")
    assert (data["status"], data["message"]) == ("WARNING", "3 rows skipped")
    assert data["attempts"] == 3
    assert data["last_error"]["type"] == "SchedulerUnavailableError"
    assert (data["last_error"]["http_status"], data["last_error"]["error_code"]) == (
        503,
        "ESS-00503",
    )
    assert datetime.fromisoformat(data["created"]).tzinfo is not None
    assert not ({"password", "token", "username", "auth"} & set(data))


def test_spool_modes_are_0700_and_0600_whatever_the_umask(box: Path) -> None:
    """The folder is created 0700 and each file 0600, even under umask 000."""
    old = os.umask(0)
    try:
        path = spool(box / "nested")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(box / "nested").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_missing_parents_are_created_0700_under_umask_0(tmp_path: Path) -> None:
    """Every folder spool() creates, parents included, is 0700 even under umask 000."""
    tmp_path.chmod(0o755)
    old = os.umask(0)
    try:
        spool(tmp_path / "state" / "ess-callback" / "outbox")
    finally:
        os.umask(old)
    for folder in ("state", "state/ess-callback", "state/ess-callback/outbox"):
        assert stat.S_IMODE(os.stat(tmp_path / folder).st_mode) == 0o700, folder
    # A parent that was already there is left as it was: it is not the outbox.
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o755


def test_a_folder_made_under_a_strict_umask_is_still_writable(box: Path) -> None:
    """umask 0277 would make mkdir's folder 0500; it is set to 0700, and the file written."""
    old = os.umask(0o277)
    try:
        path = spool(box)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(box).st_mode) == 0o700
    assert path.exists()


def test_an_existing_open_outbox_of_ours_is_tightened_to_0700(box: Path) -> None:
    """A pre-existing 0755 outbox folder (ours) becomes 0700 when a callback is kept there."""
    box.mkdir()
    box.chmod(0o755)
    spool(box)
    assert stat.S_IMODE(os.stat(box).st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_another_users_outbox_is_refused_and_left_as_it_is(box: Path) -> None:
    """Root spooling into another user's outbox: refused (exit 2), its mode unchanged."""
    box.mkdir()
    box.chmod(0o750)
    os.chown(box, 65534, 65534)
    with pytest.raises(ConfigurationError, match="belongs to another user") as info:
        spool(box)
    assert info.value.exit_code == 2
    assert stat.S_IMODE(os.stat(box).st_mode) == 0o750
    assert list(box.iterdir()) == []


def test_an_outbox_that_cannot_be_tightened_warns_once(
    box: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When chmod is refused, the callback is still kept and one warning names the folder."""
    box.mkdir()
    box.chmod(0o755)

    def refuse(path: object, mode: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_folders.os, "chmod", refuse)
    with caplog.at_level(logging.WARNING, logger="ess_callback"):
        first, second = spool(box, 1), spool(box, 2)
    assert first.exists() and second.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(box) in warnings[0] and "755" in warnings[0]


def test_spool_names_sort_oldest_first_and_leave_no_temp_file(box: Path) -> None:
    """File names start with the creation time, so name order is spool order; no temp left."""
    paths = [spool(box, rid) for rid in (5, 3, 9, 1)]
    assert _outbox.entry_paths(box) == paths
    assert [p.name for p in box.iterdir() if p.name.startswith(".")] == []


def test_spool_syncs_the_file_before_the_rename_and_the_folder_after(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Write, fsync the file, rename into place, then fsync the folder: the atomic recipe."""
    box.mkdir()
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src: Any, dst: Any, **dir_fds: Any) -> None:
        assert Path(src).name.startswith(".") and str(src).endswith(".tmp")
        events.append("replace")
        real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    spool(box)
    assert events == ["fsync-file", "replace", "fsync-dir"]


def test_a_failed_write_leaves_no_temp_file_and_names_the_folder(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk is an OutboxError naming the folder; no half-written file stays behind."""
    box.mkdir()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutboxError, match=f"{box}.*No space left on device"):
        spool(box)
    assert list(box.iterdir()) == []


def test_an_outbox_under_a_regular_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """A folder that cannot be created is one clear OutboxError naming it."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutboxError, match=r"cannot create outbox folder .*file/outbox"):
        spool(tmp_path / "file" / "outbox")


@responses.activate
def test_only_final_callbacks_that_may_succeed_later_are_spooled(box: Path) -> None:
    """503 and 401 spool a final status; 400 and any UPDATE never reach the outbox."""
    client = SchedulerClient(BASE, retry=RetryPolicy(attempts=2, sleep=no_sleep))
    sender = HttpSender(client, outbox=box)
    responses.add(responses.POST, url(1), status=503)
    responses.add(responses.POST, url(2), status=401)
    responses.add(responses.POST, url(3), status=400)
    responses.add(responses.POST, url(4), status=503)

    spooled = sender.send(Callback(1, "h", "ERROR", "boom"), final=True)
    refused = sender.send(Callback(2, "h", "PAUSE", None), final=True)
    rejected = sender.send(Callback(3, "h", "SUCCESS", None), final=True)
    update = sender.send(Callback(4, "h", "UPDATE", "50%"), final=False)

    assert spooled.spooled_to is not None and refused.spooled_to is not None
    assert rejected.spooled_to is None and update.spooled_to is None
    assert isinstance(refused.error, AuthenticationError)
    kept = {read_entry(p).request_id: read_entry(p).status for p in _outbox.entry_paths(box)}
    assert kept == {1: Status.ERROR, 2: Status.PAUSE}


@responses.activate
def test_a_password_the_job_printed_never_reaches_the_outbox(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JobExecution redacts its own password from the message before it is spooled."""
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "0")
    responses.add(responses.POST, url(7), status=503)
    with (
        pytest.raises(SchedulerUnavailableError),
        JobExecution(
            base_url=BASE,
            request_id=7,
            request_handle="h-7",
            username="batch",
            password=PASSWORD,
            outbox=box,
            handle_signals=False,
        ),
    ):
        raise BusinessError(f"login as batch/{PASSWORD} refused by the ledger")
    (path,) = _outbox.entry_paths(box)
    text = path.read_text()
    basic = base64.b64encode(f"batch:{PASSWORD}".encode()).decode()
    assert PASSWORD not in text and basic not in text
    assert "login as batch/*** refused" in read_entry(path).message  # type: ignore[operator]


@responses.activate
def test_a_token_in_a_sent_message_never_reaches_the_outbox(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ess-callback send`` redacts the bearer token from a message it spools."""
    from ess_callback.cli import main

    responses.add(responses.POST, url(8), status=502)
    env = {
        "ESS_BASE_URL": BASE,
        "ESS_REQUEST_ID": "8",
        "ESS_REQUEST_HANDLE": "h-8",
        "ESS_TOKEN": TOKEN,
        "ESS_CALLBACK_RETRY_SECONDS": "0",
        "ESS_CALLBACK_OUTBOX": str(box),
    }
    result = cli_runner().invoke(main, ["send", "ERROR", "-m", f"curl -H 'X: {TOKEN}'"], env=env)
    assert result.exit_code == 75, result.output
    (path,) = _outbox.entry_paths(box)
    assert TOKEN not in path.read_text()
    assert TOKEN not in result.output
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


# -- reading back ----------------------------------------------------------------------------
def test_read_entry_round_trips_a_spooled_file(box: Path) -> None:
    """What spool writes, read_entry reads back as the same callback."""
    path = spool(box, 11, "SUSPEND", "waiting for the ledger")
    entry = read_entry(path)
    assert entry.callback == Callback(11, "handle-11", Status.SUSPEND, "waiting for the ledger")
    assert (entry.base_url, entry.attempts, entry.path) == (BASE, 3, path)
    assert "handle-11" not in repr(entry) and "waiting" not in repr(entry)


GOOD: dict[str, Any] = {
    "format": 1,
    "base_url": BASE,
    "request_id": 1,
    "request_handle": "h",
    "status": "SUCCESS",
    "message": None,
}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"format": 1, "base_url": "https://ess.exam', "JSON"),
        (b"[1, 2]", "object"),
        (b"\xff\xfe", "JSON"),
        (json.dumps({**GOOD, "format": None}).encode(), "format"),
        (json.dumps({**GOOD, "request_id": 0}).encode(), "request id"),
        (json.dumps({**GOOD, "request_id": "12"}).encode(), "request_id"),
        (json.dumps({**GOOD, "request_id": True}).encode(), "request id"),
        (json.dumps({**GOOD, "request_handle": " "}).encode(), "request_handle"),
        (json.dumps({**GOOD, "status": "UPDATE"}).encode(), "never kept"),
        (json.dumps({**GOOD, "status": "DONE"}).encode(), "unknown status"),
        (json.dumps({**GOOD, "message": 5}).encode(), "message"),
        (json.dumps({**GOOD, "base_url": "ftp://x"}).encode(), "base URL"),
    ],
)
def test_parse_entry_refuses_what_is_not_a_kept_callback(raw: bytes, why: str) -> None:
    """Truncated, foreign or edited files are CorruptEntryError saying what is wrong."""
    with pytest.raises(CorruptEntryError, match=why):
        _outbox.parse_entry(Path("x.json"), raw)


def test_a_newer_format_is_not_called_corrupt() -> None:
    """A file from a newer ess-callback is left for that version, not destroyed."""
    with pytest.raises(_outbox.NewerFormatError, match="newer"):
        _outbox.parse_entry(Path("x.json"), json.dumps({**GOOD, "format": 2}).encode())


def test_list_outbox_shows_what_waits_and_skips_the_unreadable(box: Path) -> None:
    """list_outbox reads the waiting callbacks, oldest first, without sending anything."""
    spool(box, 1)
    (box / "00000000000000000002-junk.json").write_text("{")
    spool(box, 3)
    assert [e.request_id for e in list_outbox(box)] == [1, 3]
    assert list_outbox(box / "missing") == []


# -- claims ----------------------------------------------------------------------------------
def test_a_claimed_file_cannot_be_claimed_twice(box: Path) -> None:
    """While one flush holds a file, another gets None; after delivery it is gone for all."""
    path = spool(box)
    first = _outbox.claim(path)
    assert first is not None
    assert _outbox.claim(path) is None
    first.delete()
    first.release()
    assert _outbox.claim(path) is None


def test_a_claim_taken_before_a_rewrite_sees_the_file_is_no_longer_its(box: Path) -> None:
    """A flush that opened the file before another rewrote it does not send the old copy."""
    path = spool(box)
    holder = _outbox.claim(path)
    assert holder is not None
    late_fd = os.open(path, os.O_RDONLY)  # a second flush opened it, waits for the lock
    holder.replace_with({**json.loads(path.read_text()), "attempts": 9})
    # the rewritten file is still claimed by the holder
    assert _outbox.claim(path) is None
    holder.release()
    os.close(late_fd)
    again = _outbox.claim(path)
    assert again is not None and again.entry().attempts == 9
    again.release()


def test_threads_racing_for_claims_get_each_file_once(box: Path) -> None:
    """Eight threads claiming and deleting 30 files: every file is taken exactly once."""
    paths = [spool(box, rid) for rid in range(1, 31)]
    taken: list[Path] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for path in paths:
            held = _outbox.claim(path)
            if held is None:
                continue
            held.delete()
            held.release()
            with lock:
                taken.append(path)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(taken) == sorted(paths)


# -- flush_outbox ----------------------------------------------------------------------------
@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per file: a zero retry budget."""
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "0")


@responses.activate
def test_flush_delivers_oldest_first_and_deletes_each_file(box: Path) -> None:
    """Files are sent in creation order, each to its own base URL, and removed once sent."""
    for rid, base in ((3, BASE), (1, OTHER), (2, BASE)):
        spool(box, rid, "ERROR", f"job {rid} failed", base_url=base)
    responses.add(responses.POST, url(3), status=200)
    responses.add(responses.POST, url(1, OTHER), status=204)
    responses.add(responses.POST, url(2), status=200)

    report = flush_outbox(box)

    assert [c.request.url for c in responses.calls] == [url(3), url(1, OTHER), url(2)]
    body = json.loads(responses.calls[0].request.body)
    assert body == {"requestHandle": "handle-3", "status": "ERROR", "statusMessage": "job 3 failed"}
    assert (len(report.delivered), report.rejected, report.pending) == (3, [], [])
    assert report.exit_code == 0
    assert outbox_files(box) == []
    assert report.summary() == f"delivered 3, rejected 0, pending 0 (outbox {box})"


@pytest.mark.parametrize("status", [400, 403, 404, 409])
@responses.activate
def test_a_permanently_refused_file_moves_to_rejected_with_the_reason(
    box: Path, status: int
) -> None:
    """400, 403, 404 (any 4xx a retry cannot change) go to rejected/ with the reason; exit 1."""
    path = spool(box, 5)
    problem = {"title": "Refused", "detail": "no such request", "errorCode": "ESS-01234"}
    responses.add(responses.POST, url(5), status=status, json=problem)

    report = flush_outbox(box)

    assert not path.exists()
    moved = box / "rejected" / path.name
    assert report.rejected[0].now_at == moved
    data = json.loads(moved.read_text())
    assert data["rejected"]["http_status"] == status
    assert data["rejected"]["error_code"] == "ESS-01234"
    assert "no such request" in data["rejected"]["message"]
    assert data["reason"] == str(report.rejected[0].error)
    assert data["attempts"] == 4 and data["status"] == "SUCCESS"
    assert stat.S_IMODE(os.stat(box / "rejected").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(moved).st_mode) == 0o600
    assert report.exit_code == 1


@responses.activate
def test_a_401_keeps_the_file_and_spares_the_server_more_wrong_logins(
    box: Path, quick: None
) -> None:
    """401 keeps the file (attempt recorded) and no other file for that server is tried now."""
    first = spool(box, 1, base_url=BASE)
    spool(box, 2, base_url=BASE)
    spool(box, 3, base_url=OTHER)
    responses.add(responses.POST, url(1), status=401)
    responses.add(responses.POST, url(3, OTHER), status=200)

    report = flush_outbox(box)

    assert [c.request.url for c in responses.calls] == [url(1), url(3, OTHER)]
    assert [r.entry.request_id for r in report.pending if r.entry] == [1, 2]
    assert "not tried" in (report.pending[1].reason or "")
    kept = json.loads(first.read_text())
    assert kept["attempts"] == 4
    assert kept["last_error"]["http_status"] == 401
    assert report.exit_code == 75
    assert len(outbox_files(box)) == 2


@pytest.mark.parametrize("status", [503, 415, 307])
@responses.activate
def test_what_a_later_flush_may_deliver_stays_pending(box: Path, quick: None, status: int) -> None:
    """An unavailable scheduler, a media type or a redirect keep the file: exit 75."""
    path = spool(box, 6)
    responses.add(responses.POST, url(6), status=status)
    report = flush_outbox(box)
    assert path.exists() and report.exit_code == 75
    assert len(report.pending) == 1 and report.rejected == []


@responses.activate
def test_the_retry_budget_comes_from_the_flush_environment(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ESS_CALLBACK_RETRY_SECONDS bounds a flush's retries like a job's."""
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "0")
    spool(box, 6)
    responses.add(responses.POST, url(6), status=503)
    started = time.monotonic()
    flush_outbox(box)
    assert len(responses.calls) == 1
    assert time.monotonic() - started < 5


@responses.activate
def test_flush_uses_its_own_basic_credentials_and_media_type(
    box: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials (ESS_PASSWORD_FILE too) and ESS_MEDIA_TYPE come from the flushing env."""
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("ESS_USERNAME", "batch")
    monkeypatch.setenv("ESS_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("ESS_BASE_URL", BASE)  # the server these credentials belong to
    monkeypatch.setenv("ESS_MEDIA_TYPE", "application/vnd.oracle.resource+json")
    spool(box, 9, message=f"echoed {PASSWORD}")
    responses.add(responses.POST, url(9), status=200)

    flush_outbox(box)

    sent = responses.calls[0].request
    expected = base64.b64encode(f"batch:{PASSWORD}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert sent.headers["Content-Type"] == "application/vnd.oracle.resource+json"
    assert PASSWORD not in json.loads(sent.body)["statusMessage"]


@responses.activate
def test_explicit_arguments_win_over_the_environment(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flush_outbox(token=...) and outbox= beat ESS_TOKEN and ESS_CALLBACK_OUTBOX."""
    monkeypatch.setenv("ESS_TOKEN", "from-env")
    monkeypatch.setenv("ESS_BASE_URL", BASE)
    monkeypatch.setenv("ESS_CALLBACK_OUTBOX", str(box / "elsewhere"))
    spool(box, 4)
    responses.add(responses.POST, url(4), status=200)
    report = flush_outbox(box, token=TOKEN)
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert report.outbox == box and len(report.delivered) == 1


def test_malformed_flush_credentials_are_a_configuration_error(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Basic and bearer at once is refused before anything is sent."""
    monkeypatch.setenv("ESS_TOKEN", TOKEN)
    monkeypatch.setenv("ESS_USERNAME", "batch")
    monkeypatch.setenv("ESS_PASSWORD", PASSWORD)
    with pytest.raises(ConfigurationError, match="keep only one kind") as info:
        flush_outbox(box)
    assert TOKEN not in str(info.value) and PASSWORD not in str(info.value)


@responses.activate
def test_a_corrupt_file_is_moved_aside_and_the_rest_delivered(
    box: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreadable file goes to corrupt/ with a warning; the flush carries on, and its
    exit code is 1: the status that file held is lost, so this is no success."""
    spool(box, 1)
    broken = box / "00000000000000000001-7-success-abcdef.json"
    broken.write_text('{"format": 1, "base_url": "https://ess.exa')
    responses.add(responses.POST, url(1), status=200)

    with caplog.at_level(logging.WARNING, logger="ess_callback"):
        report = flush_outbox(box)

    assert (box / "corrupt" / broken.name).read_text().startswith('{"format": 1')
    assert len(report.corrupt) == 1 and len(report.delivered) == 1
    assert report.exit_code == 1
    assert broken.name in caplog.text and "not a complete JSON document" in caplog.text
    assert "1 unreadable moved to" in report.summary()


@responses.activate
def test_a_symlink_in_the_outbox_is_never_followed(box: Path, tmp_path: Path) -> None:
    """A link planted in the outbox is set aside, not read through and sent."""
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(GOOD))
    box.mkdir()
    link = box / "00000000000000000001-1-success-aaaaaa.json"
    link.symlink_to(target)
    report = flush_outbox(box)
    assert len(responses.calls) == 0
    assert len(report.corrupt) == 1 and (box / "corrupt" / link.name).is_symlink()
    assert target.exists()


@responses.activate
def test_temp_files_are_never_sent_and_stale_ones_are_cleaned(box: Path) -> None:
    """Temp files of interrupted writers are not sent; those older than an hour go away."""
    box.mkdir()
    fresh = box / ".00000000000000000001-1-success-aaaaaa.json.1234abcd.tmp"
    stale = box / ".00000000000000000002-2-success-bbbbbb.json.5678abcd.tmp"
    for path in (fresh, stale):
        path.write_text(json.dumps({**GOOD, "request_id": 1}))
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))

    report = flush_outbox(box)

    assert len(responses.calls) == 0
    assert fresh.exists() and not stale.exists()
    assert report.summary() == f"outbox {box} is empty: nothing to send"


@responses.activate
def test_a_file_from_a_newer_version_is_left_in_place(box: Path) -> None:
    """A newer format is not sent, not moved, and counts as pending."""
    box.mkdir()
    path = box / "00000000000000000001-1-success-aaaaaa.json"
    path.write_text(json.dumps({**GOOD, "format": 99}))
    report = flush_outbox(box)
    assert path.exists() and len(responses.calls) == 0
    assert report.exit_code == 75


@responses.activate
def test_plain_http_to_a_remote_host_is_refused_unless_allowed(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials never travel in clear to a non-loopback host from a flush either."""
    remote = "http://ess.example.com"
    spool(box, 2, base_url=remote)
    responses.add(responses.POST, url(2, remote), status=200)
    report = flush_outbox(box)
    assert len(responses.calls) == 0 and report.exit_code == 75
    assert "http://" in (report.pending[0].reason or "")

    monkeypatch.setenv("ESS_CALLBACK_ALLOW_HTTP", "1")
    assert flush_outbox(box).exit_code == 0
    assert len(responses.calls) == 1


def test_a_missing_or_empty_outbox_is_nothing_to_do(box: Path) -> None:
    """No folder, or no file in it: exit 0 with a line that says so."""
    missing = flush_outbox(box)
    assert (missing.existed, missing.exit_code) == (False, 0)
    assert missing.summary() == f"no outbox at {box}: nothing to send"
    box.mkdir()
    (box / "rejected").mkdir()
    empty = flush_outbox(box)
    assert (empty.existed, empty.exit_code) == (True, 0)
    assert "is empty" in empty.summary()


def test_the_default_folder_is_the_environment_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an argument: ESS_CALLBACK_OUTBOX, else $XDG_STATE_HOME/ess-callback/outbox."""
    assert flush_outbox().outbox == tmp_path / "outbox"
    monkeypatch.delenv("ESS_CALLBACK_OUTBOX")
    assert flush_outbox().outbox == tmp_path / "state" / "ess-callback" / "outbox"


def test_an_outbox_that_is_a_file_is_an_outbox_error(tmp_path: Path) -> None:
    """A regular file where the folder should be: OutboxError naming it (exit code 2)."""
    where = tmp_path / "outbox-file"
    where.write_text("")
    with pytest.raises(OutboxError, match="outbox-file is not a folder") as info:
        flush_outbox(where)
    assert info.value.exit_code == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_an_unwritable_outbox_is_refused_before_sending(box: Path) -> None:
    """A flush that could not delete delivered files would resend them: refuse up front."""
    spool(box)
    box.chmod(0o500)
    try:
        with pytest.raises(OutboxError, match=f"cannot write to outbox folder {box}"):
            flush_outbox(box)
    finally:
        box.chmod(0o700)


@responses.activate
def test_exit_code_prefers_rejected_over_pending(box: Path, quick: None) -> None:
    """Something rejected in this run is exit 1 even when something else is pending."""
    spool(box, 1, base_url=BASE)
    spool(box, 2, base_url=OTHER)
    responses.add(responses.POST, url(1), status=404)
    responses.add(responses.POST, url(2, OTHER), status=503)
    report = flush_outbox(box)
    assert (len(report.rejected), len(report.pending), report.exit_code) == (1, 1, 1)


@responses.activate
def test_a_dry_run_flush_prints_what_it_would_send_and_touches_nothing(
    box: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ESS_CALLBACK_DRY_RUN=1: one dry-run JSON line per file, no request, no file changed."""
    monkeypatch.setenv("ESS_CALLBACK_DRY_RUN", "1")
    path = spool(box, 21, "CANCEL", "operator stop")
    (box / "00000000000000000001-9-success-000000.json").write_text("{")
    before = sorted(p.name for p in box.iterdir())

    report = flush_outbox(box)

    assert len(responses.calls) == 0
    assert sorted(p.name for p in box.iterdir()) == before and path.exists()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line == {
        "dry_run": True,
        "request_id": 21,
        "requestHandle": "handle-21",
        "status": "CANCEL",
        "statusMessage": "operator stop",
    }
    assert (report.dry_run, report.exit_code, len(report.pending), len(report.corrupt)) == (
        True,
        0,
        1,
        1,
    )
    assert report.summary().startswith("dry run: would send 1, 1 unreadable")


def test_a_flush_while_recording_records_and_leaves_the_outbox_alone(box: Path) -> None:
    """Under record_callbacks(), flush_outbox records the callbacks and deletes nothing."""
    from ess_callback.testing import record_callbacks

    path = spool(box, 22, "ERROR", "boom")
    with record_callbacks() as recorded:
        report = flush_outbox(box)
    assert list(recorded) == [Callback(22, "handle-22", Status.ERROR, "boom")]
    assert path.exists() and report.dry_run
