"""Settings the HTTP library would refuse are configuration errors found before anything
runs (SPEC 3, issue 14): malformed proxies, SOCKS without PySocks, secrets no header can
carry. Exit 2, naming the variable, never quoting the value."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from cli_runner import cli_runner

from ess_callback.cli import main

SECRET = "hunter2-proxy"
HAS_PYSOCKS = importlib.util.find_spec("socks") is not None


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A job's settings for a https scheduler nobody needs to reach."""
    return {
        "ESS_BASE_URL": "https://ess.example.com",
        "ESS_REQUEST_ID": "42",
        "ESS_REQUEST_HANDLE": "h-42",
        "ESS_CALLBACK_OUTBOX": str(tmp_path / "outbox"),
        **extra,
    }


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("HTTPS_PROXY", f"http://user:{SECRET}@:3128", "names no host"),
        ("https_proxy", f"http://user:{SECRET}@proxy:notaport", "bad port"),
        ("ALL_PROXY", f"ftp://user:{SECRET}@proxy:21", "not a proxy scheme"),
        ("HTTPS_PROXY", f"http://[::1:{SECRET}", "not a valid URL"),
    ],
)
def test_a_malformed_proxy_stops_run_before_the_command(
    tmp_path: Path, name: str, value: str, why: str
) -> None:
    """run refuses a proxy requests would refuse: exit 2, the command never started."""
    marker = tmp_path / "ran"
    result = cli_runner().invoke(
        main, ["run", "--", "touch", str(marker)], env=job_env(tmp_path, **{name: value})
    )
    assert result.exit_code == 2, result.stderr
    assert name in result.stderr and why in result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_a_proxy_for_the_other_scheme_is_not_in_the_way(tmp_path: Path) -> None:
    """A malformed HTTP_PROXY does not matter to an https:// scheduler (dry run sends nothing)."""
    env = job_env(tmp_path, HTTP_PROXY="http://:x", ESS_CALLBACK_DRY_RUN="1")
    result = cli_runner().invoke(main, ["send", "SUCCESS"], env=env)
    assert result.exit_code == 0, result.stderr


@pytest.mark.skipif(HAS_PYSOCKS, reason="PySocks is installed here")
def test_socks_without_pysocks_is_a_configuration_error(tmp_path: Path) -> None:
    """socks5:// without PySocks: exit 2 naming the variable and what to install."""
    env = job_env(tmp_path, HTTPS_PROXY=f"socks5://u:{SECRET}@127.0.0.1:1080")
    result = cli_runner().invoke(main, ["send", "SUCCESS"], env=env)
    assert result.exit_code == 2, result.stderr
    assert "HTTPS_PROXY" in result.stderr and "PySocks" in result.stderr
    assert SECRET not in result.stderr


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"ESS_USERNAME": "ops", "ESS_PASSWORD": "pa\udcffss"}, "ESS_PASSWORD"),
        ({"ESS_TOKEN": "tok\udcfe\udcff"}, "ESS_TOKEN"),
        ({"ESS_TOKEN": "tok\u20acen"}, "ESS_TOKEN"),
        ({"ESS_USERNAME": "o\udcffps", "ESS_PASSWORD": "pw"}, "ESS_USERNAME"),
    ],
)
def test_secrets_no_header_can_carry_stop_run_before_the_command(
    tmp_path: Path, variables: dict[str, str], named: str
) -> None:
    """Raw non-UTF-8 bytes in a password, username or token (or a token outside Latin-1):
    exit 2 naming the variable, before the command starts."""
    marker = tmp_path / "ran"
    result = cli_runner().invoke(
        main, ["run", "--", "touch", str(marker)], env=job_env(tmp_path, **variables)
    )
    assert result.exit_code == 2, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_flush_and_wait_check_proxies_too(tmp_path: Path) -> None:
    """flush and wait refuse a malformed proxy with exit 2 as well."""
    env = {"HTTPS_PROXY": "http://:3128", "HTTP_PROXY": "http://:3128"}
    flush = cli_runner().invoke(main, ["flush", "--outbox", str(tmp_path / "box")], env=env)
    assert flush.exit_code == 2 and "HTTPS_PROXY" in flush.stderr, flush.stderr
    wait = cli_runner().invoke(
        main, ["wait", "ess", "42", "--base-url", "https://ess.example.com"], env=env
    )
    assert wait.exit_code == 2 and "HTTPS_PROXY" in wait.stderr, wait.stderr
