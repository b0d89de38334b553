"""``run`` leaves without the interpreter's teardown once its end is settled: the exit
handlers still run, every line of its log is complete, and the lease is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ess_callback import Status, _lifecycle
from ess_callback.testing import FakeScheduler

WRAPPER = os.path.join(os.path.dirname(sys.executable), "ess-callback")


def test_leave_in_process_is_sys_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Called in-process (a test runner, an application), leave() raises SystemExit."""
    monkeypatch.setattr(_lifecycle._State, "allowed", False)
    with pytest.raises(SystemExit) as exited:
        _lifecycle.leave(3)
    assert exited.value.code == 3


def test_leave_waits_for_threads_that_are_not_daemons(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread the normal exit would wait for keeps the normal exit."""
    monkeypatch.setattr(_lifecycle._State, "allowed", True)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=False)
    worker.start()
    try:
        with pytest.raises(SystemExit) as exited:
            _lifecycle.leave(4)
    finally:
        stop.set()
        worker.join()
    assert exited.value.code == 4


LEAVE_SCRIPT = """
import atexit, logging, sys
from ess_callback import _lifecycle
atexit.register(lambda: sys.stderr.write("exit handler ran\\n"))
handler = logging.StreamHandler(sys.stderr)
logging.getLogger("t").addHandler(handler)
logging.getLogger("t").warning("a log line")
sys.stdout.write("unflushed output")
_lifecycle.allow()
_lifecycle.leave(5)
"""


def test_leave_runs_exit_handlers_and_flushes_the_streams() -> None:
    """os._exit comes after the exit handlers and the flushes."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", LEAVE_SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 5
    assert done.stdout == "unflushed output"
    assert done.stderr == "a log line\nexit handler ran\n"


@pytest.mark.integration
def test_run_leaves_with_complete_json_lines_and_no_lease(
    fake: FakeScheduler, job_env: dict[str, str], tmp_path: Path
) -> None:
    """The console script's run: the exit status, every JSON log line whole, the final
    status delivered and the lease removed."""
    job = "echo 'WARNING careful' >&$ESS_CALLBACK_FD; exit 3"
    env = {**job_env, "ESS_CALLBACK_LOG_FORMAT": "json"}
    done = subprocess.run(
        [WRAPPER, "-vv", "run", "--", "sh", "-c", job],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stderr.endswith("\n")
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(r["message"] == "warning from the job: careful" for r in records)
    assert fake.received[-1].status is Status.ERROR
    assert list((tmp_path / "outbox" / "running").glob("*")) == []


@pytest.mark.integration
def test_run_leaves_with_the_line_saying_the_status_is_kept(
    job_env: dict[str, str], tmp_path: Path
) -> None:
    """An end kept in the outbox: 75, the one line saying so, the entry on disk."""
    env = {**job_env, "ESS_BASE_URL": "http://127.0.0.1:9", "ESS_CALLBACK_RETRY_SECONDS": "0"}
    done = subprocess.run(
        [WRAPPER, "run", "--", "true"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 75
    assert done.stderr.endswith("run 'ess-callback flush' to send it\n")
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 1
    assert list((tmp_path / "outbox" / "running").glob("*")) == []
