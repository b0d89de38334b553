"""``ess-callback check`` (SPEC 12): every problem of a host's set-up in one run, nothing
posted, secrets never shown."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path

from cli_runner import cli_runner
from click.testing import Result

from ess_callback.cli import main
from ess_callback.testing import FakeScheduler


def check(*args: str, env: Mapping[str, str] | None = None) -> Result:
    return cli_runner().invoke(main, ["check", *args], env=env)


def checks(result: Result) -> dict[str, list[dict[str, object]]]:
    """The --json checks by name (a name may repeat: one settings check per problem)."""
    data = json.loads(result.stdout)
    assert set(data) == {"ok", "checks"}
    by_name: dict[str, list[dict[str, object]]] = {}
    for item in data["checks"]:
        assert set(item) == {"name", "ok", "detail"}
        by_name.setdefault(str(item["name"]), []).append(item)
    return by_name


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_good_set_up_passes_every_check_and_posts_nothing(fake: FakeScheduler) -> None:
    """Against the fake with request 42 RUNNING: exit 0, every line 'ok', nothing posted."""
    result = check(env=fake.env(42, "handle-42"))
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    names = [line.split(":")[0].split(None, 1)[1] for line in lines[:-1]]
    assert names == [
        "settings",
        "outbox",
        "name resolution",
        "connection",
        "credentials",
        "request",
    ]
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert lines[-1] == "all checks passed"
    assert "request 42 is RUNNING" in result.stdout
    assert fake.received == []


def test_every_setting_problem_is_listed_at_once() -> None:
    """Bad id, no handle, bad media type, bad retry budget: four lines, exit 1."""
    env = {
        "ESS_BASE_URL": "https://ess.example.invalid",
        "ESS_REQUEST_ID": "abc",
        "ESS_MEDIA_TYPE": "text/plain",
        "ESS_CALLBACK_RETRY_SECONDS": "soon",
    }
    result = check("--json", env=env)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    problems = [c["detail"] for c in checks(result)["settings"]]
    assert len(problems) == 4
    for variable in (
        "ESS_REQUEST_ID",
        "ESS_REQUEST_HANDLE",
        "ESS_MEDIA_TYPE",
        "ESS_CALLBACK_RETRY_SECONDS",
    ):
        assert sum(variable in str(p) for p in problems) == 1, problems


def test_nothing_set_names_each_missing_variable() -> None:
    """An empty environment: base URL, request id and handle each named, exit 1."""
    result = check()
    assert result.exit_code == 1
    for variable in ("ESS_BASE_URL", "ESS_REQUEST_ID", "ESS_REQUEST_HANDLE"):
        assert "FAIL  settings: " in result.stdout and variable in result.stdout


def test_a_request_that_ended_will_refuse_a_status(fake: FakeScheduler) -> None:
    """Request 42 SUCCEEDED: 'request 42 is SUCCEEDED: a status posted now will be refused'."""
    fake.set_state(42, "SUCCEEDED")
    result = check(env=fake.env(42, "handle-42"))
    assert result.exit_code == 1
    assert "FAIL  request: request 42 is SUCCEEDED: a status posted now will be refused" in (
        result.stdout
    )


def test_an_unknown_request_is_no_such_request(fake: FakeScheduler) -> None:
    """Request 7 was never submitted: 404 -> no such request, naming ESS_REQUEST_ID."""
    result = check("--json", env=fake.env(7, "handle-7"))
    assert result.exit_code == 1
    (request,) = checks(result)["request"]
    assert request["ok"] is False and "no such request 7" in str(request["detail"])
    assert "ESS_REQUEST_ID" in str(request["detail"])


def test_refused_credentials_are_named_and_never_shown() -> None:
    """A wrong password: 401 -> the credentials check fails naming the variables; the
    password appears nowhere in the output."""
    with FakeScheduler(username="alice", password="right-pw") as fake:
        fake.submit(42, "handle-42")
        env = {**fake.env(42, "handle-42"), "ESS_USERNAME": "alice", "ESS_PASSWORD": "wr0ng-pw"}
        result = check("--json", env=env)
    assert result.exit_code == 1
    (creds,) = checks(result)["credentials"]
    assert creds["ok"] is False and "401" in str(creds["detail"])
    assert "ESS_PASSWORD" in str(creds["detail"])
    assert "wr0ng-pw" not in result.stdout + result.stderr


def test_forbidden_is_a_permission_problem(fake: FakeScheduler) -> None:
    """403 on the read: the credentials work but lack the permission."""
    fake.fail_next(1, 403, method="GET")
    result = check("--json", env=fake.env(42, "handle-42"))
    (creds,) = checks(result)["credentials"]
    assert creds["ok"] is False and "permission" in str(creds["detail"])


def test_a_closed_port_fails_the_connection_and_skips_what_needs_it() -> None:
    """Nobody listens: connection FAIL naming the port; credentials and request not checked."""
    port = closed_port()
    env = {
        "ESS_BASE_URL": f"http://127.0.0.1:{port}",
        "ESS_REQUEST_ID": "42",
        "ESS_REQUEST_HANDLE": "h",
    }
    result = check(env=env)
    assert result.exit_code == 1
    assert f"FAIL  connection: cannot connect to 127.0.0.1 port {port}" in result.stdout
    assert "FAIL  request: not checked" in result.stdout


def test_https_against_plain_http_names_the_scheme(fake: FakeScheduler) -> None:
    """https:// to the (plain HTTP) fake: the TLS check says to use http://, not a CA bundle."""
    env = {**fake.env(42, "handle-42"), "ESS_BASE_URL": fake.url.replace("http://", "https://")}
    result = check("--json", env=env)
    (tls,) = checks(result)["TLS"]
    assert tls["ok"] is False
    assert "plain HTTP" in str(tls["detail"]) and fake.url in str(tls["detail"])
    assert "ESS_CA_BUNDLE" not in str(tls["detail"])


def test_an_outbox_open_to_others_fails_with_the_fix(fake: FakeScheduler, tmp_path: Path) -> None:
    """An outbox writable by group: FAIL saying chmod 700."""
    box = tmp_path / "outbox"
    box.mkdir()
    box.chmod(0o770)
    result = check("--json", env={**fake.env(42, "handle-42"), "ESS_CALLBACK_OUTBOX": str(box)})
    (outbox,) = checks(result)["outbox"]
    assert outbox["ok"] is False and f"chmod 700 {box}" in str(outbox["detail"])


def test_usage_error_is_exit_2() -> None:
    """An unknown option is a usage error (exit 2)."""
    result = check("--nope")
    assert result.exit_code == 2 and "--nope" in result.stderr


def test_help_has_examples() -> None:
    """check --help says what is checked, the exit codes and an example."""
    text = check("--help").stdout
    for part in ("ess-callback check --json", "Exit 0", "RUNNING", "--base-url"):
        assert part in text


def test_check_never_posts_even_when_things_fail(fake: FakeScheduler) -> None:
    """With a failing request state nothing is posted either."""
    fake.set_state(42, "ERROR")
    check(env=fake.env(42, "handle-42"))
    assert fake.received == [] and all(r.method == "GET" for r in fake.requests)
