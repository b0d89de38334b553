"""SPEC section 3: settings from explicit arguments, then the environment, validated."""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ess_callback import BearerAuth, ConfigurationError
from ess_callback._settings import BasicAuth, Settings, auth_from_env, resolve_settings

BASE = {
    "ESS_BASE_URL": "https://ess.example.com",
    "ESS_REQUEST_ID": "42",
    "ESS_REQUEST_HANDLE": "handle-42",
}


def resolve(env: dict[str, str], **kwargs: Any) -> Settings:
    """Resolve against *env* only (never the test process's own environment)."""
    return resolve_settings(env=env, **kwargs)


def real_bundle(folder: Path) -> Path:
    """A copy of a real CA bundle (the one requests trusts by default) in *folder*."""
    import certifi

    target = folder / "ca.pem"
    shutil.copyfile(certifi.where(), target)
    return target


def config_error(env: dict[str, str], **kwargs: Any) -> str:
    """The message of the ConfigurationError that resolving *env* must raise."""
    with pytest.raises(ConfigurationError) as info:
        resolve(env, **kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    return message


def test_everything_from_the_environment() -> None:
    """With only the environment, every setting is read from its variable."""
    s = resolve(
        {
            **BASE,
            "ESS_USERNAME": "ops",
            "ESS_PASSWORD": "pw",
            "ESS_MEDIA_TYPE": "application/vnd.oracle.resource+json",
            "ESS_CALLBACK_OUTBOX": "/var/spool/ess",
            "ESS_CALLBACK_RETRY_SECONDS": "12.5",
        }
    )
    assert s.base_url == "https://ess.example.com"
    assert s.request_id == 42
    assert s.request_handle == "handle-42"
    assert s.auth == BasicAuth("ops", "pw")
    assert s.media_type == "application/vnd.oracle.resource+json"
    assert s.outbox == Path("/var/spool/ess")
    assert s.retry_seconds == 12.5
    assert s.dry_run is False
    assert s.ca_bundle is None


def test_explicit_arguments_win(tmp_path: Path) -> None:
    """Every explicit argument wins over its environment variable."""
    bundle = real_bundle(tmp_path)
    env = {
        **BASE,
        "ESS_USERNAME": "env-user",
        "ESS_PASSWORD": "env-pw",
        "ESS_MEDIA_TYPE": "application/json",
        "ESS_CALLBACK_DRY_RUN": "1",
        "ESS_CALLBACK_OUTBOX": "/env/outbox",
        "ESS_CALLBACK_RETRY_SECONDS": "5",
        "ESS_CA_BUNDLE": "/does/not/exist.pem",
    }
    s = resolve(
        env,
        base_url="https://other.example.com/prefix/",
        request_id=7,
        request_handle="explicit-handle",
        username="arg-user",
        password="arg-pw",
        media_type="application/vnd.oracle.resource+json",
        dry_run=False,
        outbox=tmp_path / "box",
        retry_seconds=3,
        ca_bundle=str(bundle),
    )
    assert s.base_url == "https://other.example.com/prefix"
    assert s.request_id == 7
    assert s.request_handle == "explicit-handle"
    assert s.auth == BasicAuth("arg-user", "arg-pw")
    assert s.media_type == "application/vnd.oracle.resource+json"
    assert s.dry_run is False
    assert s.outbox == tmp_path / "box"
    assert s.retry_seconds == 3.0
    assert s.ca_bundle == str(bundle)


def test_explicit_token_wins_over_basic_from_environment() -> None:
    """An explicit token replaces Basic credentials found in the environment, and back."""
    env = {**BASE, "ESS_USERNAME": "u", "ESS_PASSWORD": "p"}
    assert resolve(env, token="tok").auth == BearerAuth("tok")
    env = {**BASE, "ESS_TOKEN": "tok"}
    assert resolve(env, username="u", password="p").auth == BasicAuth("u", "p")


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, the process environment is read."""
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ESS_TOKEN", "tok")
    s = resolve_settings()
    assert (s.base_url, s.request_id, s.request_handle) == (
        "https://ess.example.com",
        42,
        "handle-42",
    )
    assert s.auth == BearerAuth("tok")


@pytest.mark.parametrize(
    ("missing", "setting"),
    [
        ("ESS_BASE_URL", "base URL"),
        ("ESS_REQUEST_ID", "request id"),
        ("ESS_REQUEST_HANDLE", "request handle"),
    ],
)
def test_missing_setting_names_setting_and_variable(missing: str, setting: str) -> None:
    """A missing required setting names the setting and its variable."""
    env = {k: v for k, v in BASE.items() if k != missing}
    message = config_error(env)
    assert setting in message
    assert missing in message
    env[missing] = ""
    assert missing in config_error(env)


@pytest.mark.parametrize("value", ["42", 42, " 42 ", "9223372036854775807", 2**63 - 1, "1"])
def test_request_id_accepted(value: object) -> None:
    """A positive int64, as int or as decimal text, is a request id."""
    s = resolve({**BASE}, request_id=value)
    assert s.request_id == int(str(value))


@pytest.mark.parametrize(
    "value",
    [0, -1, 2**63, "0", "-1", "9223372036854775808", "abc", "1.5", "1e3", "0x10", "42abc", "٤٢"],
)
def test_request_id_refused(value: object) -> None:
    """Zero, negatives, values past int64 and non-integers are refused, by argument or env."""
    message = config_error(BASE, request_id=value)
    assert "request id" in message
    assert "ESS_REQUEST_ID" in message
    assert "ESS_REQUEST_ID" in config_error({**BASE, "ESS_REQUEST_ID": str(value)})


def test_request_id_bool_refused() -> None:
    """``True`` is not request 1."""
    assert "request id" in config_error(BASE, request_id=True)


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_handle_refused(value: str) -> None:
    """An empty or blank request handle is refused, naming ESS_REQUEST_HANDLE."""
    message = config_error(BASE, request_handle=value)
    assert "request handle" in message
    assert "ESS_REQUEST_HANDLE" in message
    assert "ESS_REQUEST_HANDLE" in config_error({**BASE, "ESS_REQUEST_HANDLE": value})
    if value:
        # blank is malformed even where the handle is optional
        assert "ESS_REQUEST_HANDLE" in config_error({"ESS_REQUEST_HANDLE": value}, dry_run=True)


def test_handle_is_opaque() -> None:
    """Any non-empty handle is kept exactly as given."""
    handle = "  ##ab/cd+ef==é  "
    assert resolve(BASE, request_handle=handle).request_handle == handle


@pytest.mark.parametrize(
    "url",
    [
        "http://ess.example.com",
        "http://10.0.0.5:8080",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com",
    ],
)
def test_plain_http_refused_for_remote_hosts(url: str) -> None:
    """http:// to a host that is not loopback is refused, naming the way out."""
    message = config_error({**BASE, "ESS_BASE_URL": url})
    assert "base URL" in message
    assert "https://" in message
    assert "ESS_BASE_URL" in message
    assert "ESS_CALLBACK_ALLOW_HTTP" in message


@pytest.mark.parametrize("allow", ["1", "true", "yes"])
def test_plain_http_allowed_on_request(allow: str) -> None:
    """ESS_CALLBACK_ALLOW_HTTP=1 lets http:// through for any host."""
    env = {**BASE, "ESS_BASE_URL": "http://ess.example.com", "ESS_CALLBACK_ALLOW_HTTP": allow}
    assert resolve(env).base_url == "http://ess.example.com"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8765", "http://localhost:1/", "http://[::1]:8080", "http://127.1.2.3"],
)
def test_plain_http_allowed_for_loopback(url: str) -> None:
    """http:// to a loopback host needs no switch (credentials never leave the machine)."""
    assert resolve({**BASE, "ESS_BASE_URL": url}).base_url == url.rstrip("/")


def test_allow_http_malformed_refused() -> None:
    """A malformed ESS_CALLBACK_ALLOW_HTTP is refused, naming it."""
    assert "ESS_CALLBACK_ALLOW_HTTP" in config_error({**BASE, "ESS_CALLBACK_ALLOW_HTTP": "maybe"})


@pytest.mark.parametrize(
    "url",
    [
        "ess.example.com",
        "ftp://ess.example.com",
        "https://",
        "https://ess.example.com:99999",
        "https://ess.example.com:port",
        "https://ess.example.com/?x=1",
        "https://ess.example.com/#top",
        "http://[::1",
    ],
)
def test_malformed_base_url_refused(url: str) -> None:
    """A base URL that is not a plain http(s) URL is refused, naming ESS_BASE_URL."""
    message = config_error({**BASE, "ESS_BASE_URL": url})
    assert "base URL" in message
    assert "ESS_BASE_URL" in message


@pytest.mark.parametrize(
    "url",
    [
        "https://a..b.com",
        "https://exa mple.com",
        "https://.example.com",
        "https://example..",
        "https://-bad.example.com",
        "https://bad-.example.com",
        "https://ex!ample.com",
        f"https://{'a' * 64}.example.com",
        "https://1.2.3.999",
        "https://10.0.0",
        "https://[not-an-address]",
        "https://[x]",
        "https://[127.0.0.1]",
        "https://[ess.example.com]:8443",
        "https://[v1.fe]",
        "https://[::1]x",
        "https://[::1]]",
        "https://[::1::2]:8443",
        "https://::1",
        "https://ess.example.com:+443",
        "https://ess.example.com:4_43",
        "https://ess.example.com:\u0664\u0664\u0663",
        "https://ess.example.com:65536",
        "https://ess.example.com:0",
        "https://ess.example.com/?",
        "https://ess.example.com/#",
        "https://ess.example.com/pre\x00fix",
        "https://ess.example\n.com",
        "https://ess.exa\tmple.com",
    ],
)
def test_base_url_with_an_invalid_host_refused(url: str) -> None:
    """A host that is no DNS name, IPv4 or bracketed IPv6 address (or a URL with a control
    character) is refused before any network, naming ESS_BASE_URL."""
    message = config_error({**BASE, "ESS_BASE_URL": url})
    assert message.startswith("base URL:")
    assert "ESS_BASE_URL" in message


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://ess.example.com", ("https", None, "ess.example.com", False, None)),
        ("HTTP://u:p@Host:8080/x", ("http", "u:p", "Host", False, 8080)),
        ("https://[::1]:8443/p?q#f", ("https", None, "::1", True, 8443)),
        ("https://[x]", ("https", None, "x", True, None)),
        ("https://host:/", ("https", None, "host", False, None)),
        ("https://a@b@host", ("https", "a@b", "host", False, None)),
        ("ess.example.com", ("", None, "", False, None)),
    ],
)
def test_urls_are_split_without_the_interpreters_urlsplit(
    monkeypatch: pytest.MonkeyPatch, url: str, parts: tuple[object, ...]
) -> None:
    """Base URLs are split by the package itself (Python 3.10's urlsplit takes
    ``https://[x]`` for host ``x``, 3.11.4 and later refuse it), so that every interpreter
    accepts and refuses the same URLs with the same message."""
    import urllib.parse

    from ess_callback._url import split_url

    def no_urlsplit(*args: object, **kwargs: object) -> None:
        raise AssertionError("urlsplit must not decide what a base URL is")

    monkeypatch.setattr(urllib.parse, "urlsplit", no_urlsplit)
    split = split_url(url)
    assert (split.scheme, split.userinfo, split.host, split.bracketed, split.port) == parts
    message = config_error({**BASE, "ESS_BASE_URL": "https://[x]"})
    assert message.startswith("base URL: the host of 'https://[x]' is not a valid IPv6 address")


@pytest.mark.parametrize(
    "url", ["https://[::1", "https://[::1]x", "https://a]b", "https://::1", "https://h:4_43"]
)
def test_authority_that_cannot_be_split_is_a_value_error(url: str) -> None:
    """An authority with a bracket left open, text after it, an IPv6 address without
    brackets or a port that is not ASCII digits cannot be split."""
    from ess_callback._url import split_url

    with pytest.raises(ValueError):
        split_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://ess.example.com.",
        "https://ess-1.example.com:8443",
        "https://ess_internal.corp",
        "https://xn--bcher-kva.example",
        "https://bücher.example",
        "https://10.0.0.5:8443",
        "https://[2001:db8::1]:8443/prefix",
        "https://[::1]:/prefix",
        "https://ess.example.com:/prefix",
        "https://ess.example.com:65535",
        "HTTPS://ess.example.com",
        "https://ESS.Example.COM",
        "https://localhost:1/ess proxy",
    ],
)
def test_base_url_with_a_valid_host_accepted(url: str) -> None:
    """DNS names (IDNA too), IPv4 and bracketed IPv6 hosts are accepted as given."""
    assert resolve({**BASE, "ESS_BASE_URL": url}).base_url == url


@pytest.mark.parametrize("url", ["https://a..b.com", "https://exa mple.com"])
def test_status_readers_apply_the_same_host_rules(url: str) -> None:
    """The base URL of a watched API (wait --base-url) is held to the same host rules, so a
    bad host is a ConfigurationError, never an error from inside the HTTP library."""
    from ess_callback.watch._http import check_base_url

    with pytest.raises(ConfigurationError, match="host"):
        check_base_url(url)


@pytest.mark.parametrize(
    "url", ["https://u:s3cretpw@h.example.com", "ftp://u:s3cretpw@h.example.com/?x#y"]
)
def test_status_readers_never_quote_credentials_in_a_url(url: str) -> None:
    """A watched API's URL holding credentials is refused without quoting the password."""
    from ess_callback.watch._http import check_base_url

    with pytest.raises(ConfigurationError) as refused:
        check_base_url(url, what="watched API base URL")
    assert "s3cretpw" not in str(refused.value)
    assert str(refused.value).startswith("watched API base URL: ")


def test_trailing_slash_and_prefix_kept() -> None:
    """A path prefix is kept, a trailing slash dropped."""
    env = {**BASE, "ESS_BASE_URL": "https://host:8443/ess-proxy/"}
    assert resolve(env).base_url == "https://host:8443/ess-proxy"


def test_basic_auth_from_password_file(tmp_path: Path) -> None:
    """ESS_PASSWORD_FILE is read, one trailing newline stripped."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret pass\n")
    env = {**BASE, "ESS_USERNAME": "ops", "ESS_PASSWORD_FILE": str(secret)}
    assert resolve(env).auth == BasicAuth("ops", "s3cret pass")
    secret.write_bytes(b"windows\r\n")
    assert resolve(env).auth == BasicAuth("ops", "windows")


def test_bearer_auth_from_token_file(tmp_path: Path) -> None:
    """ESS_TOKEN_FILE is read, trailing newline stripped; ESS_TOKEN works directly too."""
    secret = tmp_path / "token"
    secret.write_text("eyJ.tok.en\n")
    assert resolve({**BASE, "ESS_TOKEN_FILE": str(secret)}).auth == BearerAuth("eyJ.tok.en")
    assert resolve({**BASE, "ESS_TOKEN": "direct"}).auth == BearerAuth("direct")


@pytest.mark.parametrize("variable", ["ESS_PASSWORD_FILE", "ESS_TOKEN_FILE"])
def test_unreadable_secret_file_refused(tmp_path: Path, variable: str) -> None:
    """A _FILE that is missing, a folder, empty or not UTF-8 is a clear error naming it."""
    env = {**BASE, "ESS_USERNAME": "ops"} if "PASSWORD" in variable else {**BASE}
    missing = tmp_path / "missing"
    message = config_error({**env, variable: str(missing)})
    assert variable in message
    assert str(missing) in message
    assert variable in config_error({**env, variable: str(tmp_path)})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "empty" in config_error({**env, variable: str(empty)})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    assert variable in config_error({**env, variable: str(binary)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_secret_file_without_permission_refused(tmp_path: Path) -> None:
    """A _FILE the job may not read is a clear error naming it."""
    secret = tmp_path / "pw"
    secret.write_text("x")
    secret.chmod(0)
    message = config_error({**BASE, "ESS_USERNAME": "u", "ESS_PASSWORD_FILE": str(secret)})
    assert "ESS_PASSWORD_FILE" in message
    assert "ermission" in message


LEAKY = "LEAKYTOKEN123"


@pytest.mark.parametrize("name", ["ESS_PASSWORD", "ESS_TOKEN"])
@pytest.mark.parametrize(
    "value",
    [f"{LEAKY}\nX", f"{LEAKY}\r", f"\n{LEAKY}", f"{LEAKY}\x00", f"{LEAKY}\tX", f"{LEAKY}\x7f"],
    ids=["lf", "cr", "leading-lf", "nul", "tab", "del"],
)
def test_secret_with_a_control_character_refused(name: str, value: str) -> None:
    """A secret with a control character is refused before any network, naming its
    variable and never showing the value (an HTTP library would quote the header)."""
    env = {**BASE, name: value, **({"ESS_USERNAME": "ops"} if "PASSWORD" in name else {})}
    message = config_error(env)
    assert name in message
    assert LEAKY not in message


@pytest.mark.parametrize("name", ["ESS_PASSWORD_FILE", "ESS_TOKEN_FILE"])
@pytest.mark.parametrize("content", [b"tok\n\n", b"tok\r\n\r\n", b"tok\nsecond line\n", b"\ntok"])
def test_secret_file_with_more_than_one_line_refused(
    tmp_path: Path, name: str, content: bytes
) -> None:
    """A _FILE secret keeps one trailing newline stripped; any other line break is an
    error naming the variable and the file, never the secret."""
    path = tmp_path / "secret"
    path.write_bytes(content.replace(b"tok", LEAKY.encode()))
    env = {**BASE, name: str(path), **({"ESS_USERNAME": "ops"} if "PASSWORD" in name else {})}
    message = config_error(env)
    assert name in message
    assert str(path) in message
    assert LEAKY not in message


@pytest.mark.parametrize("content", [b"tok\n", b"tok\r\n", b"tok"])
def test_secret_file_with_one_line_accepted(tmp_path: Path, content: bytes) -> None:
    """One line, with or without its line end, is the secret."""
    path = tmp_path / "token"
    path.write_bytes(content)
    assert resolve({**BASE, "ESS_TOKEN_FILE": str(path)}).auth == BearerAuth("tok")


@pytest.mark.parametrize(
    ("token", "why"),
    [(f"{LEAKY}€", "header"), (f"{LEAKY} ", "space"), (f" {LEAKY}", "space"), ("ab cd", "space")],
)
@pytest.mark.parametrize("source", ["ESS_TOKEN", "ESS_TOKEN_FILE", "argument"])
def test_bearer_token_must_fit_in_a_header(
    tmp_path: Path, token: str, why: str, source: str
) -> None:
    """A bearer token that is not Latin-1 or holds a space is refused, naming its source."""
    path = tmp_path / "token"
    path.write_text(token + "\n", encoding="utf-8")
    if source == "argument":
        message = config_error(BASE, token=token)
        assert "token= argument" in message
    else:
        value = str(path) if source.endswith("_FILE") else token
        message = config_error({**BASE, source: value})
        assert source in message
    assert why in message
    assert LEAKY not in message


def test_non_ascii_password_accepted() -> None:
    """A password outside Latin-1 is fine (Basic sends it as UTF-8); only control
    characters are refused."""
    env = {**BASE, "ESS_USERNAME": "ops", "ESS_PASSWORD": "pässwörd€ with space"}
    assert resolve(env).auth == BasicAuth("ops", "pässwörd€ with space")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"token": f"{LEAKY}\n"}, "token= argument"),
        ({"username": "ops", "password": f"{LEAKY}\n"}, "password= argument"),
        ({"username": "op\ns", "password": LEAKY}, "username= argument"),
    ],
)
def test_explicit_secret_with_a_control_character_refused(
    kwargs: dict[str, str], named: str
) -> None:
    """Explicit credentials are checked like the variables, naming the argument."""
    message = config_error(BASE, **kwargs)
    assert named in message
    assert LEAKY not in message


def test_username_with_a_control_character_refused() -> None:
    """ESS_USERNAME with a line break is refused, naming it."""
    message = config_error({**BASE, "ESS_USERNAME": "ops\n", "ESS_PASSWORD": LEAKY})
    assert "ESS_USERNAME" in message
    assert LEAKY not in message


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"WATCH_TOKEN": f"{LEAKY}\nX"}, "WATCH_TOKEN"),
        ({"WATCH_TOKEN": f"{LEAKY}€"}, "WATCH_TOKEN"),
        ({"WATCH_USERNAME": "ops", "WATCH_PASSWORD": f"{LEAKY}\r"}, "WATCH_PASSWORD"),
    ],
)
def test_watch_credentials_are_checked_too(extra: dict[str, str], named: str) -> None:
    """The WATCH_* credentials of the status readers go through the same checks."""
    with pytest.raises(ConfigurationError) as info:
        auth_from_env(extra, prefix="WATCH")
    assert named in str(info.value)
    assert LEAKY not in str(info.value)


@pytest.mark.parametrize("value", [f"{LEAKY}\n", f"{LEAKY}€", f"{LEAKY} "])
def test_bearer_auth_refuses_what_a_header_cannot_carry(value: str) -> None:
    """BearerAuth built directly checks its token too (without showing it)."""
    with pytest.raises(ConfigurationError) as info:
        BearerAuth(value)
    assert LEAKY not in str(info.value)
    with pytest.raises(ConfigurationError):
        BasicAuth("ops", f"{LEAKY}\n")


@pytest.mark.parametrize("name", ["ESS_PASSWORD", "ESS_TOKEN"])
def test_value_and_file_at_once_refused(tmp_path: Path, name: str) -> None:
    """A secret given both directly and as _FILE is refused, naming both variables."""
    path = tmp_path / "secret"
    path.write_text("from-file")
    env = {**BASE, name: "direct", f"{name}_FILE": str(path)}
    if name == "ESS_PASSWORD":
        env["ESS_USERNAME"] = "ops"
    message = config_error(env)
    assert name in message
    assert f"{name}_FILE" in message


def test_basic_and_token_at_once_refused() -> None:
    """Basic and bearer credentials together are refused, from env or arguments."""
    message = config_error({**BASE, "ESS_USERNAME": "u", "ESS_PASSWORD": "p", "ESS_TOKEN": "t"})
    assert "ESS_TOKEN" in message
    assert "ESS_USERNAME" in message
    assert "ESS_TOKEN" in config_error({**BASE, "ESS_PASSWORD": "p", "ESS_TOKEN": "t"})
    assert "ESS_TOKEN" in config_error(BASE, username="u", password="p", token="t")


def test_username_without_password_refused() -> None:
    """A username alone is refused, naming the password variables."""
    message = config_error({**BASE, "ESS_USERNAME": "ops"})
    assert "ESS_PASSWORD" in message
    assert "ESS_PASSWORD_FILE" in message


def test_password_without_username_refused() -> None:
    """A password alone is refused, naming ESS_USERNAME."""
    assert "ESS_USERNAME" in config_error({**BASE, "ESS_PASSWORD": "pw"})


def test_no_credentials_is_fine() -> None:
    """No credentials at all means no auth."""
    assert resolve(BASE).auth is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", "application/json"),
        ("application/vnd.oracle.resource+json", "application/vnd.oracle.resource+json"),
        ("Application/JSON", "application/json"),
        ("", "application/json"),
    ],
)
def test_media_types(value: str, expected: str) -> None:
    """The two media types of the ESS reference are accepted; JSON is the default."""
    assert resolve({**BASE, "ESS_MEDIA_TYPE": value}).media_type == expected
    assert resolve(BASE).media_type == "application/json"


@pytest.mark.parametrize("value", ["text/plain", "application/xml", "json"])
def test_other_media_type_refused(value: str) -> None:
    """Any other media type is refused, naming ESS_MEDIA_TYPE and the two valid ones."""
    message = config_error({**BASE, "ESS_MEDIA_TYPE": value})
    assert "ESS_MEDIA_TYPE" in message
    assert "application/vnd.oracle.resource+json" in message
    assert "ESS_MEDIA_TYPE" in config_error(BASE, media_type=value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("1", True), ("true", True), ("yes", True), ("TRUE", True), ("Yes", True)],
        *[("0", False), ("false", False), ("no", False), ("", False)],
    ],
)
def test_dry_run_values(value: str, expected: bool) -> None:
    """ESS_CALLBACK_DRY_RUN takes 1/true/yes (any case) and 0/false/no."""
    assert resolve({**BASE, "ESS_CALLBACK_DRY_RUN": value}).dry_run is expected


def test_dry_run_malformed_refused() -> None:
    """A malformed ESS_CALLBACK_DRY_RUN is refused rather than guessed."""
    assert "ESS_CALLBACK_DRY_RUN" in config_error({**BASE, "ESS_CALLBACK_DRY_RUN": "sometimes"})


def test_dry_run_needs_no_setting() -> None:
    """In dry run, no setting is required; absent ones are None."""
    s = resolve({"ESS_CALLBACK_DRY_RUN": "1"})
    assert s.dry_run is True
    assert (s.base_url, s.request_id, s.request_handle, s.auth) == (None, None, None, None)
    assert resolve({}, dry_run=True).request_id is None


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("ESS_REQUEST_ID", "abc", "ESS_REQUEST_ID"),
        ("ESS_REQUEST_HANDLE", " ", "ESS_REQUEST_HANDLE"),
        ("ESS_BASE_URL", "ftp://x", "ESS_BASE_URL"),
        ("ESS_BASE_URL", "http://ess.example.com", "ESS_CALLBACK_ALLOW_HTTP"),
        ("ESS_MEDIA_TYPE", "text/plain", "ESS_MEDIA_TYPE"),
        ("ESS_USERNAME", "user-without-password", "ESS_PASSWORD"),
        ("ESS_CALLBACK_RETRY_SECONDS", "-1", "ESS_CALLBACK_RETRY_SECONDS"),
    ],
)
def test_dry_run_still_validates_present_settings(variable: str, value: str, named: str) -> None:
    """In dry run a present but malformed setting is still refused."""
    assert named in config_error({"ESS_CALLBACK_DRY_RUN": "1", variable: value})


def test_not_required_mode_still_validates() -> None:
    """With require=False (recording), absent values pass and present ones are checked."""
    assert resolve({}, require=False).request_id is None
    assert "ESS_REQUEST_ID" in config_error({"ESS_REQUEST_ID": "0"}, require=False)


def test_outbox_default_under_xdg_state_home(tmp_path: Path) -> None:
    """The outbox defaults to $XDG_STATE_HOME/ess-callback/outbox."""
    env = {**BASE, "XDG_STATE_HOME": str(tmp_path / "state")}
    assert resolve(env).outbox == tmp_path / "state" / "ess-callback" / "outbox"


def test_outbox_default_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without XDG_STATE_HOME (or with a relative one) it is ~/.local/state/ess-callback/outbox."""
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".local" / "state" / "ess-callback" / "outbox"
    assert resolve(BASE).outbox == expected
    assert resolve({**BASE, "XDG_STATE_HOME": ""}).outbox == expected
    assert resolve({**BASE, "XDG_STATE_HOME": "relative/state"}).outbox == expected


def test_outbox_from_variable() -> None:
    """ESS_CALLBACK_OUTBOX names the outbox folder."""
    assert resolve({**BASE, "ESS_CALLBACK_OUTBOX": "/srv/box"}).outbox == Path("/srv/box")


@pytest.mark.parametrize(
    ("value", "expected"), [("30", 30.0), ("0", 0.0), ("2.5", 2.5), ("", 60.0)]
)
def test_retry_seconds(value: str, expected: float) -> None:
    """ESS_CALLBACK_RETRY_SECONDS sets the retry budget; 60 s by default."""
    env = {**BASE, "ESS_CALLBACK_RETRY_SECONDS": value}
    assert resolve(env).retry_seconds == expected
    assert resolve(BASE).retry_seconds == 60.0


@pytest.mark.parametrize("value", ["-1", "abc", "inf", "nan", "1 minute"])
def test_retry_seconds_malformed_refused(value: str) -> None:
    """A malformed ESS_CALLBACK_RETRY_SECONDS is refused, naming it."""
    env = {**BASE, "ESS_CALLBACK_RETRY_SECONDS": value}
    assert "ESS_CALLBACK_RETRY_SECONDS" in config_error(env)


@pytest.mark.parametrize("value", [-1.0, float("inf"), float("nan")])
def test_retry_seconds_argument_checked(value: float) -> None:
    """An explicit retry budget is checked like the variable."""
    assert "retry budget" in config_error(BASE, retry_seconds=value)


def test_ca_bundle(tmp_path: Path) -> None:
    """ESS_CA_BUNDLE names the CA file; a missing one is refused, naming the variable."""
    bundle = real_bundle(tmp_path)
    assert resolve({**BASE, "ESS_CA_BUNDLE": str(bundle)}).ca_bundle == str(bundle)
    assert "ESS_CA_BUNDLE" in config_error({**BASE, "ESS_CA_BUNDLE": str(tmp_path / "nope.pem")})


def test_ca_bundle_folder_accepted(tmp_path: Path) -> None:
    """A folder of CA certificates (OpenSSL's capath) is accepted as ESS_CA_BUNDLE."""
    real_bundle(tmp_path)
    assert resolve({**BASE, "ESS_CA_BUNDLE": str(tmp_path)}).ca_bundle == str(tmp_path)


def test_ca_bundle_folder_without_a_certificate_refused(tmp_path: Path) -> None:
    """A CA folder that is empty, or holds no certificate, is refused before any network,
    naming ESS_CA_BUNDLE (OpenSSL would only find out during a handshake)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "ESS_CA_BUNDLE" in config_error({**BASE, "ESS_CA_BUNDLE": str(empty)})
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a certificate\n")
    assert "ESS_CA_BUNDLE" in config_error({**BASE, "ESS_CA_BUNDLE": str(junk)})


@pytest.mark.parametrize(
    "content",
    [b"myhost\n", b"", b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n", b"\xff\xfe"],
    ids=["hostname-file", "empty", "broken-pem", "binary"],
)
def test_unusable_ca_bundle_refused_before_any_network(tmp_path: Path, content: bytes) -> None:
    """A CA bundle that holds no certificate is refused at once, naming ESS_CA_BUNDLE."""
    bundle = tmp_path / "hostname"
    bundle.write_bytes(content)
    message = config_error({**BASE, "ESS_CA_BUNDLE": str(bundle)})
    assert message.startswith("CA bundle:")
    assert "ESS_CA_BUNDLE" in message
    assert str(bundle) in message
    assert "ca_bundle=" in config_error(BASE, ca_bundle=str(bundle))


def test_outbox_that_is_a_file_refused(tmp_path: Path) -> None:
    """ESS_CALLBACK_OUTBOX naming a regular file is refused at once, naming the variable."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0::/root:/bin/sh\n")
    message = config_error({**BASE, "ESS_CALLBACK_OUTBOX": str(passwd)})
    assert "ESS_CALLBACK_OUTBOX" in message
    assert str(passwd) in message
    assert "not a folder" in message
    assert "outbox=" in config_error(BASE, outbox=passwd)


def test_outbox_under_a_file_refused(tmp_path: Path) -> None:
    """An outbox that could only be created inside a regular file is refused at once."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    message = config_error({**BASE, "ESS_CALLBACK_OUTBOX": str(blocker / "sub" / "outbox")})
    assert "ESS_CALLBACK_OUTBOX" in message
    assert str(blocker) in message


def test_outbox_name_too_long_refused(tmp_path: Path) -> None:
    """An outbox path the file system cannot even look up is refused, naming the variable."""
    message = config_error({**BASE, "ESS_CALLBACK_OUTBOX": str(tmp_path / ("x" * 300))})
    assert "ESS_CALLBACK_OUTBOX" in message


def test_outbox_need_not_exist_yet(tmp_path: Path) -> None:
    """An outbox folder that does not exist yet is fine: it is created when first needed."""
    box = tmp_path / "new" / "outbox"
    assert resolve({**BASE, "ESS_CALLBACK_OUTBOX": str(box)}).outbox == box
    assert not box.exists()


def test_allow_http_reaches_the_settings() -> None:
    """ESS_CALLBACK_ALLOW_HTTP is carried by the settings (for every client built from them);
    an explicit allow_http wins over it."""
    env = {**BASE, "ESS_BASE_URL": "http://ess.example.com", "ESS_CALLBACK_ALLOW_HTTP": "1"}
    assert resolve(env).allow_http is True
    assert resolve(BASE).allow_http is False
    remote = {**BASE, "ESS_BASE_URL": "http://ess.example.com"}
    assert resolve(remote, allow_http=True).allow_http is True
    assert "ESS_CALLBACK_ALLOW_HTTP" in config_error(env, allow_http=False)


def test_settings_are_frozen() -> None:
    """Settings cannot be changed once resolved."""
    s = resolve(BASE)
    with pytest.raises(AttributeError):
        s.request_id = 1  # type: ignore[misc]


# -- secrets never leak --------------------------------------------------------------------

REFERENCE = "REFERENCE-SECRET-0000"
# Secrets as a _FILE can hold them: UTF-8, no control characters (those are refused, see
# test_secret_with_a_control_character_refused; one trailing newline is stripped).
secrets = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=40
)
# Bearer tokens as a header can carry them: Latin-1 without spaces or control characters.
tokens = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=["Cc", "Zs"]),
    min_size=1,
    max_size=40,
)
# URL passwords, including the characters that break a URL apart (@, /, ?, #, [, ]).
url_secrets = st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=%:/?#[]@")


def messages_for(secret: str, tmp: Path) -> list[str]:
    """The error messages of several misconfigurations that all involve *secret*."""
    secret_file = tmp / "secret"
    secret_file.write_text(secret + "\n", encoding="utf-8", errors="surrogatepass")
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({**BASE, "ESS_PASSWORD": secret}, {}),
        ({**BASE, "ESS_USERNAME": "u", "ESS_PASSWORD": secret, "ESS_TOKEN": secret}, {}),
        ({**BASE, "ESS_USERNAME": "u", "ESS_PASSWORD": secret, "ESS_PASSWORD_FILE": "/x"}, {}),
        ({**BASE, "ESS_TOKEN": secret, "ESS_TOKEN_FILE": str(secret_file)}, {}),
        ({**BASE, "ESS_TOKEN_FILE": str(secret_file), "ESS_USERNAME": "u"}, {}),
        ({**BASE, "ESS_TOKEN": secret, "ESS_REQUEST_ID": "-5"}, {}),
        ({**BASE, "ESS_PASSWORD_FILE": str(secret_file)}, {}),
        (BASE, {"password": secret}),
        (BASE, {"token": secret, "username": "u"}),
    ]
    out = []
    for env, kwargs in cases:
        with pytest.raises(ConfigurationError) as info:
            resolve(env, **kwargs)
        out.append(str(info.value))
    return out


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secrets)
def test_secret_never_in_configuration_errors(secret: str, tmp_path: Path) -> None:
    """No ConfigurationError message depends on (so none can show) a secret's value."""
    assert messages_for(secret, tmp_path) == messages_for(REFERENCE, tmp_path)
    assert not any(REFERENCE in m for m in messages_for(REFERENCE, tmp_path))


@given(middle=url_secrets)
@example(middle="//")  # a "//" in the password once passed for the end of "https://"
def test_secret_in_base_url_never_in_message(middle: str) -> None:
    """A password typed into ESS_BASE_URL is refused without any of it quoted back."""
    # "Zq" occurs in no message of ours, so finding it means the password leaked.
    secret = f"Zq{middle}Zq"
    for url in (
        f"https://ops:{secret}@ess.example.com",
        f"ftp://ops:{secret}@ess.example.com",
        f"http://ops:{secret}@ess.example.com/?q",
        f"ops:{secret}@ess.example.com",
        f"https://ops:{secret}@ess.example.com:bad",
    ):
        with pytest.raises(ConfigurationError) as info:
            resolve({**BASE, "ESS_BASE_URL": url})
        assert "Zq" not in str(info.value)
        assert "ESS_BASE_URL" in str(info.value)


@given(secret=tokens)
def test_secret_never_in_reprs(secret: str) -> None:
    """repr() of BasicAuth, BearerAuth and Settings does not depend on the secret."""

    def reprs(value: str) -> list[str]:
        basic = BasicAuth("ops", value)
        bearer = BearerAuth(value)
        out = [repr(basic), repr(bearer), str(basic), str(bearer)]
        for auth in (basic, bearer):
            s = Settings(
                base_url="https://ess.example.com",
                request_id=1,
                request_handle="h",
                auth=auth,
            )
            out += [repr(s), str(s)]
        return out

    assert reprs(secret) == reprs(REFERENCE)
    assert not any(REFERENCE in r for r in reprs(REFERENCE))


@pytest.mark.parametrize(("value", "expected"), [("2.5", 2.5), ("30", 30.0), ("", None)])
def test_cancel_poll(value: str, expected: float | None) -> None:
    """ESS_CALLBACK_CANCEL_POLL sets the cancel poll interval; off by default."""
    assert resolve({**BASE, "ESS_CALLBACK_CANCEL_POLL": value}).cancel_poll == expected
    assert resolve(BASE).cancel_poll is None


@pytest.mark.parametrize("value", ["0", "-1", "often", "1e12"])
def test_cancel_poll_malformed_refused(value: str) -> None:
    """A cancel poll interval that is not more than zero seconds is refused, naming it."""
    assert "ESS_CALLBACK_CANCEL_POLL" in config_error({**BASE, "ESS_CALLBACK_CANCEL_POLL": value})
    assert "ESS_CALLBACK_CANCEL_POLL" in config_error(BASE, cancel_poll=0)


def test_settings_reach_the_client(tmp_path: Path) -> None:
    """The resolved budget, media type, CA bundle and credentials are what the client uses."""
    from ess_callback._sender import HttpSender, make_sender

    bundle = real_bundle(tmp_path)
    env = {
        **BASE,
        "ESS_TOKEN": "tok",
        "ESS_CALLBACK_RETRY_SECONDS": "12.5",
        "ESS_MEDIA_TYPE": "application/vnd.oracle.resource+json",
        "ESS_CA_BUNDLE": str(bundle),
    }
    sender = make_sender(resolve(env))
    assert isinstance(sender, HttpSender)
    assert sender.client.retry.budget == 12.5
    assert sender.client.retry.attempts == 8
    assert sender.client.retry.timeout == 10.0
    assert sender.client.media_type == "application/vnd.oracle.resource+json"
    assert sender.client.ca_bundle == str(bundle)
    assert sender.client.base_url == "https://ess.example.com"
    assert sender.client.session.auth == BearerAuth("tok")
