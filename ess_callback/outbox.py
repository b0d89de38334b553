"""The outbox: final statuses that could not be delivered, and ``flush_outbox`` to resend them.

Python API of ``ess-callback flush``::

    from ess_callback.outbox import flush_outbox

    report = flush_outbox()      # ESS_CALLBACK_OUTBOX; credentials from ESS_*
    print(report.summary())      # delivered 2, rejected 0, pending 0 (outbox ...)
    raise SystemExit(report.exit_code)   # 1 rejected, 75 pending, 0 all done

``list_outbox()`` and ``read_entry()`` show what is waiting without sending anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._flush import flush_outbox
from ._flush_report import FlushReport, FlushResult
from ._outbox import (
    FORMAT_VERSION,
    CorruptEntryError,
    OutboxEntry,
    OutboxError,
    entry_paths,
    read_entry,
)
from ._settings import outbox_folder

__all__ = [
    "FORMAT_VERSION",
    "CorruptEntryError",
    "FlushReport",
    "FlushResult",
    "OutboxEntry",
    "OutboxError",
    "flush_outbox",
    "list_outbox",
    "outbox_folder",
    "read_entry",
]


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
