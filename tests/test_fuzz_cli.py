"""A bounded fuzz of the command line (issue 14): whatever the arguments and environment,
every command ends with a documented exit status and never a traceback."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from cli_runner import cli_runner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ess_callback._message import Redactor
from ess_callback.cli import main

#: what each command may exit with (SPEC 7 and 9); run's command here is ``true``
EXITS = {
    "send": {0, 1, 2, 75},
    "flush": {0, 1, 2, 75},
    "wait": {0, 1, 2, 75},
    "run": {0, 1, 2, 75},
}
URLS = [
    "http://127.0.0.1:9",
    "http://[::1",
    "http://[::1]:notaport",
    "https://",
    "ftp://127.0.0.1",
    "http://user:pw@127.0.0.1:9",
    "http://127.0.0.1:9/ess/rest/scheduler/v1",
    "\udcff\udcfe",
    "",
]
VARIABLES = [
    "ESS_BASE_URL",
    "ESS_REQUEST_ID",
    "ESS_REQUEST_HANDLE",
    "ESS_USERNAME",
    "ESS_PASSWORD",
    "ESS_TOKEN",
    "ESS_MEDIA_TYPE",
    "ESS_CA_BUNDLE",
    "ESS_CALLBACK_DRY_RUN",
    "ESS_CALLBACK_ALLOW_HTTP",
    "ESS_CALLBACK_CANCEL_POLL",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "WATCH_TOKEN",
]
#: any text a process can be given (no NUL: neither argv nor the environment holds one),
#: and bytes that are not UTF-8 as Python sees them (lone surrogates)
ODD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")
    | st.just("\udcff"),
    max_size=12,
)
WORDS = st.sampled_from(
    [
        "SUCCESS",
        "error",
        "bogus",
        "--message",
        "--message-file",
        "--request-id",
        "--base-url",
        "--dry-run",
        "--media-type",
        "-v",
        "-q",
        "--outbox",
        "--json",
        "ess",
        "saas-batch",
        "huawei",
        "42",
        "-1",
        "0",
        "9" * 30,
        "--poll",
        "--relay",
        "--capture",
        "--tail-bytes",
        "--redact",
        "(",
        "--timeout",
        *URLS,
    ]
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    command=st.sampled_from(sorted(EXITS)),
    words=st.lists(WORDS | ODD_TEXT, max_size=6),
    env=st.dictionaries(st.sampled_from(VARIABLES), st.sampled_from(URLS) | ODD_TEXT, max_size=5),
)
@example(command="wait", words=["ess", "42", "--base-url", "http://[::1"], env={})
def test_no_command_line_ends_in_a_traceback(
    tmp_path: Path, command: str, words: list[str], env: dict[str, str]
) -> None:
    """Any argv and environment: a documented exit status, no traceback, bounded time."""
    env = {
        **env,
        "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
        "ESS_CALLBACK_RETRY_SECONDS": "0",
    }
    if "ESS_BASE_URL" not in env:
        env["ESS_BASE_URL"] = "http://127.0.0.1:9"
    argv = [command, *words]
    if command == "wait":
        argv += ["--timeout", "0.2", "--poll", "0.1"]
    if command == "run":
        argv += ["--", "true"]
    result = cli_runner().invoke(main, argv, env=env)
    assert "Traceback" not in result.stderr, (argv, env, result.stderr)
    assert result.exit_code in EXITS[command], (argv, env, result.exit_code, result.stderr)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (argv, env, result.exception)


SECRETS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    min_size=4,
    max_size=24,
)


@settings(max_examples=100, deadline=None)
@given(user=SECRETS, secret=SECRETS, before=st.text(max_size=20), after=st.text(max_size=20))
def test_redaction_hides_every_form_of_a_secret(
    user: str, secret: str, before: str, after: str
) -> None:
    """A secret, its URL-encoded forms and the base64 Basic form of ``user:secret`` never
    survive redaction, wherever they stand in a text."""
    redact = Redactor([secret, f"{user}:{secret}"])
    pair = f"{user}:{secret}".encode()
    for form in (
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(pair).decode(),
        "Basic " + base64.b64encode(pair).decode(),
    ):
        out = redact(before + form + after)
        assert form not in out or form in before + after


@settings(max_examples=50, deadline=None)
@given(text=st.text(max_size=40))
def test_redaction_without_secrets_changes_nothing(text: str) -> None:
    """A redactor with no secret leaves every text as it is."""
    assert Redactor([])(text) == text


@pytest.mark.parametrize("host", ["\udcff\udcfe", "exa mple", ""])
def test_a_fake_server_host_that_cannot_be_bound_is_a_usage_error(host: str) -> None:
    """fake-server --host with bytes or spaces: one usage error, exit 2, no traceback."""
    result = cli_runner().invoke(main, ["fake-server", "--host", host, "--port", "0"])
    assert result.exit_code == 2, result.stderr
    assert "--host" in result.stderr and "Traceback" not in result.stderr
