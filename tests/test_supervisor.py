"""The parts of ``ess-callback run`` that need no process: the tail ring, progress lines,
the mapping of an end to a status and exit code (SPEC section 7, the ``run`` table)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from ess_callback import Status
from ess_callback._endings import ChildEnd, Ending, command_ending, exit_code, spawn_message
from ess_callback._process_group import group_members, passed_signals
from ess_callback._relay import LineReader, TailBuffer, make_pipe, parse_progress, progress_fd
from ess_callback._session import WarningList
from ess_callback._settings import environment_secrets


def exited(code: int) -> int:
    """The wait status of a process that exited with *code*."""
    return code << 8


def killed(signum: int, core: bool = False) -> int:
    """The wait status of a process killed by *signum*."""
    return signum | (0x80 if core else 0)


# -- the tail ring --------------------------------------------------------------------------
def test_tail_keeps_everything_while_it_fits() -> None:
    """Until the ring is full, the tail is all that was written, in order."""
    tail = TailBuffer(10)
    tail.write(b"abc")
    tail.write(b"def")
    assert tail.getvalue() == b"abcdef"
    assert tail.total == 6


def test_tail_keeps_only_the_last_bytes_across_wraps() -> None:
    """Writes of every size, wrapping the ring, leave exactly the last *size* bytes."""
    data = bytes(range(256)) * 40
    for chunk in (1, 3, 7, 10, 11, 64, 1000):
        tail = TailBuffer(10)
        for start in range(0, len(data), chunk):
            tail.write(data[start : start + chunk])
        assert tail.getvalue() == data[-10:], chunk
        assert tail.total == len(data)


def test_tail_memory_is_fixed() -> None:
    """Writing megabytes never grows the ring."""
    tail = TailBuffer(100)
    block = b"x" * 65536
    for _ in range(64):
        tail.write(block)
    assert len(tail._ring) == 100
    assert tail.getvalue() == b"x" * 100


def test_tail_of_zero_keeps_nothing() -> None:
    """--tail-bytes 0 keeps no tail but still counts."""
    tail = TailBuffer(0)
    tail.write(b"hello")
    assert tail.getvalue() == b""
    assert tail.total == 5


def test_tail_text_drops_a_character_cut_in_two() -> None:
    """A multi-byte character cut by the ring's start is left out, not garbled."""
    tail = TailBuffer(5)
    tail.write("xxé€".encode())  # é = 2 bytes, € = 3 bytes: the last 5 bytes are é€
    assert tail.text() == "é€"
    tail.write(b"b")  # now the ring starts with the second byte of é
    assert tail.getvalue() == "é€b".encode()[1:]
    assert tail.text() == "€b"


def test_tail_section_is_titled_and_says_when_cut() -> None:
    """A section names its stream and, when cut, how many bytes it shows."""
    tail = TailBuffer(2000)
    assert tail.section("stderr") is None
    tail.write(b"\n")
    assert tail.section("stderr") is None
    tail.write(b"oops\n")
    assert tail.section("stderr") == "--- stderr ---\noops"
    short = TailBuffer(4)
    short.write(b"whoops")
    assert short.section("stdout") == "--- last 4 bytes of stdout ---\noops"


# -- progress lines -------------------------------------------------------------------------
def test_progress_keywords() -> None:
    """UPDATE and WARNING lines are recognised (any case, blanks trimmed); others are not."""
    assert parse_progress("UPDATE 50% done") == ("UPDATE", "50% done")
    assert parse_progress("  update   loaded 10 rows ") == ("UPDATE", "loaded 10 rows")
    assert parse_progress("WARNING 3 rows skipped") == ("WARNING", "3 rows skipped")
    assert parse_progress("UPDATE") == ("UPDATE", "")
    assert parse_progress("UPDATED 5") is None
    assert parse_progress("hello") is None
    assert parse_progress("") is None


def test_line_reader_splits_and_joins_chunks() -> None:
    """Lines split across reads are joined; CR LF endings are trimmed."""
    reader = LineReader(-1)
    assert reader.feed(b"UPDATE a\r\nUPD") == ["UPDATE a"]
    assert reader.feed(b"ATE b\nWARN") == ["UPDATE b"]
    assert reader.rest() == ["WARN"]
    assert reader.rest() == []


def test_line_reader_bounds_a_huge_line() -> None:
    """A line longer than the limit keeps its head only; memory never grows past it."""
    reader = LineReader(-1, limit=100)
    for _ in range(1000):
        assert reader.feed(b"y" * 1000) == []
        assert len(reader._partial) <= 100
    assert reader.feed(b"\nUPDATE next\n") == ["y" * 100, "UPDATE next"]


def test_line_reader_reads_a_pipe_to_its_end() -> None:
    """Reading a real pipe gives its lines, then None at end of file."""
    read_end, write_end = make_pipe()
    try:
        os.write(write_end, b"UPDATE 1\nWARNING two\n")
        os.close(write_end)
        reader = LineReader(read_end)
        assert reader.read() == ["UPDATE 1", "WARNING two"]
        assert reader.read() is None
    finally:
        os.close(read_end)


def test_pipes_sit_above_the_low_descriptors() -> None:
    """Our pipe ends are close-on-exec and at 10 or above, out of the child's way."""
    read_end, write_end = make_pipe()
    try:
        assert read_end >= 10 and write_end >= 10
        assert not os.get_inheritable(read_end) and not os.get_inheritable(write_end)
        assert not os.get_blocking(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_progress_fd_is_low() -> None:
    """The progress descriptor is below 10 so that '>&$ESS_CALLBACK_FD' works in sh."""
    assert 3 <= progress_fd() <= 9


def test_warnings_are_bounded() -> None:
    """A flood of WARNING lines keeps the first ones and counts the rest."""
    warnings = WarningList(limit=50)
    for number in range(100):
        warnings.add(f"warning {number}")
    lines = warnings.lines()
    assert lines[0] == "warning 0"
    assert lines[-1].startswith("(") and lines[-1].endswith("more warnings)")
    assert sum(len(line) + 1 for line in lines[:-1]) <= 50


# -- the run table --------------------------------------------------------------------------
def test_exit_zero_is_success() -> None:
    """Exit 0 with no WARNING line is SUCCESS without a message."""
    end = ChildEnd("job", exited(0), tails=("--- stderr ---\nnoise",))
    assert command_ending(end) == Ending(Status.SUCCESS, None)
    assert exit_code(end) == 0


def test_exit_zero_after_warning_is_warning() -> None:
    """Exit 0 after a WARNING line is WARNING with the warnings, then the tail."""
    end = ChildEnd("job", exited(0), warnings=("3 rows skipped",), tails=("--- stderr ---\nx",))
    assert command_ending(end) == Ending(Status.WARNING, "3 rows skipped\n--- stderr ---\nx")


def test_listed_warning_code() -> None:
    """An exit code listed by --warning-exit-code is WARNING naming the code."""
    end = ChildEnd("job", exited(3), tails=("--- stderr ---\nlate",))
    ending = command_ending(end, warning_codes={3})
    assert ending.status is Status.WARNING
    assert ending.message == "exit code 3\n--- stderr ---\nlate"
    assert exit_code(end) == 3


def test_listed_business_code() -> None:
    """An exit code listed by --business-error-exit-code is BUSINESS_ERROR."""
    end = ChildEnd("job", exited(4), tails=("--- stderr ---\nperiod closed",))
    assert command_ending(end, business_codes={4}) == Ending(
        Status.BUSINESS_ERROR,
        "exit code 4\n--- stderr ---\nperiod closed",
    )


def test_listed_zero_wins() -> None:
    """A user who lists 0 gets what they asked for."""
    assert command_ending(ChildEnd("job", exited(0)), warning_codes={0}).status is Status.WARNING


def test_other_code_is_error() -> None:
    """Any other exit code is ERROR "exit code N" (and the warnings come along)."""
    end = ChildEnd("job", exited(5), warnings=("slow",))
    assert command_ending(end, warning_codes={3}, business_codes={4}) == Ending(
        Status.ERROR,
        "exit code 5\nslow",
    )
    assert exit_code(end) == 5


def test_killed_by_signal_is_error_naming_it() -> None:
    """Death by a signal the wrapper did not send is ERROR naming it; exit 128+N."""
    end = ChildEnd("job", killed(signal.SIGKILL))
    assert command_ending(end) == Ending(Status.ERROR, "killed by SIGKILL")
    assert exit_code(end) == 128 + signal.SIGKILL
    core = ChildEnd("job", killed(signal.SIGSEGV, core=True))
    assert command_ending(core) == Ending(Status.ERROR, "killed by SIGSEGV (core dumped)")


def test_stopped_by_the_wrapper_wins() -> None:
    """A signal passed on is CANCEL (no tail); a timeout is ERROR with the tail."""
    cancel = ChildEnd(
        "job", exited(0), stopped=(Status.CANCEL, "received SIGTERM"), tails=("--- stderr ---\nx",)
    )
    assert command_ending(cancel) == Ending(Status.CANCEL, "received SIGTERM")
    assert exit_code(cancel) == 0
    timeout = ChildEnd(
        "job",
        killed(signal.SIGTERM),
        stopped=(Status.ERROR, "timed out after 2 s"),
        tails=("--- stderr ---\nworking",),
    )
    assert command_ending(timeout) == Ending(
        Status.ERROR, "timed out after 2 s\n--- stderr ---\nworking"
    )
    assert exit_code(timeout) == 143


def test_not_found_is_127() -> None:
    """A command that does not exist is ERROR and exit 127."""
    end = ChildEnd("no-such-cmd", None, spawn_error=FileNotFoundError(errno.ENOENT, "x"))
    assert command_ending(end) == Ending(
        Status.ERROR, "cannot run 'no-such-cmd': command not found"
    )
    assert exit_code(end) == 127


def test_eacces_from_the_path_search_with_no_such_file_is_127(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """EACCES from searching PATH (a folder the user may not search) for a command that no
    PATH folder visibly holds is "command not found", 127, as in bash."""
    monkeypatch.setenv("PATH", str(tmp_path))
    end = ChildEnd("no-such-cmd", None, spawn_error=PermissionError(errno.EACCES, "x"))
    assert command_ending(end) == Ending(
        Status.ERROR, "cannot run 'no-such-cmd': command not found"
    )
    assert exit_code(end) == 127


def test_eacces_for_a_file_found_on_path_is_126(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """EACCES for a command that a PATH folder holds (not executable) stays 126."""
    (tmp_path / "data-cmd").write_text("not a program\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'missing'}{os.pathsep}{tmp_path}")
    end = ChildEnd("data-cmd", None, spawn_error=PermissionError(errno.EACCES, "x"))
    assert exit_code(end) == 126
    assert "permission denied" in spawn_message(end)


def test_not_executable_is_126(tmp_path: os.PathLike[str]) -> None:
    """A command that exists but cannot be executed is ERROR and exit 126."""
    end = ChildEnd("./data.txt", None, spawn_error=PermissionError(errno.EACCES, "x"))
    assert exit_code(end) == 126
    assert "permission denied" in spawn_message(end)


def test_missing_interpreter_is_126(tmp_path: os.PathLike[str]) -> None:
    """ENOENT for a script that exists means a bad #! line: 126, like sh."""
    script = os.path.join(tmp_path, "job.sh")
    with open(script, "w") as fh:
        fh.write("#!/no/such/shell\n")
    end = ChildEnd(script, None, spawn_error=FileNotFoundError(errno.ENOENT, "x"))
    assert exit_code(end) == 126
    assert "bad interpreter" in spawn_message(end)


# -- secrets and groups ---------------------------------------------------------------------
def test_environment_secrets() -> None:
    """Values of *PASSWORD, *TOKEN, *SECRET and *KEY variables are secrets; flags are not."""
    environ = {
        "DB_PASSWORD": "hunter2-pw",
        "API_TOKEN": "tok-123456",
        "CLIENT_SECRET": "s3cr3t-value",
        "AWS_ACCESS_KEY": "AKIA-EXAMPLE",
        "FEATURE_KEY": "1",
        "HOME": "/root",
        "KEYBOARD": "us-layout",
    }
    assert set(environment_secrets(environ)) == {
        "hunter2-pw",
        "tok-123456",
        "s3cr3t-value",
        "AKIA-EXAMPLE",
    }


@pytest.mark.integration
def test_group_members_of_a_gone_group_is_zero() -> None:
    """A process group with nobody left in it counts zero."""
    # The pid of a reaped child names no group any more. (Spawned, not forked: forking a
    # process that runs threads may deadlock the child, and Python 3.12 warns of it.)
    child = subprocess.Popen(["true"])
    child.wait()
    assert group_members(child.pid) == 0


def test_group_members_counts_our_own_group() -> None:
    """Our own process group holds at least this process."""
    count = group_members(os.getpgrp())
    assert count is None or count >= 1


@pytest.mark.parametrize(
    "name",
    [
        *("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGPWR"),
        *("SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ", "SIGWINCH", "SIGCONT", "SIGTSTP"),
    ],
)
def test_catchable_signals_are_passed_on(name: str) -> None:
    """Every signal a user or the system may send the wrapper is passed on to the group."""
    if not hasattr(signal, name):
        pytest.skip(f"{name} does not exist here")
    assert getattr(signal, name) in passed_signals()


@pytest.mark.parametrize(
    "name", ["SIGCHLD", "SIGKILL", "SIGSTOP", "SIGPIPE", "SIGTTIN", "SIGTTOU", "SIGSEGV"]
)
def test_own_and_terminal_signals_keep_their_default(name: str) -> None:
    """Our SIGCHLD, the uncatchable, SIGPIPE, SIGTTIN/SIGTTOU and faults are not passed on."""
    assert getattr(signal, name) not in passed_signals()


@pytest.mark.parametrize("name", ["PASSWORD", "TOKEN", "SECRET", "KEY"])
def test_every_suffix_counts(name: str) -> None:
    """Each of the four suffixes marks a secret, whatever comes before it."""
    assert environment_secrets({f"X_{name}": "value-1234"}) == ("value-1234",)
