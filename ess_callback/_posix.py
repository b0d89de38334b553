"""What ess-callback needs of a POSIX system, looked for in one place.

``JobExecution``, the outbox and the commands rely on POSIX signals (SIGHUP, SIGCHLD, ...),
process groups and file locks (``fcntl``). The modules that use them import them from
here, so that on a platform without them (Windows) the first import fails with one
``ImportError`` that says what is POSIX-only and what this Python lacks, instead of a bare
"cannot import name" or an ``AttributeError`` from deep inside.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys

__all__ = ["CANCEL_SIGNALS", "PORTABLE", "POSIX_ONLY", "fcntl", "missing"]

#: the parts of ess-callback that need a POSIX system (the manual says the same: docs/index.md)
POSIX_ONLY = (
    "JobExecution, the outbox (ess_callback.outbox) and the ess-callback command "
    "(run, send, flush, wait, fake-server)"
)
#: what works anywhere Python does
PORTABLE = "Status, Callback, Outcome, BearerAuth, SchedulerClient and the errors"

_SIGNALS = ("SIGHUP", "SIGCHLD", "SIGPIPE", "SIGXFSZ", "SIGKILL")
_OS_FUNCTIONS = ("killpg", "getpgid", "posix_spawnp")


def missing() -> list[str]:
    """The POSIX pieces this Python lacks (empty on Linux, macOS and the BSDs)."""
    gaps = [f"signal.{name}" for name in _SIGNALS if not hasattr(signal, name)]
    gaps += [f"os.{name}" for name in _OS_FUNCTIONS if not hasattr(os, name)]
    if importlib.util.find_spec("fcntl") is None:
        gaps.append("the fcntl module")
    return gaps


_GAPS = missing()
if _GAPS:
    raise ImportError(
        f"{POSIX_ONLY} need a POSIX system such as Linux or macOS; this Python "
        f"({sys.platform}) lacks {' and '.join(_GAPS)}. Without one, only {PORTABLE} "
        "can be used."
    )

import fcntl  # noqa: E402  (only now: without it, the error above says what is missing)

#: the signals that stop a job: its end is then CANCEL
CANCEL_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
