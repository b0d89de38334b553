"""What ``wait`` shows on a terminal: a bar that fits, redrawn in place, no fake 0%, and
never mixed with dry-run JSON lines."""

from __future__ import annotations

import io
import re

import pytest

from ess_callback.testing import FakeScheduler
from ess_callback.watch import JobState, JobStatus
from ess_callback.watch._command import WaitOptions, _Bar, run_wait


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drawn_lines(text: str) -> list[str]:
    """Each redraw of the bar (they start with a carriage return), escapes removed."""
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)
    return [part for part in plain.split("\r") if part.strip()]


def test_the_bar_fits_an_80_column_terminal() -> None:
    """Long label, long message: every redraw stays within 79 columns, on one line."""
    stream = Terminal()
    bar = _Bar("saas-batch job 44046-with-a-rather-long-identifier", stream, columns=80)
    long_message = "loading the general ledger interface rows for every business unit " * 3
    bar.show(JobStatus(JobState.RUNNING, "IN_PROGRESS", progress=0.25, message=long_message))
    bar.show(JobStatus(JobState.RUNNING, "IN_PROGRESS", progress=0.75, message="x"))
    lines = drawn_lines(stream.getvalue())
    assert lines and all(len(line) <= 79 and "\n" not in line for line in lines)
    assert "75%" in lines[-1]
    bar.bar.render_finish()


def test_no_progress_shows_state_and_time_waited_not_zero_percent() -> None:
    """An ESS request has no progress: the bar shows RUNNING and the time waited."""
    now = [1000.0]
    stream = Terminal()
    bar = _Bar("ess job 4711", stream, columns=80, clock=lambda: now[0])
    bar.show(JobStatus(JobState.RUNNING, "RUNNING"))
    now[0] += 125
    bar.tick()
    last = drawn_lines(stream.getvalue())[-1]
    assert "RUNNING, 2m05s" in last and "%" not in last
    bar.bar.render_finish()


def test_dry_run_relay_on_a_terminal_draws_no_bar(
    fake: FakeScheduler, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run --relay: the JSON lines on stderr are never inside a bar (no bar drawn)."""
    fake.submit(43, "handle-43")
    fake.set_state(43, "SUCCEEDED")
    env = {
        "ESS_BASE_URL": fake.url,
        "ESS_REQUEST_ID": "42",
        "ESS_REQUEST_HANDLE": "handle-42",
        "ESS_CALLBACK_DRY_RUN": "1",
    }
    options = WaitOptions("ess", "43", relay=True, poll=0.01, update_interval=0)
    assert run_wait(options, env, tty=True) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert all(line.startswith("{") for line in err.splitlines()), err
