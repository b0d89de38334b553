"""A flush run's sweeps (SPEC 5 and 6): one attempt per file per sweep, one retry budget for
the run, servers given up after failures in a row, and a report whose memory stays flat."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import requests
import responses
from cli_runner import cli_runner
from helpers import outbox_files

from ess_callback import Callback, SchedulerUnavailableError
from ess_callback.cli import main
from ess_callback.outbox import _flush, _flush_report, _outbox, flush_outbox
from ess_callback.outbox._flush_send import GIVE_UP_AFTER, GIVE_UP_AFTER_SILENT, entry_path
from ess_callback.testing import FakeScheduler

BASE = "https://ess.example.com"


def url(request_id: int, base: str = BASE) -> str:
    return f"{base}/ess/rest/scheduler/v1/requests/{request_id}/executionStatus"


def spool(folder: Path, request_id: int, base_url: str = BASE, attempts: int = 1) -> Path:
    return _outbox.spool(
        folder,
        Callback(request_id, f"handle-{request_id}", "SUCCESS", None),
        base_url=base_url,
        attempts=attempts,
        error=SchedulerUnavailableError("down", attempts=attempts),
    )


@pytest.fixture
def box(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between sweeps, recorded instead of slept."""
    seen: list[float] = []
    monkeypatch.setattr(_flush, "_pause", seen.append)
    return seen


def posted(calls: responses.CallList) -> list[int]:
    """The request ids POSTed, in order."""
    return [int((c.request.url or "").split("/requests/")[1].split("/")[0]) for c in calls]


# -- sweeps --------------------------------------------------------------------------------
@responses.activate
def test_a_failed_file_is_tried_again_after_the_others_in_the_same_run(
    box: Path, waits: list[float]
) -> None:
    """A 503 moves the run on to the next file; the next sweep delivers the first."""
    for rid in (1, 2, 3):
        spool(box, rid)
    responses.add(responses.POST, url(1), status=503)
    responses.add(responses.POST, url(1), status=200)
    responses.add(responses.POST, url(2), status=200)
    responses.add(responses.POST, url(3), status=200)

    report = flush_outbox(box)

    assert posted(responses.calls) == [1, 2, 3, 1]
    assert (report.counts.delivered, report.counts.pending, report.sweeps) == (3, 0, 2)
    assert report.exit_code == 0 and outbox_files(box) == [] and len(waits) == 1


@responses.activate
def test_a_reset_moves_on_too(box: Path, waits: list[float]) -> None:
    """A connection reset is one call's failure, not the server's: the next file is tried."""
    spool(box, 1)
    spool(box, 2)
    responses.add(responses.POST, url(1), body=requests.ConnectionError("Connection reset"))
    responses.add(responses.POST, url(1), status=200)
    responses.add(responses.POST, url(2), status=200)

    report = flush_outbox(box)

    assert posted(responses.calls) == [1, 2, 1]
    assert report.counts.delivered == 2 and report.sweeps == 2


@responses.activate
def test_without_a_retry_budget_each_file_gets_one_attempt(box: Path, waits: list[float]) -> None:
    """Budget 0: one sweep; what failed stays pending with the attempt recorded in its file."""
    path = spool(box, 1, attempts=2)
    spool(box, 2)
    responses.add(responses.POST, url(1), status=503)
    responses.add(responses.POST, url(2), status=200)

    report = flush_outbox(box, retry_seconds=0)

    assert posted(responses.calls) == [1, 2] and waits == []
    assert (report.counts.delivered, report.counts.pending, report.sweeps) == (1, 1, 1)
    assert "503" in (report.pending[0].reason or "")
    kept = json.loads(path.read_text())
    assert kept["attempts"] == 3 and kept["last_error"]["http_status"] == 503
    assert report.exit_code == 75


@responses.activate
def test_a_server_failing_every_call_is_given_up_after_failures_in_a_row(
    box: Path, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """GIVE_UP_AFTER 503s in a row: the rest of its files are not tried in this run; the
    log says so in two WARNING lines, not one per file, and so does the summary."""
    count = GIVE_UP_AFTER + 10
    for rid in range(1, count + 1):
        spool(box, rid)
        responses.add(responses.POST, url(rid), status=503)

    with caplog.at_level(logging.WARNING, logger="ess_callback"):
        report = flush_outbox(box)

    assert len(responses.calls) == GIVE_UP_AFTER
    assert (report.counts.pending, report.exit_code) == (count, 75)
    assert report.given_up[0][0] == BASE and report.sweeps == 1 and waits == []
    assert f"gave up on {BASE} for this run: {GIVE_UP_AFTER} failures in a row" in (
        report.summary()
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("final status SUCCESS not delivered yet")
    assert "giving up on" in warnings[1]
    tried = [json.loads(p.read_text())["attempts"] for p in outbox_files(box)]
    assert tried == [2] * GIVE_UP_AFTER + [1] * 10


def test_thirty_in_a_row_is_rare_at_random_half_failures() -> None:
    """The threshold is chosen so that a server failing half of its calls at random is
    practically never given up: about n / 2**(K+1) for n calls."""
    calls = 20_000  # a 10,000-file backlog at 50 %: about 2 calls per file
    assert calls / 2 ** (GIVE_UP_AFTER + 1) < 1e-4


@responses.activate
def test_timeouts_in_a_row_give_the_server_up_sooner(box: Path, waits: list[float]) -> None:
    """Attempts that get no answer in time cost up to 10 s each: three in a row suffice."""
    for rid in range(1, 6):
        spool(box, rid)
        responses.add(responses.POST, url(rid), body=requests.exceptions.ReadTimeout("slow"))

    report = flush_outbox(box)

    assert len(responses.calls) == GIVE_UP_AFTER_SILENT == 3
    assert "3 attempts in a row without an answer" in report.summary()
    assert report.counts.pending == 5


@responses.activate
def test_a_401_gives_the_server_up_at_once_and_other_servers_go_on(
    box: Path, waits: list[float]
) -> None:
    """The flush's own setup at fault (401): no other file for that server is tried."""
    other = "https://other.example.com"
    spool(box, 1)
    spool(box, 2)
    spool(box, 3, base_url=other)
    responses.add(responses.POST, url(1), status=401)
    responses.add(responses.POST, url(3, other), status=200)

    report = flush_outbox(box)

    assert posted(responses.calls) == [1, 3]
    assert (report.counts.delivered, report.counts.pending) == (1, 2)
    assert [server for server, _ in report.given_up] == [BASE]


@responses.activate
def test_retry_after_sets_the_wait_before_the_next_sweep(box: Path, waits: list[float]) -> None:
    """A 429 with Retry-After: the next sweep waits that long (not the short default)."""
    spool(box, 1)
    responses.add(responses.POST, url(1), status=429, headers={"Retry-After": "7"})
    responses.add(responses.POST, url(1), status=200)

    report = flush_outbox(box)

    assert report.counts.delivered == 1 and len(waits) == 1 and waits[0] > 6


@responses.activate
def test_a_retry_after_beyond_the_budget_ends_the_run(box: Path, waits: list[float]) -> None:
    """The server asks for more time than the run has left: the file stays for the next."""
    spool(box, 1)
    responses.add(responses.POST, url(1), status=503, headers={"Retry-After": "30"})

    report = flush_outbox(box, retry_seconds=5)

    assert len(responses.calls) == 1 and waits == [] and report.counts.pending == 1


def test_sweep_waits_grow_and_stay_short() -> None:
    """0.1 to 1 s between sweeps, whatever their number; a Retry-After is honoured up to
    30 s."""
    assert all(0.05 <= _flush.sweep_wait(n, None) <= _flush.SWEEP_MAX_WAIT for n in range(1, 40))
    assert _flush.sweep_wait(1, 12.0) == 12.0
    assert _flush.sweep_wait(1, 600.0) == 30.0


# -- memory: counts, and a bounded sample ---------------------------------------------------
@responses.activate
def test_the_report_keeps_counts_and_a_bounded_sample_only(
    box: Path, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    """However many files a run handles, the report holds at most SAMPLES results of each
    kind (no per-file record); the counts, summary, exit code and metrics stay exact."""
    monkeypatch.setattr(_flush_report, "SAMPLES", 4)
    for rid in range(1, 31):
        spool(box, rid)
        responses.add(responses.POST, url(rid), status=200 if rid <= 20 else 404)

    report = flush_outbox(box)

    assert (report.counts.delivered, report.counts.rejected) == (20, 10)
    assert len(report.results) == 8
    assert len(report.delivered) == 4 and len(report.rejected) == 4
    assert report.summary().startswith("delivered 20, rejected 10, pending 0")
    assert report.exit_code == 1
    from ess_callback.outbox._metrics import metrics_text

    assert "ess_callback_flush_delivered 20\n" in metrics_text(report)


def test_a_hand_built_report_counts_its_results() -> None:
    """A FlushReport made from results alone (as before counts existed) counts them."""
    path = Path("x.json")
    report = _flush_report.FlushReport(
        Path("box"),
        (
            _flush_report.FlushResult(path, "delivered"),
            _flush_report.FlushResult(path, "pending", server="https://b"),
        ),
    )
    assert report.counts == _flush_report.FlushCounts(delivered=1, pending=1)
    assert report.other_servers == {"https://b": 1} and report.exit_code == 75


def test_the_run_holds_names_not_paths_or_records(box: Path) -> None:
    """The folder is listed as names, oldest first (the one list a run holds per file)."""
    for rid in (3, 1, 2):
        spool(box, rid)
    names = _flush.entry_names(box)
    assert all(isinstance(name, str) for name in names)
    assert names == sorted(p.name for p in outbox_files(box))


def test_a_files_path_does_not_intern_the_name_the_run_holds(tmp_path: Path) -> None:
    """pathlib (before 3.12) interns the parts of a path: the name a run holds must not end
    up in the interpreter's table of interned strings, which never shrinks."""
    name = "".join(["00000000000000000001-7-success-", "abcdef.json"])
    path = entry_path(tmp_path, name)
    assert path.name == name and path.parent == tmp_path
    assert sys.intern("".join([name[:5], name[5:]])) is not name


# -- against the real fake ------------------------------------------------------------------
@pytest.mark.integration
def test_a_backlog_at_half_failures_drains_within_a_few_runs_each_delivered_once(
    box: Path,
) -> None:
    """300 files, a server failing half of its calls (503s and resets): at most 3 runs drain
    it; every status arrives exactly once; what a run leaves has its attempts counted."""
    count = 300
    with FakeScheduler(auto_submit=True) as ess:
        for rid in range(1, count + 1):
            spool(box, rid, base_url=ess.url)
        ess.chaos(0.5, seed=15)
        runs = []
        for _ in range(3):
            report = flush_outbox(box, retry_seconds=3)
            runs.append(report)
            for path in outbox_files(box):
                assert json.loads(path.read_text())["attempts"] >= 2
            if report.exit_code == 0:
                break
        ess.chaos(0)
        received = [c.request_id for c in ess.received]
    assert runs[-1].exit_code == 0 and outbox_files(box) == []
    assert sorted(received) == list(range(1, count + 1))  # each exactly once
    assert sum(r.counts.delivered for r in runs) == count
    assert runs[0].sweeps > 1 and runs[0].given_up == ()


@pytest.mark.integration
def test_an_answer_lost_in_one_sweep_is_found_delivered_in_the_next(box: Path) -> None:
    """SPEC 5 across sweeps: the first attempt is taken but its answer lost; the next
    sweep's 400 is read against the request's state and counts as delivered."""
    with FakeScheduler() as ess:
        ess.submit(7, "handle-7")
        spool(box, 7, base_url=ess.url, attempts=0)
        ess.reset_after_accept(1)
        report = flush_outbox(box)
        assert ess.state(7) == "SUCCEEDED" and len(ess.received) == 1
    assert report.counts.delivered == 1 and report.sweeps == 2 and report.exit_code == 0


@pytest.mark.integration
def test_the_cli_warns_once_per_server_not_once_per_file(box: Path) -> None:
    """A flaky server and 60 files: the stderr of `flush` holds a line or two, not 60."""
    with FakeScheduler(auto_submit=True) as ess:
        for rid in range(1, 61):
            spool(box, rid, base_url=ess.url)
        ess.chaos(0.5, statuses=(503,), resets=False, seed=3)
        result = cli_runner().invoke(main, ["flush"], env={"ESS_CALLBACK_RETRY_SECONDS": "0"})
    assert result.exit_code == 75
    assert len(result.stderr.splitlines()) <= 2, result.stderr
    assert "not delivered yet" in result.stderr
    pending = int(result.stdout.split("pending ")[1].split(" ")[0])
    assert 0 < pending < 60 and len(outbox_files(box)) == pending
