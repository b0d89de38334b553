"""What one flush did to each outbox file, and the one-line summary and exit code of it."""

from __future__ import annotations

from pathlib import Path

import attrs

from .._errors import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL
from ._outbox import CORRUPT as CORRUPT_FOLDER
from ._outbox import OutboxEntry

DELIVERED = "delivered"
REJECTED = "rejected"
PENDING = "pending"
CORRUPT = "corrupt"
ELSEWHERE = "elsewhere"


@attrs.frozen
class FlushResult:
    """What happened to one outbox file in one flush."""

    #: the file as found in the outbox
    path: Path
    #: delivered, rejected, pending, corrupt, or elsewhere (another flush had it)
    result: str
    #: the callback, when the file could be read
    entry: OutboxEntry | None = None
    #: where the file is now (None once delivered and deleted)
    now_at: Path | None = None
    #: why it was not delivered
    reason: str | None = None
    error: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    #: the server it is for, when kept because the credentials are another server's
    server: str | None = None


@attrs.frozen
class FlushReport:
    """The outcome of one flush: what was delivered, rejected, kept (pending) or set aside."""

    outbox: Path
    results: tuple[FlushResult, ...] = ()
    #: False when the outbox folder did not exist
    existed: bool = True
    #: True when nothing was sent: ``pending`` lists what would have been
    dry_run: bool = False
    #: dead executions (SPEC 11) reported as ERROR: each became an entry of ``results``
    dead_reported: int = 0

    def _pick(self, result: str) -> list[FlushResult]:
        return [r for r in self.results if r.result == result]

    @property
    def delivered(self) -> list[FlushResult]:
        """Delivered now, and deleted from the outbox."""
        return self._pick(DELIVERED)

    @property
    def rejected(self) -> list[FlushResult]:
        """Refused for good by the scheduler, moved to ``rejected/`` with the reason."""
        return self._pick(REJECTED)

    @property
    def pending(self) -> list[FlushResult]:
        """Still in the outbox: 401, scheduler unreachable, or not tried after that."""
        return self._pick(PENDING)

    @property
    def corrupt(self) -> list[FlushResult]:
        """Could not be read back; moved to ``corrupt/``."""
        return self._pick(CORRUPT)

    @property
    def elsewhere(self) -> list[FlushResult]:
        """Claimed (or already dealt with) by a flush running at the same time."""
        return self._pick(ELSEWHERE)

    @property
    def exit_code(self) -> int:
        """1 if anything was rejected or found unreadable (moved to ``corrupt/``: the status
        it held is lost) in this run, else 75 if anything is pending, else 0 (always 0 in
        dry run)."""
        if self.dry_run:
            return EXIT_OK
        if self.rejected or self.corrupt:
            return EXIT_FAILED
        if self.pending:
            return EXIT_TEMPFAIL
        return EXIT_OK

    @property
    def other_servers(self) -> dict[str, int]:
        """Server -> how many files were kept because the credentials are not theirs."""
        counts: dict[str, int] = {}
        for result in self.pending:
            if result.server is not None:
                counts[result.server] = counts.get(result.server, 0) + 1
        return counts

    def summary(self) -> str:
        """One line for the operator."""
        if not self.existed:
            return f"no outbox at {self.outbox}: nothing to send"
        if self.dry_run:
            if not self.results and not self.dead_reported:
                return f"outbox {self.outbox} is empty: nothing to send"
            dead = f", {self.dead_reported} dead execution(s)" if self.dead_reported else ""
            return (
                f"dry run: would send {len(self.pending) + self.dead_reported}{dead}, "
                f"{len(self.corrupt)} unreadable, nothing sent or changed (outbox {self.outbox})"
            )
        if not self.results:
            return f"outbox {self.outbox} is empty: nothing to send"
        text = (
            f"delivered {len(self.delivered)}, rejected {len(self.rejected)}, "
            f"pending {len(self.pending)} (outbox {self.outbox})"
        )
        if self.dead_reported:
            text += (
                f"; {self.dead_reported} dead execution(s) reported as ERROR "
                "(the job ended without reporting)"
            )
        for server, count in self.other_servers.items():
            text += f"; {count} kept for another server, {server}: flush them with its settings"
        if self.corrupt:
            text += f"; {len(self.corrupt)} unreadable moved to {self.outbox / CORRUPT_FOLDER}"
        if self.elsewhere:
            text += f"; {len(self.elsewhere)} handled by another flush"
        return text
