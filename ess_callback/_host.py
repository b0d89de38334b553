"""What this host says about itself and its processes: host name, boot id, a process's
start time, the members of a process group, and the cgroup's out-of-memory kills.

Linux answers through ``/proc`` and ``/sys/fs/cgroup``; elsewhere each reader answers None
(unknown), and the callers fall back to what POSIX alone can tell (a pid that is gone).
"""

from __future__ import annotations

import os
from pathlib import Path

#: the kernel's id of the current boot (a test points this elsewhere to simulate a restart)
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
#: where cgroup v2 is mounted
CGROUP_ROOT = "/sys/fs/cgroup"


def host_name() -> str:
    """This host's name, as leases record it."""
    return os.uname().nodename


def boot_id() -> str | None:
    """The kernel's boot id (Linux), else None."""
    try:
        with open(BOOT_ID_FILE, encoding="ascii") as fh:
            return fh.read().strip() or None
    except (OSError, ValueError):
        return None


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()  # the command name may hold ") "


def start_time(pid: int) -> int | None:
    """When process *pid* started, in clock ticks since boot (field 22 of
    ``/proc/<pid>/stat``); None when unknown (no such process, or no ``/proc``)."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def thread_count() -> int | None:
    """How many threads this process runs (field 20 of ``/proc/self/stat``), else None."""
    fields = _stat_fields(os.getpid())
    if fields is None or len(fields) < 18:
        return None
    try:
        return int(fields[17])
    except ValueError:
        return None


def process_state(pid: int, started: int | None) -> str:
    """``alive``, ``gone`` (no such process, or a zombie: it ended and only waits to be
    reaped) or ``reused`` (the pid belongs to a process that started at another time than
    *started*)."""
    fields = _stat_fields(pid)
    if fields is not None and fields and fields[0] in (b"Z", b"X"):
        return "gone"
    now = start_time(pid)
    if now is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except PermissionError:
            return "alive"  # someone's process: all we may know is that it is there
        except OSError:
            return "gone"
        return "alive"
    if started is not None and now != started:
        return "reused"
    return "alive"


def group_members(pgid: int, *, started_after: int | None) -> list[int]:
    """The live processes of group *pgid* that started at or after *started_after* (clock
    ticks; a process older than the execution cannot be part of it); empty without /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    members = []
    for name in names:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None or len(fields) < 20 or fields[0] in (b"Z", b"X"):
            continue
        try:
            if int(fields[2]) != pgid:
                continue
            if started_after is not None and int(fields[19]) < started_after:
                continue
        except ValueError:
            continue
        members.append(int(name))
    return members


def cgroup_folder(override: Path | None = None) -> Path | None:
    """This process's cgroup v2 folder (from ``/proc/self/cgroup``), or *override*."""
    if override is not None:
        return override
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return Path(CGROUP_ROOT + line[3:].rstrip("/"))
    return None


def oom_kills(folder: Path | None) -> int | None:
    """The ``oom_kill`` count of *folder*'s ``memory.events``, else None."""
    if folder is None:
        return None
    try:
        with open(folder / "memory.events", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return None
