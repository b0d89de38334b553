"""One reader per job-status API (docs/howto/wait.md), each with ``status(job_id) -> JobStatus``.

Unknown status values never fail a read: they give ``JobState.UNKNOWN`` with the raw value
kept. A body without a status is a ``MalformedAnswerError``.
"""

from __future__ import annotations

from typing import Any

from .._errors import ConfigurationError
from .._request_state import API as ESS_API
from .._request_state import raw_state, request_url
from .._settings import BasicAuth, BearerAuth
from ._http import DEFAULT_TIMEOUT, HttpReader, auth_object, path_part
from ._state import (
    JobState,
    JobStatus,
    ess_state,
    normalise,
    parse_percentage,
    parse_time,
    text_or_none,
)

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
    # an operation that ended with warnings: a success, its raw value kept so that a relay
    # posts WARNING
    "WARN": JobState.SUCCEEDED,
}
#: the activity log's own bookkeeping lines, which say nothing about how the job went
PAAS_BOOKKEEPING = frozenset({"activity submitted", "activity started", "activity ended"})
#: RequestDetails fields that carry the message, in the order they are preferred
ESS_MESSAGE_FIELDS = ("errorWarningMessage", "errorWarningDetail", "stateDescription")
HUAWEI_STATES = {
    "RUNNING": JobState.RUNNING,
    "SUCCESS": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}


class EssReader(HttpReader):
    """ESS request state: ``GET {base}/ess/rest/scheduler/v1/requests/{id}``.

    ``auth`` is a ``(username, password)`` tuple, ``BasicAuth``, ``BearerAuth`` or None.
    """

    api = ESS_API

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
            auth=auth_object(auth),
            timeout=timeout,
            ca_bundle=ca_bundle,
            credential_hint=credential_hint,
        )

    def url_for(self, job_id: object) -> str:
        return request_url(self.base_url, job_id)

    def parse(self, body: Any) -> JobStatus:
        """A RequestDetails body: ``state``; the message from ``errorWarningMessage``, else
        ``errorWarningDetail``, else ``stateDescription``, else (once ended) ``cause``; the
        times from ``processStartTime`` and ``processEndTime`` (else ``completedTime``)."""
        raw_status = raw_state(body)
        state = ess_state(raw_status)
        cause = text_or_none(body.get("cause"))
        message = next(
            (text_or_none(body[k]) for k in ESS_MESSAGE_FIELDS if text_or_none(body.get(k))),
            None,
        )
        if message is None and state.is_terminal and cause != "NON_TERMINAL":
            message = cause
        return JobStatus(
            state=state,
            raw_status=raw_status,
            message=message,
            started=parse_time(body.get("processStartTime")),
            ended=parse_time(body.get("processEndTime") or body.get("completedTime")),
            cause=cause,
            raw=body,
        )


class SaasBatchReader(HttpReader):
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
        return f"{self.base_url}/api/saas-batch/jobscheduler/v1/jobRequests/{path_part(job_id)}"

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


class PaasReader(HttpReader):
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
        domain = path_part(self.identity_domain, what="identity domain")
        return f"{self.base_url}/paas/api/v1.1/activitylog/{domain}/job/{path_part(job_id)}"

    def parse(self, body: Any) -> JobStatus:
        if not isinstance(body, dict):
            raise self._malformed("not a JSON object", body)
        raw = text_or_none(body.get("status"))
        if raw is None:
            raise self._malformed("no status", body)
        return JobStatus(
            state=normalise(raw, PAAS_STATES),
            raw_status=raw,
            message=_paas_message(body),
            started=parse_time(body.get("startDate")),
            ended=parse_time(body.get("endDate")),
            raw=body,
        )


class HuaweiReader(HttpReader):
    """Huawei Cloud Firewall (CFW) "List Job Status":
    ``GET {endpoint}/v3/{project_id}/jobs/{job_id}`` with ``X-Auth-Token``; ``data.status``
    is Running, Success or Failed."""

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
        project = path_part(self.project_id, what="project id")
        return f"{self.base_url}/v3/{project}/jobs/{path_part(job_id)}"

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


def _paas_message(body: dict[str, Any]) -> str | None:
    """The last ``messages[]`` entry that is not a bookkeeping line, else ``summaryMessage``."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for entry in reversed(messages):
            text = text_or_none(entry.get("message") if isinstance(entry, dict) else entry)
            if text is not None and text.lower() not in PAAS_BOOKKEEPING:
                return text
    return text_or_none(body.get("summaryMessage"))
