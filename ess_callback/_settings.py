"""Settings, resolved once at the edge: explicit arguments first, then the environment.

This is the only module that reads ``os.environ``: the job's own request (``Settings``), a
flush (``FlushSettings``) and a watched API (``WatchSettings``); everything below receives
a frozen settings object. Each value is checked by ``_checks.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import attrs

from ._checks import (
    DEFAULT_MEDIA_TYPE,
    DEFAULT_RETRY_SECONDS,
    check_ca_bundle,
    check_proxies,
    parse_bool,
    parse_media_type,
    parse_seconds,
    without_option_hints,
)
from ._credentials import Auth as Auth
from ._credentials import BasicAuth as BasicAuth
from ._credentials import BearerAuth as BearerAuth
from ._credentials import auth_from_env as auth_from_env
from ._credentials import read_secret_file as read_secret_file
from ._credentials import redaction_secrets
from ._credentials import secret_from_env as secret_from_env
from ._errors import ConfigurationError
from ._job_settings import MIN_SECRET_LENGTH as MIN_SECRET_LENGTH
from ._job_settings import SECRET_SUFFIXES as SECRET_SUFFIXES
from ._job_settings import Settings as Settings
from ._job_settings import default_outbox as default_outbox
from ._job_settings import environment_secrets as environment_secrets
from ._job_settings import resolve_settings as resolve_settings
from ._job_settings import settings_problems as settings_problems
from ._url import UrlParts, split_url
from ._url import is_loopback as is_loopback
from ._url import parse_base_url as parse_base_url

T = TypeVar("T")


# -- flush: the outbox's settings -----------------------------------------------------------
@attrs.frozen
class FlushSettings:
    """How a flush sends: credentials, TLS, media type and retry budget (the same for every
    file; each file has its own base URL), and the outbox folder."""

    auth: Auth | None = attrs.field(default=None, repr=False)
    media_type: str = DEFAULT_MEDIA_TYPE
    ca_bundle: str | None = None
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    allow_http: bool = False
    dry_run: bool = False
    outbox: Path = attrs.field(factory=lambda: default_outbox({}))
    #: the server the credentials belong to (required with them): only its files are sent
    base_url: str | None = None

    def secrets(self) -> list[str]:
        """The secret values held (for redaction)."""
        return redaction_secrets(self.auth)


def resolve_flush_settings(
    outbox: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    media_type: str | None = None,
    ca_bundle: str | None = None,
    retry_seconds: float | None = None,
    dry_run: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> FlushSettings:
    """Explicit values first, then ``ESS_*`` variables; ``ConfigurationError`` if malformed.

    Nothing per file: each outbox file names its own base URL. With credentials, the base
    URL of their server (*base_url*, else ``ESS_BASE_URL``) is required: they go nowhere else.
    """
    env = os.environ if env is None else env
    auth = auth_from_env(env, username=username, password=password, token=token)
    allow_http = parse_bool(
        env.get("ESS_CALLBACK_ALLOW_HTTP", ""),
        setting="allow http",
        variable="ESS_CALLBACK_ALLOW_HTTP",
    )
    server = None
    if auth is not None:
        raw_url = base_url if base_url is not None else (env.get("ESS_BASE_URL") or None)
        if not raw_url:
            raise ConfigurationError(
                "base URL is missing: with credentials set, flush sends only the statuses "
                "kept for their own server; set ESS_BASE_URL to it, e.g. "
                "https://ess.example.com (statuses for other servers stay in the outbox)"
            )
        server = parse_base_url(raw_url, allow_http=allow_http)
    raw_media = media_type if media_type is not None else (env.get("ESS_MEDIA_TYPE") or None)
    try:
        media = parse_media_type(raw_media) if raw_media else DEFAULT_MEDIA_TYPE
    except ConfigurationError as exc:
        raise without_option_hints(exc) from None  # flush has no --media-type
    bundle = ca_bundle if ca_bundle is not None else (env.get("ESS_CA_BUNDLE") or None)
    if bundle is not None:
        check_ca_bundle(
            bundle,
            variable="ESS_CA_BUNDLE" if ca_bundle is None else "the ca_bundle= argument",
            load=False,
        )
    if retry_seconds is None:
        raw = env.get("ESS_CALLBACK_RETRY_SECONDS")
        retry_seconds = (
            parse_seconds(
                raw,
                setting="retry budget",
                variable="ESS_CALLBACK_RETRY_SECONDS",
                allow_zero=True,
            )
            if raw
            else DEFAULT_RETRY_SECONDS
        )
    if dry_run is None:
        dry_run = parse_bool(
            env.get("ESS_CALLBACK_DRY_RUN", ""),
            setting="dry run",
            variable="ESS_CALLBACK_DRY_RUN",
        )
    if not dry_run:
        check_proxies(env)  # each entry names its own server: any scheme may be used
    return FlushSettings(
        auth=auth,
        media_type=media,
        ca_bundle=bundle,
        retry_seconds=float(retry_seconds),
        allow_http=allow_http,
        dry_run=dry_run,
        outbox=outbox_folder(outbox, env),
        base_url=server,
    )


def outbox_folder(
    outbox: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """The folder to flush: the argument, else ``ESS_CALLBACK_OUTBOX``, else the XDG default."""
    env = os.environ if env is None else env
    if outbox is not None and str(outbox) != "":
        return Path(outbox)
    if env.get("ESS_CALLBACK_OUTBOX"):
        return Path(env["ESS_CALLBACK_OUTBOX"])
    return default_outbox(env)


# -- wait: the watched API's settings -------------------------------------------------------
WATCH_HINT = (
    "set WATCH_USERNAME and WATCH_PASSWORD (or WATCH_PASSWORD_FILE), "
    "or WATCH_TOKEN (or WATCH_TOKEN_FILE), for the watched API"
)


@attrs.frozen
class WatchSettings:
    """How ``wait`` reads a watched API: its base URL, the credentials and what to set when
    they are refused, and (for ESS itself) the CA bundle."""

    base_url: str
    auth: Auth | None = attrs.field(default=None, repr=False)
    credential_hint: str = WATCH_HINT
    ca_bundle: str | None = None

    def secrets(self) -> list[str]:
        """The secret values held (for redaction)."""
        return redaction_secrets(self.auth)


def _checked_http_parts(url: str) -> UrlParts | None:
    """*url* split, or None when it cannot be split or holds credentials: the reader's own
    check then says what is wrong with it, without quoting what may be a password."""
    try:
        parts = split_url(url.strip())
    except ValueError:
        return None
    return None if parts.userinfo is not None else parts


def resolve_watch_settings(
    *,
    base_url: str | None,
    ess_fallback: bool,
    missing_url_hint: str,
    env: Mapping[str, str] | None = None,
) -> WatchSettings:
    """The watched API's settings: *base_url*, then ``WATCH_*`` credentials.

    With *ess_fallback* (the watched API is ESS) ``ESS_BASE_URL``, the ``ESS_*`` credentials
    and ``ESS_CA_BUNDLE`` serve too. A missing base URL is a ``ConfigurationError`` saying
    *missing_url_hint*; so is ``http://`` to a host that is not loopback, unless
    ``ESS_CALLBACK_ALLOW_HTTP=1``.
    """
    env = os.environ if env is None else env
    url = base_url or (env.get("ESS_BASE_URL") if ess_fallback else None)
    if not url:
        raise ConfigurationError(f"base URL is missing: {missing_url_hint}")
    allow_http = parse_bool(
        env.get("ESS_CALLBACK_ALLOW_HTTP", ""),
        setting="allow http",
        variable="ESS_CALLBACK_ALLOW_HTTP",
    )
    parts = _checked_http_parts(url)
    if parts and parts.scheme == "http" and not allow_http and not is_loopback(parts.host):
        source = "--base-url" if base_url else "ESS_BASE_URL"
        raise ConfigurationError(
            f"base URL: {url!r} uses http:// for a host that is not loopback, so credentials "
            f"would travel in clear; use https:// in {source} "
            "(or set ESS_CALLBACK_ALLOW_HTTP=1)"
        )
    check_proxies(env, [parts.scheme] if parts else ["https", "http"])
    auth = auth_from_env(env, prefix="WATCH")
    hint = WATCH_HINT
    bundle = None
    if ess_fallback:
        if auth is None:
            auth = auth_from_env(env)
            hint = "set ESS_USERNAME and ESS_PASSWORD(_FILE) or ESS_TOKEN(_FILE), or " + hint
        raw = env.get("ESS_CA_BUNDLE") or None
        bundle = check_ca_bundle(raw) if raw else None  # its error names the variable
    return WatchSettings(url, auth, hint, bundle)
