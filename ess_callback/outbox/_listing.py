"""What the outbox holds, read without sending anything: ``list_outbox`` (the pending
callbacks), ``outbox_items`` (everything, for ``ess-callback outbox``), ``outbox_counts``
(for ``flush --metrics``), and ``drop`` / ``requeue`` by name."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from .._settings import outbox_folder
from ._leases import LeaseRecord, lease_paths, read_lease
from ._outbox import (
    CORRUPT,
    REJECTED,
    OutboxEntry,
    OutboxError,
    claim,
    entry_paths,
    fsync_dir,
    read_entry,
)

#: the states an item is listed in
PENDING_STATE, REJECTED_STATE, CORRUPT_STATE, RUNNING_STATE = (
    "pending",
    "rejected",
    "corrupt",
    "running",
)


def list_outbox(
    outbox: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[OutboxEntry]:
    """The callbacks waiting in the outbox, oldest first (unreadable files left out).

    *outbox* defaults as for :func:`flush_outbox`; a missing folder is an empty list.
    """
    folder = outbox_folder(outbox, env)
    entries = []
    for path in _paths(folder):
        try:
            entries.append(read_entry(path))
        except (OSError, ValueError):
            continue
    return entries


def list_leases(
    outbox: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[LeaseRecord]:
    """The leases of running executions in the outbox's ``running/`` (docs/guarantees.md), oldest
    first (unreadable files left out); nothing is checked or changed."""
    folder = outbox_folder(outbox, env)
    leases = []
    for path in lease_paths(folder):
        try:
            leases.append(read_lease(path))
        except (OSError, ValueError):
            continue
    return leases


def _paths(folder: Path) -> list[Path]:
    """The entry files of *folder*; none when it does not exist."""
    try:
        return entry_paths(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OutboxError(f"cannot read outbox folder {folder}: {exc.strerror or exc}") from None


@attrs.frozen
class OutboxItem:
    """One file of the outbox folder, as ``ess-callback outbox`` lists it."""

    name: str
    #: pending, rejected, corrupt or running
    state: str
    request_id: int | None = None
    status: str | None = None
    age_seconds: float | None = None
    attempts: int | None = None
    #: the last error's text (never credentials: the outbox holds none)
    last_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The object ``ess-callback outbox --json`` prints."""
        return attrs.asdict(self)


def _age(created: object, path: Path, now: float) -> float | None:
    """Seconds since *created* (ISO 8601), else since the file was last written."""
    if isinstance(created, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                return round(max(0.0, now - moment.timestamp()), 3)
    try:
        return round(max(0.0, now - path.stat().st_mtime), 3)
    except OSError:
        return None


def _error_text(record: Mapping[str, Any]) -> str | None:
    """Why an entry is where it is: the rejection, else the last error."""
    for key in ("rejected", "last_error"):
        value = record.get(key)
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return str(value["message"])
    reason = record.get("reason")
    return reason if isinstance(reason, str) else None


def _entry_item(path: Path, state: str, now: float) -> OutboxItem:
    try:
        entry = read_entry(path)
    except (OSError, ValueError) as exc:
        return OutboxItem(
            path.name, CORRUPT_STATE, age_seconds=_age(None, path, now), last_error=str(exc)
        )
    return OutboxItem(
        path.name,
        state,
        request_id=entry.request_id,
        status=entry.status.value,
        age_seconds=_age(entry.created, path, now),
        attempts=entry.attempts,
        last_error=_error_text(entry.record),
    )


def _lease_item(path: Path, now: float) -> OutboxItem:
    """A lease (docs/guarantees.md) as a listed item; one that cannot be read is still listed."""
    try:
        lease = read_lease(path)
    except (OSError, ValueError):
        return OutboxItem(path.name, RUNNING_STATE, age_seconds=_age(None, path, now))
    return OutboxItem(
        path.name,
        RUNNING_STATE,
        request_id=lease.request_id,
        status=lease.kind,
        age_seconds=_age(lease.started, path, now),
    )


def _files(folder: Path) -> Iterator[Path]:
    """Every plain file of *folder* but hidden and temp ones, sorted; none if it is missing."""
    try:
        with os.scandir(folder) as it:
            names = sorted(
                e.name
                for e in it
                if not e.name.startswith(".") and e.is_file(follow_symlinks=False)
            )
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise OutboxError(f"cannot read outbox folder {folder}: {exc.strerror or exc}") from None
    for name in names:
        yield folder / name


def outbox_items(
    outbox: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[OutboxItem]:
    """Everything the outbox folder holds: pending entries (oldest first; an unreadable one
    is listed as corrupt), rejected ones, the files of ``corrupt/`` and the leases of
    running executions. A missing folder holds nothing."""
    folder = outbox_folder(outbox, env)
    now = time.time()
    items = [_entry_item(path, PENDING_STATE, now) for path in _paths(folder)]
    items += [_entry_item(path, REJECTED_STATE, now) for path in _paths(folder / REJECTED)]
    items += [
        OutboxItem(path.name, CORRUPT_STATE, age_seconds=_age(None, path, now))
        for path in _files(folder / CORRUPT)
    ]
    items += [_lease_item(path, now) for path in lease_paths(folder)]
    return items


@attrs.frozen
class OutboxCounts:
    """How many files each part of the outbox holds, and the oldest pending one's age."""

    pending: int = 0
    rejected: int = 0
    leases: int = 0
    oldest_pending_age_seconds: float = 0.0


def outbox_counts(folder: Path) -> OutboxCounts:
    """Counted from the folder listings, reading one file at most (the oldest pending one):
    the memory this takes does not grow with what the outbox holds."""
    pending = _paths(folder)
    oldest = 0.0
    if pending:
        now = time.time()
        try:
            created: object = read_entry(pending[0]).created
        except (OSError, ValueError):
            created = None
        oldest = _age(created, pending[0], now) or 0.0
    leases = len(lease_paths(folder))
    return OutboxCounts(len(pending), len(_paths(folder / REJECTED)), leases, oldest)


# -- drop and requeue ----------------------------------------------------------------------
class NoSuchEntryError(OutboxError):
    """A named outbox entry does not exist (exit 1)."""

    exit_code = 1


def check_name(name: str) -> str:
    """*name* as a bare file name; ``ValueError`` for anything that could leave the folder
    (``../x``, ``a/b``) or name a hidden or temp file."""
    if (
        not name
        or name in (".", "..")
        or os.path.basename(name) != name
        or "/" in name
        or "\0" in name
        or name.startswith(".")
    ):
        raise ValueError(f"{name!r} is not the name of an outbox entry (a file name, no path)")
    return name


def drop(folder: Path, name: str) -> tuple[str, OutboxItem]:
    """Delete the entry *name* (pending, rejected or corrupt) for good; return where it was
    and what it held. ``NoSuchEntryError`` when there is none by that name, ``OutboxError``
    when a flush is sending it right now."""
    check_name(name)
    now = time.time()
    for state, sub in (
        (PENDING_STATE, folder),
        (REJECTED_STATE, folder / REJECTED),
        (CORRUPT_STATE, folder / CORRUPT),
    ):
        path = sub / name
        if not (path.is_file() and not path.is_symlink()):
            continue
        item = (
            _entry_item(path, state, now)
            if state != CORRUPT_STATE
            else OutboxItem(name, CORRUPT_STATE)
        )
        held = claim(path)  # a flush sending it holds it: not ours to delete now
        if held is None:
            if path.exists():
                raise OutboxError(f"{name} is being sent by a flush right now; try again")
            continue
        try:
            held.delete()
        finally:
            held.release()
        return state, item
    raise NoSuchEntryError(f"no outbox entry {name} in {folder}")


def requeue(folder: Path, name: str) -> Path:
    """Move the rejected entry *name* back among the pending ones (the cause was fixed);
    return its new path. ``NoSuchEntryError`` when ``rejected/`` has no such entry."""
    check_name(name)
    source = folder / REJECTED / name
    if not (source.is_file() and not source.is_symlink()):
        raise NoSuchEntryError(f"no rejected entry {name} in {folder / REJECTED}")
    target = folder / name
    if target.exists():
        raise OutboxError(f"{target} already exists; drop one of them first")
    try:
        os.replace(source, target)
        fsync_dir(folder)
        fsync_dir(source.parent)
    except OSError as exc:
        raise OutboxError(f"cannot move {source} to {folder}: {exc.strerror or exc}") from None
    return target


def rejected_names(folder: Path) -> list[str]:
    """The names of the rejected entries, oldest first."""
    return [path.name for path in _paths(folder / REJECTED)]
