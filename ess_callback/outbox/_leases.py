"""Leases: which executions of this host are running, so that a flush can report the dead.

An execution (``JobExecution``, ``run``, ``wait --relay``) writes a lease into ``running/``
inside the outbox folder when it starts, and removes it once its final status was
delivered, kept in the outbox, or refused for good (docs/guarantees.md). At every moment an
execution is thus in a lease, in the outbox, or delivered. A lease whose process is gone
(killed by SIGKILL or the out-of-memory killer, or the host restarted) is a *dead
execution*: ``flush`` stops what is left of it and turns its lease into an ERROR entry of
the outbox, sent like any other.

A lease is a JSON object like an outbox entry, written with the store's atomic write
(mode 0600), and never holds credentials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import _host
from .._checks import parse_request_id
from .._model import Callback
from .._status import Status
from . import _outbox
from ._lease_file import COMMAND_CHARS as COMMAND_CHARS
from ._lease_file import FORMAT_VERSION as FORMAT_VERSION
from ._lease_file import KINDS as KINDS
from ._lease_file import RUNNING as RUNNING
from ._lease_file import Lease as Lease
from ._lease_file import open_lease as open_lease
from ._lease_file import utc_now as utc_now

if TYPE_CHECKING:
    pass

log = logging.getLogger("ess_callback")

#: how long what is left of a dead ``run``'s group has between SIGTERM and SIGKILL
STOP_GRACE_SECONDS = 10.0
#: how often a stopping group is looked at
STOP_POLL_SECONDS = 0.05
KILLED = "killed, e.g. by SIGKILL or the out-of-memory killer"
RESTARTED = "host restarted"


# -- reading, for flush ----------------------------------------------------------------------
@attrs.frozen
class LeaseRecord:
    """A lease read back from its file."""

    path: Path
    kind: str
    base_url: str
    request_id: int
    request_handle: str = attrs.field(repr=False)
    host: str
    boot_id: str | None
    pid: int
    pid_start_time: int | None
    pgid: int | None
    started: str
    command: str | None = attrs.field(repr=False)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_lease(path: Path, raw: bytes) -> LeaseRecord:
    """Validate the bytes of a lease; ``ValueError`` saying what is wrong."""
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        raise ValueError("not a lease")
    pid = _int_or_none(data.get("pid"))
    if pid is None or pid <= 0:
        raise ValueError("no valid 'pid'")
    base_url, host, handle = data.get("base_url"), data.get("host"), data.get("request_handle")
    if not (isinstance(base_url, str) and isinstance(host, str) and isinstance(handle, str)):
        raise ValueError("'base_url', 'host' or 'request_handle' missing")
    boot = data.get("boot_id")
    return LeaseRecord(
        path=path,
        kind=data["kind"],
        base_url=base_url,
        request_id=parse_request_id(data.get("request_id")),
        request_handle=handle,
        host=host,
        boot_id=boot if isinstance(boot, str) else None,
        pid=pid,
        pid_start_time=_int_or_none(data.get("pid_start_time")),
        pgid=_int_or_none(data.get("pgid")),
        started=str(data.get("started") or "an unknown time"),
        command=data.get("command") if isinstance(data.get("command"), str) else None,
    )


def read_lease(path: Path) -> LeaseRecord:
    """Read one lease (``OSError``, ``ValueError``)."""
    with open(path, "rb") as fh:
        return parse_lease(path, fh.read(_outbox.MAX_FILE_BYTES))


def lease_paths(outbox: Path) -> list[Path]:
    """The leases in *outbox*'s ``running/``, oldest first; none without that folder."""
    try:
        return _outbox.entry_paths(outbox / RUNNING)
    except OSError:
        return []


def why_dead(lease: LeaseRecord, *, host: str, boot: str | None) -> str | None:
    """Why the execution of *lease* is dead (its process is gone), or None: another host's
    lease, or a process that is still alive."""
    if lease.host != host:
        return None
    if lease.boot_id is not None and boot is not None and lease.boot_id != boot:
        return RESTARTED
    state = _host.process_state(lease.pid, lease.pid_start_time)
    if state == "alive":
        return None
    if state == "reused":
        return f"{KILLED}; its pid now belongs to another process"
    return KILLED


def death_message(lease: LeaseRecord, why: str) -> str:
    """The ERROR message of a dead execution."""
    return (
        f"the job ended without reporting: {lease.kind} process {lease.pid} on {lease.host} "
        f"is gone (started {lease.started}; {why})"
    )


@attrs.frozen
class DeadExecution:
    """A lease whose process is gone, and why."""

    lease: LeaseRecord
    why: str

    @property
    def callback(self) -> Callback:
        """The ERROR callback that reports it."""
        lease = self.lease
        return Callback(
            lease.request_id, lease.request_handle, Status.ERROR, death_message(lease, self.why)
        )

    @property
    def entry_name(self) -> str:
        """Its outbox entry's name: made from the lease's, so writing it twice keeps one."""
        return f"{self.lease.path.stem}-dead{_outbox.SUFFIX}"


def find_dead(outbox: Path) -> list[DeadExecution]:
    """The dead executions of this host in *outbox* (nothing is changed)."""
    host, boot = _host.host_name(), _host.boot_id()
    dead = []
    for path in lease_paths(outbox):
        try:
            lease = read_lease(path)
        except (OSError, ValueError) as exc:
            log.debug("lease %s unreadable: %s", path.name, exc)
            continue
        why = why_dead(lease, host=host, boot=boot)
        if why is not None:
            dead.append(DeadExecution(lease, why))
    return dead


def report_dead(outbox: Path, *, grace: float = STOP_GRACE_SECONDS) -> list[DeadExecution]:
    """Turn each dead execution of this host into an ERROR outbox entry, once.

    Each lease is claimed first (two flushes never report one twice), what is left of a
    dead ``run``'s process group on this boot is stopped, then the ERROR entry is written
    and only then the lease removed: a flush killed half way leaves the lease or the
    entry (the same name: never both reported).
    """
    claims: list[tuple[_outbox.Claim, DeadExecution]] = []
    try:
        for found in find_dead(outbox):
            claim = _outbox.claim(found.lease.path)
            if claim is not None:
                claims.append((claim, found))
        stop_groups(
            [
                (d.lease.pgid, d.lease.pid_start_time)
                for _, d in claims
                if d.lease.pgid is not None and d.why != RESTARTED
            ],
            grace=grace,
        )
        reported = []
        for claim, found in claims:
            try:
                _outbox.spool(
                    outbox,
                    found.callback,
                    base_url=found.lease.base_url,
                    attempts=0,
                    error=None,
                    name=found.entry_name,
                )
                claim.delete()
            except (OSError, _outbox.OutboxError) as exc:
                log.error("cannot report the dead execution %s: %s", found.lease.path, exc)
                continue
            log.warning("request %d: %s", found.lease.request_id, found.callback.message)
            reported.append(found)
        return reported
    finally:
        for claim, _ in claims:
            claim.release()


def stop_groups(groups: list[tuple[int, int | None]], *, grace: float) -> None:
    """Stop what is left of each ``(pgid, started_after)`` group: SIGTERM, then SIGKILL
    after *grace* seconds. Only members that started after the execution's own process are
    touched: an older process cannot be part of it."""

    def members() -> set[int]:
        return {
            pid for pgid, after in groups for pid in _host.group_members(pgid, started_after=after)
        }

    left = members()
    if not left:
        return
    log.warning(
        "stopping %d process(es) left by dead executions: SIGTERM (SIGKILL after %g s)",
        len(left),
        grace,
    )
    deadline = time.monotonic() + grace
    signalled: set[int] = set()
    while left and time.monotonic() < deadline:
        for pid in left - signalled:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        signalled |= left
        time.sleep(STOP_POLL_SECONDS)
        left = members()
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
