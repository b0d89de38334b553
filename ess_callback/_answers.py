"""What the scheduler answered: ``Retry-After``, RFC 7807 problem bodies, the typed error for
a non-2xx answer, and a short reason for a network failure."""

from __future__ import annotations

import datetime
import email.utils
import json
import time
import unicodedata
from typing import Any

from ._errors import DeliveryError, RejectedError, SchedulerUnavailableError, rejected_class

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
) -> DeliveryError:
    """The typed DeliveryError for a non-2xx answer.

    The message names *server* (``ESS``, or a watched API), says after a 401 what to set
    (*credential_hint*), after a 403 who may read (*forbidden_hint*, when given), and after a
    redirect how to reach the final address (*redirect_fix*).
    """
    problem = parse_problem(body)
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
        cls = RejectedError
        text += f"; the scheduler redirected the call: {redirect_fix}"
    elif status >= 500 or status in RETRY_STATUSES:
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
