"""``async with JobExecution()``: the ends of SPEC section 4 through an event loop, signals and
``cancel_poll`` cancelling the block's task, and a loop that never waits on delivery
(SPEC section 13)."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import wait_until

from ess_callback import (
    BusinessError,
    Callback,
    JobExecution,
    JobWarning,
    Status,
)
from ess_callback.testing import FakeScheduler, Recorder, record_callbacks

pytestmark = pytest.mark.integration

CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def own(fake: FakeScheduler, **extra: Any) -> dict[str, Any]:
    """JobExecution arguments reporting request 42 to *fake*, every UPDATE sent."""
    return {
        "base_url": fake.url,
        "request_id": 42,
        "request_handle": "handle-42",
        "update_interval": 0,
        **extra,
    }


def handlers() -> dict[int, Any]:
    """The Python-level handlers of the three signals, now."""
    return {signum: signal.getsignal(signum) for signum in CANCEL_SIGNALS}


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    """Run *body* in a fresh event loop (``asyncio.run``), as a job's ``main`` is run."""
    return asyncio.run(body())  # type: ignore[arg-type]


# -- the ends, in process, against the real fake --------------------------------------------


def test_normal_end_posts_updates_then_success(fake: FakeScheduler) -> None:
    """A normal end: the UPDATE, then SUCCESS, the last callback; the outcome says so."""

    async def main() -> JobExecution:
        async with JobExecution(**own(fake)) as job:
            job.update("loaded 500 rows")
            await asyncio.sleep(0.01)
        return job

    job = run(main)
    assert job.outcome is not None and job.outcome.delivered
    assert fake.callbacks_for(42) == [
        Callback(42, "handle-42", Status.UPDATE, "loaded 500 rows"),
        Callback(42, "handle-42", Status.SUCCESS, None),
    ]


def test_warn_ends_with_warning(fake: FakeScheduler) -> None:
    """job.warn() and then JobWarning: WARNING with both texts, in order; consumed."""

    async def main() -> str:
        async with JobExecution(**own(fake)) as job:
            job.warn("3 rows skipped")
            await asyncio.sleep(0)
            raise JobWarning("late file")
        return "after the block"

    assert run(main) == "after the block"
    assert fake.callbacks_for(42) == [
        Callback(42, "handle-42", Status.WARNING, "3 rows skipped\nlate file")
    ]


def test_business_error_is_consumed(fake: FakeScheduler) -> None:
    """BusinessError: BUSINESS_ERROR with ``Type: text``; the code after the block runs."""

    async def main() -> str:
        async with JobExecution(**own(fake)):
            await asyncio.sleep(0)
            raise BusinessError("period 2026-10 closed")
        return "after the block"

    assert run(main) == "after the block"
    assert fake.callbacks_for(42) == [
        Callback(42, "handle-42", Status.BUSINESS_ERROR, "BusinessError: period 2026-10 closed")
    ]


def test_other_exception_is_error_and_propagates(fake: FakeScheduler) -> None:
    """Any other exception: ERROR naming it and where it was raised; it propagates."""

    async def main() -> None:
        async with JobExecution(**own(fake)):
            await asyncio.sleep(0)
            raise ValueError("bad row 7")

    with pytest.raises(ValueError, match="bad row 7"):
        run(main)
    [end] = fake.callbacks_for(42)
    assert end.status is Status.ERROR
    assert end.message is not None
    assert end.message.startswith("ValueError: bad row 7\n  at ")
    assert end.message.endswith(" in main")


def test_a_cancel_from_elsewhere_is_cancel_and_propagates(fake: FakeScheduler) -> None:
    """task.cancel() by other code: CANCEL (its message, if any), CancelledError goes on."""

    async def block() -> None:
        async with JobExecution(**own(fake)):
            await asyncio.sleep(60)

    async def main() -> None:
        task = asyncio.ensure_future(block())
        await asyncio.sleep(0.05)
        task.cancel("shutting down")
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert fake.callbacks_for(42) == [Callback(42, "handle-42", Status.CANCEL, "shutting down")]


def test_a_sync_block_in_a_coroutine_cancelled_is_cancel_too(fake: FakeScheduler) -> None:
    """The same rule for a plain ``with`` around awaits: CANCEL, not ERROR."""

    async def block() -> None:
        with JobExecution(**own(fake), handle_signals=False):
            await asyncio.sleep(60)

    async def main() -> None:
        task = asyncio.ensure_future(block())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert fake.callbacks_for(42) == [Callback(42, "handle-42", Status.CANCEL, None)]


def test_signal_handlers_are_given_back(fake: FakeScheduler) -> None:
    """The three signals are taken over on the loop during the block, and afterwards have
    the handlers they had before it (asyncio.run's own SIGINT handler included)."""
    seen: dict[str, dict[int, Any]] = {}

    async def main() -> None:
        seen["before"] = handlers()
        async with JobExecution(**own(fake)):
            seen["inside"] = handlers()
        seen["after"] = handlers()

    run(main)
    assert seen["after"] == seen["before"]
    assert all(seen["inside"][s] != seen["before"][s] for s in CANCEL_SIGNALS)


def test_outside_the_main_thread_no_signal_is_taken(fake: FakeScheduler) -> None:
    """A loop in another thread: the block runs and reports; no handler is touched."""
    before = handlers()
    result: list[Any] = []

    def in_thread() -> None:
        async def main() -> None:
            async with JobExecution(**own(fake)) as job:
                await asyncio.sleep(0)
            result.append(job.outcome)

        asyncio.run(main())

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join(30)
    assert result and result[0].status is Status.SUCCESS
    assert handlers() == before


# -- the loop never waits on delivery -------------------------------------------------------


async def ticking(during: Callable[[], Awaitable[Any]]) -> tuple[Any, int, float]:
    """Run *during* while a ticker task ticks every 10 ms; return its result, the ticks and
    the longest gap between two ticks (seconds)."""
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    try:
        result = await during()
    finally:
        stop.set()
        await task
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return result, len(ticks), max(gaps, default=0.0)


def test_the_loop_runs_on_while_the_final_status_is_retried(
    fake: FakeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two 503s before the final status is accepted (about a second of backoff): other
    tasks keep running all along, the status is delivered at the third attempt."""
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "20")

    async def block() -> JobExecution:
        async with JobExecution(**own(fake)) as job:
            fake.fail_next(2, 503, method="POST")
        return job

    async def main() -> tuple[Any, int, float]:
        return await ticking(block)

    start = time.monotonic()
    job, ticks, gap = run(main)
    took = time.monotonic() - start
    assert job.outcome.delivered and job.outcome.attempts == 3
    assert took > 0.2  # the backoff did take time
    assert gap < 0.2, f"the loop stalled {gap:.2f} s"
    assert ticks >= took / 0.01 / 4
    assert [c.status for c in fake.callbacks_for(42)] == [Status.SUCCESS]


def test_the_loop_runs_on_while_the_scheduler_answers_slowly(fake: FakeScheduler) -> None:
    """A slow UPDATE and a slow final answer: update() returns at once, the loop ticks."""

    async def block() -> float:
        async with JobExecution(**own(fake)) as job:
            fake.delay_next(2, 0.5)
            start = time.monotonic()
            job.update("half way")
            return time.monotonic() - start
        raise AssertionError("unreachable")

    async def main() -> tuple[Any, int, float]:
        return await ticking(block)

    update_took, ticks, gap = run(main)
    assert update_took < 0.05
    assert gap < 0.2, f"the loop stalled {gap:.2f} s"
    assert ticks >= 40  # two half-second answers
    assert [c.status for c in fake.callbacks_for(42)] == [Status.UPDATE, Status.SUCCESS]


def test_a_cancel_while_the_end_is_sent_waits_for_it_then_goes_on(fake: FakeScheduler) -> None:
    """A task cancelled during the final send: the send finishes (SUCCESS delivered), then
    CancelledError leaves the block."""
    sending = threading.Event()

    async def block() -> None:
        async with JobExecution(**own(fake)):
            fake.delay_next(1, 0.5)
            sending.set()

    async def main() -> None:
        task = asyncio.ensure_future(block())
        while not sending.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)  # the final send is under way in its thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert fake.callbacks_for(42) == [Callback(42, "handle-42", Status.SUCCESS, None)]


# -- cancel_poll ----------------------------------------------------------------------------


def test_cancel_poll_cancels_the_task_and_exits_143(fake: FakeScheduler) -> None:
    """An operator's cancel heard by cancel_poll: the awaiting task is cancelled, CANCEL is
    posted once with the reason, and SystemExit(143) leaves the block."""
    seen: list[str] = []

    async def main() -> None:
        async with JobExecution(**own(fake, cancel_poll=0.05)):
            fake.cancel(42)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
        seen.append("after the block")

    with pytest.raises(SystemExit) as caught:
        run(main)
    assert caught.value.code == 143
    assert seen == ["cancelled"]
    assert fake.callbacks_for(42) == [
        Callback(42, "handle-42", Status.CANCEL, "cancelled in ESS (state CANCELLING)")
    ]
    assert fake.state(42) == "CANCELLED"


def test_cancel_poll_without_signals_leaves_it_to_check_cancelled(fake: FakeScheduler) -> None:
    """handle_signals=False: check_cancelled() raises JobCancelled, consumed; CANCEL once."""

    async def main() -> JobExecution:
        async with JobExecution(**own(fake, cancel_poll=0.05, handle_signals=False)) as job:
            fake.cancel(42)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                job.check_cancelled()
                await asyncio.sleep(0.01)
            pytest.fail("check_cancelled() never raised")
        return job

    job = run(main)
    assert job.cancel_requested
    assert [c.status for c in fake.callbacks_for(42)] == [Status.CANCEL]


def test_cancel_is_posted_once_whichever_comes_first(fake: FakeScheduler) -> None:
    """A job that checks while the task may be cancelled too: JobCancelled (consumed) or
    SystemExit(143), and exactly one CANCEL either way."""

    async def main() -> None:
        async with JobExecution(**own(fake, cancel_poll=0.05)) as job:
            fake.cancel(42)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                job.check_cancelled()
                await asyncio.sleep(0)
            pytest.fail("never cancelled")

    try:
        run(main)
    except SystemExit as leaving:
        assert leaving.code == 143
    assert [c.status for c in fake.callbacks_for(42)] == [Status.CANCEL]


# -- real signals, in a job process ---------------------------------------------------------

SIGNAL_JOB = textwrap.dedent(
    """
    import asyncio, signal, sys
    from ess_callback import JobExecution

    async def other():
        while True:
            await asyncio.sleep(0.01)

    async def main():
        asyncio.ensure_future(other())
        async with JobExecution(update_interval=0, cancel_poll=float(sys.argv[1]) or None):
            print("ready", flush=True)
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                print("cancelled while awaiting", flush=True)
                raise
        print("after the block", flush=True)

    asyncio.run(main())
    """
)


def start_job(job_env: dict[str, str], cancel_poll: float = 0.0) -> subprocess.Popen[str]:
    """Start SIGNAL_JOB and wait for its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_JOB, str(cancel_poll)],
        env=job_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Its remaining output, once it ended (killed if it did not within 30 s)."""
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signum", CANCEL_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_real_signal_cancels_the_awaiting_task(
    fake: FakeScheduler, job_env: dict[str, str], signum: int
) -> None:
    """SIGTERM/SIGINT/SIGHUP while the block awaits: the task is cancelled, CANCEL with the
    signal's name posted once, the process exits 128+N without a traceback."""
    proc = start_job(job_env)
    proc.send_signal(signum)
    out, err = finish(proc)
    assert proc.returncode == 128 + signum, err
    assert out == "cancelled while awaiting\n"
    assert "Traceback" not in err
    assert fake.callbacks_for(42) == [
        Callback(42, "handle-42", Status.CANCEL, signal.Signals(signum).name)
    ]


def test_an_operators_cancel_stops_a_job_process(
    fake: FakeScheduler, job_env: dict[str, str]
) -> None:
    """fake.cancel() with cancel_poll: the task is cancelled, exit 143, CANCEL once."""
    proc = start_job(job_env, cancel_poll=0.1)
    fake.cancel(42)
    out, err = finish(proc)
    assert proc.returncode == 143, err
    assert out == "cancelled while awaiting\n"
    assert "Traceback" not in err
    assert fake.callbacks_for(42) == [
        Callback(42, "handle-42", Status.CANCEL, "cancelled in ESS (state CANCELLING)")
    ]


def test_a_signal_during_the_final_send_is_acted_on_after_it(
    fake: FakeScheduler, job_env: dict[str, str]
) -> None:
    """SIGTERM while SUCCESS is being sent: the send finishes, then exit 143 (as ``with``)."""
    script = textwrap.dedent(
        """
        import asyncio
        from ess_callback import JobExecution

        async def main():
            async with JobExecution(update_interval=0):
                print("ready", flush=True)
            print("after the block", flush=True)

        asyncio.run(main())
        """
    )
    fake.delay_next(1, 1.0, method="POST")
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=job_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    wait_until(lambda: len(fake.requests) >= 1, what="the final POST to arrive")
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc)
    assert proc.returncode == 143, err
    assert "after the block" not in out
    assert fake.callbacks_for(42) == [Callback(42, "handle-42", Status.SUCCESS, None)]


def test_a_signal_the_application_handles_on_its_loop_stays_its_own(
    fake: FakeScheduler, job_env: dict[str, str]
) -> None:
    """The application's own loop.add_signal_handler(SIGHUP) keeps SIGHUP: its handler
    runs, the block is not cancelled and ends SUCCESS."""
    script = textwrap.dedent(
        """
        import asyncio, signal
        from ess_callback import JobExecution

        async def main():
            heard = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, heard.set)
            async with JobExecution(update_interval=0):
                print("ready", flush=True)
                await heard.wait()
                print("the application heard SIGHUP", flush=True)
            print("after the block", flush=True)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=job_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGHUP)
    out, err = finish(proc)
    assert proc.returncode == 0, err
    assert out == "the application heard SIGHUP\nafter the block\n"
    assert fake.callbacks_for(42) == [Callback(42, "handle-42", Status.SUCCESS, None)]


# -- the testing kit ------------------------------------------------------------------------


def test_record_callbacks_sees_an_async_block() -> None:
    """record_callbacks() records an async block's callbacks; no setting needed."""

    async def main() -> None:
        async with JobExecution(update_interval=0) as job:
            job.update("half way")
            job.warn("3 rows skipped")

    with record_callbacks() as calls:
        run(main)
    assert calls.statuses == [Status.UPDATE, Status.WARNING]
    assert calls.last.message == "3 rows skipped"


def test_the_fixture_sees_an_async_block(ess_callbacks: Recorder) -> None:
    """The ess_callbacks fixture records an async block like a sync one."""

    async def main() -> None:
        async with JobExecution():
            raise BusinessError("closed")

    run(main)
    assert ess_callbacks.statuses == [Status.BUSINESS_ERROR]


def test_dry_run_prints_an_async_blocks_callbacks(capfd: pytest.CaptureFixture[str]) -> None:
    """Dry run: each callback of an async block is one JSON line on stderr, nothing sent."""

    async def main() -> None:
        async with JobExecution(dry_run=True, update_interval=0) as job:
            job.update("half way")

    run(main)
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert [(line["status"], line.get("statusMessage")) for line in lines] == [
        ("UPDATE", "half way"),
        ("SUCCESS", None),
    ]
    assert all(line["dry_run"] for line in lines)
