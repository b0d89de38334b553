"""``flush --metrics FILE`` (SPEC 12) and what flush says while it retries (SPEC 5)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from cli_runner import cli_runner
from click.testing import Result

from ess_callback import Callback, SchedulerUnavailableError
from ess_callback.cli import main
from ess_callback.outbox import _outbox
from ess_callback.outbox._flush_report import FlushReport
from ess_callback.outbox._metrics import metrics_text
from ess_callback.testing import FakeScheduler

GAUGES = (
    "ess_callback_outbox_pending",
    "ess_callback_outbox_rejected",
    "ess_callback_outbox_leases",
    "ess_callback_outbox_oldest_pending_age_seconds",
    "ess_callback_flush_delivered",
    "ess_callback_flush_dead_reported",
    "ess_callback_flush_last_run_timestamp_seconds",
)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """The outbox the autouse clean_env points ESS_CALLBACK_OUTBOX at."""
    return tmp_path / "outbox"


def spool(folder: Path, base_url: str, request_id: int) -> Path:
    return _outbox.spool(
        folder,
        Callback(request_id, f"handle-{request_id}", "SUCCESS", None),
        base_url=base_url,
        attempts=1,
        error=SchedulerUnavailableError("down", attempts=1),
    )


def flush(*args: str, env: dict[str, str] | None = None) -> Result:
    return cli_runner().invoke(main, ["flush", *args], env=env)


def gauges(text: str) -> dict[str, float]:
    """The samples of a Prometheus text file; every gauge has HELP and TYPE lines."""
    values = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.split(" ")
            assert f"# HELP {name} " in text and f"# TYPE {name} gauge" in text
            values[name] = float(value)
    return values


def test_metrics_after_a_flush_count_what_is_left_and_what_went(
    box: Path, tmp_path: Path, fake: FakeScheduler
) -> None:
    """Two delivered, one kept for a dead server, one rejected, one lease: each gauge says so."""
    fake.submit(1, "handle-1")
    fake.submit(2, "handle-2")
    spool(box, fake.url, 1)
    spool(box, fake.url, 2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    spool(box, closed, 3)
    (box / "rejected").mkdir()
    (box / "rejected" / "00000000000000000001-9-success-aaaaaa.json").write_text("{}")
    (box / "running").mkdir()
    (box / "running" / "lease.json").write_text(json.dumps({"request_id": 5, "kind": "run"}))
    prom = tmp_path / "ess_callback.prom"
    before = time.time()
    result = flush("--metrics", str(prom), env={"ESS_CALLBACK_RETRY_SECONDS": "0"})
    assert result.exit_code == 75, result.stderr
    values = gauges(prom.read_text())
    assert set(values) == set(GAUGES)
    assert values["ess_callback_outbox_pending"] == 1
    assert values["ess_callback_outbox_rejected"] == 1
    assert values["ess_callback_outbox_leases"] == 1
    assert values["ess_callback_flush_delivered"] == 2
    assert values["ess_callback_flush_dead_reported"] == 0
    assert values["ess_callback_outbox_oldest_pending_age_seconds"] >= 0
    assert values["ess_callback_flush_last_run_timestamp_seconds"] >= before - 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_metrics_of_an_empty_outbox_are_zero(box: Path, tmp_path: Path) -> None:
    """No outbox at all: the file is still written, every count 0."""
    prom = tmp_path / "m.prom"
    assert flush("--metrics", str(prom)).exit_code == 0
    values = gauges(prom.read_text())
    assert values["ess_callback_outbox_pending"] == 0
    assert values["ess_callback_outbox_oldest_pending_age_seconds"] == 0


def test_oldest_pending_age_comes_from_the_oldest_entry(box: Path) -> None:
    """The oldest entry's creation time gives the age gauge (one file read, not all)."""
    path = spool(box, "https://ess.example.com", 1)
    record = json.loads(path.read_text())
    record["created"] = "2020-01-01T00:00:00+00:00"
    path.write_text(json.dumps(record))
    spool(box, "https://ess.example.com", 2)
    text = metrics_text(FlushReport(box), now=0)
    assert gauges(text)["ess_callback_outbox_oldest_pending_age_seconds"] > 86400 * 365


def test_dead_reported_is_read_from_the_report_when_it_has_one(box: Path) -> None:
    """The report's count of dead executions reported fills that gauge."""
    report = FlushReport(box, dead_reported=3)
    assert gauges(metrics_text(report))["ess_callback_flush_dead_reported"] == 3


def test_an_unwritable_metrics_file_is_one_line_and_exit_2(box: Path, tmp_path: Path) -> None:
    """--metrics in a folder that does not exist: one line naming the file, exit 2."""
    result = flush("--metrics", str(tmp_path / "no" / "m.prom"))
    assert result.exit_code == 2
    assert "cannot write --metrics file" in result.stderr


def test_flush_against_an_unreachable_server_says_it_retries(box: Path) -> None:
    """Flush at the default level: a WARNING says what failed and that retries go on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    spool(box, closed, 1)
    result = flush(env={"ESS_CALLBACK_RETRY_SECONDS": "1"})
    assert result.exit_code == 75
    notice = result.stderr.splitlines()[0]
    assert notice.startswith("ess-callback: WARNING: final status SUCCESS not delivered yet")
    assert "connection refused" in notice and "retrying for up to" in notice
