"""What one flush did to the outbox files (counts, and a bounded sample of each kind), and
the one-line summary and exit code of it."""

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


#: the most results of each kind a report keeps (the counts are always exact)
SAMPLES = 100
KINDS = (DELIVERED, REJECTED, PENDING, CORRUPT, ELSEWHERE)


@attrs.frozen
class FlushCounts:
    """How many outbox files ended each way in one flush (exact, however many there were)."""

    delivered: int = 0
    rejected: int = 0
    pending: int = 0
    corrupt: int = 0
    elsewhere: int = 0


@attrs.frozen
class FlushReport:
    """The outcome of one flush: what was delivered, rejected, kept (pending) or set aside.

    ``counts`` holds the exact numbers. ``results`` (and ``delivered``, ``pending``, ...)
    hold at most ``SAMPLES`` (100) files of each kind, the first ones to end that way, so that
    a flush of any backlog keeps its memory flat.
    """

    outbox: Path
    #: at most SAMPLES results of each kind, in the order they ended
    results: tuple[FlushResult, ...] = ()
    #: False when the outbox folder did not exist
    existed: bool = True
    #: True when nothing was sent: ``pending`` lists what would have been
    dry_run: bool = False
    #: dead executions (docs/guarantees.md) reported as ERROR: each became an outbox entry,
    #: sent with the rest
    dead_reported: int = 0
    #: the exact counts per kind; None: counted from ``results`` (a report built by hand)
    totals: FlushCounts | None = None
    #: server -> how many files were kept because the credentials are not theirs (None:
    #: counted from ``results``)
    kept_for: dict[str, int] | None = attrs.field(default=None, eq=False)
    #: (server, why) for each server given up for the rest of the run
    given_up: tuple[tuple[str, str], ...] = ()
    #: how many sweeps over the outbox the run made (0 when nothing was sent)
    sweeps: int = 0

    def _pick(self, result: str) -> list[FlushResult]:
        return [r for r in self.results if r.result == result]

    @property
    def counts(self) -> FlushCounts:
        """How many files ended each way in this run."""
        if self.totals is not None:
            return self.totals
        return FlushCounts(*(len(self._pick(kind)) for kind in KINDS))

    @property
    def delivered(self) -> list[FlushResult]:
        """Delivered now, and deleted from the outbox (at most SAMPLES; see ``counts``)."""
        return self._pick(DELIVERED)

    @property
    def rejected(self) -> list[FlushResult]:
        """Refused for good by the scheduler, moved to ``rejected/`` with the reason (at most
        SAMPLES; see ``counts``)."""
        return self._pick(REJECTED)

    @property
    def pending(self) -> list[FlushResult]:
        """Still in the outbox: 401, scheduler unreachable, or not tried after that (at most
        SAMPLES; see ``counts``)."""
        return self._pick(PENDING)

    @property
    def corrupt(self) -> list[FlushResult]:
        """Could not be read back; moved to ``corrupt/`` (at most SAMPLES; see ``counts``)."""
        return self._pick(CORRUPT)

    @property
    def elsewhere(self) -> list[FlushResult]:
        """Claimed (or already dealt with) by a flush running at the same time (at most
        SAMPLES; see ``counts``)."""
        return self._pick(ELSEWHERE)

    @property
    def exit_code(self) -> int:
        """1 if anything was rejected or found unreadable (moved to ``corrupt/``: the status
        it held is lost) in this run, else 75 if anything is pending, else 0 (always 0 in
        dry run)."""
        if self.dry_run:
            return EXIT_OK
        counts = self.counts
        if counts.rejected or counts.corrupt:
            return EXIT_FAILED
        if counts.pending:
            return EXIT_TEMPFAIL
        return EXIT_OK

    @property
    def other_servers(self) -> dict[str, int]:
        """Server -> how many files were kept because the credentials are not theirs."""
        if self.kept_for is not None:
            return dict(self.kept_for)
        counts: dict[str, int] = {}
        for result in self.pending:
            if result.server is not None:
                counts[result.server] = counts.get(result.server, 0) + 1
        return counts

    def summary(self) -> str:
        """One line for the operator."""
        if not self.existed:
            return f"no outbox at {self.outbox}: nothing to send"
        counts = self.counts
        if self.dry_run:
            if not counts.pending and not counts.corrupt and not self.dead_reported:
                return f"outbox {self.outbox} is empty: nothing to send"
            dead = f", {self.dead_reported} dead execution(s)" if self.dead_reported else ""
            return (
                f"dry run: would send {counts.pending + self.dead_reported}{dead}, "
                f"{counts.corrupt} unreadable, nothing sent or changed (outbox {self.outbox})"
            )
        if counts == FlushCounts():
            return f"outbox {self.outbox} is empty: nothing to send"
        text = (
            f"delivered {counts.delivered}, rejected {counts.rejected}, "
            f"pending {counts.pending} (outbox {self.outbox})"
        )
        if self.dead_reported:
            text += (
                f"; {self.dead_reported} dead execution(s) reported as ERROR "
                "(the job ended without reporting)"
            )
        for server, count in self.other_servers.items():
            text += f"; {count} kept for another server, {server}: flush them with its settings"
        for server, why in self.given_up:
            text += f"; gave up on {server} for this run: {why}"
        if counts.corrupt:
            text += f"; {counts.corrupt} unreadable moved to {self.outbox / CORRUPT_FOLDER}"
        if counts.elsewhere:
            text += f"; {counts.elsewhere} handled by another flush"
        return text


class ReportBuilder:
    """Collects the results of one flush as counts, keeping at most SAMPLES of each kind."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.samples: list[FlushResult] = []
        self.totals = dict.fromkeys(KINDS, 0)
        self.kept_for: dict[str, int] = {}

    def add(self, result: FlushResult) -> None:
        self.totals[result.result] += 1
        if result.server is not None:
            self.kept_for[result.server] = self.kept_for.get(result.server, 0) + 1
        if self.totals[result.result] <= SAMPLES:
            self.samples.append(result)

    def report(
        self,
        *,
        dry_run: bool = False,
        dead_reported: int = 0,
        given_up: tuple[tuple[str, str], ...] = (),
        sweeps: int = 0,
    ) -> FlushReport:
        return FlushReport(
            self.outbox,
            tuple(self.samples),
            dry_run=dry_run,
            dead_reported=dead_reported,
            totals=FlushCounts(*(self.totals[kind] for kind in KINDS)),
            kept_for=dict(self.kept_for),
            given_up=given_up,
            sweeps=sweeps,
        )
