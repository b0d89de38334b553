"""The outbox: final statuses that could not be delivered, and ``flush_outbox`` to resend them.

Python API of ``ess-callback flush``::

    from ess_callback.outbox import flush_outbox

    report = flush_outbox()      # ESS_CALLBACK_OUTBOX; credentials from ESS_*
    print(report.summary())      # delivered 2, rejected 0, pending 0 (outbox ...)
    raise SystemExit(report.exit_code)   # 1 rejected, 75 pending, 0 all done

``list_outbox()`` and ``read_entry()`` show what is waiting without sending anything,
``list_leases()`` the executions running (or dead, until a flush reports them).

The names are loaded on first use: a job writing its lease (``_leases``) when it starts
must not pay for the flush.
"""

from __future__ import annotations

import importlib

from .. import _posix  # noqa: F401  (at import: a clear ImportError off POSIX)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    from typing import Any

    from .._settings import outbox_folder
    from ._flush import flush_outbox
    from ._flush_report import FlushCounts, FlushReport, FlushResult
    from ._listing import list_leases, list_outbox
    from ._outbox import FORMAT_VERSION, CorruptEntryError, OutboxEntry, OutboxError, read_entry

#: public name -> the module that holds it
_WHERE = {
    "FORMAT_VERSION": "._outbox",
    "CorruptEntryError": "._outbox",
    "FlushCounts": "._flush_report",
    "FlushReport": "._flush_report",
    "FlushResult": "._flush_report",
    "OutboxEntry": "._outbox",
    "OutboxError": "._outbox",
    "flush_outbox": "._flush",
    "list_leases": "._listing",
    "list_outbox": "._listing",
    "outbox_folder": ".._settings",
    "read_entry": "._outbox",
}

__all__ = [
    "FORMAT_VERSION",
    "CorruptEntryError",
    "FlushCounts",
    "FlushReport",
    "FlushResult",
    "OutboxEntry",
    "OutboxError",
    "flush_outbox",
    "list_leases",
    "list_outbox",
    "outbox_folder",
    "read_entry",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
