"""Base URLs: validated before any network, so that a typo is a ``ConfigurationError`` that
names the variable, not an error from deep inside the HTTP library at send time."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ._errors import ConfigurationError

#: one DNS label: letters, digits, hyphens (and underscores, which some internal names
#: carry and the HTTP stack accepts), not starting or ending with a hyphen
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: the ESS REST API's own path, which the client appends: a base URL must stop before it
_API_PATH = re.compile(r"/ess/rest/scheduler(?:/|$)", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_problem(netloc_host: str) -> str | None:
    """What is wrong with the host part of a URL (as in ``urlsplit().hostname``), or None.

    Valid: a DNS name (labels of 1-63 letters, digits, hyphens; an optional final dot;
    international names in their IDNA form or as Unicode), an IPv4 address, or an IPv6
    address (given in brackets).
    """
    host = netloc_host
    if ":" in host:  # only an IPv6 address has colons here (urlsplit removed the brackets)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "is not a valid IPv6 address"
        return None
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "is not a valid IPv4 address"
        return None
    name = host[:-1] if host.endswith(".") else host
    if not host.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return "is not a valid host name"
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return "is not a valid host name (empty label, space or character not allowed)"
    return None


def _without_userinfo(text: str) -> str:
    """*text* fit to quote in an error: anything before an ``@`` may be a password."""
    if "@" not in text:
        return text
    head, _, tail = text.rpartition("@")
    # Only a leading "scheme://" is kept: a "//" further on may be part of the password.
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", head)
    prefix = scheme.group(0) if scheme else ""
    return f"{prefix}***@{tail}"


def parse_base_url(
    value: str,
    *,
    allow_http: bool,
    variable: str = "ESS_BASE_URL",
    setting: str = "base URL",
    hint: str | None = None,
    credentials_hint: str = "use ESS_USERNAME/ESS_PASSWORD or ESS_TOKEN",
) -> str:
    """Validate a base URL and return it without a trailing slash.

    Scheme http or https, a valid host, an optional port (1-65535) and path prefix (which
    must not hold the API path ``/ess/rest/scheduler/...``); no credentials, query or
    fragment; ``http://`` only for a loopback host unless
    *allow_http*. Raises ``ConfigurationError`` naming *setting* and *variable* (the
    watched APIs' readers pass their own words).
    """
    text = value.strip()
    shown = repr(_without_userinfo(text))
    hint = hint or f"set {variable} (or --base-url) to e.g. https://ess.example.com"
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError(f"{setting}: {shown} is not a valid URL; {hint}") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"{setting}: credentials do not belong in {variable}; "
            "use ESS_USERNAME/ESS_PASSWORD or ESS_TOKEN"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{setting}: {shown} is not an http(s) URL; {hint}")
    if _CONTROL.search(text):
        # urlsplit quietly drops tabs and line breaks; the HTTP library would not.
        raise ConfigurationError(f"{setting}: {shown} contains a control character; {hint}")
    if "?" in text or "#" in text:  # even an empty query or fragment would break the path
        raise ConfigurationError(f"{setting}: {shown} must not have a query or fragment; {hint}")
    problem = host_problem(parts.hostname)
    if problem is not None:
        raise ConfigurationError(f"{setting}: the host of {shown} {problem}; {hint}")
    if port == 0:
        raise ConfigurationError(f"{setting}: {shown} has port 0; {hint}")
    api = _API_PATH.search(parts.path)
    if api is not None:
        # The API path would be appended twice and every call would miss (404), found only
        # once the job has run.
        base = text[: text.index(parts.path)] + parts.path[: api.start()]
        raise ConfigurationError(
            f"{setting}: {shown} already holds the API path /ess/rest/scheduler/...; set "
            f"{variable} to the server's base only, e.g. {_without_userinfo(base)!r}"
        )
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"{setting}: {shown} uses http:// for a host that is not loopback, so credentials "
            f"would travel in clear; use https:// (or set ESS_CALLBACK_ALLOW_HTTP=1)"
        )
    return text.rstrip("/")
