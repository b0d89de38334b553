"""SPEC section 10: cancellation from the scheduler (``CancelWatcher`` and ``JobExecution``)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import requests
from helpers import wait_until

from ess_callback import ConfigurationError, JobExecution, Status
from ess_callback._cancel import CancelWatcher
from ess_callback._settings import Settings, resolve_settings
from ess_callback.testing import FakeScheduler

DEADLINE = 10.0


CHECK_IN = "/ess/rest/scheduler/v1/requests/42/checkInCancelling"


def settings_for(
    fake: FakeScheduler, request_id: int = 42, poll: float = 0.05, handle: str = "handle-42"
) -> Settings:
    env = {**fake.env(request_id, handle), "ESS_CALLBACK_CANCEL_POLL": str(poll)}
    return resolve_settings(env=env)


def own_request(fake: FakeScheduler) -> dict[str, str | int]:
    """JobExecution arguments for request 42 on the fake."""
    return {"base_url": fake.url, "request_id": 42, "request_handle": "handle-42"}


class Calls:
    """Collects on_cancel calls and lets a test await the first one."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.event = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.event.set()


def gets(fake: FakeScheduler) -> int:
    return sum(1 for r in fake.requests if r.method == "GET")


def polls(fake: FakeScheduler) -> int:
    """The watcher's calls so far: check-ins and state reads."""
    return len(fake.requests)


# -- CancelWatcher -------------------------------------------------------------------------


def test_watcher_checks_in_and_fires_once_when_ess_answers_true(fake: FakeScheduler) -> None:
    """The watcher polls with checkInCancelling and the request handle; the fake records
    each check-in; an operator's cancel makes it answer true: on_cancel once, polling ends."""
    calls = Calls()
    watcher = CancelWatcher(settings_for(fake), calls)
    watcher.start()
    try:
        assert wait_until(lambda: polls(fake) >= 2), "the watcher does not poll"
        assert not calls.event.is_set()
        assert fake.last_check_in(42) is not None
        assert fake.cancel(42) == "CANCELLING"
        assert calls.event.wait(DEADLINE)
        # The polling thread ends after firing: nothing more is read.
        assert wait_until(lambda: not watcher.running)
    finally:
        watcher.stop()
    assert calls.reasons == ["cancelled in ESS (state CANCELLING)"]
    assert watcher.fired
    assert all((r.method, r.path, r.answer) == ("POST", CHECK_IN, 200) for r in fake.requests)
    assert all(
        json.loads(r.body) == {"requestExecutionContext": "handle-42"} for r in fake.requests
    )


@pytest.mark.parametrize("answer", [400, 404, 405, 501])
@pytest.mark.parametrize("state", ["CANCELLING", "CANCELLED"])
def test_an_ess_without_check_in_is_polled_with_get(
    fake: FakeScheduler, caplog: pytest.LogCaptureFixture, answer: int, state: str
) -> None:
    """When ESS answers checkInCancelling with 400, 404, 405 or 501, the watcher says so
    once at INFO and reads the state with GET for the rest of the job; CANCELLING or
    CANCELLED then fires."""
    calls = Calls()
    fake.fail_next(1, answer, method="POST")
    with (
        caplog.at_level(logging.INFO, logger="ess_callback"),
        CancelWatcher(settings_for(fake), calls),
    ):
        assert wait_until(lambda: gets(fake) >= 2), "the watcher does not fall back to GET"
        fake.set_state(42, state)
        assert calls.event.wait(DEADLINE)
    assert calls.reasons == [f"cancelled in ESS (state {state})"]
    posts = [r for r in fake.requests if r.method == "POST"]
    assert [(r.path, r.answer) for r in posts] == [(CHECK_IN, answer)]
    said = [r for r in caplog.records if "checkInCancelling" in r.getMessage()]
    assert len(said) == 1 and str(answer) in said[0].getMessage()
    assert said[0].levelno == logging.INFO


def test_a_refused_check_in_falls_back_against_the_real_endpoint(fake: FakeScheduler) -> None:
    """The fake's own checkInCancelling refuses another handle (400): the watcher falls back
    to GET and still sees the operator's cancel."""
    calls = Calls()
    with CancelWatcher(settings_for(fake, handle="not-the-handle"), calls):
        assert wait_until(lambda: gets(fake) >= 1)
        fake.cancel(42)
        assert calls.event.wait(DEADLINE)
    assert fake.requests[0].answer == 400 and fake.last_check_in(42) is None
    assert calls.reasons == ["cancelled in ESS (state CANCELLING)"]


def test_watcher_ignores_other_states(fake: FakeScheduler) -> None:
    """RUNNING, PAUSED or EXPIRED are not a cancellation request: ESS answers false."""
    calls = Calls()
    with CancelWatcher(settings_for(fake), calls):
        for state in ("RUNNING", "PAUSED", "EXPIRED"):
            fake.set_state(42, state)
            seen = polls(fake)
            assert wait_until(lambda seen=seen: polls(fake) >= seen + 2)
    assert calls.reasons == []
    assert {r.body for r in fake.requests} == {b'{"requestExecutionContext": "handle-42"}'}


@pytest.mark.integration
def test_watcher_sends_the_job_credentials() -> None:
    """The poll carries the job's own ESS credentials (the fake refuses others)."""
    with FakeScheduler(username="svc", password="pw-123") as fake:
        fake.submit(42, "handle-42")
        env = {
            **fake.env(42, "handle-42"),
            "ESS_USERNAME": "svc",
            "ESS_PASSWORD": "pw-123",
            "ESS_CALLBACK_CANCEL_POLL": "0.05",
        }
        calls = Calls()
        fake.set_state(42, "CANCELLING")
        with CancelWatcher(resolve_settings(env=env), calls):
            assert calls.event.wait(DEADLINE)
        assert fake.requests and all(r.answer == 200 for r in fake.requests)
        assert fake.requests[0].path == CHECK_IN


def test_polling_errors_are_logged_rarely_and_never_stop_it(
    fake: FakeScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    """A run of 503s is logged once (not per poll); the watcher keeps polling and still fires."""
    calls = Calls()
    fake.fail_next(8, 503)
    with (
        caplog.at_level(logging.WARNING, logger="ess_callback"),
        CancelWatcher(settings_for(fake), calls),
    ):
        assert wait_until(lambda: sum(r.answer == 503 for r in fake.requests) >= 8)
        fake.set_state(42, "CANCELLING")
        assert calls.event.wait(DEADLINE)
    warnings = [r.getMessage() for r in caplog.records if "cancellation" in r.getMessage()]
    assert len(warnings) == 1
    assert "503" in warnings[0]


def test_stop_is_prompt_even_with_a_long_interval(fake: FakeScheduler) -> None:
    """stop() returns at once although the next poll is minutes away."""
    watcher = CancelWatcher(settings_for(fake, poll=300), Calls())
    watcher.start()
    assert watcher.running
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 1.0
    assert not watcher.running


def test_stop_does_not_wait_for_a_slow_server(fake: FakeScheduler) -> None:
    """A poll stuck on a slow answer does not hold up stop(), and fires nothing afterwards."""
    calls = Calls()
    fake.set_state(42, "CANCELLING")
    fake.delay_next(1, seconds=0.5)
    watcher = CancelWatcher(settings_for(fake, poll=0.01), calls)
    watcher.start()
    assert wait_until(lambda: polls(fake) >= 1)
    started = time.monotonic()
    watcher.stop(timeout=0.2)
    assert time.monotonic() - started < 1.0
    # The slow answer (CANCELLING) arrives after stop(): the thread ends without acting on it.
    assert wait_until(lambda: not watcher.running)
    assert calls.reasons == []
    assert not watcher.fired


def test_start_without_settings_does_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Without a base URL or request id (dry run), start() logs and polls nothing."""
    settings = resolve_settings(env={"ESS_CALLBACK_DRY_RUN": "1"}, cancel_poll=1.0)
    with caplog.at_level(logging.WARNING, logger="ess_callback"):
        watcher = CancelWatcher(settings, Calls())
        watcher.start()
    assert not watcher.running
    assert "cancel polling needs" in caplog.text


# -- JobExecution, in process ---------------------------------------------------------------


def test_check_cancelled_raises_and_the_code_after_the_block_runs(fake: FakeScheduler) -> None:
    """handle_signals=False: check_cancelled() raises JobCancelled, consumed; CANCEL posted."""
    after = False
    with JobExecution(
        **own_request(fake), cancel_poll=0.05, handle_signals=False, update_interval=0
    ) as job:
        fake.set_state(42, "CANCELLING")
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            job.check_cancelled()
            time.sleep(0.01)
        pytest.fail("check_cancelled() never raised")
    after = True
    assert after and job.cancel_requested
    assert [c.status for c in fake.received] == [Status.CANCEL]
    assert fake.received[0].message == "cancelled in ESS (state CANCELLING)"
    assert fake.state(42) == "CANCELLED"
    assert fake.last_check_in(42) is not None  # it asked with checkInCancelling


@pytest.mark.parametrize("check_in", [True, False], ids=["check-in", "get-fallback"])
def test_a_job_hears_an_operators_cancel_through_the_fakes_endpoints(
    fake: FakeScheduler, check_in: bool
) -> None:
    """JobExecution(cancel_poll=...) against the fake's real endpoints: POST .../cancel,
    heard through checkInCancelling, or through GET when ESS answers that call 405."""
    if not check_in:
        fake.fail_next(1, 405, method="POST")
    with JobExecution(
        **own_request(fake), cancel_poll=0.05, handle_signals=False, update_interval=0
    ) as job:
        assert wait_until(lambda: polls(fake) >= 1)
        cancel = f"{fake.url}/ess/rest/scheduler/v1/requests/42/cancel"
        assert requests.post(cancel, timeout=5).json()["state"] == "CANCELLING"
        assert wait_until(lambda: job.cancel_requested)
        job.check_cancelled()
    assert [c.status for c in fake.callbacks_for(42)] == [Status.CANCEL]
    assert fake.state(42) == "CANCELLED"
    assert (fake.last_check_in(42) is not None) is check_in


def test_a_job_that_never_checks_is_interrupted_like_sigterm(fake: FakeScheduler) -> None:
    """handle_signals=True in the main thread: CANCEL posted once, SystemExit(143) leaves."""
    with (
        pytest.raises(SystemExit) as caught,
        JobExecution(**own_request(fake), cancel_poll=0.05, update_interval=0) as job,
    ):
        fake.set_state(42, "CANCELLING")
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert caught.value.code == 143
    assert job.cancel_requested
    assert [c.status for c in fake.received] == [Status.CANCEL]
    assert fake.received[0].message == "cancelled in ESS (state CANCELLING)"


def test_no_cancel_watch_in_dry_run(fake: FakeScheduler) -> None:
    """Dry run sends nothing, so it reads nothing either: no poll reaches the server."""
    with JobExecution(
        base_url=fake.url, request_id=42, dry_run=True, cancel_poll=0.01, handle_signals=False
    ):
        time.sleep(0.1)
    assert fake.requests == []


# -- end to end, a real job process ---------------------------------------------------------

JOB = textwrap.dedent(
    """
    import sys, time
    from ess_callback import JobExecution
    checks = sys.argv[1] == "check"
    handle = sys.argv[2] == "signals"
    with JobExecution(cancel_poll=0.2, handle_signals=handle, update_interval=0) as job:
        print("ready", flush=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if checks:
                job.check_cancelled()
            time.sleep(0.01)
        print("never cancelled", flush=True)
    print("after the block", flush=True)
    """
)


def run_job(
    job_env: dict[str, str],
    fake: FakeScheduler,
    *args: str,
    script: str = JOB,
    timeout: float = 20,
) -> tuple[int, str, str]:
    """Start the job, wait for its ready line, cancel it in the fake, return its end."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=job_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        fake.set_state(42, "CANCELLING")
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.integration
def test_job_process_is_stopped_with_143_and_cancel_is_posted_once(
    fake: FakeScheduler, job_env: dict[str, str]
) -> None:
    """A job that never checks is stopped as by SIGTERM: exit 143, one CANCEL with the reason."""
    code, out, err = run_job(job_env, fake, "nocheck", "signals")
    assert code == 143, err
    assert "after the block" not in out and "never cancelled" not in out
    cancels = fake.callbacks_for(42)
    assert [c.status for c in cancels] == [Status.CANCEL]
    assert cancels[0].message == "cancelled in ESS (state CANCELLING)"
    assert fake.state(42) == "CANCELLED"
    assert "Traceback" not in err


@pytest.mark.integration
def test_job_process_that_checks_runs_the_code_after_the_block(
    fake: FakeScheduler, job_env: dict[str, str]
) -> None:
    """handle_signals=False: check_cancelled() raises, the block ends with CANCEL, code goes on."""
    code, out, err = run_job(job_env, fake, "check", "nosignals")
    assert code == 0, err
    assert "after the block" in out and "never cancelled" not in out
    assert [c.status for c in fake.callbacks_for(42)] == [Status.CANCEL]


@pytest.mark.integration
def test_cancel_is_posted_exactly_once_whichever_comes_first(
    fake: FakeScheduler, job_env: dict[str, str]
) -> None:
    """A checking job with signal handling too: interrupt or check, exactly one CANCEL."""
    code, out, err = run_job(job_env, fake, "check", "signals")
    assert code in (0, 143), err
    assert "never cancelled" not in out
    assert [c.status for c in fake.callbacks_for(42)] == [Status.CANCEL]
    assert "Traceback" not in err


BLOCKED_JOB = textwrap.dedent(
    """
    import socket, sys, time
    from ess_callback import JobExecution
    with JobExecution(cancel_poll=0.2, update_interval=0) as job:
        if sys.argv[1] == "sleep":
            print("ready", flush=True)
            time.sleep(60)
        else:
            here, there = socket.socketpair()
            print("ready", flush=True)
            here.recv(10)  # nothing ever comes: blocked in the system call for good
        print("never cancelled", flush=True)
    """
)


@pytest.mark.integration
@pytest.mark.parametrize("blocked_in", ["sleep", "recv"])
def test_a_job_blocked_in_a_system_call_is_stopped(
    fake: FakeScheduler, job_env: dict[str, str], blocked_in: str
) -> None:
    """A cancel in ESS interrupts a job blocked in time.sleep() or socket.recv(): exit 143."""
    # Far less than the 60 s sleep, far more than the 0.2 s poll: only an interrupted
    # system call ends the job in time.
    code, out, err = run_job(job_env, fake, blocked_in, script=BLOCKED_JOB, timeout=15)
    assert code == 143, err
    assert "never cancelled" not in out
    assert [c.status for c in fake.callbacks_for(42)] == [Status.CANCEL]
    assert "Traceback" not in err


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0, 1e12])
def test_cancel_poll_must_be_a_finite_positive_number(value: float) -> None:
    """JobExecution(cancel_poll=nan/inf/0/-1, or beyond ten years) is a ConfigurationError,
    not a busy loop or a timer overflow in the watcher thread."""
    with pytest.raises(ConfigurationError, match="cancel poll"):
        JobExecution(dry_run=True, cancel_poll=value)
