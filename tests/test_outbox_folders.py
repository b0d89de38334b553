"""Outbox folders (SPEC 6, issue 14): never followed through a symbolic link, never another
user's, never open to others' writes; nothing outside them is written or chmodded."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import responses
from cli_runner import cli_runner
from helpers import outbox_files

from ess_callback import Callback, ConfigurationError, Status
from ess_callback.cli import main
from ess_callback.outbox import _outbox, flush_outbox

BASE = "https://ess.example.com"


def spool(box: Path, rid: int = 7) -> Path:
    """Keep one ERROR callback for request *rid* in *box*."""
    return _outbox.spool(
        box, Callback(rid, f"h-{rid}", Status.ERROR, "boom"), base_url=BASE, attempts=1, error=None
    )


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the outbox, 0755, that nothing may write into or chmod."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    folder.chmod(0o755)
    return folder


def untouched(folder: Path) -> None:
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755
    assert list(folder.iterdir()) == []


def test_an_outbox_that_is_a_symlink_is_refused(tmp_path: Path, elsewhere: Path) -> None:
    """ESS_CALLBACK_OUTBOX naming a symbolic link: refused, the target neither written nor
    chmodded."""
    link = tmp_path / "outbox-link"
    link.symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        spool(link)
    untouched(elsewhere)


def test_send_refuses_a_symlinked_outbox_before_sending(tmp_path: Path, elsewhere: Path) -> None:
    """send with ESS_CALLBACK_OUTBOX a symbolic link: one clear line, exit 2."""
    link = tmp_path / "outbox-link"
    link.symlink_to(elsewhere)
    env = {
        "ESS_BASE_URL": "http://127.0.0.1:9",
        "ESS_REQUEST_ID": "42",
        "ESS_REQUEST_HANDLE": "h",
        "ESS_CALLBACK_OUTBOX": str(link),
    }
    result = cli_runner().invoke(main, ["send", "SUCCESS"], env=env)
    assert result.exit_code == 2, result.stderr
    assert "symbolic link" in result.stderr and "ESS_CALLBACK_OUTBOX" in result.stderr
    assert "Traceback" not in result.stderr
    untouched(elsewhere)


@pytest.mark.parametrize("sub", ["corrupt", "rejected"])
@responses.activate
def test_a_planted_subfolder_link_is_never_followed(
    tmp_path: Path, elsewhere: Path, sub: str
) -> None:
    """corrupt -> /elsewhere or rejected -> /elsewhere: flush refuses it (exit 2) and never
    moves a file into, nor chmods, the folder it points to."""
    box = tmp_path / "box"
    spool(box, 7)
    (box / "bad.json").write_text("{not json")
    (box / sub).symlink_to(elsewhere)
    responses.add(
        responses.POST, f"{BASE}/ess/rest/scheduler/v1/requests/7/executionStatus", status=404
    )
    with pytest.raises(ConfigurationError, match="symbolic link"):
        flush_outbox(box, env={"ESS_BASE_URL": BASE})
    untouched(elsewhere)
    result = cli_runner().invoke(main, ["flush", "--outbox", str(box)], env={"ESS_BASE_URL": BASE})
    assert result.exit_code == 2, result.stderr
    assert "symbolic link" in result.stderr and "Traceback" not in result.stderr
    untouched(elsewhere)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_an_outbox_of_another_user_is_refused(tmp_path: Path) -> None:
    """An outbox folder owned by another user: exit 2 naming it, nothing written there."""
    box = tmp_path / "box"
    box.mkdir(mode=0o700)
    os.chown(box, 65534, 65534)
    result = cli_runner().invoke(main, ["flush", "--outbox", str(box)], env={})
    assert result.exit_code == 2, result.stderr
    assert "belongs to another user" in result.stderr
    with pytest.raises(ConfigurationError, match="another user"):
        spool(box)
    assert list(box.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_an_outbox_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    """A folder group or others may write: refused with a clear error, its mode kept."""
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(mode)
    with pytest.raises(ConfigurationError, match="writable by") as info:
        spool(box)
    assert info.value.exit_code == 2
    assert stat.S_IMODE(os.stat(box).st_mode) == mode
    result = cli_runner().invoke(
        main,
        ["send", "SUCCESS"],
        env={
            "ESS_CALLBACK_OUTBOX": str(box),
            "ESS_BASE_URL": BASE,
            "ESS_REQUEST_ID": "42",
            "ESS_REQUEST_HANDLE": "h",
        },
    )
    assert result.exit_code == 2 and "writable by" in result.stderr, result.stderr


def test_an_outbox_others_may_only_read_becomes_0700(tmp_path: Path) -> None:
    """Our own folder that others may read (0755) is set to 0700, subfolders too."""
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(0o755)
    (box / "corrupt").mkdir()
    (box / "corrupt").chmod(0o755)
    (box / "bad.json").write_text("{")
    flush_outbox(box, env={})
    assert stat.S_IMODE(os.stat(box).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(box / "corrupt").st_mode) == 0o700
    assert [p.name for p in outbox_files(box / "corrupt")] == ["bad.json"]
    assert json.loads(spool(box).read_text())["status"] == "ERROR"


def test_running_out_of_descriptors_leaves_entries_pending(tmp_path: Path) -> None:
    """Under ``ulimit -n 40`` with 60 entries and a scheduler answering 503 (each kept entry
    stays claimed, so descriptors run out), none is moved to corrupt/: an entry that cannot
    be opened now (EMFILE) stays pending."""
    import subprocess
    import sys

    from ess_callback.testing import FakeScheduler

    box = tmp_path / "box"
    wrapper = os.path.join(os.path.dirname(sys.executable), "ess-callback")
    with FakeScheduler(auto_submit=True) as fake:
        fake.fail_next(1000, 503)
        for rid in range(1, 61):
            _outbox.spool(
                box,
                Callback(rid, f"h-{rid}", Status.ERROR, "boom"),
                base_url=f"{fake.url}/p{rid}",  # one server each: every entry is tried
                attempts=1,
                error=None,
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
        env["ESS_CALLBACK_RETRY_SECONDS"] = "0"
        done = subprocess.run(
            ["bash", "-c", 'ulimit -n 40 && exec "$0" flush --outbox "$1"', wrapper, str(box)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert "Traceback" not in done.stderr, done.stderr
    assert outbox_files(box / "corrupt") == [], done.stderr
    assert len(outbox_files(box)) == 60, done.stderr
    assert done.returncode == 75, done.stderr
