"""``--log-format json|text`` and the group-level -v/-q (SPEC 12): every line of ours on
stderr is a JSON object in JSON mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from cli_runner import cli_runner
from click.testing import Result

from ess_callback.cli import main
from ess_callback.testing import FakeScheduler

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")


def invoke(args: list[str], env: Mapping[str, str] | None = None) -> Result:
    return cli_runner().invoke(main, args, env=env)


def json_lines(text: str) -> list[dict[str, object]]:
    """Each stderr line parsed; fails when one is not a JSON object."""
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines), text
    return lines


def test_a_configuration_failure_is_one_json_object() -> None:
    """A missing setting in JSON mode: one object with time, level, logger and message."""
    result = invoke(["send", "SUCCESS", "--log-format", "json"])
    assert result.exit_code == 2
    (line,) = json_lines(result.stderr)
    assert line["level"] == "ERROR" and line["logger"] == "ess_callback"
    assert "ESS_BASE_URL" in str(line["message"])
    assert datetime.fromisoformat(str(line["time"])).utcoffset() is not None


def test_undelivered_status_and_retry_notice_are_json_with_request_id(
    fake: FakeScheduler,
) -> None:
    """The retry notice and the closing 'not delivered' line are objects naming request 42."""
    fake.fail_next(100, 503)
    env = {
        **fake.env(42, "handle-42"),
        "ESS_CALLBACK_RETRY_SECONDS": "1",
        "ESS_CALLBACK_LOG_FORMAT": "json",
    }
    result = invoke(["send", "SUCCESS"], env)
    assert result.exit_code == 75
    lines = json_lines(result.stderr)
    assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
    assert all(line["request_id"] == 42 for line in lines)
    assert "not delivered yet" in str(lines[0]["message"])
    assert "final status SUCCESS was not delivered" in str(lines[1]["message"])


def test_log_format_and_verbose_before_the_command(fake: FakeScheduler) -> None:
    """``ess-callback -v --log-format json send`` is accepted and honoured by send."""
    fake.fail_next(1, 503, retry_after="0")
    env = {**fake.env(42, "handle-42"), "ESS_CALLBACK_RETRY_SECONDS": "10"}
    result = invoke(["-v", "--log-format", "json", "send", "SUCCESS"], env)
    assert result.exit_code == 0, result.stderr
    levels = {line["level"] for line in json_lines(result.stderr)}
    assert "INFO" in levels


def test_quiet_before_the_command_hides_the_notice(fake: FakeScheduler) -> None:
    """``ess-callback -q send`` logs only errors: the retry notice is not shown."""
    fake.fail_next(1, 503, retry_after="0")
    env = {**fake.env(42, "handle-42"), "ESS_CALLBACK_RETRY_SECONDS": "10"}
    result = invoke(["-q", "send", "SUCCESS"], env)
    assert result.exit_code == 0 and result.stderr == ""


def test_text_is_back_for_the_next_command_line() -> None:
    """JSON mode belongs to one command line: the next one without it writes text."""
    invoke(["send", "SUCCESS", "--log-format", "json"])
    result = invoke(["send", "SUCCESS"])
    assert result.stderr.startswith("ess-callback: base URL is missing")


def test_flush_failure_in_json() -> None:
    """flush's one-line failures are JSON objects too."""
    env = {"ESS_CALLBACK_LOG_FORMAT": "json", "ESS_MEDIA_TYPE": "text/plain"}
    result = invoke(["flush"], env)
    assert result.exit_code == 2
    (line,) = json_lines(result.stderr)
    assert "ESS_MEDIA_TYPE" in str(line["message"])


def test_an_unknown_log_format_is_a_usage_error() -> None:
    """--log-format yaml: exit 2 naming the choices."""
    result = invoke(["send", "SUCCESS", "--log-format", "yaml"])
    assert result.exit_code == 2
    assert "json" in result.stderr and "text" in result.stderr


def test_run_in_json_mode_keeps_the_child_stderr_and_writes_its_own_as_json(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    """run --log-format json: the command's own stderr passes through as is; every line of
    ours (retry notice, 'not delivered') is a JSON object naming the request."""
    fake.fail_next(100, 503)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESS_")},
        **fake.env(42, "handle-42"),
        "ESS_CALLBACK_RETRY_SECONDS": "1",
        "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
    }
    proc = subprocess.run(
        [SCRIPT, "--log-format", "json", "run", "--", "sh", "-c", "echo child-line >&2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 75, proc.stderr
    lines = proc.stderr.splitlines()
    assert "child-line" in lines
    ours = [json.loads(line) for line in lines if line != "child-line"]
    assert len(ours) == 2 and all(line["request_id"] == 42 for line in ours)
    assert "final status SUCCESS was not delivered" in str(ours[-1]["message"])


def test_a_usage_error_in_json_mode_is_one_json_object() -> None:
    """``send SUCESS`` in JSON mode: exit 2, one object with the suggestion and the help hint,
    no usage block."""
    result = invoke(["--log-format", "json", "send", "SUCESS"])
    assert result.exit_code == 2
    (line,) = json_lines(result.stderr)
    assert "did you mean SUCCESS?" in str(line["message"])
    assert "send --help" in str(line["message"])  # the program name is the runner's


def test_outbox_subcommands_take_log_format_too(tmp_path: Path) -> None:
    """``outbox drop NAME --log-format json``: the missing entry is a JSON line, exit 1."""
    result = invoke(["outbox", "drop", "nope.json", "--log-format", "json"])
    assert result.exit_code == 1
    (line,) = json_lines(result.stderr)
    assert "no outbox entry nope.json" in str(line["message"])
