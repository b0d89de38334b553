"""Settings, resolved once at the edge: explicit arguments first, then the environment.

This is the only module that reads ``os.environ`` for the job's own ESS request; everything
below receives a frozen :class:`Settings`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._errors import ConfigurationError

MEDIA_TYPES = ("application/json", "application/vnd.oracle.resource+json")
DEFAULT_MEDIA_TYPE = MEDIA_TYPES[0]
DEFAULT_RETRY_SECONDS = 60.0
INT64_MAX = 2**63 - 1
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


@attrs.frozen(repr=False)
class BearerAuth:
    """OAuth bearer token authentication (``Authorization: Bearer <token>``)."""

    token: str = attrs.field(repr=False)

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


@attrs.frozen(repr=False)
class BasicAuth:
    """HTTP Basic credentials, kept out of every repr."""

    username: str
    password: str = attrs.field(repr=False)

    def as_tuple(self) -> tuple[str, str]:
        return (self.username, self.password)

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


Auth = BasicAuth | BearerAuth


@attrs.frozen
class Settings:
    """Everything needed to report on one ESS request, validated."""

    base_url: str | None
    request_id: int | None
    request_handle: str | None = attrs.field(repr=False)
    auth: Auth | None = attrs.field(default=None, repr=False)
    media_type: str = DEFAULT_MEDIA_TYPE
    ca_bundle: str | None = None
    dry_run: bool = False
    outbox: Path = attrs.field(factory=lambda: default_outbox({}))
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    cancel_poll: float | None = None

    def __repr__(self) -> str:
        # The handle identifies a live execution; keep it out of logs like the credentials.
        return (
            f"Settings(base_url={self.base_url!r}, request_id={self.request_id!r}, "
            f"request_handle={'***' if self.request_handle else None}, "
            f"auth={self.auth!r}, media_type={self.media_type!r}, dry_run={self.dry_run!r})"
        )

    def secrets(self) -> list[str]:
        """The secret values these settings hold (for redaction)."""
        if isinstance(self.auth, BasicAuth):
            return [self.auth.password]
        if isinstance(self.auth, BearerAuth):
            return [self.auth.token]
        return []


def default_outbox(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/ess-callback/outbox``, falling back to ``~/.local/state/...``."""
    state = env.get("XDG_STATE_HOME") or ""
    # The XDG base directory spec says a relative path in these variables is invalid and
    # must be ignored (it would depend on the job's working directory).
    if not os.path.isabs(state):
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "ess-callback" / "outbox"


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bool(value: str, *, setting: str, variable: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigurationError(
        f"{setting}: {value!r} is not a yes/no value; set {variable} to 1/true/yes or 0/false/no"
    )


def parse_request_id(value: object, *, variable: str = "ESS_REQUEST_ID") -> int:
    """A positive int64, from an int or a string of digits."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"\+?[0-9]+", text):
            raise ConfigurationError(
                f"request id: {str(value)!r} is not a positive integer; "
                f"set {variable} (or --request-id) to the ESS request number"
            )
        number = int(text)
    if not 0 < number <= INT64_MAX:
        raise ConfigurationError(
            f"request id: {number} is out of range (1 to {INT64_MAX}); "
            f"set {variable} (or --request-id) to the ESS request number"
        )
    return number


def _without_userinfo(text: str) -> str:
    """*text* fit to quote in an error: anything before an ``@`` may be a password."""
    if "@" not in text:
        return text
    head, _, tail = text.rpartition("@")
    prefix = head[: head.index("//") + 2] if "//" in head else ""
    return f"{prefix}***@{tail}"


def parse_base_url(value: str, *, allow_http: bool, variable: str = "ESS_BASE_URL") -> str:
    """Validate a base URL and return it without a trailing slash."""
    text = value.strip()
    shown = repr(_without_userinfo(text))
    hint = f"set {variable} (or --base-url) to e.g. https://ess.example.com"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError(f"base URL: {shown} is not a valid URL; {hint}") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"base URL: credentials do not belong in {variable}; "
            "use ESS_USERNAME/ESS_PASSWORD or ESS_TOKEN"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base URL: {shown} is not an http(s) URL; {hint}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base URL: {shown} must not have a query or fragment; {hint}")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"base URL: {shown} uses http:// for a host that is not loopback, so credentials "
            f"would travel in clear; use https:// (or set ESS_CALLBACK_ALLOW_HTTP=1)"
        )
    return text.rstrip("/")


def parse_media_type(value: str, *, variable: str = "ESS_MEDIA_TYPE") -> str:
    text = value.strip().lower()
    if text not in MEDIA_TYPES:
        raise ConfigurationError(
            f"media type: {value!r} is not supported; set {variable} (or --media-type) to "
            + " or ".join(MEDIA_TYPES)
        )
    return text


def parse_seconds(value: object, *, setting: str, variable: str, allow_zero: bool = False) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not (number >= 0 if allow_zero else number > 0) or number == float("inf"):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigurationError(
            f"{setting}: {value!r} is not a number of seconds ({bound}); set {variable}"
        )
    return number


def read_secret_file(path: str, *, setting: str, variable: str) -> str:
    """Read a secret from a file, stripping one trailing newline (and CR)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigurationError(
            f"{setting}: cannot read {variable}={path}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{setting}: {variable}={path} is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigurationError(f"{setting}: the file named by {variable} ({path}) is empty")
    return text


def secret_from_env(env: Mapping[str, str], name: str, setting: str) -> str | None:
    """A secret from ``NAME`` or ``NAME_FILE``; both set at once is an error."""
    direct = env.get(name) or None
    path = env.get(f"{name}_FILE") or None
    if direct is not None and path is not None:
        raise ConfigurationError(f"{setting}: set {name} or {name}_FILE, not both")
    if path is not None:
        return read_secret_file(path, setting=setting, variable=f"{name}_FILE")
    return direct


def auth_from_env(
    env: Mapping[str, str],
    *,
    prefix: str = "ESS",
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> Auth | None:
    """Basic or bearer credentials from explicit values, then ``{prefix}_*`` variables.

    An explicit credential of one kind wins over the environment's credentials of the other
    kind (explicit arguments win); both kinds at once, from the same source, is an error.
    """
    explicit_basic = username is not None or password is not None
    explicit_bearer = token is not None
    user = username
    if user is None and not explicit_bearer:
        user = env.get(f"{prefix}_USERNAME") or None
    pwd = password
    if pwd is None and not explicit_bearer:
        pwd = secret_from_env(env, f"{prefix}_PASSWORD", "password")
    tok = token
    if tok is None and not explicit_basic:
        tok = secret_from_env(env, f"{prefix}_TOKEN", "token")
    if tok is not None and (user is not None or pwd is not None):
        raise ConfigurationError(
            f"credentials: both Basic ({prefix}_USERNAME/{prefix}_PASSWORD) and bearer "
            f"({prefix}_TOKEN) credentials are set; keep only one kind"
        )
    if tok is not None:
        return BearerAuth(tok)
    if user is not None and pwd is None:
        raise ConfigurationError(
            f"password: {prefix}_USERNAME is set but no password; "
            f"set {prefix}_PASSWORD or {prefix}_PASSWORD_FILE"
        )
    if pwd is not None and user is None:
        raise ConfigurationError(
            f"username: a password is set but {prefix}_USERNAME is not; set {prefix}_USERNAME"
        )
    if user is not None and pwd is not None:
        return BasicAuth(user, pwd)
    return None


def resolve_settings(
    *,
    base_url: str | None = None,
    request_id: int | str | None = None,
    request_handle: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    media_type: str | None = None,
    dry_run: bool | None = None,
    outbox: str | os.PathLike[str] | None = None,
    retry_seconds: float | None = None,
    cancel_poll: float | None = None,
    ca_bundle: str | None = None,
    require: bool = True,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve and validate settings: explicit arguments win, the environment fills the rest.

    With ``require=False`` (dry run, recording) absent values are allowed but present ones
    are still validated. Dry run itself never requires anything.
    """
    env = os.environ if env is None else env

    if dry_run is None:
        dry_run = parse_bool(
            env.get("ESS_CALLBACK_DRY_RUN", ""), setting="dry run", variable="ESS_CALLBACK_DRY_RUN"
        )
    require = require and not dry_run
    allow_http = parse_bool(
        env.get("ESS_CALLBACK_ALLOW_HTTP", ""),
        setting="allow http",
        variable="ESS_CALLBACK_ALLOW_HTTP",
    )

    raw_url = base_url if base_url is not None else (env.get("ESS_BASE_URL") or None)
    url = parse_base_url(raw_url, allow_http=allow_http) if raw_url else None
    if url is None and require:
        raise ConfigurationError(
            "base URL is missing: set ESS_BASE_URL (or --base-url) to the ESS server, "
            "e.g. https://ess.example.com"
        )

    raw_id = request_id if request_id is not None else (env.get("ESS_REQUEST_ID") or None)
    rid = parse_request_id(raw_id) if raw_id is not None and raw_id != "" else None
    if rid is None and require:
        raise ConfigurationError(
            "request id is missing: set ESS_REQUEST_ID (or --request-id) to the ESS request number"
        )

    # An empty variable counts as unset (as in the shell); a blank one is malformed.
    handle = request_handle if request_handle is not None else env.get("ESS_REQUEST_HANDLE") or None
    if handle is not None and not handle.strip():
        raise ConfigurationError(
            "request handle is empty: set ESS_REQUEST_HANDLE (or --request-handle) "
            "to the handle ESS passed to the job"
        )
    if handle is None and require:
        raise ConfigurationError(
            "request handle is missing: set ESS_REQUEST_HANDLE (or --request-handle) "
            "to the handle ESS passed to the job"
        )

    auth = auth_from_env(env, username=username, password=password, token=token)

    raw_media = media_type if media_type is not None else (env.get("ESS_MEDIA_TYPE") or None)
    media = parse_media_type(raw_media) if raw_media else DEFAULT_MEDIA_TYPE

    bundle = ca_bundle if ca_bundle is not None else (env.get("ESS_CA_BUNDLE") or None)
    if bundle is not None and not os.path.exists(bundle):
        raise ConfigurationError(
            f"CA bundle: {bundle} does not exist; set ESS_CA_BUNDLE to a PEM file or folder"
        )

    box = Path(outbox) if outbox is not None else None
    if box is None:
        box = Path(env["ESS_CALLBACK_OUTBOX"]) if env.get("ESS_CALLBACK_OUTBOX") else None
    if box is None:
        box = default_outbox(env)

    raw_budget = (
        retry_seconds if retry_seconds is not None else env.get("ESS_CALLBACK_RETRY_SECONDS")
    )
    retry_seconds = (
        parse_seconds(
            raw_budget,
            setting="retry budget",
            variable="ESS_CALLBACK_RETRY_SECONDS",
            allow_zero=True,
        )
        if raw_budget is not None and raw_budget != ""
        else DEFAULT_RETRY_SECONDS
    )

    if cancel_poll is None:
        raw = env.get("ESS_CALLBACK_CANCEL_POLL")
        cancel_poll = (
            parse_seconds(raw, setting="cancel poll", variable="ESS_CALLBACK_CANCEL_POLL")
            if raw
            else None
        )
    elif cancel_poll <= 0:
        raise ConfigurationError(
            "cancel poll: must be more than zero seconds (ESS_CALLBACK_CANCEL_POLL)"
        )

    return Settings(
        base_url=url,
        request_id=rid,
        request_handle=handle,
        auth=auth,
        media_type=media,
        ca_bundle=bundle,
        dry_run=bool(dry_run),
        outbox=box,
        retry_seconds=float(retry_seconds),
        cancel_poll=cancel_poll,
    )
