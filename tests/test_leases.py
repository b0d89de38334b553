"""No execution left hanging (SPEC 11): leases, and flush reporting the dead.

Real processes killed with SIGKILL, real lease files, a real ``ess-callback flush``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import outbox_files, wait_until

from ess_callback import JobExecution, SchedulerUnavailableError, Status, _host
from ess_callback.outbox import _leases, flush_outbox, list_leases
from ess_callback.testing import FakeScheduler, record_callbacks

pytestmark = pytest.mark.integration

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")
GONE = "killed, e.g. by SIGKILL or the out-of-memory killer"

#: a Python job that says when it is inside its block, then waits to be killed
PYTHON_JOB = """
import time
from ess_callback import JobExecution
with JobExecution(update_interval=0) as job:
    job.update("started")
    print("inside", flush=True)
    time.sleep(600)
"""


def env_for(fake: FakeScheduler, outbox: Path, request_id: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env.update(fake.env(request_id=request_id, request_handle=f"handle-{request_id}"))
    env.update(ESS_CALLBACK_OUTBOX=str(outbox), PYTHONUNBUFFERED="1", **extra)
    return env


def leases(outbox: Path) -> list[Path]:
    return outbox_files(outbox / "running")


def flush_process(outbox: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env.update(ESS_CALLBACK_OUTBOX=str(outbox), **extra)
    return subprocess.run(
        [SCRIPT, "flush"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def test_a_python_job_holds_a_private_lease_without_credentials(tmp_path: Path) -> None:
    """Inside the block a 0600 lease names the request, host, boot and process; no secret."""
    outbox = tmp_path / "outbox"
    with FakeScheduler(username="batch", password="s3cret-pw") as fake:
        fake.submit(7, "handle-7")
        with JobExecution(
            base_url=fake.url,
            request_id=7,
            request_handle="handle-7",
            username="batch",
            password="s3cret-pw",
            outbox=outbox,
        ):
            (path,) = leases(outbox)
            raw = path.read_text()
            record = json.loads(raw)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE((outbox / "running").stat().st_mode) == 0o700
        assert leases(outbox) == []  # delivered: gone
        url = fake.url
    assert "s3cret-pw" not in raw and "batch" not in raw
    assert record["kind"] == "python" and record["pid"] == os.getpid()
    assert record["request_id"] == 7 and record["request_handle"] == "handle-7"
    assert record["base_url"] == url and record["host"] == os.uname().nodename
    assert record["started"].endswith("Z") and record["pgid"] is None
    if os.path.exists("/proc/self/stat"):
        assert isinstance(record["pid_start_time"], int) and record["boot_id"]


def test_dry_run_and_recording_write_no_lease(tmp_path: Path) -> None:
    """Nothing is written in dry run or while recording."""
    outbox = tmp_path / "outbox"
    with JobExecution(dry_run=True, outbox=outbox):
        pass
    with record_callbacks(), JobExecution(outbox=outbox):
        pass
    assert not outbox.exists()


def test_a_status_kept_in_the_outbox_ends_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An end that went to the outbox is safe: the lease is gone, the entry is there."""
    outbox = tmp_path / "outbox"
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "0")
    with FakeScheduler(auto_submit=True) as fake:
        fake.fail_next(100, 503)
        with (
            pytest.raises(SchedulerUnavailableError),
            JobExecution(base_url=fake.url, request_id=8, request_handle="h", outbox=outbox),
        ):
            assert len(leases(outbox)) == 1
    assert leases(outbox) == []
    assert len(outbox_files(outbox)) == 1


def test_sigkill_of_a_python_job_is_reported_as_error_by_the_next_flush(tmp_path: Path) -> None:
    """``kill -KILL`` inside ``with JobExecution()``: flush posts ERROR naming what happened."""
    outbox = tmp_path / "outbox"
    script = tmp_path / "job.py"
    script.write_text(PYTHON_JOB)
    with FakeScheduler() as fake:
        fake.submit(11, "handle-11")
        job = subprocess.Popen(
            [sys.executable, str(script)],
            env=env_for(fake, outbox, 11),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert job.stdout is not None
        assert job.stdout.readline() == "inside\n"
        (lease,) = leases(outbox)
        started = json.loads(lease.read_text())["started"]
        job.send_signal(signal.SIGKILL)
        job.wait(10)
        job.stdout.close()

        flushed = flush_process(outbox)
        assert flushed.returncode == 0, flushed.stderr
        assert "1 dead execution(s) reported as ERROR" in flushed.stdout
        ends = [c for c in fake.received if c.status is not Status.UPDATE]
    assert [(c.status, c.message) for c in ends] == [
        (
            Status.ERROR,
            f"the job ended without reporting: python process {job.pid} on "
            f"{os.uname().nodename} is gone (started {started}; {GONE})",
        )
    ]
    assert leases(outbox) == [] and outbox_files(outbox) == []


def test_sigkill_of_the_run_wrapper_takes_its_command_and_its_group_with_it(
    tmp_path: Path,
) -> None:
    """``kill -KILL`` of ``run``: the command dies with it (parent-death signal), flush stops
    what is left of its group and posts ERROR; no process of the job is left running."""
    outbox = tmp_path / "outbox"
    ready = tmp_path / "ready"
    command = f"sleep 300 & echo $! > {ready}.tmp && mv {ready}.tmp {ready}; sleep 300"
    with FakeScheduler() as fake:
        fake.submit(12, "handle-12")
        wrapper = subprocess.Popen(
            [SCRIPT, "run", "--", "sh", "-c", command], env=env_for(fake, outbox, 12)
        )
        wait_until(ready.exists, what="the command to start its background process")
        (lease,) = leases(outbox)
        record = json.loads(lease.read_text())
        shell, left_behind = record["pgid"], int(ready.read_text())
        assert record["kind"] == "run" and record["pid"] == wrapper.pid
        assert record["command"].startswith("sh -c sleep 300 &")
        wrapper.send_signal(signal.SIGKILL)
        wrapper.wait(10)
        if sys.platform.startswith("linux"):
            wait_until(lambda: not alive(shell), timeout=5, what="the command to die with run")
        assert alive(left_behind)  # outside the reach of the parent-death signal

        flushed = flush_process(outbox)
        assert flushed.returncode == 0, flushed.stderr
        assert "process(es) left by dead executions: SIGTERM" in flushed.stderr
        ends = [c for c in fake.received if c.status is not Status.UPDATE]
    assert not alive(left_behind) and not alive(shell)
    (end,) = ends
    assert end.status is Status.ERROR
    assert f"run process {wrapper.pid} on {os.uname().nodename} is gone" in (end.message or "")
    assert leases(outbox) == []


def test_a_restarted_host_reports_the_jobs_of_the_previous_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart (another boot id) a job's lease is reported: "host restarted"."""
    outbox = tmp_path / "outbox"
    script = tmp_path / "job.py"
    script.write_text(PYTHON_JOB)
    with FakeScheduler() as fake:
        fake.submit(13, "handle-13")
        job = subprocess.Popen(
            [sys.executable, str(script)], env=env_for(fake, outbox, 13), stdout=subprocess.PIPE
        )
        assert job.stdout is not None and job.stdout.readline() == b"inside\n"
        job.send_signal(signal.SIGKILL)  # what a power cut does to a job
        job.wait(10)
        job.stdout.close()
        boot_id = tmp_path / "boot_id"
        boot_id.write_text("00000000-0000-0000-0000-000000000001\n")
        monkeypatch.setattr(_host, "BOOT_ID_FILE", str(boot_id))  # the host came back
        report = flush_outbox(outbox)
        ends = [c for c in fake.received if c.status is not Status.UPDATE]
    assert report.dead_reported == 1 and report.exit_code == 0
    (end,) = ends
    assert end.status is Status.ERROR
    assert (end.message or "").endswith("; host restarted)")
    assert f"python process {job.pid} on {os.uname().nodename} is gone" in (end.message or "")


def test_a_lease_of_a_previous_boot_is_dead_even_if_its_pid_lives_again(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    """The boot id decides first: a pid alive now is another process after a restart."""
    outbox = tmp_path / "outbox"
    plant(outbox, fake.url, 42, pid=os.getpid(), boot_id="an-earlier-boot")
    report = flush_outbox(outbox)
    assert report.dead_reported == 1
    assert (fake.received[0].message or "").endswith(
        "(started 2026-12-03T23:18:25Z; host restarted)"
    )


def test_a_reused_pid_is_a_dead_execution(tmp_path: Path, fake: FakeScheduler) -> None:
    """A lease whose pid now runs a process started at another time is dead."""
    outbox = tmp_path / "outbox"
    plant(outbox, fake.url, 42, pid=os.getpid(), start_time=1)
    report = flush_outbox(outbox)
    assert report.dead_reported == 1
    assert "its pid now belongs to another process" in (fake.received[0].message or "")


def test_live_executions_and_other_hosts_are_left_alone(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    """A lease whose process lives, and any lease of another host, stay as they are."""
    outbox = tmp_path / "outbox"
    mine = plant(outbox, fake.url, 42, pid=os.getpid())
    theirs = plant(outbox, fake.url, 43, pid=999_999, host="another-host")
    report = flush_outbox(outbox)
    assert report.dead_reported == 0 and fake.received == []
    assert mine.exists() and theirs.exists()


def test_a_dead_execution_while_the_scheduler_is_down_waits_in_the_outbox(
    tmp_path: Path,
) -> None:
    """The ERROR of a dead execution is kept like any entry, and sent by a later flush once."""
    outbox = tmp_path / "outbox"
    with FakeScheduler() as fake:
        fake.submit(42, "handle-42")
        plant(outbox, fake.url, 42, pid=dead_pid())
        fake.fail_next(100, 503)
        first = flush_outbox(outbox, retry_seconds=0)
        assert first.dead_reported == 1 and first.exit_code == 75
        assert leases(outbox) == [] and len(outbox_files(outbox)) == 1
        fake.clear()
        second = flush_outbox(outbox)
        assert second.dead_reported == 0 and len(second.delivered) == 1
        assert [c.status for c in fake.received] == [Status.ERROR]


def test_flush_dry_run_shows_the_dead_and_changes_nothing(
    tmp_path: Path, fake: FakeScheduler, capsys: pytest.CaptureFixture[str]
) -> None:
    """``flush --dry-run`` prints the ERROR it would send; the lease stays."""
    outbox = tmp_path / "outbox"
    lease = plant(outbox, fake.url, 42, pid=dead_pid())
    report = flush_outbox(outbox, dry_run=True)
    assert report.dead_reported == 1 and lease.exists() and fake.received == []
    assert '"status": "ERROR"' in capsys.readouterr().err


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def plant(
    outbox: Path,
    base_url: str,
    request_id: int,
    *,
    pid: int,
    boot_id: str | None = None,
    start_time: int | None = None,
    host: str | None = None,
) -> Path:
    """A lease as an execution of this host would write it (its fields overridable)."""
    record = {
        "format": 1,
        "kind": "python",
        "base_url": base_url,
        "request_id": request_id,
        "request_handle": f"handle-{request_id}",
        "host": host or _host.host_name(),
        "boot_id": boot_id or _host.boot_id(),
        "pid": pid,
        "pid_start_time": start_time if start_time is not None else _host.start_time(pid),
        "pgid": None,
        "started": "2026-12-03T23:18:25Z",
        "command": None,
    }
    name = f"{time.time_ns():020d}-{request_id}-python-abcdef.json"
    return _leases._outbox.write_atomic(outbox / "running", name, record)


def test_wait_relay_holds_a_relay_lease_until_its_end(tmp_path: Path, fake: FakeScheduler) -> None:
    """The relay of ``wait --relay`` holds a lease from before its first poll to its end."""
    from ess_callback._settings import resolve_settings
    from ess_callback.watch._relay import Relay

    outbox = tmp_path / "outbox"
    settings = resolve_settings(
        base_url=fake.url, request_id=42, request_handle="handle-42", outbox=outbox
    )
    relay = Relay(settings, "ess job 7")
    (lease,) = list_leases(outbox)
    assert (lease.kind, lease.request_id, lease.pid) == ("relay", 42, os.getpid())
    relay.finish(Status.SUCCESS, None)
    assert list_leases(outbox) == []


def test_a_killed_job_not_yet_reaped_is_dead(tmp_path: Path, fake: FakeScheduler) -> None:
    """A zombie (killed, its parent not yet waiting for it) counts as gone."""
    outbox = tmp_path / "outbox"
    script = tmp_path / "job.py"
    script.write_text(PYTHON_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env.update(fake.env(request_id=42, request_handle="handle-42"), ESS_CALLBACK_OUTBOX=str(outbox))
    job = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE)
    assert job.stdout is not None and job.stdout.readline() == b"inside\n"
    os.kill(job.pid, signal.SIGKILL)  # not job.kill(): Popen would reap it at once
    wait_until(lambda: not alive(job.pid), what="the job to be a zombie")
    try:
        assert flush_outbox(outbox).dead_reported == 1
    finally:
        job.wait(10)
        job.stdout.close()
    assert [c.status for c in fake.received if c.status is not Status.UPDATE] == [Status.ERROR]


def test_a_run_lease_keeps_the_command_line_redacted_and_short(tmp_path: Path) -> None:
    """The command line in a run lease is redacted and cut to 200 characters."""
    from ess_callback._message import Redactor
    from ess_callback._settings import resolve_settings

    settings = resolve_settings(
        base_url="https://ess.example.com",
        request_id=5,
        request_handle="handle-5",
        outbox=tmp_path / "outbox",
        env={},
    )
    command = ("./load.sh", "--password=hunter2-secret", "x" * 300)
    lease = _leases.open_lease(
        settings, "run", command=command, redact=Redactor(["hunter2-secret"]), durable=False
    )
    assert lease is not None
    text = lease.path.read_text()
    record = json.loads(text)
    assert record["command"] == ("./load.sh --password=*** " + "x" * 300)[:200]
    assert "hunter2" not in text
    lease.set_group(4242)
    assert json.loads(lease.path.read_text())["pgid"] == 4242
    assert stat.S_IMODE(lease.path.stat().st_mode) == 0o600
    lease.remove()
    assert leases(tmp_path / "outbox") == []
