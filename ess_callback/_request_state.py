"""An ESS request's state: ``GET {base}/ess/rest/scheduler/v1/requests/{id}``.

The one reading of a RequestDetails body's ``state``: the job's cancellation check
(docs/howto/cancel.md), the retried final status (docs/reference/retries.md) and ``watch``'s
``EssReader`` all go through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._message import Redactor
from ._reading import get_json, malformed, request

if TYPE_CHECKING:
    import requests

    from ._transport import Answer

REQUEST_PATH = "/ess/rest/scheduler/v1/requests/{request_id}"
#: how ESS is named in messages
API = "ESS"


def request_url(base_url: str, request_id: object) -> str:
    """The RequestDetails URL of one request; *request_id* must be a positive integer."""
    text = str(request_id).strip()
    if not text.isdigit() or int(text) <= 0:
        raise ConfigurationError(
            f"job id: {str(request_id)!r} is not an ESS request number (a positive integer)"
        )
    return base_url + REQUEST_PATH.format(request_id=int(text))


def raw_state(body: Any) -> str:
    """A RequestDetails body's ``state``, as ESS wrote it (stripped); a
    ``MalformedAnswerError`` when the body has none."""
    if not isinstance(body, dict):
        raise malformed(API, "not a JSON object", body)
    raw = body.get("state")
    if raw is None or isinstance(raw, dict | list) or not str(raw).strip():
        raise malformed(API, "no state", body)
    return str(raw).strip()


class RequestStateReader:
    """Reads the state of ESS requests over one ``requests.Session`` (given, and closed
    with the reader): ``state(request_id)`` is the raw RequestDetails ``state``.

    >>> import requests
    >>> from ess_callback.testing import FakeScheduler
    >>> with FakeScheduler() as ess:
    ...     _ = ess.submit(4711)
    ...     with RequestStateReader(ess.url, requests.Session(), timeout=5.0, ca_bundle=None,
    ...                             credential_hint=None) as reader:
    ...         reader.state(4711)
    'RUNNING'
    """

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        *,
        timeout: float,
        ca_bundle: str | None,
        credential_hint: str,
        secrets: Iterable[str] = (),
    ) -> None:
        self.base_url = base_url
        #: hides the credentials (and their encoded forms) in what a server quotes back
        self.redact = Redactor(secrets)
        self.session = session
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self.credential_hint = credential_hint

    def __repr__(self) -> str:
        return f"RequestStateReader({self.base_url!r})"

    def __enter__(self) -> RequestStateReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session's pooled connections."""
        self.session.close()

    def state(self, request_id: object) -> str:
        """Read the request's raw state once; raise a typed error when it cannot be read."""
        body = get_json(
            self.session,
            request_url(self.base_url, request_id),
            api=API,
            base_url=self.base_url,
            timeout=self.timeout,
            ca_bundle=self.ca_bundle,
            credential_hint=self.credential_hint,
            redact=self.redact,
        )
        return raw_state(body)

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One exchange with ESS within ``timeout`` seconds, its body capped; a typed error
        when no answer came."""
        return request(
            self.session,
            method,
            url,
            api=API,
            base_url=self.base_url,
            timeout=self.timeout,
            ca_bundle=self.ca_bundle,
            redact=self.redact,
            **kwargs,
        )
