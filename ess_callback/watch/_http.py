"""HTTP plumbing shared by the status readers: one session, a GET, typed errors, JSON.

Every reader keeps one ``requests.Session`` (created on first use, so importing stays
cheap) and reads through ``_reading.get_json``: no redirects followed (a token in a custom
header would follow them to another host), HTTP errors mapped to the typed errors of
``ess_callback._errors`` through the same ``error_for_response`` the callback client uses.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from .._checks import check_ca_bundle
from .._client import new_session
from .._credentials import redaction_secrets
from .._errors import ConfigurationError
from .._message import Redactor
from .._reading import HostNotFoundError as HostNotFoundError
from .._reading import MalformedAnswerError, get_json, malformed, request
from .._reading import auth_object as auth_object
from .._reading import name_not_resolved as name_not_resolved
from .._url import parse_base_url
from ._state import JobStatus

if TYPE_CHECKING:
    import requests

    from .._transport import Answer

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
        return get_json(
            self.session,
            url,
            api=self.api,
            base_url=self.base_url,
            timeout=self.timeout,
            ca_bundle=self.ca_bundle,
            credential_hint=self.credential_hint,
            redact=self.redact,
        )

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One exchange with the API, within ``timeout`` seconds, its body capped; a typed
        error when no answer came."""
        return request(
            self.session,
            method,
            url,
            api=self.api,
            base_url=self.base_url,
            timeout=self.timeout,
            ca_bundle=self.ca_bundle,
            redact=self.redact,
            **kwargs,
        )

    def _malformed(self, why: str, body: Any) -> MalformedAnswerError:
        return malformed(self.api, why, body)


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("token", "auth", "key", "secret", "password"))
