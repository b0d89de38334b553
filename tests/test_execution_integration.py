"""``JobExecution`` end to end: real job code in a child process, the real FakeScheduler over
HTTP, real signals, the real outbox (SPEC sections 4 and 6)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import IO

import pytest
from helpers import outbox_files

from ess_callback import Callback, Status
from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

PRELUDE = """\
import sys, time
from ess_callback import *
"""


class Job:
    """A job script written to a file (so file:line in messages can be checked) and run."""

    def __init__(self, tmp_path: Path, python: str, env: dict[str, str], body: str) -> None:
        self.path = tmp_path / "job.py"
        self.path.write_text(PRELUDE + textwrap.dedent(body))
        self.argv = [python, str(self.path)]
        self.env = env

    def line_of(self, text: str) -> int:
        """The line number of the first script line containing *text*."""
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if text in line:
                return number
        raise AssertionError(f"{text!r} not in the script")

    def run(self, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def job(tmp_path: Path, python: str, job_env: dict[str, str]) -> type[Job]:
    """``job(body)``: a job script reporting request 42 ("handle-42") to the fake."""

    class BoundJob(Job):
        def __init__(self, body: str, env: dict[str, str] | None = None) -> None:
            super().__init__(tmp_path, python, env or job_env, body)

    return BoundJob


def only(fake: FakeScheduler) -> Callback:
    """The single callback the fake accepted."""
    received = fake.received
    assert len(received) == 1, received
    return received[0]


# -- one test per row of the mapping table ------------------------------------------------


def test_job_cancelled(job: type[Job], fake: FakeScheduler) -> None:
    """JobCancelled: CANCEL with the reason; consumed, the script goes on and exits 0."""
    proc = job(
        """
        with JobExecution():
            raise JobCancelled("operator asked")
        print("after the block")
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "after the block\n"
    assert only(fake) == Callback(42, "handle-42", Status.CANCEL, "operator asked")


def test_keyboard_interrupt(job: type[Job], fake: FakeScheduler) -> None:
    """KeyboardInterrupt: CANCEL "SIGINT", and it propagates (the process dies of SIGINT)."""
    proc = job(
        """
        with JobExecution():
            raise KeyboardInterrupt
        print("after the block")
        """
    ).run()
    assert proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT), proc.stderr
    assert "after the block" not in proc.stdout
    assert only(fake) == Callback(42, "handle-42", Status.CANCEL, "SIGINT")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_inside_the_block(job: type[Job], fake: FakeScheduler, signum: int) -> None:
    """A real signal while the block runs: CANCEL with the signal's name, exit 128+N."""
    child = job(
        """
        with JobExecution():
            print("ready", flush=True)
            time.sleep(60)
        print("after the block")
        """
    ).start()
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signum)
        out, err = child.communicate(timeout=30)
    finally:
        _reap(child)
    assert child.returncode == 128 + signum, err
    assert "after the block" not in out
    assert "Traceback" not in err
    assert only(fake) == Callback(42, "handle-42", Status.CANCEL, signal.Signals(signum).name)


def test_job_paused(job: type[Job], fake: FakeScheduler) -> None:
    """JobPaused(state): PAUSE with the state; consumed."""
    proc = job(
        """
        with JobExecution():
            raise JobPaused("step=3")
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert only(fake) == Callback(42, "handle-42", Status.PAUSE, "step=3")
    assert fake.state(42) == "PAUSED"


def test_job_suspended(job: type[Job], fake: FakeScheduler) -> None:
    """JobSuspended(text): SUSPEND with the text; consumed."""
    proc = job(
        """
        with JobExecution():
            raise JobSuspended("waiting for the bank file")
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert only(fake) == Callback(42, "handle-42", Status.SUSPEND, "waiting for the bank file")


def test_classify(job: type[Job], fake: FakeScheduler) -> None:
    """classify() returning a Status chooses it; the (ordinary) exception propagates."""
    proc = job(
        """
        def classify(exc):
            return Status.WARNING if isinstance(exc, TimeoutError) else None

        with JobExecution(classify=classify):
            raise TimeoutError("source slow")
        """
    ).run()
    assert proc.returncode == 1
    assert "TimeoutError: source slow" in proc.stderr
    assert only(fake) == Callback(42, "handle-42", Status.WARNING, "TimeoutError: source slow")


def test_business_error(job: type[Job], fake: FakeScheduler) -> None:
    """BusinessError: BUSINESS_ERROR "BusinessError: text"; consumed, exit 0."""
    proc = job(
        """
        with JobExecution():
            raise BusinessError("accounting period 2026-10 is closed")
        print("after the block")
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "after the block\n"
    assert only(fake) == Callback(
        42, "handle-42", Status.BUSINESS_ERROR, "BusinessError: accounting period 2026-10 is closed"
    )


def test_business_errors_class(job: type[Job], fake: FakeScheduler) -> None:
    """A business_errors class: BUSINESS_ERROR, and the exception propagates (exit 1)."""
    proc = job(
        """
        with JobExecution(business_errors=(LookupError,)):
            raise KeyError("cost centre 17")
        """
    ).run()
    assert proc.returncode == 1
    assert "KeyError" in proc.stderr
    assert only(fake) == Callback(
        42, "handle-42", Status.BUSINESS_ERROR, "KeyError: 'cost centre 17'"
    )


def test_job_warning(job: type[Job], fake: FakeScheduler) -> None:
    """JobWarning: WARNING with earlier warnings then its text; consumed."""
    proc = job(
        """
        with JobExecution() as job:
            job.warn("3 rows skipped")
            raise JobWarning("partial extract")
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert only(fake) == Callback(
        42, "handle-42", Status.WARNING, "3 rows skipped\npartial extract"
    )


@pytest.mark.parametrize("call", ["sys.exit(0)", "sys.exit()"])
def test_system_exit_zero(job: type[Job], fake: FakeScheduler, call: str) -> None:
    """sys.exit(0) / sys.exit(): a normal end (SUCCESS) and the process exits 0."""
    proc = job(
        f"""
        with JobExecution():
            {call}
        print("after the block")
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert only(fake) == Callback(42, "handle-42", Status.SUCCESS, None)


def test_system_exit_with_another_code(job: type[Job], fake: FakeScheduler) -> None:
    """sys.exit(3): ERROR "SystemExit: 3" with file:line; the process exits 3."""
    script = job(
        """
        with JobExecution():
            sys.exit(3)
        """
    )
    proc = script.run()
    assert proc.returncode == 3, proc.stderr
    callback = only(fake)
    assert callback.status is Status.ERROR
    assert callback.message is not None
    assert callback.message.splitlines()[0] == "SystemExit: 3"
    assert f"{script.path}:{script.line_of('sys.exit(3)')}" in callback.message


def test_other_exception(job: type[Job], fake: FakeScheduler) -> None:
    """Any other exception: ERROR "Type: text" then file:line; it propagates (exit 1)."""
    script = job(
        """
        def load():
            raise ValueError("bad row 17")

        with JobExecution():
            load()
        """
    )
    proc = script.run()
    assert proc.returncode == 1
    assert "ValueError: bad row 17" in proc.stderr  # the job's own traceback, untouched
    callback = only(fake)
    assert callback.status is Status.ERROR
    assert callback.message is not None
    first, where = callback.message.splitlines()
    assert first == "ValueError: bad row 17"
    assert f"{script.path}:{script.line_of('raise ValueError')}" in where


def test_normal_end_after_warn(job: type[Job], fake: FakeScheduler) -> None:
    """A normal end after job.warn(): WARNING, the warnings one per line in order."""
    proc = job(
        """
        with JobExecution() as job:
            job.warn("first")
            job.warn("second")
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert only(fake) == Callback(42, "handle-42", Status.WARNING, "first\nsecond")


def test_normal_end(job: type[Job], fake: FakeScheduler) -> None:
    """A normal end: SUCCESS with no message; the body on the wire has no statusMessage."""
    proc = job(
        """
        with JobExecution() as job:
            pass
        print(job.outcome.status, job.outcome.delivered, job.outcome.attempts)
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "SUCCESS True 1\n"
    assert only(fake) == Callback(42, "handle-42", Status.SUCCESS, None)
    posts = [r for r in fake.requests if r.method == "POST"]
    assert json.loads(posts[0].body) == {"requestHandle": "handle-42", "status": "SUCCESS"}
    assert posts[0].path == "/ess/rest/scheduler/v1/requests/42/executionStatus"


# -- updates over real HTTP -----------------------------------------------------------------


def test_throttled_updates_with_the_terminal_status_last(
    job: type[Job], fake: FakeScheduler
) -> None:
    """Updates are throttled over real HTTP, newest wins, and the terminal status is last."""
    proc = job(
        """
        with JobExecution(update_interval=0.2) as job:
            for i in range(40):
                job.update(f"step {i}")
                time.sleep(0.02)  # the job's own work
        """
    ).run()
    assert proc.returncode == 0, proc.stderr
    received = fake.wait_for(predicate=lambda got: any(c.status.is_terminal for c in got))
    assert received[-1] == Callback(42, "handle-42", Status.SUCCESS, None)
    updates = received[:-1]
    assert all(c.status is Status.UPDATE and c.request_id == 42 for c in updates)
    steps = [int(str(c.message).split()[1]) for c in updates]
    assert steps[0] == 0  # the first update is due at once
    assert steps == sorted(set(steps))
    assert 2 <= len(steps) < 40  # throttled, not dropped altogether


# -- the scheduler cannot be reached --------------------------------------------------------


@pytest.fixture
def closed_port_env(job_env: dict[str, str]) -> dict[str, str]:
    """job_env pointing at a loopback port nobody listens on, with a 1 s retry budget."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        **job_env,
        "ESS_BASE_URL": f"http://127.0.0.1:{port}",
        "ESS_CALLBACK_RETRY_SECONDS": "1",
    }


def test_server_down_spools_and_exits_with_one_line(
    job: type[Job], closed_port_env: dict[str, str], tmp_path: Path
) -> None:
    """Server down after a normal end: the status is in the outbox, the process exits 75 with
    one clear line and no traceback."""
    proc = job(
        """
        with JobExecution() as job:
            job.warn("3 rows skipped")
        print("not reached")
        """,
        env=closed_port_env,
    ).run()
    assert proc.returncode == 75
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    # The retry notice (SPEC 5), then the one line saying where the status went.
    notice, *lines = proc.stderr.splitlines()
    assert notice.startswith("final status WARNING not delivered yet: cannot reach")
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ess-callback: final status WARNING was not delivered")
    assert "outbox" in lines[0] and "ess-callback flush" in lines[0]
    files = outbox_files(tmp_path / "outbox")
    assert len(files) == 1 and str(files[0]) in lines[0]
    record = json.loads(files[0].read_text())
    assert (record["request_id"], record["request_handle"], record["status"]) == (
        42,
        "handle-42",
        "WARNING",
    )
    assert record["message"] == "3 rows skipped"


def test_server_down_with_a_job_exception_keeps_the_job_traceback(
    job: type[Job], closed_port_env: dict[str, str], tmp_path: Path
) -> None:
    """When the job's exception propagates, the process fails with that exception; the
    undelivered ERROR is logged and kept in the outbox."""
    proc = job(
        """
        with JobExecution():
            raise ValueError("bad row 17")
        """,
        env=closed_port_env,
    ).run()
    assert proc.returncode == 1
    assert proc.stderr.rstrip().endswith("ValueError: bad row 17")
    assert "final status ERROR was not delivered" in proc.stderr
    assert "DeliveryError" not in proc.stderr and "SchedulerUnavailable" not in proc.stderr
    files = outbox_files(tmp_path / "outbox")
    assert [json.loads(f.read_text())["status"] for f in files] == ["ERROR"]


def test_exit_zero_with_the_status_in_the_outbox_exits_75(
    job: type[Job], closed_port_env: dict[str, str], tmp_path: Path
) -> None:
    """sys.exit(0) in the block while the server is down: the status is in the outbox,
    one line says so, and the process exits 75, not 0."""
    proc = job(
        """
        with JobExecution():
            sys.exit(0)
        """,
        env=closed_port_env,
    ).run()
    assert proc.returncode == 75, proc.stderr
    notice, *lines = proc.stderr.splitlines()  # the retry notice (SPEC 5) first
    assert "not delivered yet" in notice
    assert len(lines) == 1
    assert lines[0].startswith("ess-callback: final status SUCCESS was not delivered")
    (spooled,) = outbox_files(tmp_path / "outbox")
    assert str(spooled) in lines[0]


def test_exception_whose_text_fails_still_posts_error(job: type[Job], fake: FakeScheduler) -> None:
    """A job exception whose __str__ raises: ERROR is posted and that exception ends the
    process (exit 1), not an error about its text."""
    proc = job(
        """
        class Odd(Exception):
            def __str__(self):
                raise RuntimeError("no text")
        with JobExecution():
            raise Odd("row 7")
        """
    ).run()
    assert proc.returncode == 1
    assert only(fake).status is Status.ERROR
    assert "Odd" in proc.stderr.splitlines()[-1]


def test_rejected_status_exits_1_with_one_line(
    job: type[Job], fake: FakeScheduler, tmp_path: Path
) -> None:
    """A 404 for the final status: one line, exit 1, nothing in the outbox."""
    fake.set_state(42, None)
    proc = job(
        """
        with JobExecution():
            pass
        """
    ).run()
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "404" in lines[0], proc.stderr
    assert outbox_files(tmp_path / "outbox") == []


def test_missing_setting_exits_2_with_one_line(job: type[Job], job_env: dict[str, str]) -> None:
    """A job started without ESS_REQUEST_ID exits 2 with one line naming the variable."""
    env = {k: v for k, v in job_env.items() if k != "ESS_REQUEST_ID"}
    proc = job(
        """
        with JobExecution():
            print("job ran")
        """,
        env=env,
    ).run()
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "ESS_REQUEST_ID" in lines[0], proc.stderr


def _reap(child: subprocess.Popen[str]) -> None:
    """Never leave a child behind, whatever the test did."""
    if child.poll() is None:
        child.kill()
        child.wait(10)
    for stream in (child.stdout, child.stderr):
        _close(stream)


def _close(stream: IO[str] | None) -> None:
    if stream is not None:
        stream.close()
