"""``ess-callback run``: option parsing and usage errors (SPEC section 7), with CliRunner.

A usage or configuration error exits 2 before the command starts: a job whose end cannot
be reported is not run, and nothing is sent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_runner import cli_runner
from click.testing import CliRunner

from ess_callback import Status
from ess_callback.cli import main
from ess_callback.testing import FakeScheduler


@pytest.fixture
def runner() -> CliRunner:
    """A CliRunner with stderr apart from stdout."""
    return cli_runner()


@pytest.fixture
def env(fake: FakeScheduler) -> dict[str, str]:
    """A complete ESS environment pointing at the fake scheduler."""
    return fake.env(request_id=42, request_handle="handle-42")


def marker_command(tmp_path: Path) -> list[str]:
    """A command that leaves a file behind if it ever runs."""
    return ["touch", str(tmp_path / "ran")]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["TOUCH"], "put '--' before the command"),
        ([], "put '--' before the command"),
        (["--"], "missing COMMAND"),
        (["--warning-exit-code", "abc", "--", "TOUCH"], "--warning-exit-code"),
        (["--warning-exit-code", "256", "--", "TOUCH"], "--warning-exit-code"),
        (["--business-error-exit-code", "-1", "--", "TOUCH"], "--business-error-exit-code"),
        (["--timeout", "soon", "--", "TOUCH"], "--timeout"),
        (["--timeout", "0", "--", "TOUCH"], "--timeout"),
        (["--kill-after", "-1", "--", "TOUCH"], "--kill-after"),
        (["--tail-bytes", "lots", "--", "TOUCH"], "--tail-bytes"),
        (["--capture", "stdout", "--", "TOUCH"], "--capture"),
        (["--redact", "(unclosed", "--", "TOUCH"], "not a valid regular expression"),
        (["--update-interval", "-5", "--", "TOUCH"], "--update-interval"),
        (["--cancel-poll", "0", "--", "TOUCH"], "--cancel-poll"),
        (["--no-such-option", "--", "TOUCH"], "No such option"),
        (["--warning-exit-code", "3", "--business-error-exit-code", "3", "--", "TOUCH"], "both"),
        (["stray", "--", "TOUCH"], "unexpected argument 'stray'"),
    ],
)
def test_usage_errors_exit_2_and_run_nothing(
    runner: CliRunner,
    env: dict[str, str],
    fake: FakeScheduler,
    tmp_path: Path,
    args: list[str],
    complaint: str,
) -> None:
    """Each usage error exits 2 with click's usage block; the command never starts."""
    argv: list[str] = []
    for arg in args:
        argv += marker_command(tmp_path) if arg == "TOUCH" else [arg]
    result = runner.invoke(main, ["run", *argv], env=env)
    assert result.exit_code == 2, result.output
    assert complaint in result.stderr
    assert "run [OPTIONS] -- COMMAND [ARG]..." in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ran").exists()
    assert fake.requests == []


@pytest.mark.parametrize(
    ("drop", "variable"),
    [
        ("ESS_REQUEST_ID", "ESS_REQUEST_ID"),
        ("ESS_BASE_URL", "ESS_BASE_URL"),
        ("ESS_REQUEST_HANDLE", "ESS_REQUEST_HANDLE"),
    ],
)
def test_missing_setting_exits_2_before_the_command(
    runner: CliRunner,
    env: dict[str, str],
    fake: FakeScheduler,
    tmp_path: Path,
    drop: str,
    variable: str,
) -> None:
    """A missing setting is one line naming its variable, exit 2, and no child."""
    del env[drop]
    result = runner.invoke(main, ["run", "--", *marker_command(tmp_path)], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("ess-callback: ")
    assert variable in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ran").exists()
    assert fake.requests == []


@pytest.mark.parametrize(
    "suffix", ["/ess/rest/scheduler/v1", "/ess/rest/scheduler/v1/", "/prefix/ess/rest/scheduler"]
)
def test_base_url_holding_the_api_path_exits_2_before_the_command(
    runner: CliRunner, env: dict[str, str], fake: FakeScheduler, tmp_path: Path, suffix: str
) -> None:
    """A base URL that already holds /ess/rest/scheduler/... is one line naming
    ESS_BASE_URL, exit 2, before the command starts and before any network."""
    env["ESS_BASE_URL"] = fake.url + suffix
    result = runner.invoke(main, ["run", "--", *marker_command(tmp_path)], env=env)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "ESS_BASE_URL" in line and "/ess/rest/scheduler" in line
    assert not (tmp_path / "ran").exists()
    assert fake.requests == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ESS_REQUEST_ID", "forty-two"),
        ("ESS_BASE_URL", "https://[x]"),
        ("ESS_BASE_URL", "http://ess.example.com"),
    ],
)
def test_malformed_setting_exits_2_before_the_command(
    runner: CliRunner,
    env: dict[str, str],
    fake: FakeScheduler,
    tmp_path: Path,
    variable: str,
    value: str,
) -> None:
    """A malformed setting is a configuration error naming its variable: exit 2, nothing
    runs or is sent."""
    env[variable] = value
    result = runner.invoke(main, ["run", "--", *marker_command(tmp_path)], env=env)
    assert result.exit_code == 2
    assert variable in result.stderr
    assert not (tmp_path / "ran").exists()
    assert fake.requests == []


@pytest.mark.parametrize(
    "option", ["--timeout", "--kill-after", "--update-interval", "--cancel-poll"]
)
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e400", "-1", "soon", "1e12"])
def test_seconds_must_be_finite_and_not_negative(
    runner: CliRunner,
    env: dict[str, str],
    fake: FakeScheduler,
    tmp_path: Path,
    option: str,
    value: str,
) -> None:
    """Every SECONDS option refuses NaN, infinity, negatives and more than ten years (the
    operating system's timers overflow): usage error, nothing runs."""
    result = runner.invoke(main, ["run", option, value, "--", *marker_command(tmp_path)], env=env)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "seconds" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ran").exists()
    assert fake.requests == []


@pytest.mark.parametrize("value", ["often", "nan", "inf", "0", "-2", "1e12"])
def test_bad_cancel_poll_variable_names_the_variable(
    runner: CliRunner, env: dict[str, str], fake: FakeScheduler, tmp_path: Path, value: str
) -> None:
    """A bad ESS_CALLBACK_CANCEL_POLL is one line naming the variable (not the option),
    exit 2, and the command never starts."""
    env["ESS_CALLBACK_CANCEL_POLL"] = value
    result = runner.invoke(main, ["run", "--", *marker_command(tmp_path)], env=env)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ess-callback: "), result.stderr
    assert "ESS_CALLBACK_CANCEL_POLL" in lines[0]
    assert "--cancel-poll" not in lines[0]
    assert not (tmp_path / "ran").exists()
    assert fake.requests == []


@pytest.mark.parametrize("value", ["1000001", "1000000000000", "-1"])
def test_tail_bytes_is_bounded(
    runner: CliRunner, env: dict[str, str], fake: FakeScheduler, tmp_path: Path, value: str
) -> None:
    """--tail-bytes beyond a megabyte (the message is cut to 4000 bytes anyway) is a usage
    error, exit 2, before anything runs: never a MemoryError."""
    result = runner.invoke(
        main, ["run", "--tail-bytes", value, "--", *marker_command(tmp_path)], env=env
    )
    assert result.exit_code == 2, result.output
    assert "--tail-bytes" in result.stderr
    assert not (tmp_path / "ran").exists()
    assert fake.requests == []


def test_cancel_poll_option_wins_over_the_variable(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    """--cancel-poll given: a malformed ESS_CALLBACK_CANCEL_POLL is not even looked at."""
    env["ESS_CALLBACK_CANCEL_POLL"] = "often"
    argv = ["run", "--cancel-poll", "30", "--", *marker_command(tmp_path)]
    result = runner.invoke(main, argv, env=env)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "ran").exists()


def test_help_shows_usage_and_examples(runner: CliRunner) -> None:
    """--help shows the '--' usage line, every option and copy-paste examples."""
    result = runner.invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    assert "run [OPTIONS] -- COMMAND [ARG]..." in result.output
    for option in (
        "--warning-exit-code",
        "--business-error-exit-code",
        "--timeout",
        "--kill-after",
        "--tail-bytes",
        "--capture",
        "--redact",
        "--update-interval",
        "--cancel-poll",
        "--base-url",
        "--dry-run",
    ):
        assert option in result.output
    assert "ess-callback run -- ./nightly_extract.sh" in result.output
    assert "ESS_CALLBACK_FD" in result.output


def test_options_after_the_separator_belong_to_the_command(
    runner: CliRunner, env: dict[str, str], fake: FakeScheduler
) -> None:
    """'--help' after '--' is the command's argument, not ours."""
    result = runner.invoke(
        main, ["run", "--", sys.executable, "-c", "import sys", "--help"], env=env
    )
    assert result.exit_code == 0, result.stderr
    assert [c.status for c in fake.received] == [Status.SUCCESS]


def test_run_reports_success_in_process(
    runner: CliRunner, env: dict[str, str], fake: FakeScheduler
) -> None:
    """Run in-process: exit 0 is posted as SUCCESS for the configured request."""
    result = runner.invoke(main, ["run", "--", "true"], env=env)
    assert result.exit_code == 0, result.stderr
    assert [(c.request_id, c.request_handle, c.status, c.message) for c in fake.received] == [
        (42, "handle-42", Status.SUCCESS, None)
    ]


@pytest.mark.integration
def test_run_with_the_recording_fixture(runner: CliRunner, ess_callbacks: list[object]) -> None:
    """Under the testing kit's recorder no setting is needed and the end is recorded."""
    result = runner.invoke(
        main,
        ["run", "--business-error-exit-code", "3", "--", "sh", "-c", "echo closed >&2; exit 3"],
    )
    assert result.exit_code == 3
    assert len(ess_callbacks) == 1
    callback = ess_callbacks[0]
    assert callback.status is Status.BUSINESS_ERROR  # type: ignore[attr-defined]
    assert callback.message == "exit code 3\n--- stderr ---\nclosed"  # type: ignore[attr-defined]


def test_dry_run_in_process_prints_json_lines(runner: CliRunner, fake: FakeScheduler) -> None:
    """--dry-run needs no setting: the command runs and the callbacks are printed."""
    result = runner.invoke(main, ["run", "--dry-run", "--", "sh", "-c", "exit 5"])
    assert result.exit_code == 5
    assert '"dry_run": true' in result.stderr
    assert '"status": "ERROR"' in result.stderr
    assert '"statusMessage": "exit code 5"' in result.stderr
    assert fake.requests == []
