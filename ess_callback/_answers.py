"""What the scheduler answered: ``Retry-After``, RFC 7807 problem bodies, the typed error for
a non-2xx answer, and a short reason for a network failure."""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import time
import unicodedata
from collections.abc import Callable
from typing import Any

from ._errors import (
    DeliveryError,
    RedirectedError,
    SchedulerUnavailableError,
    rejected_class,
)

EXCERPT_CHARS = 200  # the most of a server's own words quoted in one error message
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CREDENTIAL_HINT = (
    "set ESS_USERNAME and ESS_PASSWORD (or ESS_PASSWORD_FILE) for Basic auth, "
    "or ESS_TOKEN (or ESS_TOKEN_FILE) for a bearer token"
)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (seconds or an HTTP date) into seconds from now.

    None when the header is absent or malformed (the caller then backs off as usual).
    """
    if not value:
        return None
    value = value.strip()
    # RFC 9110: delay-seconds is 1*DIGIT (as urllib3 reads it); "-5", "1e3" or "nan" are
    # malformed, not "retry at once".
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # Every HTTP-date is GMT, also the asctime form that carries no zone.
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def quote_text(text: str, limit: int = EXCERPT_CHARS) -> str:
    """*text* safe to quote in one line of an error: whitespace runs become one space,
    other control characters (an ANSI escape, a bell) are shown escaped (``\\x1b``), and
    more than *limit* characters are cut with an ellipsis. A server's words reach the
    terminal, logs and the outbox's ``last_error``: they must not colour, split or flood them.
    """
    text = " ".join(text.split())
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        text = "".join(
            ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) == "Cc" else ch
            for ch in text
        )
    return text[:limit] + ("..." if len(text) > limit else "")


def parse_problem(body: bytes, content_type: str = "") -> dict[str, Any]:
    """Pick the RFC 7807 ``SimpleExceptionDetail`` fields out of an error body, if present
    (Huawei Cloud's ``error_code``/``error_msg`` and a bare ``message`` count as
    ``errorCode`` and ``detail``).

    Every value is quoted with :func:`quote_text` (one line, no control characters, capped).
    """
    try:
        data = json.loads(body.decode("utf-8", "replace")) if body else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = quote_text(body.decode("utf-8", "replace"))
        return {"excerpt": text} if text else {}
    out: dict[str, Any] = {}
    for key in ("type", "title", "detail", "errorCode", "status"):
        if data.get(key) is not None:
            out[key] = quote_text(str(data[key]))
    # Huawei Cloud answers {"error_code", "error_msg"}; others {"message": ...}: the same
    # facts under other names.
    for key, name in (("error_code", "errorCode"), ("error_msg", "detail"), ("message", "detail")):
        value = data.get(key)
        if not out.get(name) and isinstance(value, str | int) and str(value).strip():
            out[name] = quote_text(str(value))
    if not any(out.get(key) for key in ("title", "detail", "errorCode")):
        # Some other JSON shape ({"message": ...}): what it says is still worth quoting.
        out["excerpt"] = quote_text(body.decode("utf-8", "replace"))
    return out


def error_for_response(
    status: int,
    reason: str,
    body: bytes,
    attempts: int,
    *,
    server: str = "ESS",
    credential_hint: str = CREDENTIAL_HINT,
    forbidden_hint: str | None = None,
    redirect_fix: str = "set ESS_BASE_URL to the final address",
    location: str | None = None,
    redact: Callable[[str], str] | None = None,
) -> DeliveryError:
    """The typed DeliveryError for a non-2xx answer.

    The message names *server* (``ESS``, or a watched API), says after a 401 what to set
    (*credential_hint*), after a 403 who may read (*forbidden_hint*, when given), and after a
    redirect where it pointed (*location*, the ``Location`` header) and how to reach the
    final address (*redirect_fix*). Every word of the server's own passes *redact* first: a
    gateway may quote the request's ``Authorization`` header back.
    """
    hide = redact or (lambda text: text)
    problem = {key: hide(value) for key, value in parse_problem(body).items()}
    reason = hide(reason)
    code = problem.get("errorCode")
    title = problem.get("title")
    detail = problem.get("detail")
    text = f"{server} answered {status} {quote_text(reason)}".rstrip()
    if code:
        text += f" [{code}]"
    said = ": ".join(p for p in (title, detail) if p) or problem.get("excerpt")
    if said:
        text += f": {said}"
    if status == 401:
        text += f"; {credential_hint}"
    if status == 403 and forbidden_hint:  # valid credentials, but not for this one
        text += f"; the credentials may not read it: {forbidden_hint}"
    cls: type[DeliveryError]
    if 300 <= status < 400:
        where = quote_text(hide(location)) if location else None
        text += f"; it redirects to {where or '(no Location given)'}, which is never followed"
        text += f": {redirect_fix}"
        return RedirectedError(
            text,
            location=where,
            http_status=status,
            error_code=code,
            title=title,
            detail=detail,
            attempts=attempts,
        )
    if status >= 500 or status in RETRY_STATUSES:
        cls = SchedulerUnavailableError
    else:
        cls = rejected_class(status)
    return cls(
        text, http_status=status, error_code=code, title=title, detail=detail, attempts=attempts
    )


def network_reason(exc: BaseException) -> str:
    """A short reason for a network failure, without requests' nested repr noise."""
    import requests

    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    for marker in (
        "Cannot connect to proxy",
        "Tunnel connection failed",
        "Connection refused",
        "Connection reset",
        "Name or service not known",
        "Temporary failure in name resolution",
        "Remote end closed connection",
        "certificate verify failed",
        "No route to host",
    ):
        if marker in text:
            return marker.lower()
    return text if len(text) < 200 else text[:200] + "..."


#: the verification failures that mean "this CA is not trusted" (a CA bundle can fix them)
_UNTRUSTED = (
    "unable to get local issuer certificate",
    "self signed certificate",
    "self-signed certificate",
    "unable to get issuer certificate",
    "unable to verify the first certificate",
)


def tls_text(
    exc: BaseException,
    base_url: str,
    ca_bundle: str | None,
    names_for: Callable[[], list[str]] | None = None,
) -> str:
    """One line for a TLS failure that names its real cause: a CA bundle is named as the way
    out only when the certificate's issuer is not trusted (not for an expired certificate or
    one issued for another host). *names_for* gives the names the certificate is valid for,
    to say so after a hostname mismatch."""
    from urllib.parse import urlsplit

    text = str(exc)
    found = re.search(r"certificate verify failed: (.+?)(?: \(_ssl\.c:\d+\)|['\")]*$)", text)
    host = urlsplit(base_url).hostname or base_url
    where = f"cannot reach the scheduler at {base_url}"
    reason = found.group(1).strip().rstrip(".") if found else ""
    lowered = reason.lower()
    # "Hostname mismatch" from ssl; "hostname 'x' doesn't match 'y'" from urllib3 1.26,
    # which checks the name itself
    if "mismatch" in lowered or "doesn't match" in text:
        valid = names_for() if names_for is not None else []
        names = f" (it is valid for {', '.join(valid[:5])} only)" if valid else ""
        return (
            f"{where}: certificate verify failed: the certificate is not valid for "
            f"host {host}{names}; use the host name the certificate was issued for in "
            "ESS_BASE_URL, or have the certificate reissued"
        )
    if found is None and "CERTIFICATE_VERIFY_FAILED" not in text:
        if plain_http_answer(text):  # not a certificate matter: ESS_CA_BUNDLE cannot help
            return f"{where}: TLS handshake failed; {plain_http_fix(base_url)}"
        fix = "check the server's TLS set-up and ESS_CA_BUNDLE (or REQUESTS_CA_BUNDLE)"
        return f"{where}: TLS handshake failed: {network_reason(exc)}; {fix}"
    if "expired" in lowered or "not yet valid" in lowered:
        return (
            f"{where}: certificate verify failed: {reason}; the scheduler's certificate must "
            "be renewed (or the clock of this host set right)"
        )
    reason = "certificate verify failed" + (f": {reason}" if reason else "")
    if ca_bundle and any(marker in lowered for marker in _UNTRUSTED):
        fix = (
            f"ESS_CA_BUNDLE ({ca_bundle}) does not hold the CA that signed the scheduler's "
            "certificate; set it to the right PEM file"
        )
    elif ca_bundle:
        fix = f"check the scheduler's certificate (ESS_CA_BUNDLE is {ca_bundle})"
    else:
        fix = (
            "if the scheduler's certificate comes from a private CA, set ESS_CA_BUNDLE to "
            "that CA's PEM file"
        )
    return f"{where}: {reason}; {fix}"


def proxy_text(exc: BaseException, base_url: str) -> str:
    """One line for a proxy that failed: it names the proxy (never its credentials)."""
    import requests.utils

    proxy = requests.utils.select_proxy(base_url, requests.utils.get_environ_proxies(base_url))
    shown = "the proxy"
    if proxy:
        parts = urlsplit_safe(proxy)
        shown = f"the proxy {parts}" if parts else shown
    return (
        f"cannot reach the scheduler at {base_url} through {shown}: {network_reason(exc)}; "
        "check HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (and NO_PROXY)"
    )


def urlsplit_safe(url: str) -> str | None:
    """*url* as ``scheme://host:port``, without user or password; None when malformed."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


#: how OpenSSL words a TLS handshake answered in plain HTTP (1.1: wrong version number;
#: 3.x: record layer failure, packet length too long; some builds: http request)
_PLAIN_HTTP_MARKERS = (
    "wrong version number",
    "wrong_version_number",
    "record layer failure",
    "record_layer_failure",
    "packet length too long",
    "http request",
    "unknown protocol",
)


def plain_http_answer(exc: BaseException | str) -> bool:
    """True when a TLS failure means the server answered in plain HTTP: the fix is the
    scheme of the URL (``http://``), not a CA bundle."""
    text = str(exc).lower()
    return any(marker in text for marker in _PLAIN_HTTP_MARKERS)


def plain_http_fix(base_url: str) -> str:
    """What to do when *base_url* (https://) reached a server that speaks plain HTTP."""
    plain = "http://" + base_url.split("://", 1)[-1]
    return (
        f"the server answers in plain HTTP, not TLS: the URL's scheme is wrong; use {plain} "
        "in ESS_BASE_URL (the right port for https, if the server has one)"
    )
