"""``SchedulerClient``: the HTTP sender of executionStatus callbacks, with retries."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from . import _recording
from ._answers import CREDENTIAL_HINT as CREDENTIAL_HINT
from ._answers import (
    RETRY_STATUSES,
    network_reason,
    proxy_text,
    tls_text,
)
from ._answers import error_for_response as error_for_response
from ._answers import parse_problem as parse_problem
from ._answers import retry_after_seconds as retry_after_seconds
from ._checks import (
    DEFAULT_MEDIA_TYPE,
    check_ca_bundle,
    parse_media_type,
    parse_request_id,
)
from ._credentials import auth_secrets, redaction_secrets
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    DeliveryError,
    DeliveryInterrupted,
    RedirectedError,
    SchedulerUnavailableError,
)
from ._message import DEFAULT_MAX_MESSAGE_BYTES, Redactor, signal_name, truncate_message
from ._model import Callback, Outcome
from ._retry import MAX_SINGLE_WAIT as MAX_SINGLE_WAIT
from ._retry import RetryPolicy as RetryPolicy
from ._settings import BasicAuth, BearerAuth, parse_base_url
from ._status import Status
from ._transport import Answer, certificate_names, exchange, mount_watched

if TYPE_CHECKING:
    import requests

log = logging.getLogger("ess_callback")

STATUS_PATH = "/ess/rest/scheduler/v1/requests/{request_id}/executionStatus"
#: the request states a final status leads to (docs/reference/retries.md): a retried final status
#: refused with 400 or 409 was delivered after all when the request already stands there
LEADS_TO: dict[Status, frozenset[str]] = {
    Status.SUCCESS: frozenset({"SUCCEEDED"}),
    Status.WARNING: frozenset({"WARNING"}),
    Status.ERROR: frozenset({"ERROR", "ERROR_AUTO_RETRY", "ERROR_MANUAL_RECOVERY"}),
    Status.BUSINESS_ERROR: frozenset({"ERROR", "ERROR_AUTO_RETRY", "ERROR_MANUAL_RECOVERY"}),
    Status.CANCEL: frozenset({"CANCELLED"}),
    Status.PAUSE: frozenset({"PAUSED"}),
}
#: the refusals a status that already arrived may get when it is sent again
REPEAT_REFUSALS = frozenset({400, 409})


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


def new_session(auth: Any = None, headers: Mapping[str, str] | None = None) -> requests.Session:
    """A ``requests.Session`` as every HTTP client here uses it: JSON ``Accept``, our
    ``User-Agent``, *headers*, and *auth* (or a do-nothing one: an auth being set at all keeps
    requests from reading ``~/.netrc``)."""
    import requests

    from . import __version__

    session = requests.Session()
    session.headers.update(
        {
            "Accept": "application/json",
            "User-Agent": f"ess-callback/{__version__} python-requests/{requests.__version__}",
            **(headers or {}),
        }
    )
    session.auth = auth if auth is not None else _NoAuth()
    mount_watched(session)
    return session


class _NoAuth:
    """A do-nothing auth: being set at all keeps requests from reading ``~/.netrc``."""

    def __call__(self, request: Any) -> Any:
        return request


AuthArg = tuple[str, str] | BasicAuth | BearerAuth | None


def _check_auth(auth: object) -> BasicAuth | BearerAuth | None:
    """*auth* as BasicAuth/BearerAuth/None; a TypeError now rather than at the first POST.

    The message names the type only: a mistaken value may well be the secret itself.
    """
    if auth is None or isinstance(auth, BasicAuth | BearerAuth):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(p, str) for p in auth):
        return BasicAuth(auth[0], auth[1])
    raise TypeError(
        f"auth must be a (username, password) tuple of str, BasicAuth, BearerAuth(token) "
        f"or None, not {type(auth).__name__}"
    )


class SchedulerClient:
    """Posts executionStatus callbacks to one ESS server over one ``requests.Session``.

    ``auth`` is a ``(username, password)`` tuple for Basic, ``BearerAuth(token)``, or None.
    ``retry`` is a ``RetryPolicy`` of ``ess_callback._retry`` (8 attempts, 60 s budget, 10 s per
    attempt by default).
    ``http://`` is refused for a host that is not loopback unless ``allow_http=True``.
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
        allow_http: bool = False,
    ) -> None:
        # http:// to a host that is not loopback would carry the credentials in clear.
        self.base_url = parse_base_url(
            base_url,
            allow_http=allow_http,
            # In Python the switch is the argument: the variable is read by resolve_settings.
            allow_http_hint="or pass allow_http=True",
        )
        self.allow_http = allow_http
        self.media_type = parse_media_type(media_type)
        policy = retry or RetryPolicy()
        if timeout is not None:
            policy = attrs.evolve(policy, timeout=timeout)
        self.retry = policy
        if ca_bundle is not None:
            check_ca_bundle(ca_bundle, load=False)
        self.ca_bundle = ca_bundle
        self.max_message_bytes = max_message_bytes
        self._auth = _check_auth(auth)
        #: hides the credentials in whatever a server (or a proxy) quotes back
        self._redact = Redactor(redaction_secrets(self._auth))
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        kind = type(self._auth).__name__ if self._auth else "no auth"
        return f"SchedulerClient({self.base_url!r}, auth={kind})"

    def secrets(self) -> list[str]:
        """The secret values of this client's credentials (for redaction)."""
        return auth_secrets(self._auth)

    @property
    def session(self) -> requests.Session:
        """The one ``requests.Session`` (created on first use, so importing stays cheap)."""
        if self._session is None:
            auth: Any = self._auth
            if isinstance(auth, BasicAuth):
                auth = _basic_auth(auth)
            self._session = new_session(auth)
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
        sent_before: bool = False,
    ) -> Outcome:
        """POST one status; return the ``Outcome`` or raise a ``DeliveryError`` subclass.

        Retries connection errors, timeouts, 408, 429, 500, 502, 503 and 504 within the
        retry policy; never other 4xx. A final status sent more than once (a retry here, or
        *sent_before*: an earlier send, e.g. before it went to the outbox, got no answer)
        and then refused with 400 or 409 counts as delivered when the request's state shows
        it arrived (docs/reference/retries.md).
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
        attempts = self._send_with_retries(callback, retry or self.retry, sent_before)
        return Outcome(status, message, delivered=True, attempts=attempts)

    def _send_with_retries(
        self, callback: Callback, policy: RetryPolicy, sent_before: bool = False
    ) -> int:
        """Attempts until one is answered 2xx, or the schedule says stop; the attempt count.

        What to retry is decided here (``RETRY_STATUSES`` and network failures), when to stop
        and how long to wait by the ``RetrySchedule``, the sending by ``_attempt``.
        """
        schedule = policy.schedule()
        #: True once an attempt may have reached ESS without its answer reaching us
        maybe_arrived = sent_before
        try:
            while True:
                seconds = schedule.start_attempt()
                attempt = schedule.attempts
                retry_after: float | None = None
                try:
                    answer = self._attempt(callback, attempt, policy.attempts, seconds)
                except _NoAnswer as lost:
                    maybe_arrived = True
                    error: DeliveryError = lost.error
                else:
                    code = answer.status_code
                    if 200 <= code < 300:
                        if attempt > 1:
                            log.info("delivered %s after %d attempts", callback.status, attempt)
                        return attempt
                    error = error_for_response(
                        code,
                        answer.reason,
                        answer.body,
                        attempt,
                        location=answer.headers.get("Location"),
                        redact=self._redact,
                    )
                    if code not in RETRY_STATUSES:
                        if (
                            maybe_arrived
                            and code in REPEAT_REFUSALS
                            and self._arrived_before(callback, code, schedule.attempt_seconds())
                        ):
                            return attempt
                        raise error
                    maybe_arrived = True  # a gateway's 502/504 may hide a status ESS took
                    retry_after = retry_after_seconds(answer.headers.get("Retry-After"))
                wait = schedule.wait_before_next(retry_after)
                if wait is None:
                    error.retry_after = retry_after
                    raise error
                if attempt == 1 and callback.status.is_final:
                    # the retry notice (docs/reference/retries.md): a wrong port or a down
                    # scheduler must not mean a silent minute at the default log level.
                    log.warning(
                        "final status %s not delivered yet: %s; retrying for up to %.0f s",
                        callback.status,
                        error,
                        schedule.remaining(),
                    )
                log.info(
                    "%s not delivered (attempt %d of %d): %s; retrying in %.1f s",
                    callback.status,
                    attempt,
                    policy.attempts,
                    error,
                    wait,
                )
                policy.sleep(wait)
        except DeliveryInterrupted as stop:
            raise SchedulerUnavailableError(
                f"sending to {self.base_url} was interrupted by {signal_name(stop.signum)} "
                f"(attempt {schedule.attempts})",
                attempts=schedule.attempts,
            ) from None

    def _attempt(self, callback: Callback, attempt: int, of: int, seconds: float) -> Answer:
        """One POST of *callback*, answered within *seconds* (body included, capped).

        Raises ``_NoAnswer`` when no answer came (the status may have arrived all the same),
        and a ``DeliveryError`` when retrying cannot help (TLS, a refused setting).
        """
        import requests

        url = self.status_url(callback.request_id or 0)
        log.debug(
            "POST %s (%s, attempt %d of %d, timeout %.1f s)",
            url,
            callback.status,
            attempt,
            of,
            seconds,
        )
        started = time.monotonic()
        try:
            answer = exchange(
                self.session,
                "POST",
                url,
                seconds=seconds,
                data=json.dumps(callback.body()).encode("utf-8"),
                headers={"Content-Type": self.media_type},
                verify=self.ca_bundle or True,
            )
        except requests.exceptions.SSLError as exc:
            # Retrying cannot fix a certificate; the outbox keeps the status until
            # the CA bundle is fixed and 'ess-callback flush' runs.
            raise SchedulerUnavailableError(
                self._redact(
                    tls_text(
                        exc,
                        self.base_url,
                        self.ca_bundle,
                        lambda: certificate_names(self.base_url, self.ca_bundle),
                    )
                ),
                attempts=attempt,
            ) from None
        except requests.exceptions.ProxyError as exc:
            raise _NoAnswer(
                SchedulerUnavailableError(
                    self._redact(proxy_text(exc, self.base_url)), attempts=attempt
                )
            ) from None
        except (
            requests.ConnectionError,
            requests.Timeout,
            # the connection broke while the answer was read: as unknown as a reset
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            reason = self._redact(network_reason(exc))
            log.debug("no answer after %.2f s: %s", time.monotonic() - started, reason)
            unreachable = SchedulerUnavailableError(
                f"cannot reach the scheduler at {self.base_url}: {reason}", attempts=attempt
            )
            unreachable.network = reason
            raise _NoAnswer(unreachable) from None
        except (requests.RequestException, ValueError, UnicodeError) as exc:
            # Mostly raised before the request left: a header, URL or proxy setting the HTTP
            # stack refused (the settings check finds most of these before the job runs).
            # Its text may quote a header (a credential), so only its type is shown.
            raise DeliveryError(
                f"cannot send to {self.base_url}: the HTTP library refused the request "
                f"({type(exc).__name__}); check ESS_BASE_URL, the credentials and any "
                "HTTPS_PROXY",
                attempts=attempt,
            ) from None
        except OSError as exc:
            # requests raises a bare OSError for an unusable REQUESTS_CA_BUNDLE: not
            # transient, so not retried, but kept in the outbox until it is fixed.
            raise SchedulerUnavailableError(
                f"cannot send to {self.base_url}: {exc.strerror or exc}",
                attempts=attempt,
            ) from None
        log.debug(
            "ESS answered %d %s in %.2f s",
            answer.status_code,
            answer.reason,
            time.monotonic() - started,
        )
        return answer

    def _arrived_before(self, callback: Callback, code: int, seconds: float) -> bool:
        """True when ESS refused a final status sent again (*code* 400 or 409) because an
        earlier attempt, whose answer was lost, already delivered it: the request, read with
        the same credentials and TLS settings within *seconds*, stands where that status
        leads (docs/reference/retries.md)."""
        expected = LEADS_TO.get(callback.status)
        if expected is None or callback.request_id is None:
            return False
        from ._request_state import RequestStateReader

        auth: Any = self._auth
        if isinstance(auth, BasicAuth):
            auth = _basic_auth(auth)
        try:
            with RequestStateReader(
                self.base_url,
                new_session(auth),
                ca_bundle=self.ca_bundle,
                timeout=seconds,
                credential_hint=CREDENTIAL_HINT,
                secrets=redaction_secrets(self._auth),
            ) as reader:
                state = reader.state(callback.request_id).upper()
        except Exception as exc:  # the refusal then stands; say why the check failed
            log.info(
                "%s refused with %d after an earlier attempt went unanswered; its state could "
                "not be read (%s), so the refusal stands",
                callback.status,
                code,
                exc,
            )
            return False
        if state not in expected:
            log.debug("request %s is %s: the refusal stands", callback.request_id, state)
            return False
        log.info(
            "%s refused with %d after an earlier attempt went unanswered, but request %s "
            "already stands %s: the earlier attempt delivered it",
            callback.status,
            code,
            callback.request_id,
            state,
        )
        return True


def is_spoolable(error: BaseException) -> bool:
    """True when a final callback that failed this way belongs in the outbox: a retryable
    failure, a 401 (fresh credentials may help) or a redirect (a fixed ESS_BASE_URL will)."""
    return isinstance(error, DeliveryError) and (
        error.retryable or isinstance(error, AuthenticationError | RedirectedError)
    )


class _NoAnswer(Exception):
    """An attempt got no answer (it may have reached ESS all the same)."""

    def __init__(self, error: DeliveryError) -> None:
        super().__init__(str(error))
        self.error = error
