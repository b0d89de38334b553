"""``SchedulerClient``: the HTTP sender of executionStatus callbacks, with retries."""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from . import _recording
from ._answers import CREDENTIAL_HINT as CREDENTIAL_HINT
from ._answers import RETRY_STATUSES, network_reason, plain_http_answer, plain_http_fix
from ._answers import error_for_response as error_for_response
from ._answers import parse_problem as parse_problem
from ._answers import retry_after_seconds as retry_after_seconds
from ._checks import (
    DEFAULT_MEDIA_TYPE,
    DEFAULT_RETRY_SECONDS,
    check_ca_bundle,
    parse_media_type,
    parse_request_id,
)
from ._credentials import auth_secrets
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    DeliveryError,
    DeliveryInterrupted,
    SchedulerUnavailableError,
)
from ._message import DEFAULT_MAX_MESSAGE_BYTES, signal_name, truncate_message
from ._model import Callback, Outcome
from ._settings import BasicAuth, BearerAuth, parse_base_url
from ._status import Status

if TYPE_CHECKING:
    import requests

log = logging.getLogger("ess_callback")

#: the status readers of ``ess_callback.watch`` word network failures the same way
_network_reason = network_reason

MAX_SINGLE_WAIT = 30.0
STATUS_PATH = "/ess/rest/scheduler/v1/requests/{request_id}/executionStatus"
#: the request states a final status leads to (SPEC section 5): a retried final status
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
    ``retry`` is a :class:`RetryPolicy` (8 attempts, 60 s budget, 10 s per attempt by default).
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
        it arrived (SPEC section 5).
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
        import requests

        url = self.status_url(callback.request_id or 0)
        data = json.dumps(callback.body()).encode("utf-8")
        headers = {"Content-Type": self.media_type}
        verify: bool | str = self.ca_bundle or True
        deadline = policy.clock() + policy.budget
        attempt = 0
        #: True once an attempt may have reached ESS without its answer reaching us
        maybe_arrived = sent_before
        try:
            while True:
                attempt += 1
                timeout = policy.timeout
                if attempt > 1:
                    timeout = max(0.5, min(timeout, deadline - policy.clock()))
                retry_after: float | None = None
                log.debug(
                    "POST %s (%s, attempt %d of %d, timeout %.1f s)",
                    url,
                    callback.status,
                    attempt,
                    policy.attempts,
                    timeout,
                )
                started = time.monotonic()
                try:
                    response = self.session.post(
                        url,
                        data=data,
                        headers=headers,
                        timeout=timeout,
                        verify=verify,
                        allow_redirects=False,
                    )
                except requests.exceptions.SSLError as exc:
                    # Retrying cannot fix a certificate; the outbox keeps the status until
                    # the CA bundle is fixed and 'ess-callback flush' runs.
                    raise SchedulerUnavailableError(self._tls_text(exc), attempts=attempt) from None
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    # the connection broke while the answer was read: as unknown as a reset
                    requests.exceptions.ChunkedEncodingError,
                ) as exc:
                    reason = network_reason(exc)
                    maybe_arrived = True
                    log.debug("no answer after %.2f s: %s", time.monotonic() - started, reason)
                    error: DeliveryError = SchedulerUnavailableError(
                        f"cannot reach the scheduler at {self.base_url}: {reason}",
                        attempts=attempt,
                    )
                except (requests.RequestException, ValueError, UnicodeError) as exc:
                    # Mostly raised before the request left: a header, URL or proxy setting
                    # the HTTP stack refused. Its text may quote a header (a credential), so
                    # only its type goes into the message.
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
                else:
                    code = response.status_code
                    log.debug(
                        "ESS answered %d %s in %.2f s",
                        code,
                        response.reason or "",
                        time.monotonic() - started,
                    )
                    if 200 <= code < 300:
                        response.close()
                        if attempt > 1:
                            log.info("delivered %s after %d attempts", callback.status, attempt)
                        return attempt
                    error = error_for_response(
                        code, response.reason or "", response.content, attempt
                    )
                    if code not in RETRY_STATUSES:
                        if (
                            maybe_arrived
                            and code in REPEAT_REFUSALS
                            and self._arrived_before(callback, code, policy)
                        ):
                            return attempt
                        raise error
                    maybe_arrived = True  # a gateway's 502/504 may hide a status ESS took
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                remaining = deadline - policy.clock()
                if attempt >= policy.attempts or remaining <= 0.5:
                    raise error
                wait = policy.backoff_wait(attempt) if retry_after is None else retry_after
                wait = min(wait, policy.max_wait, remaining - 0.5)
                if attempt == 1 and callback.status.is_final:
                    # SPEC 5's retry notice: a wrong port or a down scheduler must not
                    # mean a silent minute at the default log level.
                    log.warning(
                        "final status %s not delivered yet: %s; retrying for up to %.0f s",
                        callback.status,
                        error,
                        remaining,
                    )
                log.info(
                    "%s not delivered (attempt %d of %d): %s; retrying in %.1f s",
                    callback.status,
                    attempt,
                    policy.attempts,
                    error,
                    wait,
                )
                policy.sleep(max(0.0, wait))
        except DeliveryInterrupted as stop:
            raise SchedulerUnavailableError(
                f"sending to {self.base_url} was interrupted by {signal_name(stop.signum)} "
                f"(attempt {attempt})",
                attempts=attempt,
            ) from None

    def _arrived_before(self, callback: Callback, code: int, policy: RetryPolicy) -> bool:
        """True when ESS refused a final status sent again (*code* 400 or 409) because an
        earlier attempt, whose answer was lost, already delivered it: the request, read with
        the same credentials and TLS settings, stands where that status leads (SPEC 5)."""
        expected = LEADS_TO.get(callback.status)
        if expected is None or callback.request_id is None:
            return False
        from .watch import EssReader

        auth: Any = self._auth
        if isinstance(auth, BasicAuth):
            auth = _basic_auth(auth)
        try:
            with EssReader(
                self.base_url,
                auth=auth,
                ca_bundle=self.ca_bundle,
                timeout=policy.timeout,
                credential_hint=CREDENTIAL_HINT,
            ) as reader:
                state = (reader.status(callback.request_id).raw_status or "").upper()
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

    def _tls_text(self, exc: BaseException) -> str:
        """One line for a TLS failure, naming ESS_CA_BUNDLE as the way out."""
        text = str(exc)
        found = re.search(r"certificate verify failed: (.+?)(?: \(_ssl\.c:\d+\))?['\")]", text)
        if found is not None or "CERTIFICATE_VERIFY_FAILED" in text:
            reason = "certificate verify failed" + (f": {found.group(1)}" if found else "")
            if self.ca_bundle:
                fix = (
                    f"ESS_CA_BUNDLE ({self.ca_bundle}) does not hold the CA that signed the "
                    "scheduler's certificate; set it to the right PEM file"
                )
            else:
                fix = (
                    "if the scheduler's certificate comes from a private CA, set ESS_CA_BUNDLE "
                    "to that CA's PEM file"
                )
        elif plain_http_answer(text):  # not a certificate matter: ESS_CA_BUNDLE cannot help
            reason = "TLS handshake failed"
            fix = plain_http_fix(self.base_url)
        else:
            reason = "TLS handshake failed: " + network_reason(exc)
            fix = "check the server's TLS set-up and ESS_CA_BUNDLE (or REQUESTS_CA_BUNDLE)"
        return f"cannot reach the scheduler at {self.base_url}: {reason}; {fix}"


def is_spoolable(error: BaseException) -> bool:
    """True when a final callback that failed this way belongs in the outbox."""
    return isinstance(error, DeliveryError) and (
        error.retryable or isinstance(error, AuthenticationError)
    )
