"""What the outbox holds, read without sending anything."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .._settings import outbox_folder
from ._leases import LeaseRecord, lease_paths, read_lease
from ._outbox import OutboxEntry, OutboxError, entry_paths, read_entry


def list_outbox(
    outbox: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[OutboxEntry]:
    """The callbacks waiting in the outbox, oldest first (unreadable files left out).

    *outbox* defaults as for :func:`flush_outbox`; a missing folder is an empty list.
    """
    folder = outbox_folder(outbox, env)
    try:
        paths = entry_paths(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OutboxError(f"cannot read outbox folder {folder}: {exc.strerror or exc}") from None
    entries = []
    for path in paths:
        try:
            entries.append(read_entry(path))
        except (OSError, ValueError):
            continue
    return entries


def list_leases(
    outbox: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> list[LeaseRecord]:
    """The leases of running executions in the outbox's ``running/`` (SPEC 11), oldest
    first (unreadable files left out); nothing is checked or changed."""
    folder = outbox_folder(outbox, env)
    leases = []
    for path in lease_paths(folder):
        try:
            leases.append(read_lease(path))
        except (OSError, ValueError):
            continue
    return leases
