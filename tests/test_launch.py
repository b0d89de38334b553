"""``run``'s quick start (``_launch.py``): the common form started before click is loaded,
with the very values, messages and exit codes of the click command; anything else left
to the click group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_runner import cli_runner

from ess_callback._commands.run import run_command
from ess_callback._launch import parse
from ess_callback.cli import main

WRAPPER = os.path.join(os.path.dirname(sys.executable), "ess-callback")

COMMON = [
    [],
    ["-v"],
    ["-vv", "-q"],
    ["--verbose", "--quiet", "--dry-run"],
    ["--timeout", "3600", "--kill-after=2.5"],
    ["--warning-exit-code", "1", "--warning-exit-code=3", "--business-error-exit-code", "4"],
    ["--tail-bytes", "0", "--capture", "both"],
    ["--capture=none", "--update-interval", "0", "--cancel-poll", "30"],
    ["--redact", "pwd=[^ ]+", "--redact=tok-\\w+"],
    ["--timeout", "1", "--timeout", "2"],
    ["--warning-exit-code", " 7", "--tail-bytes", "1_000"],
    ["--kill-after", "1e3", "--update-interval", "315360000"],
]


def click_values(args: list[str]) -> dict[str, Any]:
    """The values the click command gives for *args* (before '--')."""
    ctx = run_command.make_context("run", [*args, "--", "true"])
    params = dict(ctx.params)
    return {
        "warning_codes": params["warning_codes"],
        "business_codes": params["business_codes"],
        "timeout": params["timeout"],
        "kill_after": params["kill_after"],
        "tail_bytes": params["tail_bytes"],
        "capture": params["capture"],
        "redact": params["redact"],
        "update_interval": params["update_interval"],
        "cancel_poll": params["cancel_poll"],
        "dry_run": params["dry_run"],
        "verbose": params["verbose"],
        "quiet": params["quiet"],
    }


@pytest.mark.parametrize("args", COMMON, ids=[" ".join(a) or "none" for a in COMMON])
def test_the_common_form_gives_click_s_values(args: list[str]) -> None:
    """Each option of the common form is converted exactly as the click option does."""
    parsed = parse([*args, "--", "sh", "-c", "exit 0"])
    assert parsed is not None
    options, command = parsed
    assert command == ("sh", "-c", "exit 0")
    assert options == click_values(args)


DECLINED = [
    ["true"],  # no '--'
    ["--"],  # no command
    ["--", ""],
    ["-h", "--", "true"],
    ["--help", "--", "true"],
    ["stray", "--", "true"],
    ["--base-url", "https://ess.example.com", "--", "true"],
    ["--log-format", "json", "--", "true"],
    ["-vvv", "--", "true"],
    ["-qv", "--", "true"],
    ["--dry-run=1", "--", "true"],
    ["--timeout", "--", "true"],
    ["--timeout", "0", "--", "true"],
    ["--timeout", "nan", "--", "true"],
    ["--timeout", "inf", "--", "true"],
    ["--kill-after", "-1", "--", "true"],
    ["--update-interval", "1e12", "--", "true"],
    ["--warning-exit-code", "256", "--", "true"],
    ["--warning-exit-code", "x", "--", "true"],
    ["--tail-bytes", "1000001", "--", "true"],
    ["--capture", "Both", "--", "true"],
    ["--redact", "(", "--", "true"],
    ["--warning-exit-code", "3", "--business-error-exit-code", "3", "--", "true"],
]


@pytest.mark.parametrize("args", DECLINED, ids=[" ".join(a) for a in DECLINED])
def test_anything_else_is_left_to_click(args: list[str]) -> None:
    """Help, other options, values click refuses, usage errors: the click group decides."""
    assert parse(args) is None


# -- the console script --------------------------------------------------------------------
def script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WRAPPER, *args], env=env, capture_output=True, text=True, timeout=60)


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env["ESS_CALLBACK_OUTBOX"] = str(tmp_path / "outbox")
    env.update(extra)
    return env


BAD_SETTINGS = [
    {},
    {"ESS_BASE_URL": "https://ess.example.com", "ESS_REQUEST_ID": "x", "ESS_REQUEST_HANDLE": "h"},
    {"ESS_BASE_URL": "http://ess.example.com", "ESS_REQUEST_ID": "1", "ESS_REQUEST_HANDLE": "h"},
    {"ESS_CALLBACK_DRY_RUN": "perhaps"},
    {"ESS_CALLBACK_DRY_RUN": "1", "ESS_CALLBACK_CANCEL_POLL": "-3"},
    {"ESS_CALLBACK_DRY_RUN": "1", "ESS_CALLBACK_LOG_FORMAT": "xml"},
    {"ESS_CALLBACK_DRY_RUN": "1", "ESS_USERNAME": "u"},
]


def no_time(text: str) -> str:
    """JSON lines without their time (the rest compared as is)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            record.pop("time", None)
            line = json.dumps(record, sort_keys=True)
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("settings", BAD_SETTINGS, ids=range(len(BAD_SETTINGS)))
def test_bad_settings_read_as_from_click_and_the_command_never_runs(
    tmp_path: Path, settings: dict[str, str], log_format: str
) -> None:
    """Exit status and message are those of the click command (run in-process here), and
    the command does not start."""
    marker = tmp_path / "ran"
    extra = {"ESS_CALLBACK_LOG_FORMAT": log_format, **settings}
    env = base_env(tmp_path, **extra)
    args = ["run", "--", "sh", "-c", f"touch {marker}"]
    done = script(args, env)
    clean: dict[str, str | None] = {k: None for k in os.environ}
    reference = cli_runner().invoke(main, args, env={**clean, **env}, prog_name="ess-callback")
    assert done.returncode == reference.exit_code == 2
    assert no_time(done.stderr) == no_time(reference.stderr)
    assert not marker.exists()


@pytest.mark.integration
def test_the_common_form_never_loads_click(tmp_path: Path) -> None:
    """run's common form is started, and ends, without click."""
    env = base_env(tmp_path, ESS_CALLBACK_DRY_RUN="1", PYTHONPROFILEIMPORTTIME="1")
    done = script(["run", "--timeout", "60", "--", "true"], env)
    assert done.returncode == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "ess_callback._launch" in imported
    assert "click" not in imported and "ess_callback._cli_group" not in imported


@pytest.mark.integration
def test_other_forms_still_go_through_click(tmp_path: Path) -> None:
    """Help, a group option, a usage error: the click command's own answers."""
    env = base_env(tmp_path, ESS_CALLBACK_DRY_RUN="1")
    assert (
        "Usage: ess-callback run [OPTIONS] -- COMMAND [ARG]..."
        in script(["run", "--help"], env).stdout
    )
    grouped = script(["-v", "run", "--", "true"], env)
    assert grouped.returncode == 0 and "INFO: started true" in grouped.stderr
    missing = script(["run", "--timeout", "0", "--", "true"], env)
    assert missing.returncode == 2
    assert "Invalid value for '--timeout'" in missing.stderr
