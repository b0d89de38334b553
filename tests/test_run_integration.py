"""``ess-callback run`` end to end (SPEC section 7): the real console script, real child
processes, real signals and pipes, reporting to the loopback FakeScheduler."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_examples import ROOT, run_page
from helpers import wait_until

from ess_callback import Callback, Status
from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

WRAPPER = os.path.join(os.path.dirname(sys.executable), "ess-callback")


# -- helpers --------------------------------------------------------------------------------
def run(
    args: list[str], env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``ess-callback run ARGS`` to its end; stdout and stderr captured."""
    return subprocess.run(
        [WRAPPER, "run", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``ess-callback run ARGS`` in the background."""
    return subprocess.Popen(
        [WRAPPER, "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def alive(pid: int) -> bool:
    """True while *pid* runs (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def read_pid(path: Path, timeout: float = 10.0) -> int:
    """The pid a job script wrote into *path*, once it is there."""
    wait_until(lambda: path.exists() and path.read_text().strip() != "", timeout, str(path))
    return int(path.read_text())


def statuses(fake: FakeScheduler) -> list[Status]:
    """The statuses the fake accepted, in order."""
    return [c.status for c in fake.received]


def final(fake: FakeScheduler) -> Callback:
    """The one final callback the fake accepted (after any UPDATEs)."""
    finals = [c for c in fake.received if c.status is not Status.UPDATE]
    assert len(finals) == 1, fake.received
    assert fake.received[-1] == finals[0]
    return finals[0]


def own_lines(stderr: str) -> list[str]:
    """The lines the wrapper printed itself (the child's own lines pass through as they are)."""
    return [line for line in stderr.splitlines() if line.startswith("ess-callback:")]


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test may leave behind on failure; killed at the end whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# -- the exit-code table --------------------------------------------------------------------
def test_exit_0_is_success(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """Exit 0 posts SUCCESS without a message; the wrapper exits 0 and prints nothing."""
    result = run(["--", "sh", "-c", "echo working; exit 0"], job_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "working\n"
    assert fake.received == [Callback(42, "handle-42", Status.SUCCESS, None)]
    assert own_lines(result.stderr) == []


def test_exit_0_after_warning_line_is_warning(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """A WARNING line on the progress pipe turns exit 0 into WARNING with the warnings and the
    stderr tail."""
    script = (
        'echo "WARNING 3 rows skipped" >&$ESS_CALLBACK_FD; '
        'echo "WARNING late file" >&$ESS_CALLBACK_FD; '
        "echo 'row 17 bad' >&2; exit 0"
    )
    result = run(["--", "sh", "-c", script], job_env)
    assert result.returncode == 0
    assert final(fake).status is Status.WARNING
    assert final(fake).message == "3 rows skipped\nlate file\n--- stderr ---\nrow 17 bad"
    assert "row 17 bad" in result.stderr


def test_listed_warning_exit_code(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """An exit code given with --warning-exit-code posts WARNING; the exit status is kept."""
    result = run(
        ["--warning-exit-code", "3", "--", "sh", "-c", "echo partial >&2; exit 3"], job_env
    )
    assert result.returncode == 3
    assert (final(fake).status, final(fake).message) == (
        Status.WARNING,
        "exit code 3\n--- stderr ---\npartial",
    )


def test_listed_business_error_exit_code(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """An exit code given with --business-error-exit-code posts BUSINESS_ERROR with the tail."""
    result = run(
        [
            "--business-error-exit-code",
            "4",
            "--business-error-exit-code",
            "5",
            "--",
            "sh",
            "-c",
            "echo 'period 2026-10 is closed' >&2; exit 5",
        ],
        job_env,
    )
    assert result.returncode == 5
    assert (final(fake).status, final(fake).message) == (
        Status.BUSINESS_ERROR,
        "exit code 5\n--- stderr ---\nperiod 2026-10 is closed",
    )


def test_other_exit_code_is_error(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """Any other exit code posts ERROR "exit code N" with the stderr tail."""
    result = run(["--", "sh", "-c", "echo 'connection refused' >&2; exit 7"], job_env)
    assert result.returncode == 7
    assert (final(fake).status, final(fake).message) == (
        Status.ERROR,
        "exit code 7\n--- stderr ---\nconnection refused",
    )
    assert own_lines(result.stderr) == []


def test_killed_by_another_signal_is_error(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """A child killed by a signal the wrapper did not send: ERROR naming it, exit 128+N."""
    result = run(["--", "sh", "-c", "echo dying >&2; kill -KILL $$"], job_env)
    assert result.returncode == 128 + signal.SIGKILL
    assert (final(fake).status, final(fake).message) == (
        Status.ERROR,
        "killed by SIGKILL\n--- stderr ---\ndying",
    )


def test_command_not_found_is_127(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """A command that does not exist posts ERROR and exits 127 with one clear line."""
    result = run(["--", "no-such-command-4711", "--flag"], job_env)
    assert result.returncode == 127
    assert final(fake).status is Status.ERROR
    assert final(fake).message == "cannot run 'no-such-command-4711': command not found"
    assert result.stderr == "ess-callback: cannot run 'no-such-command-4711': command not found\n"


#: Runs argv[1:] without the two capabilities that let root search any folder, so that a
#: folder with mode 000 refuses root as it refuses any user (dropped from the bounding set,
#: they are gone after exec; exit 99 when the kernel does not let them be dropped).
WITHOUT_ROOTS_FOLDER_SEARCH = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
    if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
        sys.exit(99)
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.fixture
def unsearchable(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A folder this test's children may not search, and the argv prefix that runs a
    child so (as root: without the capabilities that would let it search anyway)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    prefix = [sys.executable, "-c", WITHOUT_ROOTS_FOLDER_SEARCH] if os.geteuid() == 0 else []
    try:
        probe = subprocess.run(
            [*prefix, sys.executable, "-c", f"import os; os.listdir({str(folder)!r})"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if probe.returncode == 99 or "PermissionError" not in probe.stderr:
            pytest.skip("cannot run a child that is refused a folder here (no CAP_SETPCAP?)")
        yield folder, prefix
    finally:
        folder.chmod(0o700)


def test_command_not_found_behind_an_unsearchable_path_folder_is_127(
    job_env: dict[str, str], fake: FakeScheduler, unsearchable: tuple[Path, list[str]]
) -> None:
    """A PATH folder the user may not search does not turn "not found" into "permission
    denied": ERROR "command not found" and exit 127, as bash says."""
    folder, prefix = unsearchable
    env = {**job_env, "PATH": f"{folder}{os.pathsep}{job_env.get('PATH', os.defpath)}"}
    shell = subprocess.run(
        [*prefix, "/bin/sh", "-c", "no-such-command-4711"], env=env, capture_output=True
    )
    assert shell.returncode == 127  # the shell's own verdict, for comparison
    result = subprocess.run(
        [*prefix, WRAPPER, "run", "--", "no-such-command-4711"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 127, result.stderr
    assert final(fake).message == "cannot run 'no-such-command-4711': command not found"


def test_command_not_executable_is_126(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """A file without execute permission posts ERROR and exits 126, no traceback."""
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    result = run(["--", str(script)], job_env)
    assert result.returncode == 126
    assert final(fake).status is Status.ERROR
    assert "permission denied" in (final(fake).message or "")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


# -- signals and the process group ----------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_is_passed_to_the_grandchild_and_posts_cancel(
    job_env: dict[str, str],
    fake: FakeScheduler,
    tmp_path: Path,
    leftovers: list[int],
    signum: int,
) -> None:
    """A signal to the wrapper reaches a sleep started by the script; CANCEL names it and
    nothing of the group is left."""
    pidfile = tmp_path / "sleep.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait $!"
    proc = start(["--", "sh", "-c", script], job_env)
    sleep_pid = read_pid(pidfile)
    leftovers.append(sleep_pid)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=20)
    # sh dies of the signal; a background sleep of a non-interactive sh ignores SIGINT, so
    # then it is the group's SIGTERM after the child's end that stops it.
    assert proc.returncode == 128 + signum, stderr
    assert not alive(sleep_pid)
    name = signal.Signals(signum).name
    assert (final(fake).status, final(fake).message) == (Status.CANCEL, f"received {name}")


def test_child_ignoring_sigterm_is_killed_after_kill_after(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path, leftovers: list[int]
) -> None:
    """A child that traps and ignores SIGTERM gets SIGKILL after --kill-after."""
    ready = tmp_path / "ready"
    script = f"trap '' TERM; echo $$ > {ready}; while :; do sleep 0.1; done"
    proc = start(["--kill-after", "1", "--", "sh", "-c", script], job_env)
    pid = read_pid(ready)
    leftovers.append(pid)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    took = time.monotonic() - began
    assert proc.returncode == 128 + signal.SIGKILL, stderr
    assert 0.9 <= took < 8, took
    assert not alive(pid)
    assert (final(fake).status, final(fake).message) == (Status.CANCEL, "received SIGTERM")
    assert "SIGKILL" in stderr


def test_background_process_left_behind_is_stopped(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path, leftovers: list[int]
) -> None:
    """A script that leaves 'sleep 300 &' behind returns promptly, the sleep is gone and a
    warning says how many were stopped."""
    pidfile = tmp_path / "sleep.pid"
    began = time.monotonic()
    proc = start(["--", "sh", "-c", f"sleep 300 & echo $! > {pidfile}; exit 0"], job_env)
    _, stderr = proc.communicate(timeout=20)
    sleep_pid = int(pidfile.read_text())
    leftovers.append(sleep_pid)
    assert time.monotonic() - began < 8
    assert proc.returncode == 0, stderr
    assert not alive(sleep_pid)
    assert "1 process(es) left running in the job's process group" in stderr
    assert statuses(fake) == [Status.SUCCESS]


def test_daemon_that_left_the_group_does_not_hold_the_wrapper(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path, leftovers: list[int]
) -> None:
    """A process that left the group (setsid) but kept the stderr and progress pipes open
    does not keep the wrapper waiting for end of file, and is left running."""
    pidfile = tmp_path / "daemon.pid"
    # Its stdout goes elsewhere: only the wrapper's own pipes (stderr, progress) stay open.
    daemon = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' >/dev/null &"
    began = time.monotonic()
    with open(tmp_path / "stderr", "w+") as stderr:
        proc = subprocess.Popen(
            [
                WRAPPER,
                "run",
                "--",
                "sh",
                "-c",
                # exit once the daemon has left the group (else the clean-up stops it too)
                f"{daemon} while [ ! -s {pidfile} ]; do sleep 0.01; done; exit 0",
            ],
            env=job_env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        code = proc.wait(timeout=20)
    took = time.monotonic() - began
    daemon_pid = read_pid(pidfile)
    leftovers.append(daemon_pid)
    assert code == 0
    assert took < 8, took
    assert alive(daemon_pid)
    assert statuses(fake) == [Status.SUCCESS]


def test_signal_passes_even_while_stderr_is_stalled(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path, leftovers: list[int]
) -> None:
    """With nobody reading the wrapper's stderr (its relay blocked in a write), SIGTERM still
    reaches the command at once; the end is posted once the reader resumes."""
    pidfile = tmp_path / "child.pid"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [WRAPPER, "run", "--", "sh", "-c", f"echo $$ > {pidfile}; exec yes stalled >&2"],
        env=job_env,
        stdout=subprocess.DEVNULL,
        stderr=write_end,
    )
    os.close(write_end)
    child = read_pid(pidfile)
    leftovers.append(child)
    # Let `yes` fill our pipe (and the wrapper's): nothing reads read_end yet.
    wait_until(lambda: _pipe_full(read_end), 10, "the wrapper's stderr to fill up")
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: not alive(child), 5, "the command to get SIGTERM")
    threading.Thread(target=_drain, args=(read_end,), daemon=True).start()
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert (final(fake).status, final(fake).message) == (Status.CANCEL, "received SIGTERM")


def _pipe_full(fd: int) -> bool:
    """True when the pipe read by *fd* holds at least 64 KiB not yet read."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little") >= 65536


def _drain(fd: int) -> None:
    """Read *fd* to its end (and close it)."""
    with contextlib.suppress(OSError):
        while os.read(fd, 1 << 20):
            pass
    os.close(fd)


def test_sigusr1_is_passed_on_without_ending_the_job(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """SIGUSR1 reaches the command (to reopen its logs, say) and the job still succeeds."""
    ready, got = tmp_path / "ready", tmp_path / "got"
    wait = f"while [ ! -e {got} ]; do sleep 0.05; done"
    script = f"trap 'echo usr1 > {got}' USR1; echo $$ > {ready}; {wait}; exit 0"
    proc = start(["--", "sh", "-c", script], job_env)
    read_pid(ready)
    proc.send_signal(signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert got.read_text() == "usr1\n"
    assert statuses(fake) == [Status.SUCCESS]


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGALRM])
def test_other_signal_is_passed_on_and_the_end_reported(
    job_env: dict[str, str],
    fake: FakeScheduler,
    tmp_path: Path,
    leftovers: list[int],
    signum: int,
) -> None:
    """SIGQUIT or SIGALRM to the wrapper reaches the command, which dies of it; the wrapper
    lives on to post ERROR naming the signal and to exit 128+N."""
    pidfile = tmp_path / "child.pid"
    script = f"ulimit -c 0; echo $$ > {pidfile}; exec sleep 300"  # no core file left behind
    proc = start(["--", "sh", "-c", script], job_env)
    child = read_pid(pidfile)
    leftovers.append(child)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signum, stderr
    assert not alive(child)
    name = signal.Signals(signum).name
    assert final(fake).status is Status.ERROR
    assert (final(fake).message or "").startswith(f"killed by {name}")
    assert "Traceback" not in stderr


def _state(pid: int) -> str:
    """The one-letter state of *pid* in /proc (T: stopped)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        stat = fh.read()
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


def test_sigtstp_stops_command_and_wrapper_and_sigcont_resumes_both(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path, leftovers: list[int]
) -> None:
    """SIGTSTP (Ctrl-Z) stops the command's group and then the wrapper, as a shell expects;
    SIGCONT to the wrapper resumes the command, and the job still ends as SUCCESS."""
    pidfile, go = tmp_path / "child.pid", tmp_path / "go"
    script = f"echo $$ > {pidfile}; while [ ! -e {go} ]; do sleep 0.05; done; exit 0"
    proc = start(["--", "sh", "-c", script], job_env)
    child = read_pid(pidfile)
    leftovers.append(child)
    proc.send_signal(signal.SIGTSTP)
    wait_until(lambda: _state(child) == "T", 10, "the command to stop")
    wait_until(lambda: _state(proc.pid) == "T", 10, "the wrapper to stop")
    proc.send_signal(signal.SIGCONT)
    wait_until(lambda: _state(child) != "T", 10, "the command to resume")
    go.write_text("")
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert statuses(fake) == [Status.SUCCESS]


def test_closed_stderr_is_harmless(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """With its stderr closed, the wrapper still reports the end and keeps the exit status."""
    outer = f"exec {WRAPPER} run -- sh -c 'echo lost >&2; exit 3' 2>&-"
    result = subprocess.run(["sh", "-c", outer], env=job_env, capture_output=True, timeout=30)
    assert result.returncode == 3
    assert (final(fake).status, final(fake).message) == (
        Status.ERROR,
        "exit code 3\n--- stderr ---\nlost",  # the tail is kept all the same
    )


def test_timeout_stops_the_command_and_posts_error(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """--timeout sends SIGTERM to the group and posts ERROR "timed out after N s" with the
    stderr tail."""
    began = time.monotonic()
    result = run(
        ["--timeout", "1", "--", "sh", "-c", "echo 'still loading' >&2; exec sleep 60"], job_env
    )
    assert time.monotonic() - began < 10
    assert result.returncode == 128 + signal.SIGTERM
    assert (final(fake).status, final(fake).message) == (
        Status.ERROR,
        "timed out after 1 s\n--- stderr ---\nstill loading",
    )


def test_timeout_escalates_to_sigkill(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """A command that ignores SIGTERM after --timeout is killed after --kill-after."""
    result = run(
        ["--timeout", "0.5", "--kill-after", "0.5", "--", "sh", "-c", "trap '' TERM; sleep 60"],
        job_env,
    )
    assert result.returncode == 128 + signal.SIGKILL
    assert (final(fake).status, final(fake).message) == (Status.ERROR, "timed out after 0.5 s")


# -- the progress pipe ----------------------------------------------------------------------
def test_progress_fd_is_3_and_works_in_sh(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """ESS_CALLBACK_FD is 3 and '>&$ESS_CALLBACK_FD' works in a POSIX sh."""
    result = run(
        ["--", "sh", "-c", 'echo "fd=$ESS_CALLBACK_FD"; echo "UPDATE hi" >&$ESS_CALLBACK_FD'],
        job_env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "fd=3\n"
    assert statuses(fake) == [Status.UPDATE, Status.SUCCESS]
    assert fake.received[0].message == "hi"


def test_progress_fd_avoids_an_inherited_descriptor(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """When the wrapper inherited fd 3, the pipe takes the next free number below 10."""
    outer = f"exec 3>/dev/null; exec {WRAPPER} run -- sh -c 'echo $ESS_CALLBACK_FD'"
    result = subprocess.run(
        ["sh", "-c", outer], env=job_env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "4\n"


def test_update_is_posted_while_the_command_runs(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """An UPDATE line is posted at once, while the command is still running."""
    proc = subprocess.Popen(
        [WRAPPER, "run", "--", "sh", "-c", 'echo "UPDATE 50% loaded" >&$ESS_CALLBACK_FD; read x'],
        env=job_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        got = fake.wait_for(1, timeout=15)
        assert got == [Callback(42, "handle-42", Status.UPDATE, "50% loaded")]
        assert proc.poll() is None
    finally:
        proc.communicate("go\n", timeout=20)
    assert proc.returncode == 0
    assert statuses(fake) == [Status.UPDATE, Status.SUCCESS]


def test_updates_are_throttled(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """Many UPDATE lines within --update-interval post one UPDATE; the held one is dropped
    at the end and the final status is last."""
    lines = "; ".join(f'echo "UPDATE step {n}" >&$ESS_CALLBACK_FD' for n in range(20))
    result = run(["--update-interval", "60", "--", "sh", "-c", lines], job_env)
    assert result.returncode == 0, result.stderr
    assert statuses(fake) == [Status.UPDATE, Status.SUCCESS]
    assert (fake.received[0].message or "").startswith("step ")


def test_updates_spaced_beyond_the_interval_are_all_posted(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """UPDATE lines further apart than --update-interval are each posted, in order."""
    script = (
        'echo "UPDATE first" >&$ESS_CALLBACK_FD; sleep 0.8; '
        'echo "UPDATE second" >&$ESS_CALLBACK_FD; sleep 0.8'
    )
    result = run(["--update-interval", "0.3", "--", "sh", "-c", script], job_env)
    assert result.returncode == 0, result.stderr
    assert [(c.status, c.message) for c in fake.received] == [
        (Status.UPDATE, "first"),
        (Status.UPDATE, "second"),
        (Status.SUCCESS, None),
    ]


def test_other_progress_lines_are_ignored(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """Lines other than UPDATE/WARNING are ignored (logged at debug) and a huge line is
    harmless."""
    script = (
        'echo "hello there" >&$ESS_CALLBACK_FD; '
        "head -c 300000 /dev/zero | tr '\\0' x >&$ESS_CALLBACK_FD; "
        "echo >&$ESS_CALLBACK_FD"
    )
    result = run(["-vv", "--", "sh", "-c", script], job_env)
    assert result.returncode == 0, result.stderr
    assert statuses(fake) == [Status.SUCCESS]
    assert "ignored a progress line" in result.stderr


# -- output -----------------------------------------------------------------------------------
def test_stdout_passes_through_untouched(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """Stdout bytes reach the wrapper's stdout exactly; stderr passes through as well."""
    payload = bytes(range(256)) * 64
    code = (
        "import sys; sys.stdout.buffer.write(bytes(range(256)) * 64); "
        "sys.stderr.write('to stderr\\n')"
    )
    result = subprocess.run(
        [WRAPPER, "run", "--", sys.executable, "-c", code],
        env=job_env,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout == payload
    assert result.stderr == b"to stderr\n"


def test_capture_both_keeps_the_stdout_tail_too(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """--capture both relays stdout and puts its tail in the message as well."""
    result = run(
        ["--capture", "both", "--", "sh", "-c", "echo 'out line'; echo 'err line' >&2; exit 2"],
        job_env,
    )
    assert result.returncode == 2
    assert result.stdout == "out line\n"
    assert final(fake).message == "exit code 2\n--- stdout ---\nout line\n--- stderr ---\nerr line"


def test_capture_none_keeps_no_tail(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """--capture none leaves stderr to the child and puts no tail in the message."""
    result = run(["--capture", "none", "--", "sh", "-c", "echo 'err line' >&2; exit 2"], job_env)
    assert result.returncode == 2
    assert result.stderr == "err line\n"
    assert final(fake).message == "exit code 2"


def test_tail_bytes_and_message_limit(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """The tail holds the last --tail-bytes, and the message never exceeds 4000 bytes."""
    result = run(
        ["--tail-bytes", "10", "--", "sh", "-c", "printf 'abcdefghijklmnopqrstuvwxyz' >&2; exit 1"],
        job_env,
    )
    assert result.returncode == 1
    assert final(fake).message == "exit code 1\n--- last 10 bytes of stderr ---\nqrstuvwxyz"
    fake.clear()
    fake.set_state(42, "RUNNING")  # run the request again (clear() keeps its state)
    result = run(
        [
            "--tail-bytes",
            "20000",
            "--",
            "sh",
            "-c",
            "head -c 20000 /dev/zero | tr '\\0' e >&2; exit 1",
        ],
        job_env,
    )
    message = final(fake).message or ""
    assert len(message.encode()) <= 4000
    assert message.startswith("exit code 1\n--- stderr ---\neee")
    assert "truncated" in message


#: Spawns argv[1:] and prints its exit status and peak RSS (KiB). A small process of its
#: own, because a child's peak RSS counts the memory of the parent it was forked from.
PEAK_RSS_HELPER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def test_hundred_megabytes_of_stderr_in_bounded_memory(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """100 MB of stderr pass through with the wrapper's peak RSS under 40 MiB, and the
    tail is in the message."""
    script = "head -c 100000000 /dev/zero | tr '\\0' z >&2; echo THE-END >&2; exit 3"
    result = subprocess.run(
        [sys.executable, "-S", "-c", PEAK_RSS_HELPER, WRAPPER, "run", "--", "sh", "-c", script],
        env=job_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=120,
    )
    code, peak_kib = (int(word) for word in result.stdout.split())
    assert code == 3
    assert peak_kib / 1024 < 40, f"peak RSS {peak_kib / 1024:.1f} MiB"
    message = final(fake).message or ""
    assert message.startswith("exit code 3\n--- last 2000 bytes of stderr ---\nzzz")
    assert message.endswith("zzzTHE-END")


# -- redaction ------------------------------------------------------------------------------
def test_environment_secrets_are_redacted(job_env: dict[str, str], fake: FakeScheduler) -> None:
    """A *PASSWORD value in the message becomes ***; the child's own stderr is untouched and
    the wrapper's own lines are redacted."""
    env = {**job_env, "DB_PASSWORD": "hunter2-secret"}
    script = 'echo "login with $DB_PASSWORD failed" >&2; exit 9'
    result = run(["-v", "--", "sh", "-c", script, "hunter2-secret"], env)
    assert result.returncode == 9
    assert final(fake).message == "exit code 9\n--- stderr ---\nlogin with *** failed"
    assert "login with hunter2-secret failed" in result.stderr  # the job's log, unchanged
    mine = own_lines(result.stderr)
    assert any("started" in line and "***" in line for line in mine), mine
    assert not any("hunter2-secret" in line for line in mine)


def test_redact_patterns_apply_to_updates_and_final(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """Every --redact match becomes *** in UPDATE and final messages."""
    script = (
        'echo "UPDATE loading account=12345" >&$ESS_CALLBACK_FD; '
        "echo 'bad account=998877 and iban DE1234' >&2; exit 1"
    )
    result = run(
        ["--redact", r"account=\d+", "--redact", "DE[0-9]+", "--", "sh", "-c", script], job_env
    )
    assert result.returncode == 1
    assert [(c.status, c.message) for c in fake.received] == [
        (Status.UPDATE, "loading ***"),
        (Status.ERROR, "exit code 1\n--- stderr ---\nbad *** and iban ***"),
    ]


def test_spooled_message_is_redacted(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """A final status kept in the outbox holds the redacted message, never the secret."""
    env = {**job_env, "API_TOKEN": "tok-abcdef-123", "ESS_CALLBACK_RETRY_SECONDS": "0.5"}
    fake.fail_next(100, 503)
    result = run(["--", "sh", "-c", 'echo "token $API_TOKEN rejected" >&2; exit 4'], env)
    assert result.returncode == 4
    files = list((tmp_path / "outbox").glob("*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert record["status"] == "ERROR"
    assert record["message"] == "exit code 4\n--- stderr ---\ntoken *** rejected"
    assert "tok-abcdef-123" not in files[0].read_text()


# -- delivery -------------------------------------------------------------------------------
def test_undelivered_success_kept_in_outbox_exits_75(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """Exit 0 whose SUCCESS cannot be delivered: kept in the outbox, exit 75, and why."""
    env = {**job_env, "ESS_CALLBACK_RETRY_SECONDS": "0.5"}
    fake.fail_next(100, 503)
    result = run(["--", "true"], env)
    assert result.returncode == 75
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 1
    said = [line for line in result.stderr.splitlines() if "not delivered" in line]
    assert len(said) == 1, result.stderr  # one line, not a log record and a line
    assert (
        said[0].startswith("ess-callback: final status SUCCESS was not delivered")
        and "outbox" in said[0]
    )
    assert "Traceback" not in result.stderr


def test_undelivered_failure_kept_in_outbox_is_said_once(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """A failed command whose ERROR went to the outbox keeps its exit status; one line says
    where the status is."""
    env = {**job_env, "ESS_CALLBACK_RETRY_SECONDS": "0.5"}
    fake.fail_next(100, 503)
    result = run(["--", "sh", "-c", "exit 5"], env)
    assert result.returncode == 5
    said = [line for line in result.stderr.splitlines() if "not delivered" in line]
    assert len(said) == 1, result.stderr
    assert (
        said[0].startswith("ess-callback: final status ERROR was not delivered")
        and "outbox" in said[0]
    )


def test_rejected_success_exits_1(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """Exit 0 whose SUCCESS is rejected (404): exit 1, one line saying why, nothing spooled."""
    fake.set_state(42, None)  # the scheduler does not know the request
    result = run(["--", "true"], job_env)
    assert result.returncode == 1
    assert any(
        "final status SUCCESS was not delivered" in line for line in own_lines(result.stderr)
    )
    assert not list((tmp_path / "outbox").glob("*.json"))


def test_undelivered_failure_keeps_the_child_exit_status(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """When the command failed, its own exit status is kept even if the report failed."""
    fake.set_state(42, None)
    result = run(["--", "sh", "-c", "exit 6"], job_env)
    assert result.returncode == 6
    assert any("final status ERROR was not delivered" in line for line in own_lines(result.stderr))


def test_an_outbox_that_can_never_be_a_folder_is_refused_before_the_command(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """An outbox under a regular file is a configuration error: one line naming it, exit 2,
    and the command never runs (its end could not be kept)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {**job_env, "ESS_CALLBACK_OUTBOX": str(blocker / "outbox")}
    marker = tmp_path / "ran"
    result = run(["--", "touch", str(marker)], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(blocker / "outbox") in lines[0], result.stderr
    assert "ESS_CALLBACK_OUTBOX" in lines[0]
    assert not marker.exists()
    assert fake.requests == []


#: ``ess-callback run`` on a full disk: every fsync fails with ENOSPC
FULL_DISK_WRAPPER = (
    "import errno, os\n"
    "def full(fd):\n"
    "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
    "os.fsync = full\n"
    "from ess_callback.cli import main\n"
    "main()\n"
)


def test_a_full_disk_names_the_folder_and_keeps_the_exit_status(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """When the final status can be neither delivered nor kept (ENOSPC), one line names the
    outbox folder; a failed command keeps its exit status, and exit 0 becomes 1."""
    env = {**job_env, "ESS_CALLBACK_RETRY_SECONDS": "0.3"}
    fake.fail_next(100, 503)
    outbox = tmp_path / "outbox"

    def wrapper(*command: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", FULL_DISK_WRAPPER, "run", "--", *command]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)

    failed = wrapper("sh", "-c", "exit 3")
    assert failed.returncode == 3
    assert f"cannot write to outbox folder {outbox}" in failed.stderr
    assert "No space left on device" in failed.stderr and "Traceback" not in failed.stderr
    succeeded = wrapper("sh", "-c", "echo loaded")
    assert succeeded.returncode == 1
    assert succeeded.stdout == "loaded\n"
    said = [line for line in succeeded.stderr.splitlines() if "not delivered" in line]
    assert len(said) == 1, succeeded.stderr  # said once
    assert f"cannot write to outbox folder {outbox}" in succeeded.stderr
    assert not list(outbox.glob("*.json"))


def test_dry_run_runs_the_command_and_sends_nothing(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path
) -> None:
    """--dry-run: the command runs, nothing is sent or spooled, JSON lines are printed."""
    marker = tmp_path / "ran"
    script = f'touch {marker}; echo "UPDATE half" >&$ESS_CALLBACK_FD; exit 0'
    result = run(["--dry-run", "--update-interval", "0", "--", "sh", "-c", script], job_env)
    assert result.returncode == 0
    assert marker.exists()
    assert fake.requests == []
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(d["status"], d["statusMessage"]) for d in lines] == [
        ("UPDATE", "half"),
        ("SUCCESS", None),
    ]
    assert all(d["dry_run"] is True and d["request_id"] == 42 for d in lines)
    assert not (tmp_path / "outbox").exists()


# -- cancellation from ESS --------------------------------------------------------------------
@pytest.mark.parametrize("check_in", [True, False], ids=["check-in", "get-fallback"])
def test_cancel_in_ess_stops_the_command_and_posts_cancel(
    job_env: dict[str, str],
    fake: FakeScheduler,
    tmp_path: Path,
    leftovers: list[int],
    check_in: bool,
) -> None:
    """With --cancel-poll, an operator's cancel (CANCELLING) stops the group and posts CANCEL,
    heard through checkInCancelling (which records the job's check-in) or, from an ESS that
    answers it 404, through the request state."""
    if not check_in:
        fake.fail_next(1, 404, method="POST")
    pidfile = tmp_path / "sleep.pid"
    proc = start(
        ["--cancel-poll", "0.2", "--", "sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait $!"],
        job_env,
    )
    sleep_pid = read_pid(pidfile)
    leftovers.append(sleep_pid)
    wait_until(
        lambda: any(r.path.endswith("/checkInCancelling") for r in fake.requests),
        10,
        "the wrapper to poll",
    )
    fake.cancel(42)
    _, stderr = proc.communicate(timeout=20)
    assert (fake.last_check_in(42) is not None) is check_in
    assert any(r.method == "GET" for r in fake.requests) is not check_in
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert not alive(sleep_pid)
    callback = final(fake)
    assert callback.status is Status.CANCEL
    assert "CANCELLING" in (callback.message or "")
    assert fake.state(42) == "CANCELLED"


# -- the manual --------------------------------------------------------------------------------


def test_the_manual_run_example_ends_each_request_as_it_says(tmp_path: Path) -> None:
    """The "Wrap a script" example of the script how-to, run as the manual's harness runs
    it, ends each request as the page says: request 42 SUCCESS, then request 43
    BUSINESS_ERROR with "exit code 3" and the end of the script's stderr."""
    page = ROOT / "docs" / "howto" / "script.md"
    with FakeScheduler(auto_submit=True) as fake:
        ran = run_page(page, tmp_path, fake.url, section="Wrap a script")
        assert fake.callbacks_for(42)[-1].status is Status.SUCCESS
        closed = fake.callbacks_for(43)[-1]
    assert closed.status is Status.BUSINESS_ERROR
    assert (closed.message or "").startswith("exit code 3\n--- stderr ---\naccounting period")
    assert "Traceback" not in ran.output


# -- the sample -------------------------------------------------------------------------------
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "shell_job.sh"


@pytest.mark.parametrize(
    ("extra", "status", "code", "message"),
    [
        ({}, Status.SUCCESS, 0, None),
        ({"SAMPLE_SKIP": "2"}, Status.WARNING, 0, "2 rows skipped (bad dates)"),
        (
            {"SAMPLE_PERIOD_CLOSED": "1"},
            Status.BUSINESS_ERROR,
            3,
            "exit code 3\n--- stderr ---\naccounting period 2026-10 is closed; nothing to extract",
        ),
        (
            {"SAMPLE_CRASH": "1"},
            Status.ERROR,
            1,
            "exit code 1\n--- stderr ---\nsource database unreachable after 500 rows",
        ),
    ],
)
def test_sample_shell_job(
    job_env: dict[str, str],
    fake: FakeScheduler,
    extra: dict[str, str],
    status: Status,
    code: int,
    message: str | None,
) -> None:
    """samples/shell_job.sh ends as its header says, its progress posted as UPDATEs."""
    args = ["--update-interval", "0", "--business-error-exit-code", "3", "--", str(SAMPLE)]
    result = run(args, {**job_env, **extra})
    assert result.returncode == code, result.stderr
    assert (final(fake).status, final(fake).message) == (status, message)
    updates = [c.message or "" for c in fake.received if c.status is Status.UPDATE]
    assert all(u.startswith("extracted ") for u in updates)
    assert bool(updates) == ("SAMPLE_PERIOD_CLOSED" not in extra)  # it ends before any work


def test_tail_reaches_the_message_while_a_daemon_holds_the_pipe(
    job_env: dict[str, str], fake: FakeScheduler, tmp_path: Path, leftovers: list[int]
) -> None:
    """A last stderr write longer than --tail-bytes is in the ERROR message even when a
    daemon that left the group keeps the pipe open (no end of file ever comes)."""
    pidfile = tmp_path / "daemon.pid"
    script = (
        f"{sys.executable} -c \"import sys; sys.stderr.write('A' * 2990 + 'LAST LINE\\n')\"; "
        f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' >/dev/null & "
        # Exit only once the daemon has left the group: before that, the wrapper's clean-up
        # of the group at the end would (rightly) stop it too.
        f"while [ ! -s {pidfile} ]; do sleep 0.01; done; "
        "exit 1"
    )
    result = run(["--", "sh", "-c", script], job_env)
    leftovers.append(read_pid(pidfile))
    assert result.returncode == 1
    (end,) = fake.received
    assert end.status is Status.ERROR
    assert end.message is not None
    assert end.message.startswith("exit code 1\n--- last 2000 bytes of stderr ---\n")
    assert end.message.endswith("LAST LINE")


def test_a_month_long_timeout_is_waited_normally(
    job_env: dict[str, str], fake: FakeScheduler
) -> None:
    """--timeout and --kill-after of 30 days (beyond one poll() call's limit) wait
    normally: the command runs to its end and SUCCESS is posted."""
    month = str(30 * 24 * 3600)
    args = ["--timeout", month, "--kill-after", month, "--", "sh", "-c", "sleep 0.5; exit 0"]
    result = run(args, job_env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [c.status for c in fake.received] == [Status.SUCCESS]
