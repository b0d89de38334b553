"""One reader per job-status API (SPEC section 9), each with ``status(job_id) -> JobStatus``.

Every reader keeps one ``requests.Session`` (created on first use, so importing stays
cheap), never follows redirects (a token in a custom header would follow them to another
host), and maps HTTP errors to the typed errors of ``ess_callback._errors``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from .._client import _network_reason, _NoAuth, error_for_response
from .._errors import ConfigurationError, DeliveryError, SchedulerUnavailableError
from .._settings import BasicAuth, BearerAuth
from ._state import (
    JobState,
    JobStatus,
    MalformedAnswerError,
    ess_state,
    normalise,
    parse_percentage,
    parse_time,
    text_or_none,
)

if TYPE_CHECKING:
    import requests

log = logging.getLogger("ess_callback")

DEFAULT_TIMEOUT = 10.0

SAAS_STATES = {
    "ENQUEUED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "IN_PROGRESS": JobState.RUNNING,
    "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}
PAAS_STATES = {
    "NEW": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCEED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}
HUAWEI_STATES = {
    "RUNNING": JobState.RUNNING,
    "SUCCESS": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}


def check_base_url(value: str, *, what: str = "base URL") -> str:
    """An http(s) URL without query, fragment or credentials, returned without trailing slash."""
    text = (value or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{what}: {value!r} is not an http(s) URL; give one like https://host.example.com"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(
            f"{what}: {value!r} must not carry a query, a fragment or credentials"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError(f"{what}: {value!r} has an invalid port") from None
    return text.rstrip("/")


def _path_part(job_id: object, *, what: str = "job id") -> str:
    text = str(job_id).strip()
    if not text:
        raise ConfigurationError(f"{what} is empty")
    return quote(text, safe="")


class _Reader:
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
        self.ca_bundle = ca_bundle
        #: appended to a 401 message: what to set to fix the credentials
        self.credential_hint = credential_hint or "check the credentials given to the reader"
        self._auth = auth
        self._headers = dict(headers or {})
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def __enter__(self) -> _Reader:
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
            import requests

            from .. import __version__

            session = requests.Session()
            session.headers.update(
                {
                    "Accept": "application/json",
                    "User-Agent": f"ess-callback/{__version__} python-requests/"
                    f"{requests.__version__}",
                    **self._headers,
                }
            )
            # Always set an auth, even a do-nothing one: it keeps requests off ~/.netrc.
            session.auth = self._auth if self._auth is not None else _NoAuth()
            self._session = session
        return self._session

    def url_for(self, job_id: object) -> str:
        """The status URL of one job."""
        raise NotImplementedError

    def status(self, job_id: object) -> JobStatus:
        """Read the job's status once; raise a typed error when it cannot be read."""
        body = self._get_json(self.url_for(job_id))
        return self.parse(body)

    def parse(self, body: Any) -> JobStatus:
        """Turn a decoded answer body into a ``JobStatus``."""
        raise NotImplementedError

    def _get_json(self, url: str) -> Any:
        import requests

        try:
            response = self.session.get(
                url,
                timeout=self.timeout,
                verify=self.ca_bundle or True,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SchedulerUnavailableError(
                f"cannot reach {self.api} at {self.base_url}: {_network_reason(exc)}",
                attempts=1,
            ) from None
        except requests.RequestException as exc:
            raise SchedulerUnavailableError(
                f"cannot read from {self.api} at {self.base_url}: {type(exc).__name__}",
                attempts=1,
            ) from None
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        try:
            return json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            excerpt = " ".join(response.content.decode("utf-8", "replace").split())[:120]
            raise MalformedAnswerError(
                f"{self.api} at {self.base_url} answered {response.status_code} with a body "
                f"that is not JSON: {excerpt!r}"
            ) from None

    def _error(self, response: requests.Response) -> DeliveryError:
        """The typed error for a non-2xx answer, worded for this API."""
        from .._client import CREDENTIAL_HINT

        error = error_for_response(
            response.status_code, response.reason or "", response.content, attempts=1
        )
        text = error.message.replace("ESS answered", f"{self.api} answered", 1)
        text = text.replace(CREDENTIAL_HINT, self.credential_hint)
        text = text.replace("set ESS_BASE_URL to the final address", "use the final address")
        return type(error)(
            text,
            http_status=error.http_status,
            error_code=error.error_code,
            title=error.title,
            detail=error.detail,
            attempts=1,
        )

    def _malformed(self, why: str, body: Any) -> MalformedAnswerError:
        shown = json.dumps(body)[:160] if body is not None else "nothing"
        return MalformedAnswerError(f"{self.api} answered without a job status ({why}): {shown}")


def _auth_object(auth: Any) -> Any:
    """Accept a ``(username, password)`` tuple, ``BasicAuth`` or ``BearerAuth``."""
    if isinstance(auth, tuple):
        auth = BasicAuth(*auth)
    if isinstance(auth, BasicAuth):
        return auth.as_tuple()
    if auth is None or isinstance(auth, BearerAuth) or callable(auth):
        return auth
    raise TypeError(f"auth must be (username, password), BasicAuth or BearerAuth, not {auth!r}")


class EssReader(_Reader):
    """ESS request state: ``GET {base}/ess/rest/scheduler/v1/requests/{id}``.

    ``auth`` is a ``(username, password)`` tuple, ``BasicAuth``, ``BearerAuth`` or None.
    """

    api = "ESS"

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | BasicAuth | BearerAuth | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        credential_hint: str | None = None,
    ) -> None:
        super().__init__(
            base_url,
            auth=_auth_object(auth),
            timeout=timeout,
            ca_bundle=ca_bundle,
            credential_hint=credential_hint,
        )

    def url_for(self, job_id: object) -> str:
        text = str(job_id).strip()
        if not text.isdigit() or int(text) <= 0:
            raise ConfigurationError(
                f"job id: {str(job_id)!r} is not an ESS request number (a positive integer)"
            )
        return f"{self.base_url}/ess/rest/scheduler/v1/requests/{int(text)}"

    def parse(self, body: Any) -> JobStatus:
        if not isinstance(body, dict):
            raise self._malformed("not a JSON object", body)
        # ``state`` is what ESS sends; the other keys are accepted defensively.
        raw = next((body[k] for k in ("state", "requestState", "status") if body.get(k)), None)
        if raw is None or isinstance(raw, dict | list):
            raise self._malformed("no state", body)
        raw_status = str(raw).strip()
        message = next(
            (
                text_or_none(body[k])
                for k in ("statusMessage", "message", "errorMessage")
                if k in body
            ),
            None,
        )
        return JobStatus(
            state=ess_state(raw_status),
            raw_status=raw_status,
            message=message,
            started=parse_time(body.get("processStart") or body.get("startTime")),
            ended=parse_time(body.get("processEnd") or body.get("endTime")),
            raw=body,
        )


class SaasBatchReader(_Reader):
    """Fusion Job Scheduler: ``GET {base}/api/saas-batch/jobscheduler/v1/jobRequests/{id}``
    with a bearer token."""

    api = "the Fusion Job Scheduler"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        credential_hint: str | None = None,
    ) -> None:
        if not token:
            raise ConfigurationError("the Fusion Job Scheduler needs a bearer token")
        super().__init__(
            base_url,
            auth=BearerAuth(token),
            timeout=timeout,
            ca_bundle=ca_bundle,
            credential_hint=credential_hint,
        )

    def url_for(self, job_id: object) -> str:
        return f"{self.base_url}/api/saas-batch/jobscheduler/v1/jobRequests/{_path_part(job_id)}"

    def parse(self, body: Any) -> JobStatus:
        details = body.get("jobDetails") if isinstance(body, dict) else None
        if not isinstance(details, dict):
            raise self._malformed("no jobDetails", body)
        progress = details.get("jobProgress")
        progress = progress if isinstance(progress, dict) else {}
        raw = text_or_none(progress.get("status")) or text_or_none(details.get("jobStatus"))
        if raw is None:
            raise self._malformed("no jobProgress.status nor jobStatus", body)
        state = normalise(raw, SAAS_STATES)
        if state is JobState.SUCCEEDED and progress.get("completed") is False:
            # The API's rule: done only when SUCCEEDED *and* completed is true.
            state = JobState.RUNNING
        return JobStatus(
            state=state,
            raw_status=raw,
            progress=parse_percentage(progress.get("completedPercentage")),
            message=text_or_none(progress.get("message")),
            started=parse_time(progress.get("startTime")),
            ended=parse_time(progress.get("endTime")),
            raw=body,
        )


class PaasReader(_Reader):
    """PaaS activity log: ``GET {base}/paas/api/v1.1/activitylog/{identityDomainId}/job/{jobId}``
    with Basic auth and ``X-ID-TENANT-NAME``. A 404 means the job does not exist."""

    api = "the PaaS activity log"

    def __init__(
        self,
        base_url: str,
        username: str | None,
        password: str | None,
        identity_domain: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        credential_hint: str | None = None,
    ) -> None:
        if not identity_domain or not identity_domain.strip():
            raise ConfigurationError("the PaaS activity log needs an identity domain")
        if (username is None) != (password is None):
            raise ConfigurationError("PaaS credentials: give both username and password")
        self.identity_domain = identity_domain.strip()
        super().__init__(
            base_url,
            auth=None if username is None else (username, password),
            headers={"X-ID-TENANT-NAME": self.identity_domain},
            timeout=timeout,
            ca_bundle=ca_bundle,
            credential_hint=credential_hint,
        )

    def url_for(self, job_id: object) -> str:
        domain = _path_part(self.identity_domain, what="identity domain")
        return f"{self.base_url}/paas/api/v1.1/activitylog/{domain}/job/{_path_part(job_id)}"

    def parse(self, body: Any) -> JobStatus:
        if not isinstance(body, dict):
            raise self._malformed("not a JSON object", body)
        raw = text_or_none(body.get("status"))
        if raw is None:
            raise self._malformed("no status", body)
        messages = body.get("messages")
        message = None
        if isinstance(messages, list) and messages:
            last = messages[-1]
            message = text_or_none(last.get("message") if isinstance(last, dict) else last)
        return JobStatus(
            state=normalise(raw, PAAS_STATES),
            raw_status=raw,
            message=message or text_or_none(body.get("summaryMessage")),
            started=parse_time(body.get("startDate")),
            ended=parse_time(body.get("endDate")),
            raw=body,
        )


class HuaweiReader(_Reader):
    """Huawei Cloud jobs: ``GET {endpoint}/v3/{project_id}/jobs/{job_id}`` with
    ``X-Auth-Token``."""

    api = "Huawei Cloud"

    def __init__(
        self,
        endpoint: str,
        token: str,
        project_id: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ca_bundle: str | None = None,
        credential_hint: str | None = None,
    ) -> None:
        if not token:
            raise ConfigurationError("Huawei Cloud needs a token (X-Auth-Token)")
        if not project_id or not project_id.strip():
            raise ConfigurationError("Huawei Cloud needs a project id")
        self.project_id = project_id.strip()
        super().__init__(
            endpoint,
            headers={"X-Auth-Token": token},
            timeout=timeout,
            ca_bundle=ca_bundle,
            credential_hint=credential_hint,
        )

    def url_for(self, job_id: object) -> str:
        project = _path_part(self.project_id, what="project id")
        return f"{self.base_url}/v3/{project}/jobs/{_path_part(job_id)}"

    def parse(self, body: Any) -> JobStatus:
        if not isinstance(body, dict):
            raise self._malformed("not a JSON object", body)
        code = text_or_none(body.get("error_code"))
        error = text_or_none(body.get("error_msg"))
        said = ": ".join(p for p in (code, error) if p) or None
        data = body.get("data")
        raw = text_or_none(data.get("status")) if isinstance(data, dict) else None
        if not isinstance(data, dict) or raw is None:
            raise self._malformed(said or "no data.status", body)
        return JobStatus(
            state=normalise(raw, HUAWEI_STATES),
            raw_status=raw,
            message=said,
            started=parse_time(data.get("begin_time")),
            ended=parse_time(data.get("end_time")),
            raw=body,
        )
