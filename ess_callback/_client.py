"""``SchedulerClient``: the HTTP sender of executionStatus callbacks, with retries."""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from . import _recording
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    DeliveryError,
    RejectedError,
    SchedulerUnavailableError,
    rejected_class,
)
from ._message import DEFAULT_MAX_MESSAGE_BYTES, truncate_message
from ._model import Callback, Outcome
from ._settings import (
    DEFAULT_MEDIA_TYPE,
    DEFAULT_RETRY_SECONDS,
    BasicAuth,
    BearerAuth,
    parse_base_url,
    parse_media_type,
    parse_request_id,
)
from ._status import Status

if TYPE_CHECKING:
    import requests

log = logging.getLogger("ess_callback")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_SINGLE_WAIT = 30.0
STATUS_PATH = "/ess/rest/scheduler/v1/requests/{request_id}/executionStatus"
CREDENTIAL_HINT = (
    "set ESS_USERNAME and ESS_PASSWORD (or ESS_PASSWORD_FILE) for Basic auth, "
    "or ESS_TOKEN (or ESS_TOKEN_FILE) for a bearer token"
)


@attrs.frozen
class RetryPolicy:
    """How hard to try: attempts, total time budget, per-attempt timeout and backoff.

    Written by hand rather than with ``urllib3.util.Retry``: that class has no total time
    budget, does not cap ``Retry-After``, and does not report the attempt count on success,
    all three of which the delivery guarantees rest on.
    """

    attempts: int = 8
    budget: float = DEFAULT_RETRY_SECONDS
    timeout: float = 10.0
    backoff: float = 0.5
    max_wait: float = MAX_SINGLE_WAIT
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)

    def backoff_wait(self, failed_attempts: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped at ``max_wait``."""
        base = min(self.max_wait, self.backoff * 2.0 ** (failed_attempts - 1))
        return base / 2 + random.uniform(0, base / 2)


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


def parse_problem(body: bytes, content_type: str = "") -> dict[str, Any]:
    """Pick the RFC 7807 ``SimpleExceptionDetail`` fields out of an error body, if present."""
    try:
        data = json.loads(body.decode("utf-8", "replace")) if body else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = " ".join(body.decode("utf-8", "replace").split())
        return {"excerpt": text[:200] + ("..." if len(text) > 200 else "")} if text else {}
    out: dict[str, Any] = {}
    for key in ("type", "title", "detail", "errorCode", "status"):
        if data.get(key) is not None:
            out[key] = str(data[key])
    return out


def error_for_response(status: int, reason: str, body: bytes, attempts: int) -> DeliveryError:
    """The typed DeliveryError for a non-2xx answer."""
    problem = parse_problem(body)
    code = problem.get("errorCode")
    title = problem.get("title")
    detail = problem.get("detail")
    text = f"ESS answered {status} {reason}".rstrip()
    if code:
        text += f" [{code}]"
    said = ": ".join(p for p in (title, detail) if p) or problem.get("excerpt")
    if said:
        text += f": {said}"
    if status == 401:
        text += f"; {CREDENTIAL_HINT}"
    cls: type[DeliveryError]
    if 300 <= status < 400:
        cls = RejectedError
        text += "; the scheduler redirected the call: set ESS_BASE_URL to the final address"
    elif status >= 500 or status in RETRY_STATUSES:
        cls = SchedulerUnavailableError
    else:
        cls = rejected_class(status)
    return cls(
        text, http_status=status, error_code=code, title=title, detail=detail, attempts=attempts
    )


def _basic_auth(auth: BasicAuth) -> Any:
    """HTTP Basic that never crashes on a password outside Latin-1.

    requests encodes Basic credentials as Latin-1 and raises UnicodeEncodeError for
    anything else. Latin-1 is kept when it fits (servers that predate RFC 7617 expect it);
    otherwise both parts go as UTF-8, the one charset RFC 7617 defines.
    """
    import requests.auth

    try:
        user, pwd = auth.username.encode("latin-1"), auth.password.encode("latin-1")
    except UnicodeEncodeError:
        user, pwd = auth.username.encode("utf-8"), auth.password.encode("utf-8")
    return requests.auth.HTTPBasicAuth(user, pwd)


class _NoAuth:
    """A do-nothing auth: being set at all keeps requests from reading ``~/.netrc``."""

    def __call__(self, request: Any) -> Any:
        return request


AuthArg = tuple[str, str] | BasicAuth | BearerAuth | None


class SchedulerClient:
    """Posts executionStatus callbacks to one ESS server over one ``requests.Session``.

    ``auth`` is a ``(username, password)`` tuple for Basic, ``BearerAuth(token)``, or None.
    ``retry`` is a :class:`RetryPolicy` (8 attempts, 60 s budget, 10 s per attempt by default).
    While ``ess_callback.testing.record_callbacks()`` is active, calls are recorded, not sent.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthArg = None,
        media_type: str = DEFAULT_MEDIA_TYPE,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        ca_bundle: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.base_url = parse_base_url(base_url, allow_http=True)
        self.media_type = parse_media_type(media_type)
        policy = retry or RetryPolicy()
        if timeout is not None:
            policy = attrs.evolve(policy, timeout=timeout)
        self.retry = policy
        if ca_bundle is not None and not os.path.exists(ca_bundle):
            # requests would only fail at send time, with an OSError and no setting named.
            raise ConfigurationError(
                f"CA bundle: {ca_bundle} does not exist; set ESS_CA_BUNDLE to a PEM file or folder"
            )
        self.ca_bundle = ca_bundle
        self.max_message_bytes = max_message_bytes
        if isinstance(auth, tuple):
            auth = BasicAuth(*auth)
        self._auth = auth
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        kind = type(self._auth).__name__ if self._auth else "no auth"
        return f"SchedulerClient({self.base_url!r}, auth={kind})"

    @property
    def session(self) -> requests.Session:
        """The one ``requests.Session`` (created on first use, so importing stays cheap)."""
        if self._session is None:
            import requests

            from . import __version__

            session = requests.Session()
            session.headers.update(
                {
                    "Accept": "application/json",
                    "User-Agent": f"ess-callback/{__version__} python-requests/"
                    f"{requests.__version__}",
                }
            )
            if isinstance(self._auth, BasicAuth):
                session.auth = _basic_auth(self._auth)
            elif isinstance(self._auth, BearerAuth):
                session.auth = self._auth
            else:
                session.auth = _NoAuth()
            self._session = session
        return self._session

    def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> SchedulerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def status_url(self, request_id: int) -> str:
        return self.base_url + STATUS_PATH.format(request_id=request_id)

    def post_status(
        self,
        request_id: int | str,
        request_handle: str,
        status: Status | str,
        message: str | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> Outcome:
        """POST one status; return the ``Outcome`` or raise a ``DeliveryError`` subclass.

        Retries connection errors, timeouts, 408, 429, 500, 502, 503 and 504 within the
        retry policy; never other 4xx.
        """
        status = Status.parse(status)
        if message is not None:
            message = truncate_message(message, self.max_message_bytes)
        recorder = _recording.active_recorder()
        if recorder is not None:
            rid = parse_request_id(request_id) if request_id is not None else None
            recorder.append(Callback(rid, request_handle, status, message))
            return Outcome(status, message, delivered=True, attempts=0)
        rid = parse_request_id(request_id)
        if not request_handle:
            raise ConfigurationError(
                "request handle is missing: set ESS_REQUEST_HANDLE (or --request-handle)"
            )
        callback = Callback(rid, request_handle, status, message)
        attempts = self._send_with_retries(callback, retry or self.retry)
        return Outcome(status, message, delivered=True, attempts=attempts)

    def _send_with_retries(self, callback: Callback, policy: RetryPolicy) -> int:
        import requests

        url = self.status_url(callback.request_id or 0)
        data = json.dumps(callback.body()).encode("utf-8")
        headers = {"Content-Type": self.media_type}
        verify: bool | str = self.ca_bundle or True
        deadline = policy.clock() + policy.budget
        attempt = 0
        while True:
            attempt += 1
            timeout = policy.timeout
            if attempt > 1:
                timeout = max(0.5, min(timeout, deadline - policy.clock()))
            retry_after: float | None = None
            try:
                response = self.session.post(
                    url,
                    data=data,
                    headers=headers,
                    timeout=timeout,
                    verify=verify,
                    allow_redirects=False,
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                # the connection broke while the answer was read: as unknown as a reset
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                error: DeliveryError = SchedulerUnavailableError(
                    f"cannot reach the scheduler at {self.base_url}: {_network_reason(exc)}",
                    attempts=attempt,
                )
            except requests.RequestException as exc:
                raise DeliveryError(
                    f"cannot send to {self.base_url}: {type(exc).__name__}: {exc}",
                    attempts=attempt,
                ) from None
            else:
                if 200 <= response.status_code < 300:
                    response.close()
                    if attempt > 1:
                        log.info("delivered %s after %d attempts", callback.status, attempt)
                    return attempt
                error = error_for_response(
                    response.status_code, response.reason or "", response.content, attempt
                )
                if response.status_code not in RETRY_STATUSES:
                    raise error
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            remaining = deadline - policy.clock()
            if attempt >= policy.attempts or remaining <= 0.5:
                raise error
            wait = policy.backoff_wait(attempt) if retry_after is None else retry_after
            wait = min(wait, policy.max_wait, remaining - 0.5)
            log.info(
                "%s not delivered (attempt %d of %d): %s; retrying in %.1f s",
                callback.status,
                attempt,
                policy.attempts,
                error,
                wait,
            )
            policy.sleep(max(0.0, wait))


def _network_reason(exc: BaseException) -> str:
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


def is_spoolable(error: BaseException) -> bool:
    """True when a final callback that failed this way belongs in the outbox."""
    return isinstance(error, DeliveryError) and (
        error.retryable or isinstance(error, AuthenticationError)
    )
