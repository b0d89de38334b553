"""This process's own lease: written when an execution starts, removed once its end is
safe (docs/guarantees.md; ``_leases.py`` reads leases back and reports the dead ones).

Light on purpose: ``run`` writes its lease before it starts the command.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from .. import _host
from .._log import log
from .._recording import active_recorder
from . import _store

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    from typing import Any

    from .._settings import Settings

RUNNING = "running"
FORMAT_VERSION = 1
KINDS = ("python", "run", "relay")
#: the longest command line a ``run`` lease keeps
COMMAND_CHARS = 200


def utc_now() -> str:
    """The current time, UTC, to the second: ``2026-12-03T23:18:25Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Lease:
    """The lease of one running execution (this process's); removed once its end is safe."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record

    def __repr__(self) -> str:
        return f"Lease({self.path.name!r})"

    def set_group(self, pgid: int) -> None:
        """Record the process group of ``run``'s command (written at once, synced later by
        ``make_durable``: a group only matters on the same boot)."""
        self.record["pgid"] = pgid
        try:
            _store.write_atomic(self.path.parent, self.path.name, self.record, durable=False)
        except _store.OutboxError as exc:
            log.warning("cannot record the command's process group in the lease: %s", exc)

    def make_durable(self) -> None:
        """Put the lease on disk (for one written with ``durable=False``)."""
        try:
            _store.make_durable(self.path)
        except OSError as exc:
            log.debug("cannot sync the lease %s: %s", self.path, exc)

    def remove(self) -> None:
        """Remove the lease: the execution's end is delivered, kept, or refused for good.

        Not synced: a host that crashes in the next seconds may bring it back, and its
        ERROR is then refused by ESS (the request already ended) into ``rejected/``.
        """
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove the lease %s: %s", self.path, exc.strerror or exc)


def open_lease(
    settings: Settings,
    kind: str,
    *,
    command: tuple[str, ...] | None = None,
    redact: Callable[[str], str] | None = None,
    durable: bool = True,
) -> Lease | None:
    """Write the lease of an execution that starts now; None in dry run or recording, or
    when it cannot be written (said in one warning: the job still runs)."""
    if settings.dry_run or active_recorder() is not None:
        return None
    if settings.base_url is None or settings.request_id is None or not settings.request_handle:
        return None
    assert kind in KINDS
    pid = os.getpid()
    now_ns = time.time_ns()
    record: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "base_url": settings.base_url,
        "request_id": settings.request_id,
        "request_handle": settings.request_handle,
        "host": _host.host_name(),
        "boot_id": _host.boot_id(),
        "pid": pid,
        "pid_start_time": _host.start_time(pid),
        "pgid": None,
        "started": utc_now(),
        "command": None,
    }
    if command is not None:
        line = " ".join(command)
        record["command"] = (redact(line) if redact is not None else line)[:COMMAND_CHARS]
    name = f"{now_ns:020d}-{settings.request_id}-{kind}-{os.urandom(3).hex()}{_store.SUFFIX}"
    folder = settings.outbox / RUNNING
    try:
        _store.ensure_folder(settings.outbox)
        path = _store.write_atomic(folder, name, record, durable=durable)
    except _store.OutboxError as exc:
        log.warning("%s; should this job be killed, nothing will report it", exc)
        return None
    return Lease(path, record)
