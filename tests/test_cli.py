"""The command group: commands load lazily, and start-up's GC pause never outlives a command."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
from cli_runner import cli_runner

from ess_callback.cli import COMMANDS, main


def test_every_command_is_listed_in_help() -> None:
    """--help lists every command, each with its one-line summary."""
    result = cli_runner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    """A mistyped command is click's usage error, exit 2, naming it."""
    result = cli_runner().invoke(main, ["sned", "SUCCESS"])
    assert result.exit_code == 2
    assert "sned" in result.stderr


@pytest.mark.integration
def test_the_gc_is_back_after_a_command() -> None:
    """Start-up pauses the cyclic GC; it is on again once the command has returned."""
    assert gc.isenabled()
    cli_runner().invoke(main, ["--version"])
    assert gc.isenabled()
    cli_runner().invoke(main, ["run", "--dry-run", "--", sys.executable, "-c", "pass"])
    assert gc.isenabled()


@pytest.mark.integration
def test_version_loads_no_command_module() -> None:
    """--version imports none of the command modules (they load only when used)."""
    code = (
        "import sys\n"
        "from ess_callback.cli import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('ess_callback._commands.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout


@pytest.mark.integration
def test_run_gc_is_enabled_while_the_command_runs() -> None:
    """ess-callback run turns the GC back on once the command has started (a long job
    is never supervised with the collector off)."""
    probe = (
        "import gc, sys\n"
        "from ess_callback import cli\n"
        "from ess_callback import _supervisor\n"
        "seen = []\n"
        "original = _supervisor.Supervisor._supervise\n"
        "def spy(self):\n"
        "    seen.append(gc.isenabled())\n"
        "    return original(self)\n"
        "_supervisor.Supervisor._supervise = spy\n"
        "try:\n"
        "    cli.main(['run', '--dry-run', '--', 'true'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[True]", out.stdout + out.stderr


def test_an_empty_option_is_a_usage_error_not_the_environment() -> None:
    """--request-id '' or --base-url '' typed on the command line is a usage error naming
    the option, not a silent fall-back to ESS_REQUEST_ID / ESS_BASE_URL."""
    env = {"ESS_REQUEST_ID": "7", "ESS_BASE_URL": "http://127.0.0.1:9", "ESS_CALLBACK_DRY_RUN": "1"}
    for option in ("--request-id", "--base-url"):
        result = cli_runner().invoke(main, ["send", "UPDATE", option, ""], env=env)
        assert result.exit_code == 2, result.output
        assert option in result.stderr
        assert '"dry_run"' not in result.stderr  # nothing was (dry-)sent
