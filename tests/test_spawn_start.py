"""What run's fork does before the exec, found in the parent: the program on PATH and the
call that asks for the parent-death signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ess_callback._spawn import _first_on_path


def test_the_first_executable_file_on_path_is_found(tmp_path: Path) -> None:
    """Folders without the name, a folder of that name and a file that may not be run are
    passed over, as execvpe passes over them."""
    first, second, third = (tmp_path / n for n in ("a", "b", "c"))
    for folder in (first, second, third):
        folder.mkdir()
    (first / "job").mkdir()  # a folder, not a program
    (second / "job").write_text("#!/bin/sh\n")
    (second / "job").chmod(0o644)  # not executable, even for root
    (third / "job").write_text("#!/bin/sh\n")
    (third / "job").chmod(0o755)
    env = {"PATH": os.pathsep.join(map(str, (tmp_path / "none", first, second, third)))}
    assert _first_on_path("job", env) == str(third / "job")
    assert _first_on_path("missing", env) is None
    assert _first_on_path("./job", env) is None  # a name with a slash is run as it is


#: run in a fresh interpreter, which has one thread: the test process may have more, and
#: a fork there is unsafe
DEATH_SIGNAL_CHECK = """
import ctypes, os, sys
from ess_callback._spawn import _prctl
set_death_signal = _prctl()
if set_death_signal is None:
    sys.exit(100)
pid = os.fork()
if pid == 0:
    set_death_signal()
    value = ctypes.c_int(-1)
    ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(value), 0, 0, 0)  # GET
    os._exit(value.value)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_parent_death_call_sets_sigkill() -> None:
    """The call found before the fork sets SIGKILL as the parent-death signal (checked in
    the forked child with PR_GET_PDEATHSIG)."""
    done = subprocess.run([sys.executable, "-c", DEATH_SIGNAL_CHECK], timeout=60)
    assert done.returncode == int(signal.SIGKILL), done.returncode
