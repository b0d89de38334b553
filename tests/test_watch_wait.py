"""SPEC section 9: ``wait()`` polls with backoff, rides out transient trouble, ends cleanly."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers import saas_body

from ess_callback import (
    AuthenticationError,
    RequestNotFoundError,
    SchedulerUnavailableError,
)
from ess_callback.testing import FakeScheduler
from ess_callback.watch import (
    EssReader,
    HostNotFoundError,
    JobState,
    JobStatus,
    PaasReader,
    SaasBatchReader,
    WaitTimeout,
    wait,
)

RUNNING = JobStatus(JobState.RUNNING, "RUNNING")
DONE = JobStatus(JobState.SUCCEEDED, "SUCCEEDED", progress=1.0)


class Clock:
    """A fake monotonic clock whose sleep advances it and records each pause."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A reader that answers from a list (a JobStatus or an exception per poll), the last
    entry repeating."""

    def __init__(self, *answers: JobStatus | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def status(self, job_id: str) -> JobStatus:
        self.calls.append(job_id)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def unavailable() -> SchedulerUnavailableError:
    return SchedulerUnavailableError("ESS answered 503 Service Unavailable", http_status=503)


# -- unit: the loop ---------------------------------------------------------------------


def test_returns_the_terminal_status_and_reports_each_change_once() -> None:
    """on_change sees the first answer and each change, never a repeat; the end is returned."""
    clock = Clock()
    half = JobStatus(JobState.RUNNING, "RUNNING", progress=0.5)
    reader = Script(RUNNING, RUNNING, half, half, DONE)
    seen: list[JobStatus] = []
    final = wait(
        reader, 42, timeout=60, poll=1, on_change=seen.append, sleep=clock.sleep, clock=clock
    )
    assert final == DONE
    assert seen == [RUNNING, half, DONE]
    assert reader.calls == ["42"] * 5


def test_poll_interval_grows_gently_up_to_a_cap_and_resets_on_change() -> None:
    """Unchanged answers stretch the interval (x1.25) up to 8 x poll; a change resets it."""
    clock = Clock()
    answers: list[JobStatus | Exception] = [RUNNING] * 12
    answers += [JobStatus(JobState.RUNNING, "RUNNING", message="half way"), RUNNING, DONE]
    wait(Script(*answers), 1, timeout=None, poll=2, sleep=clock.sleep, clock=clock)
    first = clock.sleeps[:12]
    assert first[0] == 2
    assert first[1] == pytest.approx(2.5)
    assert all(b >= a for a, b in itertools.pairwise(first))
    assert max(first) == pytest.approx(16.0)  # the cap: 8 x poll
    assert clock.sleeps[12] == 2  # the change brought it back to poll


def test_cap_is_never_above_sixty_seconds() -> None:
    """With a long poll the cap stays at 60 s, and max_poll can set it."""
    clock = Clock()
    wait(Script(*[RUNNING] * 20, DONE), 1, timeout=None, poll=30, sleep=clock.sleep, clock=clock)
    assert max(clock.sleeps) == pytest.approx(60.0)
    clock = Clock()
    wait(
        Script(*[RUNNING] * 20, DONE),
        1,
        timeout=None,
        poll=1,
        max_poll=3,
        sleep=clock.sleep,
        clock=clock,
    )
    assert max(clock.sleeps) == pytest.approx(3.0)


def test_transient_errors_are_ridden_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """5xx and network errors do not end the wait; they are logged, then recovery too."""
    clock = Clock()
    reader = Script(unavailable(), unavailable(), RUNNING, unavailable(), DONE)
    with caplog.at_level(logging.DEBUG, logger="ess_callback"):
        final = wait(reader, 7, timeout=600, poll=1, sleep=clock.sleep, clock=clock)
    assert final == DONE
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "503" in warnings[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_run_of_errors_warns_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """Many failing polls in a row give one warning per minute, not one per poll."""
    clock = Clock()
    reader = Script(*[unavailable()] * 30, DONE)
    with caplog.at_level(logging.WARNING, logger="ess_callback"):
        wait(reader, 7, timeout=None, poll=1, max_poll=1, sleep=clock.sleep, clock=clock)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # 30 polls a second apart fit in one minute


def test_404_raises_at_once() -> None:
    """A job that does not exist raises RequestNotFoundError without waiting further."""
    clock = Clock()
    reader = Script(RequestNotFoundError("not found", http_status=404))
    with pytest.raises(RequestNotFoundError):
        wait(reader, 9, timeout=600, poll=1, sleep=clock.sleep, clock=clock)
    assert len(reader.calls) == 1 and clock.sleeps == []


def test_a_name_that_cannot_be_resolved_on_the_first_poll_ends_the_wait_at_once() -> None:
    """HostNotFoundError on the first poll is raised at once: a wrong host stays wrong."""
    clock = Clock()
    reader = Script(HostNotFoundError("cannot resolve fa.example.invalid", host="x"))
    with pytest.raises(HostNotFoundError, match="cannot resolve"):
        wait(reader, 9, timeout=600, poll=1, sleep=clock.sleep, clock=clock)
    assert len(reader.calls) == 1 and clock.sleeps == []


def test_a_name_lookup_failing_later_is_transient() -> None:
    """After a first answer, a failed name look-up (a DNS hiccup) is ridden out."""
    clock = Clock()
    running = JobStatus(JobState.RUNNING, "RUNNING")
    done = JobStatus(JobState.SUCCEEDED, "SUCCEEDED")
    lost = HostNotFoundError("cannot resolve ess.example.com", host="ess.example.com")
    reader = Script(running, lost, lost, done)
    final = wait(reader, 9, timeout=600, poll=1, sleep=clock.sleep, clock=clock)
    assert final == done and len(reader.calls) == 4


def test_reader_raises_host_not_found_for_an_unresolvable_name() -> None:
    """A reader whose host name does not resolve (.invalid never does) raises
    HostNotFoundError naming the host."""
    with pytest.raises(HostNotFoundError, match=r"cannot resolve no-such-host\.invalid"):
        EssReader("http://no-such-host.invalid").status(4)


def test_refused_credentials_raise_at_once() -> None:
    """A 401 is not transient: it raises at once."""
    clock = Clock()
    reader = Script(RUNNING, AuthenticationError("401", http_status=401))
    with pytest.raises(AuthenticationError):
        wait(reader, 9, timeout=600, poll=1, sleep=clock.sleep, clock=clock)
    assert len(reader.calls) == 2


def test_timeout_raises_wait_timeout_with_the_last_answer() -> None:
    """When the time is up, WaitTimeout carries the last status; no pause overshoots it."""
    clock = Clock()
    with pytest.raises(WaitTimeout) as caught:
        wait(Script(RUNNING), 5, timeout=10, poll=3, sleep=clock.sleep, clock=clock)
    error = caught.value
    assert error.last_status == RUNNING and not error.unreachable
    assert sum(clock.sleeps) == pytest.approx(10.0)
    assert "timed out waiting for job 5" in str(error)
    assert error.exit_code == 75
    assert isinstance(error, TimeoutError)


def test_timeout_after_errors_is_unreachable() -> None:
    """When the last poll failed, the timeout says the API was unreachable."""
    clock = Clock()
    with pytest.raises(WaitTimeout) as caught:
        wait(Script(RUNNING, unavailable()), 5, timeout=5, poll=1, sleep=clock.sleep, clock=clock)
    assert caught.value.unreachable
    assert str(caught.value).startswith("unreachable: ESS answered 503")


def test_zero_timeout_polls_once() -> None:
    """timeout=0 reads the status once and gives up if the job has not ended."""
    clock = Clock()
    reader = Script(RUNNING)
    with pytest.raises(WaitTimeout):
        wait(reader, 5, timeout=0, poll=1, sleep=clock.sleep, clock=clock)
    assert len(reader.calls) == 1 and clock.sleeps == []


def test_poll_must_be_positive() -> None:
    """A poll interval of zero would busy-wait: refused."""
    with pytest.raises(ValueError, match="poll"):
        wait(Script(DONE), 1, timeout=1, poll=0)


# -- against real loopback servers ----------------------------------------------------------


class ScriptedServer:
    """A loopback HTTP server answering GETs from a script of (status, body); the last
    entry repeats. Records each path and headers."""

    def __init__(self, script: list[tuple[int, Any]]) -> None:
        self.script = list(script)
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.seen.append((self.path, dict(self.headers.items())))
                    code, body = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.integration
def test_saas_wait_over_http_rides_out_503s() -> None:
    """Over real HTTP: 503s between answers are ridden out and the progress is reported."""
    script = [
        (503, {"title": "Service Unavailable"}),
        (200, saas_body("ENQUEUED", "0")),
        (200, saas_body("RUNNING", "50")),
        (503, {"title": "Service Unavailable"}),
        (502, {}),
        (200, saas_body("RUNNING", "50")),
        (200, saas_body("SUCCEEDED", "100", completed=True, message="done")),
    ]
    seen: list[JobStatus] = []
    with ScriptedServer(script) as server:
        reader = SaasBatchReader(server.url, "tok")
        final = wait(reader, "44046", timeout=20, poll=0.01, on_change=seen.append)
    assert final.state is JobState.SUCCEEDED and final.message == "done"
    assert [(s.raw_status, s.progress) for s in seen] == [
        ("ENQUEUED", 0.0),
        ("RUNNING", 0.5),
        ("SUCCEEDED", 1.0),
    ]
    assert len(server.seen) == 7
    assert server.seen[0][0] == "/api/saas-batch/jobscheduler/v1/jobRequests/44046"
    assert server.seen[0][1]["Authorization"] == "Bearer tok"


@pytest.mark.integration
def test_paas_wait_over_http_404_is_not_found() -> None:
    """Over real HTTP: a 404 from the PaaS activity log ends the wait with RequestNotFoundError."""
    with ScriptedServer([(200, {"status": "NEW"}), (404, {})]) as server:
        reader = PaasReader(server.url, "u", "p", "Dom")
        with pytest.raises(RequestNotFoundError):
            wait(reader, 17465, timeout=20, poll=0.01)
    assert server.seen[0][0] == "/paas/api/v1.1/activitylog/Dom/job/17465"
    assert server.seen[0][1]["X-ID-TENANT-NAME"] == "Dom"


@pytest.mark.integration
def test_timeout_over_http_when_the_server_is_gone() -> None:
    """Connection refused on every poll until the time is up: WaitTimeout, unreachable."""
    with ScriptedServer([(200, {})]) as server:
        url = server.url
    reader = EssReader(url)
    with pytest.raises(WaitTimeout) as caught:
        wait(reader, 42, timeout=0.3, poll=0.05)
    assert caught.value.unreachable
    assert "cannot reach ESS" in str(caught.value)


@pytest.fixture
def ess() -> Iterator[FakeScheduler]:
    """A fake scheduler with request 43 submitted."""
    with FakeScheduler() as server:
        server.submit(43)
        yield server


@pytest.mark.integration
def test_ess_wait_against_the_fake_scheduler_follows_state_changes(ess: FakeScheduler) -> None:
    """Against the FakeScheduler: WAIT -> RUNNING -> WARNING as the states are changed."""
    ess.set_state(43, "WAIT")
    following = {"WAIT": "RUNNING", "RUNNING": "WARNING"}

    def advance(status: JobStatus) -> None:
        # Each change the wait sees moves the fake on to the next state.
        nxt = following.get(status.raw_status or "")
        if nxt:
            ess.set_state(43, nxt)

    seen: list[JobStatus] = []

    def on_change(status: JobStatus) -> None:
        seen.append(status)
        advance(status)

    final = wait(EssReader(ess.url), 43, timeout=20, poll=0.01, on_change=on_change)
    assert [s.raw_status for s in seen] == ["WAIT", "RUNNING", "WARNING"]
    assert [s.state for s in seen] == [JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED]
    assert final.is_warning


@pytest.mark.integration
def test_ess_wait_rides_out_fake_scheduler_faults(ess: FakeScheduler) -> None:
    """Injected 503s and a reset connection on the fake do not end the wait."""
    ess.set_state(43, "SUCCEEDED")
    ess.fail_next(2, 503)
    ess.reset_next(1)
    final = wait(EssReader(ess.url), 43, timeout=20, poll=0.01)
    assert final.state is JobState.SUCCEEDED
    gets = [r for r in ess.requests if r.method == "GET"]
    assert len(gets) == 4


@pytest.mark.integration
def test_ess_wait_for_a_missing_request_is_not_found(ess: FakeScheduler) -> None:
    """The fake answers 404 for a request made missing: RequestNotFoundError."""
    ess.set_state(44, None)
    with pytest.raises(RequestNotFoundError, match="404"):
        wait(EssReader(ess.url), 44, timeout=20, poll=0.01)
