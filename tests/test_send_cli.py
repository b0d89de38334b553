"""``ess-callback send STATUS`` (SPEC section 7): arguments, message sources, exit codes,
options from their variables, logging levels and help."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from cli_runner import cli_runner
from click.testing import Result
from helpers import outbox_files

from ess_callback import Callback, Status
from ess_callback.cli import main
from ess_callback.testing import FakeScheduler

VALID = "SUCCESS, UPDATE, PAUSE, WARNING, ERROR, BUSINESS_ERROR, CANCEL, SUSPEND"


@pytest.fixture
def env(fake: FakeScheduler) -> dict[str, str]:
    """Variables for request 42 ("handle-42") at the fake, one attempt per callback."""
    return {**fake.env(42, "handle-42"), "ESS_CALLBACK_RETRY_SECONDS": "0"}


def send(args: list[str], env: Mapping[str, str] | None = None, input: str | None = None) -> Result:
    """Invoke ``ess-callback send ARGS`` in-process."""
    return cli_runner().invoke(main, ["send", *args], env=env, input=input)


def one_line(result: Result) -> str:
    """The single line the command printed on stderr (and never a traceback)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return lines[0]


# -- STATUS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("SUCCESS", Status.SUCCESS),
        ("success", Status.SUCCESS),
        ("Warning", Status.WARNING),
        ("business_error", Status.BUSINESS_ERROR),
        ("cancel", Status.CANCEL),
    ],
)
def test_status_is_case_insensitive(
    fake: FakeScheduler, env: dict[str, str], word: str, status: Status
) -> None:
    """STATUS in any case posts that status, exit 0."""
    result = send([word], env)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert fake.received == [Callback(42, "handle-42", status, None)]


def test_unknown_status_lists_the_valid_ones(fake: FakeScheduler, env: dict[str, str]) -> None:
    """An unknown STATUS is a usage error (exit 2) naming every valid status; nothing sent."""
    result = send(["DONE"], env)
    assert result.exit_code == 2
    assert VALID in result.stderr
    assert "Traceback" not in result.stderr
    assert fake.requests == []


def test_missing_status_is_a_usage_error(env: dict[str, str]) -> None:
    """No STATUS at all: usage error, exit 2."""
    result = send([], env)
    assert result.exit_code == 2
    assert "STATUS" in result.stderr


# -- the message ----------------------------------------------------------------------------


def test_message_option(fake: FakeScheduler, env: dict[str, str]) -> None:
    """--message / -m becomes the statusMessage."""
    assert send(["UPDATE", "-m", "half way"], env).exit_code == 0
    assert send(["WARNING", "--message", "3 rows skipped"], env).exit_code == 0
    assert [(c.status, c.message) for c in fake.received] == [
        (Status.UPDATE, "half way"),
        (Status.WARNING, "3 rows skipped"),
    ]


def test_message_file(fake: FakeScheduler, env: dict[str, str], tmp_path: Path) -> None:
    """--message-file reads the message (UTF-8), dropping the trailing newline."""
    path = tmp_path / "job.err"
    path.write_text("ORA-01555: snapshot too old\nat step 3 — état\n", encoding="utf-8")
    result = send(["ERROR", "--message-file", str(path)], env)
    assert result.exit_code == 0, result.stderr
    assert fake.received[0].message == "ORA-01555: snapshot too old\nat step 3 — état"


def test_message_file_dash_reads_standard_input(fake: FakeScheduler, env: dict[str, str]) -> None:
    """--message-file - reads the message from standard input."""
    result = send(["ERROR", "--message-file", "-"], env, input="from stdin\n")
    assert result.exit_code == 0, result.stderr
    assert fake.received[0].message == "from stdin"


def test_message_and_message_file_together_is_a_usage_error(
    fake: FakeScheduler, env: dict[str, str], tmp_path: Path
) -> None:
    """Both --message and --message-file: usage error, exit 2, nothing sent."""
    path = tmp_path / "m.txt"
    path.write_text("x")
    result = send(["ERROR", "-m", "a", "--message-file", str(path)], env)
    assert result.exit_code == 2
    assert "not both" in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize("problem", ["missing", "directory", "not utf-8", "unreadable"])
def test_unreadable_message_file_is_one_line_exit_2(
    fake: FakeScheduler, env: dict[str, str], tmp_path: Path, problem: str
) -> None:
    """A message file that cannot be read: one line naming it, exit 2, nothing sent."""
    path = tmp_path / "message.txt"
    if problem == "directory":
        path.mkdir()
    elif problem == "not utf-8":
        path.write_bytes(b"\xff\xfe bad")
    elif problem == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        path.write_text("secret")
        path.chmod(0)
    result = send(["ERROR", "--message-file", str(path)], env)
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith("ess-callback: cannot read --message-file")
    assert str(path) in line
    assert fake.requests == []


def test_secrets_are_redacted_from_the_message(fake: FakeScheduler, env: dict[str, str]) -> None:
    """The configured password never leaves in a message."""
    env = {**env, "ESS_USERNAME": "batch", "ESS_PASSWORD": "pw-31337"}
    result = send(["ERROR", "-m", "login batch/pw-31337 refused"], env)
    assert result.exit_code == 0, result.stderr
    assert fake.received[0].message == "login batch/*** refused"


def test_long_message_is_truncated(fake: FakeScheduler, env: dict[str, str]) -> None:
    """A message over 4000 UTF-8 bytes is cut to fit, head and tail kept."""
    result = send(["ERROR", "-m", "start " + "ü" * 5000 + " end"], env)
    assert result.exit_code == 0, result.stderr
    sent = fake.received[0].message
    assert sent is not None and len(sent.encode()) <= 4000
    assert sent.startswith("start ") and sent.endswith(" end")


# -- settings -------------------------------------------------------------------------------


def test_missing_request_id_exits_2_naming_the_variable(
    fake: FakeScheduler, env: dict[str, str]
) -> None:
    """Without ESS_REQUEST_ID: one line naming it, exit 2, nothing sent."""
    env = {**env, "ESS_REQUEST_ID": ""}
    result = send(["SUCCESS"], env)
    assert result.exit_code == 2
    assert "ESS_REQUEST_ID" in one_line(result)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ESS_REQUEST_ID", "forty-two"),
        ("ESS_BASE_URL", "ess.example.com"),
        ("ESS_MEDIA_TYPE", "text/plain"),
        ("ESS_CALLBACK_DRY_RUN", "maybe"),
        ("ESS_CALLBACK_RETRY_SECONDS", "soon"),
    ],
)
def test_malformed_setting_exits_2(
    fake: FakeScheduler, env: dict[str, str], variable: str, value: str
) -> None:
    """A malformed variable is exit 2 with a message naming it; nothing is sent."""
    result = send(["SUCCESS"], {**env, variable: value})
    assert result.exit_code == 2
    assert variable in one_line(result)
    assert fake.requests == []


def test_dry_run_variable_off_sends_for_real(fake: FakeScheduler, env: dict[str, str]) -> None:
    """ESS_CALLBACK_DRY_RUN=0 is not a dry run."""
    result = send(["SUCCESS"], {**env, "ESS_CALLBACK_DRY_RUN": "0"})
    assert result.exit_code == 0, result.stderr
    assert [c.status for c in fake.received] == [Status.SUCCESS]


def test_every_shared_option_from_its_variable(fake: FakeScheduler) -> None:
    """--base-url, --request-id, --request-handle and --media-type come from ESS_* too."""
    fake.submit(77, "h-77")
    env = {
        "ESS_BASE_URL": fake.url + "/",
        "ESS_REQUEST_ID": "77",
        "ESS_REQUEST_HANDLE": "h-77",
        "ESS_MEDIA_TYPE": "application/vnd.oracle.resource+json",
    }
    result = send(["SUCCESS"], env)
    assert result.exit_code == 0, result.stderr
    assert fake.received == [Callback(77, "h-77", Status.SUCCESS, None)]
    (post,) = fake.requests
    assert post.headers["Content-Type"] == "application/vnd.oracle.resource+json"


def test_options_beat_their_variables(fake: FakeScheduler, env: dict[str, str]) -> None:
    """An option on the command line wins over its variable."""
    fake.submit(7, "h-7")
    result = send(
        [
            "SUCCESS",
            "--base-url",
            fake.url,
            "--request-id",
            "7",
            "--request-handle",
            "h-7",
            "--media-type",
            "application/vnd.oracle.resource+json",
        ],
        {**env, "ESS_BASE_URL": "https://unused.example.com", "ESS_MEDIA_TYPE": "bogus"},
    )
    assert result.exit_code == 0, result.stderr
    assert fake.received == [Callback(7, "h-7", Status.SUCCESS, None)]
    assert fake.requests[0].headers["Content-Type"] == "application/vnd.oracle.resource+json"


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_dry_run_from_its_variable(fake: FakeScheduler, env: dict[str, str], value: str) -> None:
    """ESS_CALLBACK_DRY_RUN makes send print the JSON line and send nothing."""
    result = send(["UPDATE", "-m", "x"], {**env, "ESS_CALLBACK_DRY_RUN": value})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stderr)["status"] == "UPDATE"
    assert fake.requests == []


def test_dry_run_option(fake: FakeScheduler, env: dict[str, str]) -> None:
    """--dry-run prints the JSON line (nothing sent)."""
    result = send(["pause", "-m", "step=2", "--dry-run"], env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stderr) == {
        "dry_run": True,
        "request_id": 42,
        "requestHandle": "handle-42",
        "status": "PAUSE",
        "statusMessage": "step=2",
    }
    assert fake.requests == []


# -- exit codes -----------------------------------------------------------------------------


def test_delivered_exits_0(fake: FakeScheduler, env: dict[str, str], tmp_path: Path) -> None:
    """Delivered: exit 0, silent, outbox untouched, the scheduler's state follows."""
    result = send(["WARNING", "-m", "careful"], env)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert fake.state(42) == "WARNING"
    assert outbox_files(tmp_path / "outbox") == []


def test_retried_then_delivered_exits_0(fake: FakeScheduler, env: dict[str, str]) -> None:
    """A 503 then a success within the budget is delivered: exit 0."""
    fake.fail_next(1, 503, retry_after="0")
    result = send(["SUCCESS"], {**env, "ESS_CALLBACK_RETRY_SECONDS": "10"})
    assert result.exit_code == 0, result.stderr
    assert [c.status for c in fake.received] == [Status.SUCCESS]


@pytest.mark.parametrize("status", ["SUCCESS", "ERROR", "PAUSE", "SUSPEND"])
def test_unavailable_scheduler_exits_75_with_the_status_in_the_outbox(
    fake: FakeScheduler, env: dict[str, str], tmp_path: Path, status: str
) -> None:
    """503s past the budget: exit 75, one line naming the outbox file, which holds it."""
    fake.fail_next(100, 503)
    result = send([status, "-m", "why"], env)
    assert result.exit_code == 75
    line = one_line(result)
    (spooled,) = outbox_files(tmp_path / "outbox")
    assert line.startswith(f"ess-callback: final status {status} was not delivered")
    assert str(spooled) in line and "ess-callback flush" in line
    record = json.loads(spooled.read_text())
    assert (record["status"], record["message"], record["request_id"]) == (status, "why", 42)


@pytest.mark.integration
def test_401_exits_75_and_is_kept(tmp_path: Path) -> None:
    """Refused with 401: kept in the outbox for a flush with fresh credentials, exit 75."""
    with FakeScheduler(token="good-token") as fake:
        env = {**fake.env(42, "handle-42"), "ESS_TOKEN": "expired-token"}
        result = send(["SUCCESS"], env)
    assert result.exit_code == 75
    line = one_line(result)
    assert "401" in line and "ESS_TOKEN" in line
    assert "expired-token" not in line
    (spooled,) = outbox_files(tmp_path / "outbox")
    assert "expired-token" not in spooled.read_text()


@pytest.mark.parametrize("http_status", [400, 403, 404])
def test_rejected_exits_1_and_is_not_spooled(
    fake: FakeScheduler, env: dict[str, str], tmp_path: Path, http_status: int
) -> None:
    """400/403/404: rejected for good, exit 1, one line, nothing in the outbox."""
    fake.fail_next(1, http_status)
    result = send(["SUCCESS"], env)
    assert result.exit_code == 1
    line = one_line(result)
    assert (
        line.startswith("ess-callback: final status SUCCESS was not delivered")
        and str(http_status) in line
    )
    assert outbox_files(tmp_path / "outbox") == []
    assert len(fake.requests) == 1  # never retried


def test_update_is_never_spooled(fake: FakeScheduler, env: dict[str, str], tmp_path: Path) -> None:
    """UPDATE is never final: undelivered it exits 1 and leaves no outbox file."""
    fake.fail_next(100, 503)
    result = send(["UPDATE", "-m", "half"], env)
    assert result.exit_code == 1
    assert outbox_files(tmp_path / "outbox") == []


# -- logging --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ([], logging.WARNING),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["--verbose", "--verbose"], logging.DEBUG),
        (["-q"], logging.ERROR),
    ],
)
def test_verbosity_sets_the_log_level(
    fake: FakeScheduler, env: dict[str, str], flags: list[str], level: int
) -> None:
    """WARNING by default, -v INFO, -vv DEBUG, -q only errors."""
    assert send(["SUCCESS", *flags], env).exit_code == 0
    assert logging.getLogger("ess_callback").level == level


def test_verbose_shows_retries_and_default_shows_one_notice(
    fake: FakeScheduler, env: dict[str, str]
) -> None:
    """-v shows the INFO line about a retry on stderr; without it one WARNING notice says
    what failed and how long it keeps trying (SPEC 5), and nothing more."""
    retrying = {**env, "ESS_CALLBACK_RETRY_SECONDS": "10"}
    fake.fail_next(1, 503, retry_after="0")
    quiet = send(["SUCCESS"], retrying)
    fake.fail_next(1, 503, retry_after="0")
    verbose = send(["SUCCESS", "-v"], retrying)
    assert quiet.exit_code == verbose.exit_code == 0
    (notice,) = quiet.stderr.splitlines()
    assert notice.startswith("ess-callback: WARNING: final status SUCCESS not delivered yet")
    assert "503" in notice and "retrying for up to" in notice
    assert "ess-callback: INFO:" in verbose.stderr and "retrying" in verbose.stderr


def test_quiet_still_says_why_it_failed(fake: FakeScheduler, env: dict[str, str]) -> None:
    """-q does not hide the reason for a non-zero exit."""
    fake.fail_next(1, 404)
    result = send(["SUCCESS", "-q"], env)
    assert result.exit_code == 1
    assert "404" in one_line(result)


def test_verbose_tells_of_a_spooled_status_once(
    fake: FakeScheduler, env: dict[str, str], tmp_path: Path
) -> None:
    """With -v, a status kept in the outbox is announced in one line, not twice."""
    fake.fail_next(100, 503)
    result = send(["SUCCESS", "-v"], env)
    assert result.exit_code == 75
    (spooled,) = outbox_files(tmp_path / "outbox")
    assert result.stderr.count(str(spooled)) == 1, result.stderr
    assert result.stderr.count("not delivered") == 1, result.stderr


def test_debug_shows_each_request_and_answer(fake: FakeScheduler, env: dict[str, str]) -> None:
    """-vv logs the request (method, URL, attempt) and the answer (status, time), no secret."""
    fake.fail_next(1, 503, retry_after="0")
    secret_env = {**env, "ESS_CALLBACK_RETRY_SECONDS": "10", "ESS_TOKEN": "TOKEN-NEVER-SHOWN"}
    result = send(["SUCCESS", "-vv"], secret_env)
    assert result.exit_code == 0, result.stderr
    url = f"{fake.url}/ess/rest/scheduler/v1/requests/42/executionStatus"
    debug = [line for line in result.stderr.splitlines() if "DEBUG:" in line]
    assert any(f"POST {url}" in line and "attempt 1 of 8" in line for line in debug), debug
    assert any("attempt 2 of 8" in line for line in debug), debug
    assert any("answered 503" in line for line in debug), debug
    assert any("answered 200" in line for line in debug), debug
    assert "TOKEN-NEVER-SHOWN" not in result.stderr
    assert "handle-42" not in result.stderr


def test_send_under_recording_needs_no_setting() -> None:
    """Inside record_callbacks() send records the callback and requires no setting."""
    from ess_callback.testing import record_callbacks

    with record_callbacks() as calls:
        result = send(["warning", "-m", "3 rows skipped"], env={})
    assert result.exit_code == 0, result.stderr
    assert list(calls) == [Callback(None, None, Status.WARNING, "3 rows skipped")]


def test_send_under_recording_still_validates_given_settings() -> None:
    """Recording does not make a malformed setting acceptable."""
    from ess_callback.testing import record_callbacks

    with record_callbacks() as calls:
        result = send(["SUCCESS"], env={"ESS_REQUEST_ID": "abc"})
    assert result.exit_code == 2
    assert "ESS_REQUEST_ID" in one_line(result)
    assert list(calls) == []


# -- settings that can only fail at send time are refused up front ----------------------------


@pytest.mark.parametrize(
    "url",
    ["https://a..b.com", "https://exa mple.com", "https://ess.example.com:0", "https://[x]"],
)
def test_invalid_host_exits_2_before_any_network(fake: FakeScheduler, url: str) -> None:
    """A base URL with an invalid host: exit 2, one line naming ESS_BASE_URL."""
    result = send(["SUCCESS"], {**fake.env(42, "handle-42"), "ESS_BASE_URL": url})
    assert result.exit_code == 2
    assert "ESS_BASE_URL" in one_line(result)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"ESS_TOKEN": "LEAKYTOKEN123\nX"}, "ESS_TOKEN"),
        ({"ESS_TOKEN": "LEAKYTOKEN123€"}, "ESS_TOKEN"),
        ({"ESS_USERNAME": "ops", "ESS_PASSWORD": "LEAKYPASSWORD\r"}, "ESS_PASSWORD"),
    ],
)
@pytest.mark.parametrize("dry", [[], ["--dry-run"]])
def test_secret_unfit_for_a_header_exits_2_without_showing_it(
    fake: FakeScheduler, variables: dict[str, str], named: str, dry: list[str]
) -> None:
    """A secret with a line break (or a token outside Latin-1) is one line, exit 2, naming
    the variable and never the value; dry run validates it too. Nothing is sent."""
    result = send(["SUCCESS", "-vv", *dry], {**fake.env(42, "handle-42"), **variables})
    assert result.exit_code == 2
    line = one_line(result)
    assert named in line
    assert "LEAKY" not in result.stderr
    assert fake.requests == []


def test_secret_file_with_two_newlines_exits_2(fake: FakeScheduler, tmp_path: Path) -> None:
    """ESS_TOKEN_FILE holding the token and an empty line is refused, naming the variable."""
    token = tmp_path / "token"
    token.write_bytes(b"LEAKYTOKEN123\n\n")
    result = send(["SUCCESS"], {**fake.env(42, "handle-42"), "ESS_TOKEN_FILE": str(token)})
    assert result.exit_code == 2
    assert "ESS_TOKEN_FILE" in one_line(result)
    assert "LEAKY" not in result.stderr
    assert fake.requests == []


def test_unusable_ca_bundle_exits_2_before_any_network(fake: FakeScheduler, tmp_path: Path) -> None:
    """ESS_CA_BUNDLE naming a file without certificates: exit 2 at once, naming it."""
    bundle = tmp_path / "hostname"
    bundle.write_text("myhost\n")
    result = send(["SUCCESS"], {**fake.env(42, "handle-42"), "ESS_CA_BUNDLE": str(bundle)})
    assert result.exit_code == 2
    assert "ESS_CA_BUNDLE" in one_line(result)
    assert fake.requests == []


def test_outbox_that_is_a_file_exits_2_before_any_network(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    """ESS_CALLBACK_OUTBOX naming a regular file: exit 2 at once, naming the variable."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0\n")
    env = {**fake.env(42, "handle-42"), "ESS_CALLBACK_OUTBOX": str(passwd)}
    result = send(["SUCCESS"], env)
    assert result.exit_code == 2
    assert "ESS_CALLBACK_OUTBOX" in one_line(result)
    assert fake.requests == []


def test_outbox_that_fails_at_spool_time_is_named(fake: FakeScheduler, tmp_path: Path) -> None:
    """When the outbox cannot be written after all, the error names the folder and
    ESS_CALLBACK_OUTBOX, the last line says why the status was not delivered, and the exit
    is 1 (the status is not kept)."""
    folder = Path("/proc/ess-callback-outbox")  # /proc takes no new folder, even from root
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    fake.fail_next(100, 503)
    env = {
        **fake.env(42, "handle-42"),
        "ESS_CALLBACK_RETRY_SECONDS": "0",
        "ESS_CALLBACK_OUTBOX": str(folder),
    }
    result = send(["SUCCESS", "-q"], env)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lost, last = result.stderr.splitlines()
    assert str(folder) in lost and "ESS_CALLBACK_OUTBOX" in lost
    assert "SUCCESS status is lost" in lost
    assert last.startswith("ess-callback: final status SUCCESS was not delivered") and "503" in last


# -- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_has_examples_and_exit_codes(flag: str) -> None:
    """send --help shows the statuses, the exit codes, every option and examples."""
    result = cli_runner().invoke(main, ["send", flag])
    assert result.exit_code == 0
    text = result.stdout
    assert "Examples:" in text and "ess-callback send SUCCESS" in text
    for word in ("75", "BUSINESS_ERROR", "--message-file", "ESS_REQUEST_ID", "--dry-run"):
        assert word in text


# -- the real console script ----------------------------------------------------------------


@pytest.mark.integration
def test_console_script_sends_over_http(fake: FakeScheduler, tmp_path: Path) -> None:
    """The installed ``ess-callback`` script posts the status and exits 0."""
    script = os.path.join(os.path.dirname(sys.executable), "ess-callback")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env.update(fake.env(42, "handle-42"))
    proc = subprocess.run(
        [script, "send", "warning", "--message-file", "-"],
        input="3 rows skipped\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "")
    assert fake.received == [Callback(42, "handle-42", Status.WARNING, "3 rows skipped")]


@pytest.mark.integration
def test_console_script_unknown_status_exits_2(fake: FakeScheduler) -> None:
    """The real script's usage error for a bad STATUS: exit 2, no traceback."""
    script = os.path.join(os.path.dirname(sys.executable), "ess-callback")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env.update(fake.env(42, "handle-42"))
    proc = subprocess.run(
        [script, "send", "finished"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert VALID in proc.stderr and "Traceback" not in proc.stderr
    assert fake.requests == []


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"ESS_REQUEST_ID": "7"}, 404, "Request 7 not found"),
        ({"ESS_REQUEST_HANDLE": "handle-of-another-run"}, 400, "requestHandle does not match"),
    ],
)
def test_unknown_request_or_wrong_handle_is_refused_as_ess_refuses_it(
    fake: FakeScheduler,
    env: dict[str, str],
    tmp_path: Path,
    change: dict[str, str],
    code: int,
    words: str,
) -> None:
    """A status for a request the scheduler never submitted (404) or with another handle
    (400) is refused for good: exit 1, one line quoting ESS, nothing in the outbox."""
    result = send(["SUCCESS"], {**env, **change})
    assert result.exit_code == 1
    line = one_line(result)
    assert str(code) in line and words in line
    assert outbox_files(tmp_path) == [] and fake.received == []


def test_a_repeated_final_status_is_refused_as_ess_may_refuse_it(
    fake: FakeScheduler, env: dict[str, str], tmp_path: Path
) -> None:
    """The same final status sent again by hand (not a retry) is refused (400): exit 1."""
    assert send(["SUCCESS"], env).exit_code == 0
    again = send(["SUCCESS"], env)
    assert again.exit_code == 1
    assert "400" in one_line(again) and "already ended" in one_line(again)
    assert [c.status for c in fake.received] == [Status.SUCCESS]
