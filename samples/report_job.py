"""A daily sales report job, written the way we recommend so that it is easy to test.

* The work is plain functions that take the ``JobExecution`` (to report progress and
  warnings) and raise ``BusinessError`` for what running again will not fix.
* ``run()`` opens the ``JobExecution``; ``main()`` only reads the command line.
* ``test_report_job.py``, next to this file, tests every ending with the ``ess_callbacks``
  fixture: no scheduler, no network, no setting.

Try it without a scheduler (each callback is printed as a JSON line on stderr):

    ESS_CALLBACK_DRY_RUN=1 python samples/report_job.py samples/sales.csv /tmp/report.txt

(samples/sales.csv has one row with a bad amount, so that run ends WARNING.)

Under ESS, the scheduler's ESS_REQUEST_ID and ESS_REQUEST_HANDLE and your ESS_BASE_URL and
credentials are in the environment, and the same command reports to it.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ess_callback import BusinessError, JobExecution, Outcome, Status

#: ledger periods already closed: reporting into them is a business error
CLOSED_PERIODS = frozenset({"2026-09"})


class PeriodClosed(BusinessError):
    """The sales belong to a closed ledger period: running again will not help."""


def total_sales(
    rows: Iterable[dict[str, str]],
    job: JobExecution,
    *,
    closed_periods: frozenset[str] = CLOSED_PERIODS,
    progress_every: int = 1000,
) -> dict[str, Decimal]:
    """Sum the amounts per region. A row with a bad amount is skipped with a warning (the
    job then ends WARNING); a row in a closed period stops the job with BUSINESS_ERROR."""
    totals: dict[str, Decimal] = {}
    count = 0
    for count, row in enumerate(rows, start=1):
        if row.get("period") in closed_periods:
            raise PeriodClosed(f"period {row['period']} is closed (row {count})")
        try:
            amount = Decimal(row.get("amount") or "")
        except InvalidOperation:
            job.warn(f"row {count}: amount {row.get('amount')!r} is not a number; skipped")
            continue
        region = row.get("region") or "(none)"
        totals[region] = totals.get(region, Decimal(0)) + amount
        if count % progress_every == 0:
            job.update(f"{count} rows read")  # cheap: returns at once, throttled
    job.update(f"{count} rows read, {len(totals)} regions")
    return totals


def write_report(totals: dict[str, Decimal], path: Path) -> None:
    """One ``region<TAB>total`` line per region, sorted by region."""
    lines = [f"{region}\t{totals[region]:.2f}\n" for region in sorted(totals)]
    path.write_text("".join(lines), encoding="utf-8")


def run(source: Path, report: Path, *, update_interval: float = 10.0) -> Outcome:
    """The job: read *source* (CSV with period, region, amount), write *report*, and report
    how it ended to ESS. A missing or unreadable file propagates (ERROR: it may be there
    when the job runs again)."""
    with JobExecution(update_interval=update_interval) as job:
        with source.open(newline="", encoding="utf-8") as lines:
            totals = total_sales(csv.DictReader(lines), job)
        write_report(totals, report)
    assert job.outcome is not None
    return job.outcome


def main(argv: Sequence[str] | None = None) -> int:
    """``report_job.py SOURCE.csv REPORT.txt``: exit 0 for SUCCESS or WARNING, else 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: report_job.py SOURCE.csv REPORT.txt", file=sys.stderr)
        return 2
    outcome = run(Path(args[0]), Path(args[1]))
    print(f"ended with {outcome.status.value}")
    return 0 if outcome.status in (Status.SUCCESS, Status.WARNING) else 1


if __name__ == "__main__":
    sys.exit(main())
