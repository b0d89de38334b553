"""Tests for async_job.py: an async job is tested like a sync one, with the ``ess_callbacks``
fixture, running its coroutine with ``asyncio.run``; no plugin for asyncio is needed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from async_job import main

from ess_callback import Status
from ess_callback.testing import Recorder

HERE = Path(__file__).resolve().parent


def test_every_region_read_is_success(ess_callbacks: Recorder) -> None:
    """All regions answer: the prices are counted, the end is SUCCESS."""
    assert asyncio.run(main()) == 4 * 100 + len("northsoutheastwest")
    assert ess_callbacks.last.status is Status.SUCCESS
    assert ess_callbacks[0].message == "1 of 4 regions fetched"  # the first is due at once


def test_a_failed_region_is_a_warning(ess_callbacks: Recorder) -> None:
    """One region failing: the others are counted, the end is WARNING naming it."""
    assert asyncio.run(main(fail=("west",))) == 3 * 100 + len("northsoutheast")
    assert ess_callbacks.last.status is Status.WARNING
    assert ess_callbacks.last.message == "west: the price service answered 503"


def test_a_closed_period_is_a_business_error(ess_callbacks: Recorder) -> None:
    """A closed period: BUSINESS_ERROR, consumed, so main() returns None."""
    assert asyncio.run(main(period_closed=True)) is None
    assert ess_callbacks.statuses == [Status.BUSINESS_ERROR]


def test_sigterm_cancels_the_job_in_dry_run() -> None:
    """Run as a script in dry run, SIGTERM while the fetches await: CANCEL, exit 143."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env.update(ESS_CALLBACK_DRY_RUN="1", SAMPLE_SLOW="60", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "async_job.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "fetching 4 regions\n"  # the block has begun
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert '"status": "CANCEL"' in err and '"statusMessage": "SIGTERM"' in err
