"""The job's process group as ``ess-callback run`` sees it: which signals it passes on to
the group, and how many processes are still in it."""

from __future__ import annotations

import os
import signal

from ._posix import missing as missing  # imported first: a clear error off POSIX

#: signals left at their default action: our SIGCHLD, the uncatchable, faults of the
#: wrapper itself, SIGPIPE (our own write to a closed output) and SIGTTIN/SIGTTOU (how a
#: terminal stops a background wrapper that reads or writes it; caught, the read or write
#: would only be tried again). Every other signal is passed on to the group, as tini does.
KEPT_SIGNALS = frozenset(
    getattr(signal, name)
    for name in (
        *("SIGCHLD", "SIGKILL", "SIGSTOP", "SIGPIPE", "SIGTTIN", "SIGTTOU"),
        *("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGABRT", "SIGSYS"),
    )
    if hasattr(signal, name)
)
#: Python itself ignores these at start, so SIG_IGN does not mean that our parent did
PYTHON_IGNORES = frozenset({signal.SIGPIPE, signal.SIGXFSZ})


def passed_signals() -> list[int]:
    """Every signal ``run`` catches and passes on to the job's group (all but the kept)."""
    return [s for s in sorted(signal.valid_signals()) if s not in KEPT_SIGNALS]


def group_members(pgid: int) -> int | None:
    """How many live processes are in process group *pgid*: 0, a count, or None when
    some are but /proc cannot count them."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return 0
    except PermissionError:
        pass  # members we may not signal still count
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    count = 0
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # the command name may hold ") "
        if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
            count += 1
    return count
