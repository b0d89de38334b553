"""Reading a JSON answer over HTTP: one GET, typed errors, the body decoded.

Shared by the ESS request-state read (``_request_state.py``) and the status readers of
``ess_callback.watch``. The GET never follows redirects (a token in a custom header would
follow them to another host), and HTTP errors map to the typed errors of
``ess_callback._errors`` through the same ``error_for_response`` the callback client uses.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._answers import error_for_response, network_reason
from ._errors import EXIT_TEMPFAIL, DeliveryError, EssCallbackError, SchedulerUnavailableError
from ._settings import BasicAuth, BearerAuth

if TYPE_CHECKING:
    import requests

    from ._transport import Answer


class MalformedAnswerError(EssCallbackError):
    """The API answered 2xx with a body that is not a job status we can read."""

    exit_code = EXIT_TEMPFAIL


class HostNotFoundError(SchedulerUnavailableError):
    """The watched API's host name cannot be resolved. On the first poll it ends a wait at
    once (a typo in the URL will not fix itself); later it is as transient as any failure."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message, attempts=1)
        self.host = host


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    api: str,
    base_url: str,
    timeout: float,
    ca_bundle: str | None,
    redact: Callable[[str], str] = str,
    **kwargs: Any,
) -> Answer:
    """One exchange with *api* (at *base_url*) within *timeout* seconds, its body capped
    (``_transport.exchange``); a typed error, worded by its real cause and passed through
    *redact*, when no answer came."""
    import requests

    from ._answers import proxy_text, tls_text
    from ._transport import certificate_names, exchange

    try:
        return exchange(session, method, url, seconds=timeout, verify=ca_bundle or True, **kwargs)
    except requests.exceptions.SSLError as exc:
        text = tls_text(exc, base_url, ca_bundle, lambda: certificate_names(base_url, ca_bundle))
        text = text.replace("the scheduler", api).replace("ESS_BASE_URL", "the URL")
        raise SchedulerUnavailableError(redact(text), attempts=1) from None
    except requests.exceptions.ProxyError as exc:
        text = proxy_text(exc, url).replace("the scheduler", api)
        raise SchedulerUnavailableError(redact(text), attempts=1) from None
    except requests.ConnectionError as exc:
        if name_not_resolved(exc):
            host = urlsplit(url).hostname or url
            raise HostNotFoundError(
                f"cannot resolve {host}: no such host for {api} at {base_url}",
                host=host,
            ) from None
        raise SchedulerUnavailableError(
            f"cannot reach {api} at {base_url}: {redact(network_reason(exc))}",
            attempts=1,
        ) from None
    except requests.Timeout as exc:
        raise SchedulerUnavailableError(
            f"cannot reach {api} at {base_url}: {network_reason(exc)}",
            attempts=1,
        ) from None
    except requests.RequestException as exc:
        raise SchedulerUnavailableError(
            f"cannot read from {api} at {base_url}: {type(exc).__name__}",
            attempts=1,
        ) from None
    except OSError as exc:
        # requests raises a bare OSError for an unusable CA bundle (REQUESTS_CA_BUNDLE):
        # not transient, so not SchedulerUnavailableError, and never a traceback.
        raise EssCallbackError(
            f"cannot read from {api} at {base_url}: {exc.strerror or exc}"
        ) from None


def get_json(
    session: requests.Session,
    url: str,
    *,
    api: str,
    base_url: str,
    timeout: float,
    ca_bundle: str | None,
    credential_hint: str,
    redact: Callable[[str], str] = str,
) -> Any:
    """GET *url* with *session* and decode the JSON answer (at most a few KB of it); *api*
    (at *base_url*) names the server in the messages of the typed errors raised when it
    cannot be read, and *redact* hides the credentials in what a server quotes back."""
    response = request(
        session,
        "GET",
        url,
        api=api,
        base_url=base_url,
        timeout=timeout,
        ca_bundle=ca_bundle,
        redact=redact,
    )
    if not 200 <= response.status_code < 300:
        raise answer_error(response, api=api, credential_hint=credential_hint, redact=redact)
    try:
        return json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        excerpt = " ".join(response.body.decode("utf-8", "replace").split())[:120]
        raise MalformedAnswerError(
            f"{api} at {base_url} answered {response.status_code} with a body "
            f"that is not JSON: {redact(excerpt)!r}"
        ) from None


def answer_error(
    response: Answer,
    *,
    api: str,
    credential_hint: str,
    redact: Callable[[str], str] = str,
) -> DeliveryError:
    """The typed error for a non-2xx answer, worded for *api*."""
    return error_for_response(
        response.status_code,
        response.reason,
        response.body,
        attempts=1,
        server=api,
        credential_hint=credential_hint,
        forbidden_hint=credential_hint,
        redirect_fix="use the final address",
        location=response.headers.get("Location"),
        redact=redact,
    )


def malformed(api: str, why: str, body: Any) -> MalformedAnswerError:
    """The error for a 2xx body without a job status: *why*, and the start of the body."""
    shown = json.dumps(body)[:160] if body is not None else "nothing"
    return MalformedAnswerError(f"{api} answered without a job status ({why}): {shown}")


#: how resolvers word "no such name" (glibc, musl, macOS, Windows)
_NOT_RESOLVED = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname provided",
    "no address associated with hostname",
    "getaddrinfo failed",
    "failed to resolve",
)


def name_not_resolved(exc: BaseException) -> bool:
    """True when a connection error comes from a failed name look-up."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, socket.gaierror) or type(item).__name__ == "NameResolutionError":
            return True
        if isinstance(item, BaseException):
            stack.extend(a for a in item.args if isinstance(a, BaseException))
            stack.extend(x for x in (item.__cause__, item.__context__) if x is not None)
            reason = getattr(item, "reason", None)
            if isinstance(reason, BaseException):
                stack.append(reason)
    text = str(exc).lower()
    return any(marker in text for marker in _NOT_RESOLVED)


def auth_object(auth: Any) -> Any:
    """Accept a ``(username, password)`` tuple, ``BasicAuth`` or ``BearerAuth``."""
    if isinstance(auth, tuple):
        auth = BasicAuth(*auth)
    if isinstance(auth, BasicAuth):
        return auth.as_tuple()
    if auth is None or isinstance(auth, BearerAuth) or callable(auth):
        return auth
    raise TypeError(f"auth must be (username, password), BasicAuth or BearerAuth, not {auth!r}")
