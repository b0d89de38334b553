"""The wording of messages a new user meets first (issue: messages that help)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import cli_runner

from ess_callback import ConfigurationError, JobExecution
from ess_callback.cli import main
from ess_callback.testing import FakeScheduler

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ESS_* variable set."""
    import os

    for name in list(os.environ):
        if name.startswith(("ESS_", "WATCH_")):
            monkeypatch.delenv(name)


def test_job_execution_names_the_keyword_argument_not_the_flag(bare_env: None) -> None:
    """JobExecution() with nothing set names ESS_BASE_URL and base_url=, not --base-url."""
    with pytest.raises(ConfigurationError) as info:
        JobExecution()
    text = str(info.value)
    assert "ESS_BASE_URL" in text and "base_url=" in text
    assert "--base-url" not in text


def test_send_with_a_misspelt_status_suggests_the_right_one() -> None:
    """``send SUCESS``: a usage error (exit 2) that says 'did you mean SUCCESS?'."""
    result = cli_runner().invoke(main, ["send", "SUCESS", "--dry-run"])
    assert result.exit_code == 2
    assert "did you mean SUCCESS?" in result.stderr


def test_a_shell_command_line_given_as_one_word_gets_the_sh_c_hint(tmp_path: Path) -> None:
    """``run -- 'cat f | wc -c'``: command not found, and the hint that no shell is used,
    with the sh -c form to type instead."""
    env = {**os.environ, "ESS_CALLBACK_DRY_RUN": "1", "ESS_CALLBACK_OUTBOX": str(tmp_path)}
    proc = subprocess.run(
        [SCRIPT, "run", "--", "cat /etc/hostname | wc -c"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 127
    line = next(line for line in proc.stderr.splitlines() if "cannot run" in line)
    assert "command not found" in line and "no shell is used" in line
    assert "ess-callback run -- sh -c 'cat /etc/hostname | wc -c'" in line


def test_a_plain_program_name_not_found_gets_no_shell_hint() -> None:
    """A single word that is not found: no hint about shells (nothing suggests one)."""
    from ess_callback._endings import ChildEnd, spawn_message

    end = ChildEnd("no-such-program-4711", None, spawn_error=FileNotFoundError(2, "x"))
    assert spawn_message(end) == "cannot run 'no-such-program-4711': command not found"


def test_https_against_plain_http_names_the_scheme_not_the_ca_bundle(
    fake: FakeScheduler,
) -> None:
    """send to https:// on a plain-HTTP server: the fix named is http://, not ESS_CA_BUNDLE."""
    env = {
        **fake.env(42, "handle-42"),
        "ESS_BASE_URL": fake.url.replace("http://", "https://"),
        "ESS_CALLBACK_RETRY_SECONDS": "0",
    }
    result = cli_runner().invoke(main, ["send", "SUCCESS"], env=env)
    assert result.exit_code == 75
    assert "plain HTTP" in result.stderr and f"use {fake.url}" in result.stderr
    assert "ESS_CA_BUNDLE" not in result.stderr


def complete(words: str) -> list[str]:
    """What bash completion offers after ``ess-callback WORDS`` (click's protocol)."""
    line = f"ess-callback {words}"
    env = {
        **os.environ,
        "_ESS_CALLBACK_COMPLETE": "bash_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(line.split()) - (0 if line.endswith(" ") else 1)),
    }
    proc = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    return [item.split(",", 1)[1] for item in proc.stdout.split()]


def test_completion_offers_statuses_for_send_and_apis_for_wait() -> None:
    """Shell completion: STATUS of send (by prefix, any case), API of wait, the commands."""
    assert complete("send su") == ["SUCCESS", "SUSPEND"]
    assert "BUSINESS_ERROR" in complete("send ")
    assert complete("wait ") == ["ess", "saas-batch", "paas", "huawei"]
    assert {"check", "outbox"} <= set(complete(""))
