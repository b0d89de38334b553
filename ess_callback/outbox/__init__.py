"""The outbox: final statuses that could not be delivered, and ``flush_outbox`` to resend them.

Python API of ``ess-callback flush``::

    from ess_callback.outbox import flush_outbox

    report = flush_outbox()      # ESS_CALLBACK_OUTBOX; credentials from ESS_*
    print(report.summary())      # delivered 2, rejected 0, pending 0 (outbox ...)
    raise SystemExit(report.exit_code)   # 1 rejected, 75 pending, 0 all done

``list_outbox()`` and ``read_entry()`` show what is waiting without sending anything.
"""

from __future__ import annotations

from .._settings import outbox_folder
from ._flush import flush_outbox
from ._flush_report import FlushReport, FlushResult
from ._listing import list_outbox
from ._outbox import FORMAT_VERSION, CorruptEntryError, OutboxEntry, OutboxError, read_entry

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
