"""No final status is lost (SPEC 5 and 6): real processes, real faults, real files.

Every test here runs jobs or flushes as separate processes against the loopback
``FakeScheduler`` and its fault injection; each prints the figures it reached (run with
``-s`` to see them; docs/guarantees.md quotes them). The fakes run with ``auto_submit``: each job's
request is submitted on its first callback, with the handle its job was given.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import outbox_files

from ess_callback import Callback, SchedulerUnavailableError, Status
from ess_callback.outbox import _outbox, read_entry
from ess_callback.testing import FakeScheduler

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")
SUMMARY = re.compile(r"delivered (\d+), rejected (\d+), pending (\d+)")

#: a job ending as its first argument says, exiting 0 delivered / 75 kept / 1 lost
JOB = """
import sys
from ess_callback import BusinessError, DeliveryError, JobExecution

end = sys.argv[1]
try:
    with JobExecution(update_interval=0) as job:
        job.update("started")
        job.update("half way")
        if end == "WARNING":
            job.warn("2 rows skipped")
        elif end == "ERROR":
            raise RuntimeError("disk on fire")
        elif end == "BUSINESS_ERROR":
            raise BusinessError("period closed")
except (DeliveryError, RuntimeError):
    pass
outcome = job.outcome
print(outcome.spooled_to or "", flush=True)
sys.exit(0 if outcome.delivered else 75 if outcome.spooled_to else 1)
"""


def base_env(outbox: Path, **extra: str) -> dict[str, str]:
    """The test's environment without ESS_* variables, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env.update(ESS_CALLBACK_OUTBOX=str(outbox), PYTHONUNBUFFERED="1", **extra)
    return env


def job_env(fake_url: str, outbox: Path, request_id: int, **extra: str) -> dict[str, str]:
    return base_env(
        outbox,
        ESS_BASE_URL=fake_url,
        ESS_REQUEST_ID=str(request_id),
        ESS_REQUEST_HANDLE=f"handle-{request_id}",
        **extra,
    )


def run_flush(outbox: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """One real ``ess-callback flush`` process."""
    return subprocess.run(
        [SCRIPT, "flush"],
        env=base_env(outbox, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_job(tmp_path: Path) -> Path:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    return script


def figures(name: str, **values: object) -> None:
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in values.items()))


# -- the scheduler down during a job ---------------------------------------------------------
def test_send_while_the_scheduler_drops_connections_is_kept_then_flushed(tmp_path: Path) -> None:
    """``send`` facing resets exits 75 with the status kept; flush after recovery delivers."""
    outbox = tmp_path / "outbox"
    with FakeScheduler(auto_submit=True) as fake:
        fake.reset_next(1000)
        proc = subprocess.run(
            [SCRIPT, "send", "WARNING", "-m", "3 rows skipped"],
            env=job_env(fake.url, outbox, 101, ESS_CALLBACK_RETRY_SECONDS="1.5"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 75, proc.stderr
        assert "kept in the outbox" in proc.stderr and "Traceback" not in proc.stderr
        assert fake.received == []
        (path,) = outbox_files(outbox)
        attempts = read_entry(path).attempts
        assert attempts >= 2  # it was retried before being kept

        fake.clear()  # the scheduler is back
        flushed = run_flush(outbox)
        assert flushed.returncode == 0, flushed.stderr
        assert "delivered 1, rejected 0, pending 0" in flushed.stdout
        assert [(c.request_id, c.status, c.message) for c in fake.received] == [
            (101, Status.WARNING, "3 rows skipped")
        ]
    assert outbox_files(outbox) == []
    figures("scheduler resetting", send_attempts=attempts, lost=0)


def test_a_python_job_facing_a_stopped_scheduler_is_kept_then_flushed(tmp_path: Path) -> None:
    """A JobExecution job with nothing listening keeps its end; flush delivers it once back."""
    outbox = tmp_path / "outbox"
    script = write_job(tmp_path)
    with FakeScheduler(auto_submit=True) as gone:
        url, port = gone.url, gone.port
    proc = subprocess.run(
        [sys.executable, str(script), "BUSINESS_ERROR"],
        env=job_env(url, outbox, 102, ESS_CALLBACK_RETRY_SECONDS="1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 75, proc.stderr
    assert "Traceback" not in proc.stderr
    (path,) = outbox_files(outbox)
    assert proc.stdout.strip() == str(path)
    assert read_entry(path).status is Status.BUSINESS_ERROR

    pending = run_flush(outbox, ESS_CALLBACK_RETRY_SECONDS="0")
    assert pending.returncode == 75
    assert "delivered 0, rejected 0, pending 1" in pending.stdout

    with FakeScheduler(port=port, auto_submit=True) as back:
        flushed = run_flush(outbox)
        assert flushed.returncode == 0, flushed.stderr
        assert [(c.request_id, c.status) for c in back.received] == [(102, Status.BUSINESS_ERROR)]
        assert back.received[0].message == "BusinessError: period closed"
    assert outbox_files(outbox) == []


def test_the_run_wrapper_facing_a_down_scheduler_keeps_the_end_then_flush_sends_it(
    tmp_path: Path,
) -> None:
    """``ess-callback run`` with the scheduler failing: exit 75, kept; flush delivers it."""
    outbox = tmp_path / "outbox"
    with FakeScheduler(auto_submit=True) as fake:
        fake.fail_next(1000, 503)
        proc = subprocess.run(
            [SCRIPT, "run", "--", sys.executable, "-c", "print('extracted')"],
            env=job_env(fake.url, outbox, 103, ESS_CALLBACK_RETRY_SECONDS="1"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 75, proc.stderr
        assert proc.stdout == "extracted\n"
        assert "Traceback" not in proc.stderr
        (path,) = outbox_files(outbox)
        assert read_entry(path).status is Status.SUCCESS

        fake.clear()
        flushed = run_flush(outbox)
        assert flushed.returncode == 0, flushed.stderr
        assert [(c.request_id, c.status) for c in fake.received] == [(103, Status.SUCCESS)]
    assert outbox_files(outbox) == []


# -- load with random faults -----------------------------------------------------------------
ENDS = ("SUCCESS", "WARNING", "ERROR", "BUSINESS_ERROR")


#: how an ``ess-callback run`` job ends each way: wrapper options, the command, its exit code
RUN_JOBS = {
    "SUCCESS": ([], "echo 'UPDATE started' >&$ESS_CALLBACK_FD; exit 0", 0),
    "WARNING": ([], "echo 'WARNING 2 rows skipped' >&$ESS_CALLBACK_FD", 0),
    "ERROR": ([], "echo 'disk on fire' >&2; exit 1", 1),
    "BUSINESS_ERROR": (["--business-error-exit-code", "3"], "exit 3", 3),
}


def start_job(kind: str, end: str, env: dict[str, str], script: Path) -> subprocess.Popen[str]:
    """A Python JobExecution job, or a shell command under ``ess-callback run``."""
    if kind == "python":
        argv = [sys.executable, str(script), end]
    else:
        options, command, _code = RUN_JOBS[end]
        argv = [SCRIPT, "run", *options, "--", "sh", "-c", command]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_forty_concurrent_jobs_under_chaos_lose_no_final_status(tmp_path: Path) -> None:
    """40 job processes (Python jobs and ``run`` wrappers) while 60% of calls fail at random;
    after one flush every job's end has arrived exactly as the job ended: none missing, none
    contradicting another."""
    outbox = tmp_path / "outbox"
    script = write_job(tmp_path)
    jobs = {
        rid: ("python" if rid % 2 else "run", ENDS[(rid // 2) % len(ENDS)]) for rid in range(1, 41)
    }
    with FakeScheduler(auto_submit=True) as fake:
        fake.chaos(0.6, seed=20261122)
        started = time.monotonic()
        procs = {
            rid: start_job(
                kind,
                end,
                job_env(fake.url, outbox, rid, ESS_CALLBACK_RETRY_SECONDS="1"),
                script,
            )
            for rid, (kind, end) in jobs.items()
        }
        said_kept: set[Path] = set()
        for rid, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            kind, end = jobs[rid]
            assert "Traceback" not in err, err
            if kind == "python":
                assert proc.returncode in (0, 75), f"job {rid}: {err}"
                if proc.returncode == 75:
                    said_kept.add(Path(out.strip()))
            elif RUN_JOBS[end][2] == 0:
                assert proc.returncode in (0, 75), f"job {rid}: {err}"
            else:  # the wrapper exits with the command's own status
                assert proc.returncode == RUN_JOBS[end][2], f"job {rid}: {err}"
        jobs_seconds = time.monotonic() - started
        fake.chaos(0)  # the scheduler recovers
        requests = fake.requests
        faults = sum(1 for r in requests if r.answer is None or r.answer >= 500)
        spooled = outbox_files(outbox)
        python_kept = {p for p in spooled if jobs[read_entry(p).request_id][0] == "python"}
        assert python_kept == said_kept  # each Python job knew where its end was kept
        assert all(
            read_entry(p).status is Status(jobs[read_entry(p).request_id][1]) for p in spooled
        )

        flushed = run_flush(outbox)
        assert flushed.returncode == 0, flushed.stderr
        assert f"delivered {len(spooled)}, rejected 0, pending 0" in flushed.stdout
        received = fake.received

    assert outbox_files(outbox) == []
    finals = [c for c in received if c.status is not Status.UPDATE]
    by_request: dict[int, set[tuple[Status, str | None]]] = {}
    for c in finals:
        assert c.request_id is not None
        by_request.setdefault(c.request_id, set()).add((c.status, (c.message or "")[:40]))
    assert sorted(by_request) == sorted(jobs), "a final status is missing"
    for rid, (_kind, end) in jobs.items():
        assert len(by_request[rid]) == 1, f"request {rid} got contradicting ends"
        ((status, _),) = by_request[rid]
        assert status is Status(end)
    duplicates = len(finals) - len(jobs)
    # the end is always the last callback of a job: no UPDATE arrives after it
    updates_after_end = sum(
        1
        for i, c in enumerate(received)
        if c.status is Status.UPDATE
        and any(x.request_id == c.request_id and x.status.is_terminal for x in received[:i])
    )
    assert updates_after_end == 0
    figures(
        "40 jobs under chaos",
        jobs=len(jobs),
        run_wrappers=sum(1 for kind, _ in jobs.values() if kind == "run"),
        http_calls=len(requests),
        faults_injected=faults,
        kept_in_outbox=len(spooled),
        delivered_by_flush=len(spooled),
        lost=0,
        duplicates=duplicates,
        jobs_seconds=f"{jobs_seconds:.1f}",
        ends=dict(Counter(end for _, end in jobs.values())),
    )


# -- concurrent flushes ----------------------------------------------------------------------
def test_four_concurrent_flushes_deliver_each_status_exactly_once(tmp_path: Path) -> None:
    """Four flush processes racing over 20 kept statuses: each is delivered once."""
    outbox = tmp_path / "outbox"
    with FakeScheduler(auto_submit=True) as fake:
        for rid in range(1, 21):
            _outbox.spool(
                outbox,
                Callback(rid, f"handle-{rid}", ENDS[rid % 4], f"job {rid}"),
                base_url=fake.url,
                attempts=1,
                error=SchedulerUnavailableError("down", attempts=1),
            )
        fake.delay_next(20, 0.05)  # slow answers keep the four flushes overlapping
        procs = [
            subprocess.Popen(
                [SCRIPT, "flush"],
                env=base_env(outbox),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=60) for p in procs]
        received = fake.received

    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    delivered = []
    for out, _err in outputs:
        match = SUMMARY.search(out)
        assert match, out
        delivered.append(int(match.group(1)))
    counts = Counter(c.request_id for c in received)
    assert sorted(counts) == list(range(1, 21))
    assert set(counts.values()) == {1}, f"sent twice: {counts}"
    assert sum(delivered) == 20
    assert outbox_files(outbox) == []
    figures("4 concurrent flushes", statuses=20, per_flush=delivered, duplicates=0)


#: a job host spooling 60 statuses, a little apart, while flushes run
STEADY_WRITER = """
import sys, time
from pathlib import Path
from ess_callback import Callback
from ess_callback.outbox._outbox import spool

folder, base = Path(sys.argv[1]), sys.argv[2]
for rid in range(1, 61):
    spool(folder, Callback(rid, "handle-%d" % rid, "ERROR", "job %d failed" % rid),
          base_url=base, attempts=1, error=None)
    time.sleep(0.02)
"""


def test_flushes_racing_jobs_that_spool_send_every_status_once(tmp_path: Path) -> None:
    """Two flush loops run while a writer spools 60 statuses: each arrives exactly once."""
    outbox = tmp_path / "outbox"
    writer_script = tmp_path / "steady.py"
    writer_script.write_text(textwrap.dedent(STEADY_WRITER))
    with FakeScheduler(auto_submit=True) as fake:
        writer = subprocess.Popen([sys.executable, str(writer_script), str(outbox), fake.url])
        rounds = 0
        try:
            while writer.poll() is None:
                pair = [
                    subprocess.Popen(
                        [SCRIPT, "flush"],
                        env=base_env(outbox),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(2)
                ]
                for proc in pair:
                    _out, err = proc.communicate(timeout=60)
                    assert proc.returncode == 0, err
                rounds += 1
        finally:
            writer.kill()
            writer.wait(10)
        assert writer.returncode == 0
        last = run_flush(outbox)
        assert last.returncode == 0, last.stderr
        received = fake.received
    counts = Counter(c.request_id for c in received)
    assert sorted(counts) == list(range(1, 61)), "a status is missing"
    assert set(counts.values()) == {1}, f"sent twice: {counts}"
    assert outbox_files(outbox) == [] and not (outbox / "corrupt").exists()
    figures("flushes racing a spooling job", statuses=60, flush_rounds=rounds, duplicates=0)


# -- a writer killed mid-write ---------------------------------------------------------------
#: spools in a loop, writing each file in slow small pieces so a kill lands mid-write
WRITER = """
import os, sys, time
from pathlib import Path
from ess_callback import Callback
from ess_callback.outbox._outbox import spool

real_write = os.write
def slow_write(fd, data):
    time.sleep(0.002)
    return real_write(fd, bytes(data[:256]))
os.write = slow_write

folder, base = Path(sys.argv[1]), sys.argv[2]
message = "x" * 3900
rid = 0
while True:
    rid += 1
    spool(folder, Callback(rid, "handle-%d" % rid, "SUCCESS", message), base_url=base,
          attempts=1, error=None)
"""


def test_a_writer_killed_mid_write_leaves_nothing_half_written_to_send(tmp_path: Path) -> None:
    """SIGKILL during a write leaves only complete files and a temp file flush never sends."""
    outbox = tmp_path / "outbox"
    writer = tmp_path / "writer.py"
    writer.write_text(textwrap.dedent(WRITER))
    with FakeScheduler(auto_submit=True) as fake:
        child = subprocess.Popen([sys.executable, str(writer), str(outbox), fake.url])
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                temps = list(outbox.glob(".*.tmp")) if outbox.exists() else []
                if len(outbox_files(outbox)) >= 5 and temps and temps[0].stat().st_size > 0:
                    break
                time.sleep(0.005)  # polling the folder; nothing to await here
            else:
                pytest.fail("the writer never got going")
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(10)
        assert child.returncode == -signal.SIGKILL

        complete = outbox_files(outbox)
        partial = list(outbox.glob(".*.tmp"))
        assert partial, "the kill did not land mid-write"
        half_written = 0
        for temp in partial:
            try:
                json.loads(temp.read_text())
            except ValueError:
                half_written += 1
        for path in complete:
            assert len(read_entry(path).message or "") == 3900

        flushed = run_flush(outbox)
        assert flushed.returncode == 0, flushed.stderr
        assert f"delivered {len(complete)}, rejected 0, pending 0" in flushed.stdout
        assert "unreadable" not in flushed.stdout + flushed.stderr
        assert not (outbox / "corrupt").exists()
        assert sorted(c.request_id or 0 for c in fake.received) == sorted(
            read_id(p) for p in complete
        )
        assert all(len(c.message or "") == 3900 for c in fake.received)
    figures(
        "SIGKILL mid-write",
        complete_files=len(complete),
        temp_files_left=len(partial),
        half_written=half_written,
        sent_from_temp=0,
    )


def read_id(path: Path) -> int:
    return int(path.name.split("-")[1])


# -- a full disk or an unwritable outbox -----------------------------------------------------
def test_send_with_an_outbox_under_a_file_is_refused_before_sending(tmp_path: Path) -> None:
    """An outbox that can never be a folder is a configuration error: one clear line naming
    it, exit 2, nothing sent (a status that could not be kept is not risked)."""
    (tmp_path / "plain").write_text("")
    outbox = tmp_path / "plain" / "outbox"
    with FakeScheduler(auto_submit=True) as fake:
        proc = subprocess.run(
            [SCRIPT, "send", "SUCCESS"],
            env=job_env(fake.url, outbox, 104, ESS_CALLBACK_RETRY_SECONDS="0"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert fake.requests == []
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and str(outbox) in proc.stderr
    assert "Traceback" not in proc.stderr

    flushed = run_flush(outbox)
    assert flushed.returncode == 2
    assert str(outbox) in flushed.stderr and "Traceback" not in flushed.stderr


def test_run_with_an_outbox_under_a_file_does_not_start_the_command(tmp_path: Path) -> None:
    """``run``: a job whose end could not be kept is not run: exit 2, one clear line naming
    the folder, no output from the command, no traceback."""
    (tmp_path / "plain").write_text("")
    outbox = tmp_path / "plain" / "outbox"
    with FakeScheduler(auto_submit=True) as fake:
        proc = subprocess.run(
            [SCRIPT, "run", "--", "sh", "-c", "echo loaded"],
            env=job_env(fake.url, outbox, 107, ESS_CALLBACK_RETRY_SECONDS="0"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert fake.requests == []
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and str(outbox) in proc.stderr
    assert "Traceback" not in proc.stderr


#: a job whose disk is full: every fsync fails with ENOSPC
FULL_DISK_JOB = """
import errno, os, sys
from ess_callback import DeliveryError, JobExecution

def full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")
os.fsync = full
try:
    with JobExecution():
        pass
except DeliveryError as exc:
    print("job saw:", type(exc).__name__, flush=True)
sys.exit(1)
"""


def test_a_full_disk_is_reported_naming_the_folder_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    """ENOSPC while spooling: the error names the folder, no temp file is left, no traceback."""
    outbox = tmp_path / "outbox"
    script = tmp_path / "full.py"
    script.write_text(textwrap.dedent(FULL_DISK_JOB))
    with FakeScheduler(auto_submit=True) as fake:
        fake.fail_next(1000, 503)
        proc = subprocess.run(
            [sys.executable, str(script)],
            env=job_env(fake.url, outbox, 105, ESS_CALLBACK_RETRY_SECONDS="0"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.stdout == "job saw: SchedulerUnavailableError\n"
    assert f"cannot write to outbox folder {outbox}: No space left on device" in proc.stderr
    assert "SUCCESS status is lost" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Nothing anywhere in the outbox: no entry, no temp file, and no lease (its write
    # failed on the same full disk, and said so).
    assert [p for p in outbox.rglob("*") if p.is_file()] == []
    assert "nothing will report it" in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0500 folder anyway")
def test_send_with_a_read_only_outbox_says_so_and_keeps_its_exit_code(tmp_path: Path) -> None:
    """A 0500 outbox folder: one clear line naming it, exit 1, no traceback."""
    outbox = tmp_path / "outbox"
    outbox.mkdir(mode=0o500)
    try:
        with FakeScheduler(auto_submit=True) as fake:
            fake.fail_next(1000, 503)
            proc = subprocess.run(
                [SCRIPT, "send", "SUCCESS"],
                env=job_env(fake.url, outbox, 106, ESS_CALLBACK_RETRY_SECONDS="0"),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    finally:
        outbox.chmod(0o700)
    assert proc.returncode == 1
    assert f"cannot write to outbox folder {outbox}" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- jobs killed at random points ------------------------------------------------------------
#: a Python job that says when its block runs, works a moment, then ends as asked
KILLABLE_JOB = """
import sys, time
from ess_callback import BusinessError, DeliveryError, JobExecution

end, pause = sys.argv[1], float(sys.argv[2])
try:
    with JobExecution(update_interval=0) as job:
        print("inside", flush=True)
        time.sleep(pause)
        if end == "WARNING":
            job.warn("2 rows skipped")
        elif end == "ERROR":
            raise RuntimeError("disk on fire")
        elif end == "BUSINESS_ERROR":
            raise BusinessError("period closed")
except (DeliveryError, RuntimeError):
    pass
"""


def start_killable(
    kind: str, end: str, pause: float, env: dict[str, str], script: Path
) -> subprocess.Popen[str]:
    """A job that prints "inside" once its execution started (its lease is written)."""
    if kind == "python":
        argv = [sys.executable, str(script), end, f"{pause:.3f}"]
    else:
        options, command, _code = RUN_JOBS[end]
        argv = [
            SCRIPT,
            "run",
            *options,
            "--",
            "sh",
            "-c",
            f"echo inside; sleep {pause:.3f}; {command}",
        ]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def test_a_hundred_jobs_killed_at_random_points_are_each_reported_once(tmp_path: Path) -> None:
    """100 jobs (Python and ``run``), half of them killed with SIGKILL at a random point of
    their life, against a scheduler failing 30% of calls at random: after one flush every
    execution has exactly one final status, none lost, none contradicted."""
    import random

    rng = random.Random(20261204)
    outbox = tmp_path / "outbox"
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(KILLABLE_JOB))
    jobs = {
        rid: (
            "python" if rid % 2 else "run",
            ENDS[rid % len(ENDS)],
            rng.uniform(0.0, 0.3),  # how long the job works once started
            rng.uniform(0.0, 0.6) if rng.random() < 0.5 else None,  # when it is killed
        )
        for rid in range(1, 101)
    }
    started = time.monotonic()
    with FakeScheduler(auto_submit=True) as fake:
        fake.chaos(0.3, seed=20261204)
        rids = sorted(jobs)
        for wave in range(0, len(rids), 25):  # 25 at once: bounded memory on a small host
            procs: dict[int, subprocess.Popen[str]] = {}
            for rid in rids[wave : wave + 25]:
                kind, end, pause, _kill = jobs[rid]
                env = job_env(fake.url, outbox, rid, ESS_CALLBACK_RETRY_SECONDS="1")
                procs[rid] = start_killable(kind, end, pause, env, script)
            born = {}
            for rid, proc in procs.items():
                assert proc.stdout is not None
                assert proc.stdout.readline() == "inside\n", f"job {rid} never started"
                born[rid] = time.monotonic()
            for rid in sorted(procs, key=lambda r: jobs[r][3] or 0.0):
                kill = jobs[rid][3]
                if kill is None:
                    continue
                left = born[rid] + kill - time.monotonic()
                if left > 0:
                    time.sleep(left)  # the random point of its life where it is killed
                procs[rid].send_signal(signal.SIGKILL)
            for proc in procs.values():
                proc.communicate(timeout=120)
        jobs_seconds = time.monotonic() - started
        leases_left = len(list((outbox / "running").glob("*.json")))
        kept_before = len(outbox_files(outbox))
        fake.chaos(0)  # the scheduler recovers; one flush
        flushed = run_flush(outbox)
        assert flushed.returncode in (0, 1), flushed.stderr
        received = fake.received
        faults = sum(1 for r in fake.requests if r.answer is None or r.answer >= 500)

    assert list((outbox / "running").glob("*.json")) == [], "a lease was left behind"
    assert outbox_files(outbox) == [], "a status is still pending"
    finals: dict[int, set[Status]] = {}
    for c in received:
        if c.status is not Status.UPDATE:
            assert c.request_id is not None
            finals.setdefault(c.request_id, set()).add(c.status)
    assert sorted(finals) == rids, f"lost: {sorted(set(rids) - set(finals))}"
    for rid, (_kind, end, _pause, kill) in jobs.items():
        assert len(finals[rid]) == 1, f"request {rid} got contradicting ends: {finals[rid]}"
        (status,) = finals[rid]
        # A job killed before its end was safe is reported dead: ERROR.
        assert status in ({Status(end)} if kill is None else {Status(end), Status.ERROR})
    # Anything ESS refused was a second report of an execution it had already ended.
    refused = list((outbox / "rejected").glob("*.json")) if (outbox / "rejected").exists() else []
    assert all(read_entry(p).request_id in finals for p in refused)
    dead = (
        int(re.search(r"(\d+) dead execution", flushed.stdout).group(1))
        if "dead" in flushed.stdout
        else 0
    )
    figures(
        "100 jobs killed at random",
        jobs=len(jobs),
        killed=sum(1 for j in jobs.values() if j[3] is not None),
        http_faults=faults,
        leases_left_by_the_dead=leases_left,
        kept_by_jobs=kept_before,
        dead_reported=dead,
        refused_as_already_ended=len(refused),
        lost=0,
        contradicting=0,
        seconds=f"{time.monotonic() - started:.1f}",
        jobs_seconds=f"{jobs_seconds:.1f}",
    )
