"""HTTP plumbing shared by the status readers: one session, a GET, typed errors, JSON.

Every reader keeps one ``requests.Session`` (created on first use, so importing stays
cheap), never follows redirects (a token in a custom header would follow them to another
host), and maps HTTP errors to the typed errors of ``ess_callback._errors`` through the
same ``error_for_response`` the callback client uses.
"""

from __future__ import annotations

import abc
import json
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from .._answers import proxy_text, tls_text
from .._checks import check_ca_bundle
from .._client import _network_reason, error_for_response, new_session
from .._credentials import redaction_secrets
from .._errors import (
    ConfigurationError,
    DeliveryError,
    EssCallbackError,
    SchedulerUnavailableError,
)
from .._message import Redactor
from .._settings import BasicAuth, BearerAuth
from .._transport import Answer, certificate_names, exchange
from .._url import parse_base_url
from ._state import JobStatus, MalformedAnswerError

if TYPE_CHECKING:
    import requests

DEFAULT_TIMEOUT = 10.0


def check_base_url(value: str, *, what: str = "base URL") -> str:
    """A watched API's base URL, held to the same rules as ``ESS_BASE_URL`` (the command
    refuses a non-loopback ``http://`` itself, naming its own option)."""
    return parse_base_url(
        value or "",
        allow_http=True,
        variable="the URL",
        setting=what,
        hint="give one like https://host.example.com",
        credentials_hint="use WATCH_USERNAME/WATCH_PASSWORD or WATCH_TOKEN",
    )


def path_part(job_id: object, *, what: str = "job id") -> str:
    text = str(job_id).strip()
    if not text:
        raise ConfigurationError(f"{what} is empty")
    return quote(text, safe="")


class HttpReader(abc.ABC):
    """HTTP plumbing shared by the readers: session, GET, error mapping, JSON decoding."""

    #: how the API is named in messages
    api: ClassVar[str] = "the status API"

    def __init__(
        self,
        base_url: str,
        *,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        credential_hint: str | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        if ca_bundle is not None:
            check_ca_bundle(ca_bundle, variable="the ca_bundle= argument", load=False)
        self.ca_bundle = ca_bundle
        #: appended to a 401 message: what to set to fix the credentials
        self.credential_hint = credential_hint or "check the credentials given to the reader"
        self._auth = auth
        self._headers = dict(headers or {})
        #: hides the credentials (and a token header's value) in what a server quotes back
        self.redact = Redactor(
            [
                *redaction_secrets(auth),
                *(v for k, v in self._headers.items() if _is_secret_header(k)),
            ]
        )
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def __enter__(self) -> HttpReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def session(self) -> requests.Session:
        """The reader's one ``requests.Session``."""
        if self._session is None:
            self._session = new_session(self._auth, self._headers)
        return self._session

    @abc.abstractmethod
    def url_for(self, job_id: object) -> str:
        """The status URL of one job."""

    def status(self, job_id: object) -> JobStatus:
        """Read the job's status once; raise a typed error when it cannot be read."""
        body = self._get_json(self.url_for(job_id))
        return self.parse(body)

    @abc.abstractmethod
    def parse(self, body: Any) -> JobStatus:
        """Turn a decoded answer body into a ``JobStatus``."""

    def _get_json(self, url: str) -> Any:
        response = self.request("GET", url)
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        try:
            return json.loads(response.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            excerpt = " ".join(response.body.decode("utf-8", "replace").split())[:120]
            raise MalformedAnswerError(
                f"{self.api} at {self.base_url} answered {response.status_code} with a body "
                f"that is not JSON: {self.redact(excerpt)!r}"
            ) from None

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One exchange with the API, within ``timeout`` seconds, its body capped; a typed
        error when no answer came."""
        import requests

        try:
            return exchange(
                self.session,
                method,
                url,
                seconds=self.timeout,
                verify=self.ca_bundle or True,
                **kwargs,
            )
        except requests.exceptions.SSLError as exc:
            text = tls_text(
                exc,
                self.base_url,
                self.ca_bundle,
                lambda: certificate_names(self.base_url, self.ca_bundle),
            )
            text = text.replace("the scheduler", self.api).replace("ESS_BASE_URL", "the URL")
            raise SchedulerUnavailableError(self.redact(text), attempts=1) from None
        except requests.exceptions.ProxyError as exc:
            text = proxy_text(exc, url).replace("the scheduler", self.api)
            raise SchedulerUnavailableError(self.redact(text), attempts=1) from None
        except requests.ConnectionError as exc:
            if name_not_resolved(exc):
                host = urlsplit(url).hostname or url
                raise HostNotFoundError(
                    f"cannot resolve {host}: no such host for {self.api} at {self.base_url}",
                    host=host,
                ) from None
            raise SchedulerUnavailableError(
                f"cannot reach {self.api} at {self.base_url}: {self.redact(_network_reason(exc))}",
                attempts=1,
            ) from None
        except requests.Timeout as exc:
            raise SchedulerUnavailableError(
                f"cannot reach {self.api} at {self.base_url}: {_network_reason(exc)}",
                attempts=1,
            ) from None
        except requests.RequestException as exc:
            raise SchedulerUnavailableError(
                f"cannot read from {self.api} at {self.base_url}: {type(exc).__name__}",
                attempts=1,
            ) from None
        except OSError as exc:
            # requests raises a bare OSError for an unusable CA bundle (REQUESTS_CA_BUNDLE):
            # not transient, so not SchedulerUnavailableError, and never a traceback.
            raise EssCallbackError(
                f"cannot read from {self.api} at {self.base_url}: {exc.strerror or exc}"
            ) from None

    def _error(self, response: Answer) -> DeliveryError:
        """The typed error for a non-2xx answer, worded for this API."""
        return error_for_response(
            response.status_code,
            response.reason,
            response.body,
            attempts=1,
            server=self.api,
            credential_hint=self.credential_hint,
            forbidden_hint=self.credential_hint,
            redirect_fix="use the final address",
            location=response.headers.get("Location"),
            redact=self.redact,
        )

    def _malformed(self, why: str, body: Any) -> MalformedAnswerError:
        shown = json.dumps(body)[:160] if body is not None else "nothing"
        return MalformedAnswerError(f"{self.api} answered without a job status ({why}): {shown}")


class HostNotFoundError(SchedulerUnavailableError):
    """The watched API's host name cannot be resolved. On the first poll it ends a wait at
    once (a typo in the URL will not fix itself); later it is as transient as any failure."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message, attempts=1)
        self.host = host


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


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("token", "auth", "key", "secret", "password"))


def auth_object(auth: Any) -> Any:
    """Accept a ``(username, password)`` tuple, ``BasicAuth`` or ``BearerAuth``."""
    if isinstance(auth, tuple):
        auth = BasicAuth(*auth)
    if isinstance(auth, BasicAuth):
        return auth.as_tuple()
    if auth is None or isinstance(auth, BearerAuth) or callable(auth):
        return auth
    raise TypeError(f"auth must be (username, password), BasicAuth or BearerAuth, not {auth!r}")
