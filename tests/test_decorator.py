"""``@job``: each call one execution, plain and ``async def`` functions alike, and a decorated
async job reporting exactly what the same sync job reports (SPEC section 13)."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from doc_examples import ROOT, read_blocks

import ess_callback
from ess_callback import (
    BusinessError,
    Callback,
    JobCancelled,
    JobExecution,
    JobPaused,
    JobWarning,
    Status,
    job,
)
from ess_callback.testing import FakeScheduler, Recorder

# -- plain functions ------------------------------------------------------------------------


def test_job_is_exported() -> None:
    """``ess_callback.job`` is a public name, listed in ``__all__``."""
    assert "job" in ess_callback.__all__
    assert ess_callback.job is job


def test_a_sync_function_passes_its_return_value(ess_callbacks: Recorder) -> None:
    """A plain function: its return value comes back, the call is one SUCCESS."""

    @job()
    def main(rows: int, *, factor: int = 2) -> int:
        return rows * factor

    assert main(21) == 42
    assert ess_callbacks.statuses == [Status.SUCCESS]


def test_the_execution_is_passed_as_job(ess_callbacks: Recorder) -> None:
    """A parameter named ``job`` receives the call's JobExecution, by keyword."""
    seen: list[JobExecution] = []

    @job(update_interval=0)
    def main(path: str, job: JobExecution) -> str:
        seen.append(job)
        job.update(f"reading {path}")
        job.warn("3 rows skipped")
        return path

    assert main("sales.csv") == "sales.csv"
    assert isinstance(seen[0], JobExecution)
    assert ess_callbacks.statuses == [Status.UPDATE, Status.WARNING]
    assert ess_callbacks.messages == ["reading sales.csv", "3 rows skipped"]


def test_each_call_is_a_fresh_execution(ess_callbacks: Recorder) -> None:
    """Two calls, two executions: warnings of one never reach the other."""
    seen: list[JobExecution] = []

    @job()
    def main(warn: bool, *, job: JobExecution) -> None:
        seen.append(job)
        if warn:
            job.warn("skipped")

    main(True)
    main(False)
    assert seen[0] is not seen[1]
    assert ess_callbacks.statuses == [Status.WARNING, Status.SUCCESS]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BusinessError("closed"), Status.BUSINESS_ERROR),
        (JobWarning("late"), Status.WARNING),
        (JobCancelled("operator"), Status.CANCEL),
        (JobPaused("step 3"), Status.PAUSE),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.value,
)
def test_a_consumed_control_exception_returns_none(
    ess_callbacks: Recorder, error: BaseException, status: Status
) -> None:
    """A control exception is consumed: the call returns None, its status is reported."""

    @job()
    def main() -> str:
        raise error

    assert main() is None
    assert ess_callbacks.statuses == [status]


def test_other_exceptions_propagate(ess_callbacks: Recorder) -> None:
    """Any other exception: ERROR, and the caller sees it."""

    @job()
    def main() -> None:
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        main()
    assert ess_callbacks.statuses == [Status.ERROR]


def test_the_keyword_arguments_go_to_each_execution(fake: FakeScheduler) -> None:
    """The decorator's keyword arguments are JobExecution's: here, where to report."""

    @job(base_url=fake.url, request_id=42, request_handle="handle-42", handle_signals=False)
    def main() -> None:
        pass

    main()
    assert fake.callbacks_for(42) == [Callback(42, "handle-42", Status.SUCCESS, None)]


def test_settings_are_read_at_each_call(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The environment is read when the function is called, not when it is decorated."""

    @job()
    def main() -> None:
        pass

    monkeypatch.setenv("ESS_CALLBACK_DRY_RUN", "1")
    main()
    assert '"status": "SUCCESS"' in capfd.readouterr().err


def test_wraps_keeps_the_functions_identity() -> None:
    """functools.wraps: name, docstring, module and __wrapped__ are the function's."""

    def main(x: int) -> int:
        """Close the books."""
        return x

    wrapped = job()(main)
    assert wrapped.__name__ == "main"
    assert wrapped.__doc__ == "Close the books."
    assert wrapped.__wrapped__ is main  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(main)


def test_a_misspelt_argument_fails_at_decoration() -> None:
    """An argument JobExecution does not take is a TypeError at once."""
    with pytest.raises(TypeError):
        job(update_intervall=1)


def test_generators_are_refused() -> None:
    """A generator would return before its work is done: TypeError at decoration."""

    def rows() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        job()(rows)


def test_a_positional_only_job_parameter_is_refused() -> None:
    """The execution is passed by keyword: a positional-only ``job`` is a TypeError."""

    def main(job: JobExecution, /) -> None:
        pass

    with pytest.raises(TypeError, match="positional-only"):
        ess_callback.job()(main)


def test_a_caller_cannot_pass_job(ess_callbacks: Recorder) -> None:
    """``job=`` from the caller is a TypeError: each call gets a fresh execution."""

    @job()
    def main(*, job: JobExecution | None = None) -> None:
        pass

    with pytest.raises(TypeError, match="job="):
        main(job=JobExecution())
    assert ess_callbacks.statuses == []


def test_an_async_callable_not_seen_as_one_is_an_error(ess_callbacks: Recorder) -> None:
    """An object whose __call__ is async looks like a plain function: rather than report
    SUCCESS for work never done, the call is ERROR with a TypeError saying why."""

    class Job:
        async def __call__(self) -> None:
            pass

    with pytest.raises(TypeError, match="returned a coroutine"):
        job()(Job())()
    assert ess_callbacks.statuses == [Status.ERROR]


# -- async functions ------------------------------------------------------------------------


def test_an_async_function_stays_a_coroutine_function(ess_callbacks: Recorder) -> None:
    """``async def`` decorated is still a coroutine function; its result comes back."""

    @job(update_interval=0)
    async def main(rows: int, *, job: JobExecution) -> int:
        job.update("started")
        await asyncio.sleep(0)
        return rows + 1

    assert inspect.iscoroutinefunction(main)
    assert main.__name__ == "main"
    assert asyncio.run(main(41)) == 42
    assert ess_callbacks.statuses == [Status.UPDATE, Status.SUCCESS]


def test_an_async_function_without_job(ess_callbacks: Recorder) -> None:
    """No ``job`` parameter: nothing is passed; the end is reported all the same."""

    @job()
    async def main() -> str:
        await asyncio.sleep(0)
        return "done"

    assert asyncio.run(main()) == "done"
    assert ess_callbacks.statuses == [Status.SUCCESS]


def test_an_async_consumed_control_exception_returns_none(ess_callbacks: Recorder) -> None:
    """BusinessError in an async job: consumed, the call returns None."""

    @job()
    async def main() -> str:
        await asyncio.sleep(0)
        raise BusinessError("period closed")

    assert asyncio.run(main()) is None
    assert ess_callbacks.last == Callback(
        None, None, Status.BUSINESS_ERROR, "BusinessError: period closed"
    )


def test_an_async_exception_propagates(ess_callbacks: Recorder) -> None:
    """Any other exception in an async job: ERROR, and it propagates."""

    @job()
    async def main() -> None:
        raise KeyError("region")

    with pytest.raises(KeyError):
        asyncio.run(main())
    assert ess_callbacks.statuses == [Status.ERROR]


def test_async_generators_are_refused() -> None:
    """An async generator is refused like a plain one."""

    async def rows() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        job()(rows)


def test_dry_run_prints_a_decorated_async_job(capfd: pytest.CaptureFixture[str]) -> None:
    """Dry run: a decorated async job's callbacks are JSON lines on stderr."""

    @job(dry_run=True)
    async def main(*, job: JobExecution) -> None:
        job.warn("2 rows skipped")

    asyncio.run(main())
    err = capfd.readouterr().err
    assert '"status": "WARNING"' in err and "2 rows skipped" in err


# -- the same job, sync and async: the same report ------------------------------------------

#: one job, written twice: only the ``async``/``await`` words differ, line for line, so
#: that even the file:line of an ERROR message is the same
JOB = """\
import asyncio, sys, time
from ess_callback import BusinessError, job

ENDING = sys.argv[1]

@job(update_interval=0, cancel_poll=0.1 if ENDING == "cancel" else None)
{async_}def main(*, job):
    job.update("started")
    print("ready", flush=True)
    {pause}
    if ENDING == "warn":
        job.warn("3 rows skipped")
    if ENDING == "business":
        raise BusinessError("accounting period 2026-10 is closed")
    if ENDING == "crash":
        raise ValueError("bad row 7")
    if ENDING in ("sigterm", "cancel"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            {pause}
        print("never stopped", flush=True)
    return "done"

print("returned", repr({call}), flush=True)
"""
FORMS = {
    "sync": {"async_": "", "pause": "time.sleep(0.01)", "call": "main()"},
    "async": {
        "async_": "async ",
        "pause": "await asyncio.sleep(0.01)",
        "call": "asyncio.run(main())",
    },
}
ENDINGS = ["normal", "warn", "business", "crash", "sigterm", "cancel"]


def run_form(
    form: str, ending: str, path: Path, fake: FakeScheduler, env: dict[str, str], request_id: int
) -> tuple[int, str, list[tuple[Status, str | None]]]:
    """Run the *form* of the job to its *ending*; return its exit status, what it printed
    after its ready line, and what the fake received for it."""
    path.write_text(JOB.format(**FORMS[form]))
    handle = f"handle-{request_id}"
    fake.submit(request_id, handle)
    env = {**env, **fake.env(request_id=request_id, request_handle=handle)}
    proc = subprocess.Popen(
        [sys.executable, str(path), ending],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        if ending == "sigterm":
            proc.send_signal(signal.SIGTERM)
        elif ending == "cancel":
            fake.cancel(request_id)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    received = [(c.status, c.message) for c in fake.callbacks_for(request_id)]
    return proc.returncode, out, received


@pytest.mark.integration
@pytest.mark.parametrize("ending", ENDINGS)
def test_a_decorated_async_job_reports_what_the_sync_job_reports(
    fake: FakeScheduler, job_env: dict[str, str], tmp_path: Path, ending: str
) -> None:
    """The same job as a plain and as an async function, decorated alike, run as processes
    against the fake: the same callbacks, the same exit status, the same output."""
    path = tmp_path / "job.py"  # one path for both: ERROR messages name it
    sync = run_form("sync", ending, path, fake, job_env, 100)
    async_ = run_form("async", ending, path, fake, job_env, 101)
    assert async_ == sync
    code, out, received = sync
    expected: dict[str, tuple[int, str, Status, str | None]] = {
        "normal": (0, "returned 'done'\n", Status.SUCCESS, None),
        "warn": (0, "returned 'done'\n", Status.WARNING, "3 rows skipped"),
        "business": (
            0,
            "returned None\n",
            Status.BUSINESS_ERROR,
            "BusinessError: accounting period 2026-10 is closed",
        ),
        "sigterm": (143, "", Status.CANCEL, "SIGTERM"),
        "cancel": (143, "", Status.CANCEL, "cancelled in ESS (state CANCELLING)"),
    }
    assert received[0] == (Status.UPDATE, "started")
    assert len(received) == 2
    if ending == "crash":
        assert code == 1 and out == ""
        status, message = received[-1]
        assert status is Status.ERROR and message is not None
        assert message.startswith("ValueError: bad row 7\n  at ")
        line = next(n for n, text in enumerate(JOB.splitlines(), 1) if "ValueError(" in text)
        assert message.endswith(f"{path}:{line} in main")
    else:
        want_code, want_out, want_status, want_message = expected[ending]
        assert (code, out, received[-1]) == (want_code, want_out, (want_status, want_message))


# -- the manual -----------------------------------------------------------------------------


def three_forms_examples() -> list[str]:
    """The ```python blocks of the "Three forms" section of the Python-job how-to, in order."""
    page = ROOT / "docs" / "howto" / "python-job.md"
    return [
        block.text
        for block in read_blocks(page)
        if block.info == "python" and any(h.startswith("Three forms") for h in block.headings)
    ]


@pytest.mark.integration
def test_three_forms_in_the_manual_run_as_printed() -> None:
    """The manual's with, async with and @job examples run as printed (in dry run) and
    print what their comments say."""
    with_block, async_block, decorated = three_forms_examples()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    printed = []
    for script in (with_block, async_block, decorated):
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        printed.append(done.stdout)
    assert printed == ["WARNING\n", "SUCCESS\n", ""]
