"""``flush --metrics FILE``: Prometheus text-format gauges for node exporter's textfile
collector, written atomically after each flush so the collector never reads half a file."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

from ._flush_report import FlushReport
from ._listing import outbox_counts
from ._outbox import OutboxError

#: name, help text; in the order written
GAUGES = (
    ("ess_callback_outbox_pending", "Final statuses waiting in the outbox."),
    ("ess_callback_outbox_rejected", "Final statuses refused for good, in outbox/rejected."),
    ("ess_callback_outbox_leases", "Executions running now (leases in outbox/running)."),
    (
        "ess_callback_outbox_oldest_pending_age_seconds",
        "Age of the oldest final status waiting in the outbox (0 when none).",
    ),
    ("ess_callback_flush_delivered", "Final statuses the last flush delivered."),
    (
        "ess_callback_flush_dead_reported",
        "Executions found dead (job gone without reporting) by the last flush.",
    ),
    ("ess_callback_flush_last_run_timestamp_seconds", "When the last flush ended (Unix time)."),
)


def metrics_text(report: FlushReport, *, now: float | None = None) -> str:
    """The gauges after *report*, the outbox counted as it stands now."""
    counts = outbox_counts(report.outbox)
    values = {
        "ess_callback_outbox_pending": counts.pending,
        "ess_callback_outbox_rejected": counts.rejected,
        "ess_callback_outbox_leases": counts.leases,
        "ess_callback_outbox_oldest_pending_age_seconds": counts.oldest_pending_age_seconds,
        "ess_callback_flush_delivered": report.counts.delivered,
        "ess_callback_flush_dead_reported": report.dead_reported,
        "ess_callback_flush_last_run_timestamp_seconds": round(
            time.time() if now is None else now, 3
        ),
    }
    lines = []
    for name, text in GAUGES:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {values[name]}"]
    return "\n".join(lines) + "\n"


def write_metrics(path: str | os.PathLike[str], report: FlushReport) -> Path:
    """Write the gauges to *path* atomically (temp file beside it, fsync, rename), mode 0644
    so that node exporter may read them. ``OutboxError`` naming the file when it cannot."""
    target = Path(path)
    data = metrics_text(report).encode("utf-8")
    # The textfile collector reads only *.prom and skips other names: the temp file is
    # hidden from it until the rename.
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutboxError(
            f"cannot write --metrics file {target}: {exc.strerror or exc}; give a file in a "
            "folder this user may write"
        ) from None
    return target
