"""The suite's own set-up (``conftest.py``): however the test runner was started, the
children the tests start get the default signal dispositions, and the runner itself
still ignores what its invoker told it to ignore."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

#: starts argv[1:] the way ``nohup`` and a script's background job (``cmd &``) do: with
#: SIGHUP, SIGINT and SIGQUIT ignored, and SIGTERM blocked for good measure
AS_NOHUP = """
import os, signal, sys
for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
    signal.signal(signum, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
os.execv(sys.argv[1], sys.argv[1:])
"""

INNER_TEST = """
import os
import signal
import subprocess


def test_children_start_with_the_default_dispositions():
    '''A shell that sends itself each signal dies of it.'''
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        code = subprocess.call(["/bin/sh", "-c", f"kill -{int(signum)} $$; exit 0"])
        assert code == -signum, signum.name


def test_the_runner_still_ignores_what_it_was_told_to():
    '''The runner itself survives a SIGHUP, as nohup asked.'''
    os.kill(os.getpid(), signal.SIGHUP)
"""


@pytest.mark.integration
def test_children_get_default_signals_when_the_runner_ignores_them(
    pytester: pytest.Pytester,
) -> None:
    """Under ``nohup`` or as a background job, tests still start their children with
    SIGHUP, SIGINT, SIGQUIT and SIGTERM at their defaults (else signal tests hang)."""
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.run(
        sys.executable,
        "-c",
        AS_NOHUP,
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        timeout=120,
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*2 passed*"])
