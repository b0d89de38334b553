"""Unit tests for report_job.py, written as we recommend users test their jobs.

The ``ess_callbacks`` fixture (installed with ess-callback, no import needed) records every
callback the job makes instead of sending it: no scheduler, no network, no ESS_* setting.
Assert on how the job ended (``ess_callbacks.last``), on its progress, or on the whole list.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from report_job import main, run, total_sales

from ess_callback import JobExecution, Status
from ess_callback.testing import Recorder

HEADER = "period,region,amount\n"


@pytest.fixture
def sales(tmp_path: Path) -> Path:
    """A small, clean day of sales."""
    path = tmp_path / "sales.csv"
    path.write_text(HEADER + "2026-10,north,100.00\n2026-10,south,50.25\n2026-10,north,0.75\n")
    return path


def test_a_clean_day_ends_with_success(
    sales: Path, tmp_path: Path, ess_callbacks: Recorder
) -> None:
    """A clean file gives the report and SUCCESS, the last callback the scheduler gets."""
    report = tmp_path / "report.txt"
    outcome = run(sales, report)
    assert report.read_text() == "north\t100.75\nsouth\t50.25\n"
    assert outcome.status is Status.SUCCESS and outcome.delivered
    assert ess_callbacks.last.status is Status.SUCCESS
    assert ess_callbacks.last.message is None


def test_bad_amounts_are_skipped_and_the_end_is_warning(
    tmp_path: Path, ess_callbacks: Recorder
) -> None:
    """Each bad amount is one warning line, in order; the good rows are still totalled."""
    source = tmp_path / "sales.csv"
    source.write_text(HEADER + "2026-10,north,n/a\n2026-10,south,5\n2026-10,east,\n")
    report = tmp_path / "report.txt"
    run(source, report)
    assert report.read_text() == "south\t5.00\n"
    assert ess_callbacks.last.status is Status.WARNING
    assert ess_callbacks.last.message == (
        "row 1: amount 'n/a' is not a number; skipped\nrow 3: amount '' is not a number; skipped"
    )


def test_a_closed_period_is_a_business_error_and_writes_nothing(
    tmp_path: Path, ess_callbacks: Recorder
) -> None:
    """Sales in a closed period end the job with BUSINESS_ERROR (consumed: run() returns)."""
    source = tmp_path / "sales.csv"
    source.write_text(HEADER + "2026-10,north,1\n2026-09,south,2\n")
    report = tmp_path / "report.txt"
    outcome = run(source, report)
    assert outcome.status is Status.BUSINESS_ERROR
    assert ess_callbacks.statuses == [Status.BUSINESS_ERROR]
    assert ess_callbacks.last.message == "PeriodClosed: period 2026-09 is closed (row 2)"
    assert not report.exists()


def test_a_missing_file_is_an_error_and_the_exception_propagates(
    tmp_path: Path, ess_callbacks: Recorder
) -> None:
    """A missing source is ERROR (it may be there next time), and the caller sees why."""
    with pytest.raises(FileNotFoundError):
        run(tmp_path / "absent.csv", tmp_path / "report.txt")
    assert ess_callbacks.statuses == [Status.ERROR]
    message = ess_callbacks.last.message or ""
    assert message.startswith("FileNotFoundError: ")
    assert "absent.csv" in message


def test_progress_is_reported_every_thousand_rows(ess_callbacks: Recorder) -> None:
    """With no throttle (update_interval=0) every progress update is visible, in order."""
    rows = [{"period": "2026-10", "region": "north", "amount": "1"}] * 2500
    with JobExecution(update_interval=0) as job:
        totals = total_sales(rows, job)
    assert totals == {"north": 2500}
    assert ess_callbacks.messages == [
        "1000 rows read",
        "2000 rows read",
        "2500 rows read, 1 regions",
        None,
    ]
    assert ess_callbacks.statuses[-1] is Status.SUCCESS


def test_the_closed_periods_can_be_chosen(ess_callbacks: Recorder) -> None:
    """A period passed in as closed is refused too; JobExecution consumes the BusinessError
    and the job ends BUSINESS_ERROR."""
    rows = [{"period": "2027-01", "region": "north", "amount": "1"}]
    with JobExecution() as job:
        total_sales(rows, job, closed_periods=frozenset({"2027-01"}))
    assert ess_callbacks.last.status is Status.BUSINESS_ERROR
    assert ess_callbacks.last.message == "PeriodClosed: period 2027-01 is closed (row 1)"


def test_main_exit_codes(
    sales: Path, tmp_path: Path, ess_callbacks: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() exits 0 on SUCCESS, 1 on BUSINESS_ERROR, 2 on a usage error."""
    assert main([str(sales), str(tmp_path / "report.txt")]) == 0
    closed = tmp_path / "closed.csv"
    closed.write_text(HEADER + "2026-09,north,1\n")
    assert main([str(closed), str(tmp_path / "report2.txt")]) == 1
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
    # the first update is due at once, later ones wait for the 10 s throttle
    assert ess_callbacks.statuses == [Status.UPDATE, Status.SUCCESS, Status.BUSINESS_ERROR]
