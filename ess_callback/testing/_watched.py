"""Fakes of the job-status APIs that ``ess-callback wait`` reads.

See docs/howto/testing.md and docs/howto/wait.md.

Each watched job answers its GETs with the next of its steps (the last one repeats), in a
body shaped like the vendor's documented example, at the vendor's path; an unknown job is
answered 404 as the vendor does.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import attrs

from ._requests import iso, now

#: each faked API's job-status path (its names: every API of ``watch/_registry.py`` but ess)
PATHS = {
    "saas-batch": re.compile(r"^/api/saas-batch/jobscheduler/v1/jobRequests/([^/]+)/?$"),
    "paas": re.compile(r"^/paas/api/v1\.1/activitylog/([^/]+)/job/([^/]+)/?$"),
    "huawei": re.compile(r"^/v3/([^/]+)/jobs/([^/]+)/?$"),
}
#: the raw status values each API documents, and which of them end a job
DOCUMENTED = {
    "saas-batch": ("ENQUEUED", "RUNNING", "IN_PROGRESS", "SUCCEEDED", "FAILED"),
    "paas": ("NEW", "RUNNING", "SUCCEED", "FAILED", "WARN"),
    "huawei": ("Running", "Success", "Failed"),
}
ENDED = {
    "saas-batch": ("SUCCEEDED", "FAILED"),
    "paas": ("SUCCEED", "FAILED", "WARN"),
    "huawei": ("Success", "Failed"),
}

#: the APIs that take a token in a header of their own, not in ``Authorization``
TOKEN_HEADERS = {"huawei": "X-Auth-Token"}
APIS = tuple(PATHS)

Step = tuple[str, "int | float | None", "str | None"]


def check_api(api: str) -> str:
    if api not in APIS:
        raise ValueError(f"watched API {api!r} is not one of {', '.join(APIS)}")
    return api


def parse_watched(spec: str) -> tuple[str, str, list[Step]]:
    """``API:JOB_ID:STATUS[@PERCENT],STATUS[@PERCENT],...`` as (api, job id, steps).

    Raises ``ValueError`` saying what is wrong.
    """
    api, sep, rest = spec.partition(":")
    job_id, sep2, steps_text = rest.rpartition(":")
    if not sep or not sep2 or not job_id or not steps_text:
        raise ValueError(f"{spec!r} is not API:JOB_ID:STATUS[@PERCENT],...")
    check_api(api)
    steps: list[Step] = []
    for item in steps_text.split(","):
        raw, _, percent = item.strip().partition("@")
        if not raw:
            raise ValueError(f"{spec!r} has an empty status")
        if raw not in DOCUMENTED[api]:
            raise ValueError(
                f"{raw!r} is not a status {api} documents; use one of {', '.join(DOCUMENTED[api])}"
            )
        value: float | None = None
        if percent:
            try:
                value = float(percent)
            except ValueError:
                raise ValueError(f"{spec!r}: percent {percent!r} is not a number") from None
            if not 0 <= value <= 100:
                raise ValueError(f"{spec!r}: percent {percent} is not between 0 and 100")
        steps.append((raw, value, None))
    return api, job_id, steps


@attrs.define
class WatchedJob:
    """One fake job of a watched API: its steps and how far the GETs have read them."""

    api: str
    job_id: str
    steps: list[Step]
    read: int = 0
    started: dt.datetime = attrs.field(factory=now)
    ended: dt.datetime | None = None

    def next_body(self, path_match: re.Match[str]) -> dict[str, Any]:
        """The body of the next GET (the last step repeats)."""
        raw, percent, message = self.steps[min(self.read, len(self.steps) - 1)]
        self.read += 1
        if raw in ENDED[self.api] and self.ended is None:
            self.ended = now()
        if self.api == "saas-batch":
            return self._saas(raw, percent, message)
        if self.api == "paas":
            return self._paas(raw, message, path_match.group(1))
        return self._huawei(raw, message)

    def _numeric_id(self) -> int | str:
        return int(self.job_id) if self.job_id.isdigit() else self.job_id

    def _saas(self, raw: str, percent: float | None, message: str | None) -> dict[str, Any]:
        done = raw in ENDED["saas-batch"]
        if percent is None:
            percent = 100 if raw == "SUCCEEDED" else 0
        progress: dict[str, Any] = {
            "jobRequestId": self._numeric_id(),
            "status": raw,
            "message": message or f"Job status is changed to {raw}",
            "startTime": iso(self.started),
            "completedPercentage": f"{percent:g}",
            "completed": done,
        }
        if self.ended is not None:
            progress["endTime"] = iso(self.ended)
        return {
            "jobDetails": {
                "jobRequestId": self._numeric_id(),
                "jobStatus": raw,
                "jobProgress": progress,
            }
        }

    def _paas(self, raw: str, message: str | None, domain: str) -> dict[str, Any]:
        started = _paas_time(self.started)
        messages = [
            {"activityDate": started, "message": "Activity Submitted"},
            {"activityDate": started, "message": "Activity Started"},
        ]
        if message:
            messages.append({"activityDate": _paas_time(now()), "message": message})
        body: dict[str, Any] = {
            "activityLogId": 6015,
            "serviceName": "ExampleService",
            "serviceType": "caching",
            "identityDomain": domain,
            "serviceId": 7,
            "jobId": self._numeric_id(),
            "startDate": started,
            "status": raw,
            "operationId": 7,
            "operationType": "CREATE_SERVICE",
            "summaryMessage": "CREATE_SERVICE",
            "authDomain": domain,
            "authUser": "joe",
            "initiatedBy": "USER",
            "messages": messages,
        }
        if self.ended is not None:
            body["endDate"] = _paas_time(self.ended)
            messages.append({"activityDate": body["endDate"], "message": "Activity Ended"})
        return body

    def _huawei(self, raw: str, message: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "begin_time": int(self.started.timestamp() * 1000),
            "id": self.job_id,
            "status": raw,
        }
        if self.ended is not None:
            data["end_time"] = int(self.ended.timestamp() * 1000)
        body: dict[str, Any] = {"data": data}
        if message:
            body["error_msg"] = message
        return body


def _paas_time(when: dt.datetime) -> str:
    """``2017-04-12T16:01:28.238+0000``, the activity log's own format."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def not_found(api: str, job_id: str) -> tuple[dict[str, Any], str]:
    """The 404 body (and its content type) for an unknown job, in the vendor's error shape."""
    if api == "huawei":
        # Huawei Cloud's error body: {"error_code", "error_msg"} (a made-up code of its form)
        return {
            "error_code": "CFW.00200005",
            "error_msg": f"The job {job_id} does not exist.",
        }, "application/json"
    if api == "paas":
        return {"message": f"Not Found. Job {job_id} does not exist."}, "application/json"
    return {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": f"Job request {job_id} was not found.",
    }, "application/json"
