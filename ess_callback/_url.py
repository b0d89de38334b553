"""Base URLs: validated before any network, so that a typo is a ``ConfigurationError`` that
names the variable, not an error from deep inside the HTTP library at send time."""

from __future__ import annotations

import collections
import ipaddress
import re

from ._errors import ConfigurationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import NamedTuple

#: one DNS label: letters, digits, hyphens (and underscores, which some internal names
#: carry and the HTTP stack accepts), not starting or ending with a hyphen
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: the ESS REST API's own path, which the client appends: a base URL must stop before it
_API_PATH = re.compile(r"/ess/rest/scheduler(?:/|$)", re.IGNORECASE)
#: RFC 3986 appendix B: scheme, authority, path, query, fragment (each group None when absent)
_URI = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.DOTALL)
_PORT = re.compile(r"[0-9]{1,5}")


if TYPE_CHECKING:

    class UrlParts(NamedTuple):
        """A URL split as RFC 3986 says (see ``split_url``)."""

        scheme: str  # lower case; "" when absent
        userinfo: str | None  # what comes before an "@" in the authority
        host: str  # without the brackets of an IPv6 address
        bracketed: bool
        port: int | None  # None when absent or empty
        path: str
        has_query_or_fragment: bool

else:  # the same fields, without loading typing
    UrlParts = collections.namedtuple(
        "UrlParts", "scheme userinfo host bracketed port path has_query_or_fragment"
    )
    UrlParts.__doc__ = "A URL split as RFC 3986 says (see ``split_url``)."


def split_url(text: str) -> UrlParts:
    """Split *text* into the parts a base URL is checked on; ``ValueError`` when its
    authority cannot be split (a bracket left open, text after the closing bracket, a
    port that is not 0-65535 in ASCII digits, an IPv6 address without brackets).

    Done here rather than with ``urllib.parse.urlsplit``: how that treats a bracketed
    host changed in Python 3.11.4 (earlier versions take ``https://[x]`` for host ``x``),
    and on every version it lets text after the closing bracket pass. Validation must
    not depend on the interpreter.
    """
    match = _URI.fullmatch(text)
    assert match is not None  # every group is optional: any text matches
    scheme, authority, path, query, fragment = match.groups()
    userinfo, at, hostport = (authority or "").rpartition("@")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise ValueError("a bracket is left open")
        host, rest = hostport[1:close], hostport[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("text after the closing bracket")
        port = rest[1:]
    else:
        if "[" in hostport or "]" in hostport:
            raise ValueError("a bracket outside an IPv6 host")
        host, _, port = hostport.partition(":")
        if ":" in port:
            raise ValueError("an IPv6 address must be in brackets")
    if port and not (_PORT.fullmatch(port) and int(port) <= 65535):
        raise ValueError("the port is not a number from 0 to 65535")
    return UrlParts(
        scheme=(scheme or "").lower(),
        userinfo=userinfo if at else None,
        host=host,
        bracketed=hostport.startswith("["),
        port=int(port) if port else None,
        path=path,
        has_query_or_fragment=query is not None or fragment is not None,
    )


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_problem(host: str, *, bracketed: bool = False) -> str | None:
    """What is wrong with the host part of a URL (without brackets), or None.

    Valid: a DNS name (labels of 1-63 letters, digits, hyphens; an optional final dot;
    international names in their IDNA form or as Unicode), an IPv4 address, or an IPv6
    address (given in brackets, and only that in brackets).
    """
    if bracketed or ":" in host:
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
    allow_http_hint: str = "or set ESS_CALLBACK_ALLOW_HTTP=1",
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
        parts = split_url(text)
    except ValueError:
        raise ConfigurationError(f"{setting}: {shown} is not a valid URL; {hint}") from None
    if parts.userinfo is not None:
        raise ConfigurationError(
            f"{setting}: credentials do not belong in {variable}; {credentials_hint}"
        )
    if parts.scheme not in ("http", "https") or not parts.host:
        raise ConfigurationError(f"{setting}: {shown} is not an http(s) URL; {hint}")
    if _CONTROL.search(text):
        # The HTTP library would refuse them, or (urlsplit) quietly drop tabs and line breaks.
        raise ConfigurationError(f"{setting}: {shown} contains a control character; {hint}")
    if parts.has_query_or_fragment:  # even an empty one would break the path
        raise ConfigurationError(f"{setting}: {shown} must not have a query or fragment; {hint}")
    problem = host_problem(parts.host, bracketed=parts.bracketed)
    if problem is not None:
        raise ConfigurationError(f"{setting}: the host of {shown} {problem}; {hint}")
    if parts.port == 0:
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
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.host):
        raise ConfigurationError(
            f"{setting}: {shown} uses http:// for a host that is not loopback, so credentials "
            f"would travel in clear; use https:// in {variable} ({allow_http_hint} only on a "
            "trusted network)"
        )
    return text.rstrip("/")
