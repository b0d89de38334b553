"""SPEC section 9: ``ess-callback wait API JOB_ID`` (options, credentials, exit codes, --relay)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from cli_runner import cli_runner
from click.testing import Result
from doc_examples import ROOT, run_page
from helpers import saas_body

from ess_callback import Status
from ess_callback.cli import main
from ess_callback.testing import FakeScheduler
from ess_callback.watch import JobState, JobStatus
from ess_callback.watch._command import _Bar

FA = "https://fa.example.com"
SAAS_PATH = "/api/saas-batch/jobscheduler/v1/jobRequests/44046"
HW = "https://cfw.cn-north-4.myhuaweicloud.com"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return cli_runner().invoke(main, ["wait", *args], env=env, catch_exceptions=False)


def fast(*args: str) -> list[str]:
    return [*args, "--poll", "0.02"]


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fake(fake: FakeScheduler) -> FakeScheduler:
    """The shared fake (request 42 submitted) with the watched request 43 submitted too."""
    fake.submit(43)
    return fake


@pytest.fixture
def own(fake: FakeScheduler, monkeypatch: pytest.MonkeyPatch) -> FakeScheduler:
    """This job's own request 42 on the fake (ESS_* set); the watched job is request 43."""
    for key, value in fake.env(request_id=42, request_handle="handle-42").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "1")
    return fake


# -- usage and configuration: exit 2, one line, before any network --------------------------


def test_help_names_the_apis_and_exit_codes() -> None:
    """wait --help lists the four APIs, the credentials variables and the exit codes."""
    result = invoke("--help")
    assert result.exit_code == 0
    for word in ("saas-batch", "paas", "huawei", "WATCH_TOKEN", "--relay", "75"):
        assert word in result.output


def test_unknown_api_is_a_usage_error() -> None:
    """An API that is not one of the four is a click usage error (exit 2)."""
    result = invoke("jenkins", "1")
    assert result.exit_code == 2
    assert "ess" in result.stderr and "saas-batch" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["saas-batch", "44046"], {"WATCH_TOKEN": "t"}, "base URL is missing"),
        (["ess", "43"], {}, "base URL is missing"),
        (["saas-batch", "44046", "--base-url", FA], {}, "token is missing"),
        (["huawei", "j", "--base-url", HW, "--project-id", "p"], {}, "token is missing"),
        (
            ["saas-batch", "44046", "--base-url", FA],
            {"WATCH_USERNAME": "u", "WATCH_PASSWORD": "p"},
            "WATCH_USERNAME/WATCH_PASSWORD do not apply",
        ),
        (["huawei", "j", "--base-url", HW], {"WATCH_TOKEN": "t"}, "project id is missing"),
        (["paas", "17465", "--base-url", FA], {}, "identity domain is missing"),
        (
            ["paas", "17465", "--base-url", FA, "--identity-domain", "D"],
            {"WATCH_TOKEN": "t"},
            "paas reads with Basic auth",
        ),
        (["ess", "abc", "--base-url", "https://ess.example.com"], {}, "not an ESS request number"),
        (["ess", "43", "--base-url", "http://ess.example.com"], {}, "https:// in --base-url"),
        (["ess", "43"], {"ESS_BASE_URL": "http://ess.example.com"}, "https:// in ESS_BASE_URL"),
        (["ess", "43", "--base-url", "https://[x]"], {}, "not a valid IPv6"),
        (["ess", "43", "--base-url", "http://u:Zq9@ess.example.com"], {}, "credentials"),
        (["ess", "43", "--base-url", "ess.example.com"], {}, "not an http(s) URL"),
        (["ess", "43", "--base-url", "https://e.com"], {"WATCH_USERNAME": "u"}, "WATCH_PASSWORD"),
        (
            ["ess", "43", "--base-url", "https://e.com"],
            {"WATCH_TOKEN": "t", "WATCH_PASSWORD": "p"},
            "keep only one kind",
        ),
        (
            ["ess", "43", "--base-url", "https://e.com"],
            {"WATCH_TOKEN_FILE": "/nonexistent/token"},
            "cannot read WATCH_TOKEN_FILE",
        ),
    ],
)
def test_missing_or_bad_settings_exit_2_with_one_line(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    """Each missing or malformed setting is one clear line on stderr and exit 2."""
    result = invoke(*args, env=env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ess-callback: ")
    assert needle in lines[0]
    assert "Traceback" not in result.output


def test_relay_without_own_settings_exits_2_before_waiting(fake: FakeScheduler) -> None:
    """--relay with ESS_REQUEST_ID missing is exit 2, and the watched API is never read."""
    result = invoke("ess", "43", "--relay", env={"ESS_BASE_URL": fake.url})
    assert result.exit_code == 2
    assert "ESS_REQUEST_ID" in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize(
    ("drop", "variable"),
    [
        ("ESS_BASE_URL", "ESS_BASE_URL"),
        ("ESS_REQUEST_ID", "ESS_REQUEST_ID"),
        ("ESS_REQUEST_HANDLE", "ESS_REQUEST_HANDLE"),
    ],
)
def test_relay_settings_hints_name_only_variables(
    fake: FakeScheduler, drop: str, variable: str
) -> None:
    """A missing ESS_* setting of --relay names its variable and no option: wait's
    --base-url is the watched API's, and wait has no --request-id or --request-handle."""
    env = dict(fake.env(request_id=42, request_handle="handle-42"))
    del env[drop]
    result = invoke(
        "saas-batch", "44046", "--base-url", FA, "--relay", env={**env, "WATCH_TOKEN": "t-1"}
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], lines
    assert "(or --" not in lines[0]


def test_relay_bad_media_type_names_only_the_variable(fake: FakeScheduler) -> None:
    """ESS_MEDIA_TYPE malformed with --relay: the variable is named, no --media-type hint."""
    env = {**fake.env(request_id=42), "ESS_MEDIA_TYPE": "text/plain", "WATCH_TOKEN": "t-1"}
    result = invoke("saas-batch", "44046", "--base-url", FA, "--relay", env=env)
    assert result.exit_code == 2
    assert "ESS_MEDIA_TYPE" in result.stderr and "(or --" not in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_poll_must_be_a_positive_number(value: str) -> None:
    """--poll 0 (a busy loop), negative, NaN, infinite or not a number is a usage error."""
    result = invoke("ess", "43", "--base-url", "https://ess.example.com", "--poll", value)
    assert result.exit_code == 2
    assert "--poll" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--timeout", "--update-interval"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_seconds_must_be_finite_and_not_negative(option: str, value: str) -> None:
    """--timeout and --update-interval refuse NaN, infinity and negatives (0 is allowed)."""
    result = invoke("ess", "43", "--base-url", "https://ess.example.com", option, value)
    assert result.exit_code == 2
    assert option in result.stderr and "seconds" in result.stderr
    assert "Traceback" not in result.stderr


# -- waiting: output and exit codes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "code"),
    [("SUCCEEDED", 0), ("WARNING", 0), ("ERROR", 1), ("CANCELLED", 1), ("EXPIRED", 1)],
)
def test_exit_code_follows_the_watched_job(fake: FakeScheduler, state: str, code: int) -> None:
    """Exit 0 succeeded (WARNING included), 1 failed or cancelled; the end is printed."""
    fake.set_state(43, state)
    result = invoke(*fast("ess", "43"), env={"ESS_BASE_URL": fake.url})
    assert result.exit_code == code, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("ess job 43: ")
    assert state in result.stdout


@responses.activate
def test_one_line_per_change_when_not_a_terminal() -> None:
    """Without a terminal, each change is one line on stdout; repeats print nothing."""
    url = "https://ess.example.com/ess/rest/scheduler/v1/requests/43"
    for state in ("WAIT", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"):
        responses.get(url, json={"requestId": 43, "state": state})
    result = invoke(*fast("ess", "43"), env={"ESS_BASE_URL": "https://ess.example.com"})
    assert result.exit_code == 0
    assert len(responses.calls) == 5
    assert result.stdout.splitlines() == [
        "ess job 43: PENDING (WAIT)",
        "ess job 43: RUNNING",
        "ess job 43: SUCCEEDED",
    ]


@pytest.mark.integration
def test_ess_credentials_serve_when_no_watch_credentials() -> None:
    """For ess, ESS_USERNAME/ESS_PASSWORD are used when no WATCH_* is set."""
    with FakeScheduler(username="svc", password="pw") as fake:
        fake.submit(43)
        fake.set_state(43, "SUCCEEDED")
        env = {"ESS_BASE_URL": fake.url, "ESS_USERNAME": "svc", "ESS_PASSWORD": "pw"}
        assert invoke(*fast("ess", "43"), env=env).exit_code == 0


@pytest.mark.integration
def test_watch_credentials_win_over_ess_ones() -> None:
    """WATCH_TOKEN is used for the watched ESS even when ESS_* credentials are set."""
    with FakeScheduler(token="watch-tok") as fake:
        fake.submit(43)
        fake.set_state(43, "SUCCEEDED")
        env = {
            "ESS_BASE_URL": fake.url,
            "ESS_USERNAME": "svc",
            "ESS_PASSWORD": "pw",
            "WATCH_TOKEN": "watch-tok",
        }
        assert invoke(*fast("ess", "43"), env=env).exit_code == 0
        assert fake.requests[0].headers["Authorization"] == "Bearer watch-tok"


@pytest.mark.integration
def test_refused_credentials_name_the_watch_variables() -> None:
    """A 401 from the watched API is a credentials problem: one line 'refused by ESS',
    naming the WATCH_* variables, exit 2; no secret shown."""
    with FakeScheduler(token="right") as fake:
        fake.submit(43)
        env = {"ESS_BASE_URL": fake.url, "WATCH_TOKEN": "wrong-secret"}
        result = invoke(*fast("ess", "43"), env=env)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ess-callback: refused by ESS: 401"), lines
    assert "WATCH_TOKEN" in lines[0] and "unreachable" not in lines[0]
    assert "wrong-secret" not in result.output


@pytest.mark.integration
def test_refused_ess_credentials_name_the_ess_variables() -> None:
    """For 'ess' read with the ESS_* credentials (no WATCH_*), a 401 names both kinds."""
    with FakeScheduler(token="right") as fake:
        fake.submit(43)
        env = {"ESS_BASE_URL": fake.url, "ESS_TOKEN": "wrong-secret"}
        result = invoke(*fast("ess", "43"), env=env)
    assert result.exit_code == 2
    assert "refused by ESS: 401" in result.stderr
    assert "ESS_TOKEN" in result.stderr and "WATCH_TOKEN" in result.stderr


def test_forbidden_is_a_credentials_problem(fake: FakeScheduler) -> None:
    """A 403 from the watched API: one line 'refused by ...' naming the variables, exit 2."""
    fake.fail_next(1, 403, method="GET")
    result = invoke(*fast("ess", "43"), env={"ESS_BASE_URL": fake.url, "WATCH_TOKEN": "t-1"})
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ess-callback: refused by ESS: 403"), lines
    assert "WATCH_TOKEN" in lines[0]


@responses.activate
def test_saas_batch_refusal_names_the_api_and_watch_token() -> None:
    """saas-batch answering 401: 'refused by the Fusion Job Scheduler', WATCH_TOKEN, exit 2."""
    responses.get(FA + SAAS_PATH, status=401, json={"title": "Unauthorized"})
    result = invoke(*fast("saas-batch", "44046", "--base-url", FA), env={"WATCH_TOKEN": "x-1"})
    assert result.exit_code == 2
    assert result.stderr.startswith("ess-callback: refused by the Fusion Job Scheduler: 401")
    assert "WATCH_TOKEN" in result.stderr


@responses.activate
def test_answer_without_a_status_is_unreadable_not_unreachable() -> None:
    """A 2xx body without a job status: 'unreadable answer from <API>: ...', exit 75."""
    responses.get(FA + SAAS_PATH, json={"items": []})
    result = invoke(*fast("saas-batch", "44046", "--base-url", FA), env={"WATCH_TOKEN": "x-1"})
    assert result.exit_code == 75
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ess-callback: unreadable answer from the Fusion Job Scheduler: ")
    assert "unreachable" not in lines[0]


def test_missing_job_exits_1(fake: FakeScheduler) -> None:
    """A watched job that does not exist (404) is exit 1 with one line saying so."""
    fake.set_state(43, None)
    result = invoke(*fast("ess", "43"), env={"ESS_BASE_URL": fake.url})
    assert result.exit_code == 1
    assert "ess job 43 does not exist" in result.stderr


def test_timeout_exits_75(fake: FakeScheduler) -> None:
    """A job still running when --timeout passes: exit 75, 'timed out waiting for ...'."""
    fake.set_state(43, "RUNNING")
    result = invoke(*fast("ess", "43", "--timeout", "0.2"), env={"ESS_BASE_URL": fake.url})
    assert result.exit_code == 75
    assert "timed out waiting for ess job 43" in result.stderr
    assert "last state RUNNING" in result.stderr


@pytest.mark.integration
def test_unreachable_exits_75() -> None:
    """Nothing listening until --timeout passes: exit 75, 'unreachable: ...'."""
    result = invoke(*fast("ess", "43", "--timeout", "0.2", "--base-url", closed_port_url()))
    assert result.exit_code == 75
    assert "unreachable: cannot reach ESS" in result.stderr


@responses.activate
def test_saas_batch_wait_reads_with_the_watch_token() -> None:
    """saas-batch reads jobRequests/{id} with WATCH_TOKEN and follows its percentage."""
    responses.get(FA + SAAS_PATH, json=saas_body("RUNNING", "50", message="m"))
    responses.get(FA + SAAS_PATH, json=saas_body("SUCCEEDED", "100", completed=True, message="m"))
    result = invoke(*fast("saas-batch", "44046", "--base-url", FA), env={"WATCH_TOKEN": "fa-tok"})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "saas-batch job 44046: RUNNING 50% - m",
        "saas-batch job 44046: SUCCEEDED 100% - m",
    ]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer fa-tok"


@responses.activate
def test_huawei_wait_reads_with_x_auth_token(tmp_path: Path) -> None:
    """huawei reads /v3/{project}/jobs/{id} with X-Auth-Token from WATCH_TOKEN_FILE."""
    token = tmp_path / "token"
    token.write_text("hw-tok\n")
    responses.get(f"{HW}/v3/proj/jobs/j-1", json={"error_msg": "bad", "data": {"status": "Failed"}})
    result = invoke(
        *fast("huawei", "j-1", "--base-url", HW, "--project-id", "proj"),
        env={"WATCH_TOKEN_FILE": str(token)},
    )
    assert result.exit_code == 1
    assert result.stdout == "huawei job j-1: FAILED - bad\n"
    assert responses.calls[0].request.headers["X-Auth-Token"] == "hw-tok"


def test_progress_bar_on_a_terminal_shows_percentage_and_state() -> None:
    """On a terminal the click progress bar shows the percentage and the state."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = _Bar("saas-batch job 44046", stream)
    bar.show(JobStatus(JobState.RUNNING, "IN_PROGRESS", progress=0.5))
    shown = stream.getvalue()
    assert "saas-batch job 44046" in shown and "50%" in shown and "RUNNING (IN_PROGRESS)" in shown
    bar.show(JobStatus(JobState.RUNNING, "CANCELLING"))  # same percentage, new state
    assert "RUNNING (CANCELLING)" in stream.getvalue()[len(shown) :]
    bar.show(JobStatus(JobState.SUCCEEDED, "SUCCEEDED"))
    assert "100%" in stream.getvalue()
    bar.bar.render_finish()


# -- --relay ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status", "code", "message"),
    [
        ("SUCCEEDED", Status.SUCCESS, 0, None),
        ("WARNING", Status.WARNING, 0, "ess job 43 ended with WARNING"),
        ("ERROR", Status.ERROR, 1, "ess job 43 ERROR"),
        ("CANCELLED", Status.CANCEL, 1, "ess job 43 CANCELLED: OPERATOR_CANCEL"),
    ],
)
def test_relay_posts_the_matching_final_status(
    own: FakeScheduler, state: str, status: Status, code: int, message: str | None
) -> None:
    """SUCCEEDED -> SUCCESS, WARNING -> WARNING, FAILED -> ERROR, CANCELLED -> CANCEL."""
    own.set_state(43, state)
    result = invoke(*fast("ess", "43", "--relay", "--update-interval", "0"))
    assert result.exit_code == code, result.output
    final = own.callbacks_for(42)[-1]
    assert (final.status, final.message) == (status, message)
    assert final.request_handle == "handle-42"
    assert own.state(42) != "RUNNING"


@responses.activate
def test_relay_carries_progress_and_the_failure_message(own: FakeScheduler) -> None:
    """UPDATEs carry the other job's percentage; FAILED becomes ERROR with its message."""
    responses.add_passthru(own.url)
    responses.get(FA + SAAS_PATH, json=saas_body("RUNNING", "50", message="m"))
    failed = {"jobDetails": {"jobProgress": {"status": "FAILED", "message": "ORA-00942"}}}
    responses.get(FA + SAAS_PATH, json=failed)
    result = invoke(
        *fast("saas-batch", "44046", "--base-url", FA, "--relay", "--update-interval", "0"),
        env={"WATCH_TOKEN": "fa-tok"},
    )
    assert result.exit_code == 1
    sent = own.callbacks_for(42)
    assert sent[0].status is Status.UPDATE and "50%" in (sent[0].message or "")
    assert sent[-1].status is Status.ERROR
    assert "ORA-00942" in (sent[-1].message or "")
    assert all("fa-tok" not in (c.message or "") for c in sent)


def test_relay_missing_job_is_business_error(own: FakeScheduler) -> None:
    """A watched job that does not exist is relayed as BUSINESS_ERROR."""
    own.set_state(43, None)
    result = invoke(*fast("ess", "43", "--relay"))
    assert result.exit_code == 1
    final = own.callbacks_for(42)[-1]
    assert final.status is Status.BUSINESS_ERROR
    assert "ess job 43 does not exist" in (final.message or "")


def test_relay_timeout_is_error(own: FakeScheduler) -> None:
    """A wait that times out is relayed as ERROR 'timed out waiting for ...', exit 75."""
    own.set_state(43, "RUNNING")
    result = invoke(*fast("ess", "43", "--relay", "--timeout", "0.2"))
    assert result.exit_code == 75
    final = own.callbacks_for(42)[-1]
    assert final.status is Status.ERROR
    assert (final.message or "").startswith("timed out waiting for ess job 43")


def test_relay_unreachable_is_error(own: FakeScheduler) -> None:
    """A watched API that never answers is relayed as ERROR 'unreachable: ...', exit 75."""
    args = fast("ess", "43", "--relay", "--timeout", "0.2", "--base-url", closed_port_url())
    result = invoke(*args)
    assert result.exit_code == 75
    final = own.callbacks_for(42)[-1]
    assert final.status is Status.ERROR
    assert (final.message or "").startswith("unreachable: cannot reach ESS")


def test_relay_refused_credentials_is_error_refused(own: FakeScheduler) -> None:
    """A 401 from the watched API is relayed as ERROR 'refused by ESS: ...'; exit 2."""
    with FakeScheduler(token="right") as watched:
        watched.submit(43)
        result = invoke(
            *fast("ess", "43", "--relay", "--base-url", watched.url),
            env={"WATCH_TOKEN": "wrong-secret"},
        )
    assert result.exit_code == 2
    final = own.callbacks_for(42)[-1]
    assert final.status is Status.ERROR
    assert (final.message or "").startswith("refused by ESS: 401")
    assert "wrong-secret" not in (final.message or "")


def test_relay_unreadable_answer_is_error_unreadable(own: FakeScheduler) -> None:
    """A 2xx answer without a state is relayed as ERROR 'unreadable answer from ESS: ...'."""
    with FakeScheduler() as watched:
        watched.submit(43)
        watched.fail_next(1, 200, body={"nothing": "here"}, method="GET")
        result = invoke(*fast("ess", "43", "--relay", "--base-url", watched.url))
    assert result.exit_code == 75
    final = own.callbacks_for(42)[-1]
    assert final.status is Status.ERROR
    assert (final.message or "").startswith("unreadable answer from ESS: ")


def test_relay_success_spooled_exits_75(own: FakeScheduler, tmp_path: Path) -> None:
    """The watched job succeeded but SUCCESS could not be delivered: in the outbox, exit 75."""
    with FakeScheduler() as watched:
        watched.submit(43)
        watched.set_state(43, "SUCCEEDED")
        own.fail_next(100, 503)
        result = invoke(*fast("ess", "43", "--relay", "--base-url", watched.url))
    assert result.exit_code == 75
    said = [line for line in result.stderr.splitlines() if line.endswith("to send it")]
    assert len(said) == 1 and "kept in the outbox" in said[0], result.stderr  # said once
    spooled = list((tmp_path / "outbox").glob("*.json"))
    assert len(spooled) == 1
    assert json.loads(spooled[0].read_text())["status"] == "SUCCESS"


def test_relay_failure_not_delivered_keeps_exit_1(own: FakeScheduler) -> None:
    """The watched job failed and ERROR could not be relayed: the failure's exit 1 stands."""
    with FakeScheduler() as watched:
        watched.submit(43)
        watched.set_state(43, "ERROR")
        own.fail_next(100, 503)
        result = invoke(*fast("ess", "43", "--relay", "--base-url", watched.url))
    assert result.exit_code == 1
    said = [line for line in result.stderr.splitlines() if line.endswith("to send it")]
    assert len(said) == 1 and "final status ERROR was not delivered" in said[0], result.stderr
    assert "kept in the outbox" in said[0]


def test_relay_success_rejected_exits_1(own: FakeScheduler) -> None:
    """The watched job succeeded but this job's request is unknown (404): exit 1."""
    with FakeScheduler() as watched:
        watched.submit(43)
        watched.set_state(43, "SUCCEEDED")
        own.set_state(42, None)
        result = invoke(*fast("ess", "43", "--relay", "--base-url", watched.url))
    assert result.exit_code == 1
    assert "final status SUCCESS was not delivered" in result.stderr


def test_relay_dry_run_prints_instead_of_sending(own: FakeScheduler) -> None:
    """With ESS_CALLBACK_DRY_RUN=1 the relayed status is a JSON line, not a POST."""
    own.set_state(43, "SUCCEEDED")
    result = invoke(*fast("ess", "43", "--relay"), env={"ESS_CALLBACK_DRY_RUN": "1"})
    assert result.exit_code == 0
    assert '"status": "SUCCESS"' in result.stderr
    assert own.callbacks_for(42) == []


# -- end to end: a real process -------------------------------------------------------------


@pytest.fixture
def wait_env(fake: FakeScheduler, job_env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield {k: v for k, v in job_env.items() if not k.startswith("WATCH_")}


def start_wait(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "ess-callback")
    return subprocess.Popen(
        [exe, "wait", "ess", "43", "--poll", "0.05", "--relay", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.integration
def test_relay_end_to_end_over_time(fake: FakeScheduler, wait_env: dict[str, str]) -> None:
    """A real wait --relay follows request 43 over time and relays it to request 42."""
    fake.set_state(43, "WAIT")
    proc = start_wait(wait_env, "--update-interval", "0")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ess job 43: PENDING (WAIT)"
    fake.set_state(43, "RUNNING")
    assert proc.stdout.readline().strip() == "ess job 43: RUNNING"
    fake.wait_for(predicate=lambda got: any("RUNNING" in (c.message or "") for c in got))
    fake.set_state(43, "ERROR")
    code, _out, err = finish(proc)
    assert code == 1, err
    sent = fake.callbacks_for(42)
    assert [c.status for c in sent[:-1]] == [Status.UPDATE] * (len(sent) - 1)
    assert sent[-1].status is Status.ERROR
    assert sent[-1].message == "ess job 43 ERROR"
    assert fake.state(42) == "ERROR"
    assert "Traceback" not in err


@pytest.mark.integration
def test_sigterm_while_relaying_posts_cancel(fake: FakeScheduler, wait_env: dict[str, str]) -> None:
    """SIGTERM to a relaying wait posts CANCEL for this job and exits 143."""
    fake.set_state(43, "RUNNING")
    proc = start_wait(wait_env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ess job 43: RUNNING"
    proc.send_signal(signal.SIGTERM)
    code, _out, err = finish(proc)
    assert code == 143, err
    final = fake.callbacks_for(42)[-1]
    assert final.status is Status.CANCEL
    assert "SIGTERM" in (final.message or "")


@pytest.mark.integration
def test_relay_stops_when_its_own_request_is_cancelled(
    fake: FakeScheduler, wait_env: dict[str, str]
) -> None:
    """With ESS_CALLBACK_CANCEL_POLL, cancelling this job's request in ESS ends the wait: CANCEL."""
    fake.set_state(43, "RUNNING")
    proc = start_wait({**wait_env, "ESS_CALLBACK_CANCEL_POLL": "0.1"})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ess job 43: RUNNING"
    fake.set_state(42, "CANCELLING")
    code, _out, err = finish(proc)
    assert code == 143, err
    sent = fake.callbacks_for(42)
    assert [c.status for c in sent if c.status is not Status.UPDATE] == [Status.CANCEL]
    assert sent[-1].status is Status.CANCEL
    assert "cancelled in ESS (state CANCELLING)" in (sent[-1].message or "")


@pytest.mark.integration
def test_cancel_in_ess_interrupts_a_long_poll_sleep(
    fake: FakeScheduler, wait_env: dict[str, str]
) -> None:
    """A cancel read while the wait sleeps 60 s between polls ends it at once: CANCEL, 143."""
    fake.set_state(43, "RUNNING")
    proc = start_wait({**wait_env, "ESS_CALLBACK_CANCEL_POLL": "0.2"}, "--poll", "60")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ess job 43: RUNNING"
    fake.set_state(42, "CANCELLING")
    code, _out, err = finish(proc)  # 20 s at most: only an interrupted sleep ends in time
    assert code == 143, err
    assert fake.callbacks_for(42)[-1].status is Status.CANCEL
    assert sum(1 for r in fake.requests if r.path.endswith("/43")) == 1


def test_missing_ess_ca_bundle_exits_2() -> None:
    """ESS_CA_BUNDLE naming no file is a configuration error before any network, and the
    line names the variable to fix."""
    env = {"ESS_BASE_URL": "https://ess.example.com", "ESS_CA_BUNDLE": "/nonexistent/ca.pem"}
    result = invoke("ess", "43", env=env)
    assert result.exit_code == 2
    assert "CA bundle: /nonexistent/ca.pem does not exist" in result.stderr
    assert "ESS_CA_BUNDLE" in result.stderr


@pytest.mark.integration
def test_unusable_requests_ca_bundle_is_one_line_not_a_traceback() -> None:
    """REQUESTS_CA_BUNDLE naming no file ends the wait at once: one line, exit 75."""
    url = closed_port_url().replace("http://", "https://")
    result = invoke(
        "ess", "43", "--base-url", url, env={"REQUESTS_CA_BUNDLE": "/nonexistent/ca.pem"}
    )
    assert result.exit_code == 75
    assert result.stderr.count("\n") == 1
    assert "/nonexistent/ca.pem" in result.stderr


# -- the manual ---------------------------------------------------------------------------


@pytest.mark.integration
def test_the_manual_wait_examples_work_as_pasted_against_fake_server(tmp_path: Path) -> None:
    """The wait how-to's shell examples, run as the manual's harness runs them, wait on all
    four APIs through 'ess-callback fake-server --watched': ESS and saas-batch succeed, PaaS
    WARN is a success, the CFW task fails (exit 1), and the server stops cleanly."""
    page = ROOT / "docs" / "howto" / "wait.md"
    with FakeScheduler(auto_submit=True) as fake:
        ran = run_page(page, tmp_path, fake.url, section="Wait from the shell")
    out = ran.output
    assert "ess job 4711: SUCCEEDED" in out
    assert "saas-batch job 44046: PENDING (ENQUEUED) 0%" in out
    assert "saas-batch job 44046: SUCCEEDED 100%" in out
    assert "paas job 17465: SUCCEEDED (WARN) - CREATE_SERVICE" in out
    assert "huawei job f588ce71-e26c-400d-8981-f854355f6849: FAILED" in out
    # the failed CFW task's exit 1: the page's "# exits 1", which run_page holds it to
    assert re.search(r"request 4711  SUCCESS$", out, re.MULTILINE)
    assert "# stopped; 1 callback(s) received" in out
    assert "Traceback" not in out


def test_unresolvable_host_ends_the_wait_at_once_exit_75() -> None:
    """A watched host whose name does not resolve ends the wait on the first poll: exit 75,
    one line saying "cannot resolve HOST", long before the timeout."""
    result = cli_runner().invoke(
        main,
        ["wait", "ess", "43", "--base-url", "https://no-such-host.invalid", "--timeout", "600"],
        env={"WATCH_TOKEN": "watch-token-1"},
    )
    assert result.exit_code == 75
    assert "cannot resolve no-such-host.invalid" in result.stderr
    assert "Traceback" not in result.output


def test_unresolvable_host_with_relay_posts_error_unreachable(own: FakeScheduler) -> None:
    """With --relay the same wait posts ERROR "unreachable: cannot resolve HOST ..."."""
    result = invoke(
        *fast("saas-batch", "44046", "--relay", "--base-url", "https://no-such-host.invalid"),
        env={"WATCH_TOKEN": "watch-token-1"},
    )
    assert result.exit_code == 75
    final = own.callbacks_for(42)[-1]
    assert final.status is Status.ERROR
    assert (final.message or "").startswith("unreachable: cannot resolve no-such-host.invalid")
