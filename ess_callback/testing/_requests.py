"""The fake scheduler's requests: ESS's documented states, what a callback does to them,
and the RequestDetails body a GET answers (docs/howto/testing.md).

Only what Oracle documents is modelled: the states of ``oracle.as.scheduler.State``, the
``cause`` values of RequestDetails, and the cancel rules of ``POST .../requests/{id}/cancel``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from .._status import Status

#: every request state ESS documents (``oracle.as.scheduler.State``)
ESS_STATES = frozenset(
    {
        "WAIT",
        "READY",
        "RUNNING",
        "COMPLETED",
        "BLOCKED",
        "HOLD",
        "CANCELLING",
        "EXPIRED",
        "CANCELLED",
        "ERROR",
        "WARNING",
        "SUCCEEDED",
        "PAUSED",
        "PENDING_VALIDATION",
        "VALIDATION_FAILED",
        "SCHEDULE_ENDED",
        "FINISHED",
        "ERROR_AUTO_RETRY",
        "ERROR_MANUAL_RECOVERY",
    }
)
#: the request state a status leads to. ESS documents no state of its own for SUSPEND
#: ("the job has suspended itself"); HOLD is the documented state of a request that waits
#: for someone to let it go on, so a suspended request is shown HOLD until it reports again.
STATE_AFTER = {
    Status.SUCCESS: "SUCCEEDED",
    Status.WARNING: "WARNING",
    Status.ERROR: "ERROR",
    Status.BUSINESS_ERROR: "ERROR",
    Status.CANCEL: "CANCELLED",
    Status.PAUSE: "PAUSED",
    Status.SUSPEND: "HOLD",
}
#: the RequestDetails ``cause`` a final status leaves (values from Oracle's list)
CAUSE_AFTER = {
    Status.SUCCESS: "PROCESS_SUCCESS",
    Status.WARNING: "PROCESS_WARNING",
    Status.ERROR: "PROCESS_ERROR",
    Status.BUSINESS_ERROR: "PROCESS_BIZ_ERROR",
    Status.CANCEL: "PROCESS_CANCEL",
}
#: states after which a request takes no other status (set by a callback or by set_state)
ENDED_STATES = frozenset(
    {
        "SUCCEEDED",
        "WARNING",
        "ERROR",
        "CANCELLED",
        "EXPIRED",
        "FINISHED",
        "ERROR_MANUAL_RECOVERY",
        "VALIDATION_FAILED",
        "SCHEDULE_ENDED",
    }
)
#: a cancel turns these into CANCELLED at once (the request never ran) ...
CANCEL_AT_ONCE = frozenset({"WAIT", "READY", "BLOCKED", "HOLD", "PENDING_VALIDATION"})
#: ... and these into CANCELLING, until the job reports (best effort, as ESS documents)
CANCEL_LATER = frozenset({"RUNNING", "COMPLETED", "PAUSED"})
#: states in which a callback's message is the request's errorWarningMessage
MESSAGE_KEPT = frozenset({Status.ERROR, Status.BUSINESS_ERROR, Status.WARNING})


def check_state(state: str) -> str:
    """*state* if ESS documents it, else a ``ValueError`` naming the documented ones."""
    if state not in ESS_STATES:
        raise ValueError(
            f"{state!r} is not an ESS request state; use one of {', '.join(sorted(ESS_STATES))}"
        )
    return state


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(when: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds, as ESS writes its times."""
    if when is None:
        return None
    return (
        when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@attrs.frozen
class SubmittedRequest:
    """A request the fake scheduler knows: its id and the handle its job must send."""

    request_id: int
    handle: str


@attrs.define
class Request:
    """One submitted request and what the callbacks did to it (guarded by the fake's lock)."""

    request_id: int
    handle: str = attrs.field(repr=False)
    state: str = "RUNNING"
    #: the final status that ended it (None while it runs, or when set_state ended it)
    ended_with: Status | None = None
    cause: str | None = None
    message: str | None = None
    started: dt.datetime = attrs.field(factory=now)
    ended: dt.datetime | None = None
    last_check_in: dt.datetime | None = None

    @property
    def submitted(self) -> SubmittedRequest:
        return SubmittedRequest(self.request_id, self.handle)

    def set_state(self, state: str) -> None:
        """Put the request in *state* (an operator's or a test's doing)."""
        self.state = check_state(state)
        self.ended_with = None
        if state in ENDED_STATES:
            self.ended = self.ended or now()
            if state == "CANCELLED":
                self.cause = "OPERATOR_CANCEL"
            elif state == "EXPIRED":
                self.cause = "REQUEST_EXPIRED"
        else:
            self.ended = None
            self.cause = None

    def refusal(self, status: Status, repeat_final: str) -> str | None:
        """Why this request refuses *status* now (answered 400), or None."""
        if self.state not in ENDED_STATES:
            return None
        if status is self.ended_with and repeat_final == "accept":
            return None  # the same final status again: accepted when told to
        again = " again" if status is self.ended_with else ""
        return (
            f"Request {self.request_id} already ended in state {self.state}; "
            f"{status.value}{again} refused"
        )

    def apply(self, status: Status, message: str | None) -> None:
        """Move the request as the accepted *status* leads it."""
        if self.state in ENDED_STATES:
            return  # a repeated final status, accepted: nothing changes
        if status is Status.UPDATE:
            if self.state in ("PAUSED", "HOLD"):
                self.state = "RUNNING"  # the job reports again: it runs
            return
        self.state = STATE_AFTER[status]
        if status in CAUSE_AFTER:
            self.ended_with = status
            self.cause = CAUSE_AFTER[status]
            self.ended = now()
            if status in MESSAGE_KEPT and message:
                self.message = message

    def cancel(self) -> str | None:
        """An operator's cancel: the new state, or None when the state does not allow it."""
        if self.state in CANCEL_AT_ONCE:
            self.set_state("CANCELLED")
        elif self.state in CANCEL_LATER:
            self.state = "CANCELLING"
        else:
            return None
        return self.state

    def details(self) -> dict[str, Any]:
        """The RequestDetails body of a GET, with the fields Oracle documents."""
        body: dict[str, Any] = {
            "requestId": self.request_id,
            "state": self.state,
            "isAsynchronous": True,
            "processStartTime": iso(self.started),
        }
        if self.ended is not None:
            body["processEndTime"] = iso(self.ended)
            body["completedTime"] = iso(self.ended)
        if self.cause is not None:
            body["cause"] = self.cause
        if self.message is not None:
            body["errorWarningMessage"] = self.message
        return body
