"""Relay: report another job's progress and end as this job's own ESS callbacks.

UPDATEs, the final status, the outbox step and the exit status go through the same
``ReportingSession`` as ``job.update()`` and ``run`` do, so an undeliverable final status
reaches the outbox like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._errors import RejectedError, RequestNotFoundError
from .._message import Redactor
from .._model import Callback, Outcome
from .._sender import make_sender
from .._session import ReportingSession
from .._status import Status
from ._state import JobState, JobStatus, MalformedAnswerError, WaitTimeout

if TYPE_CHECKING:
    from .._settings import Settings

log = logging.getLogger("ess_callback")


def failure_text(what: str, error: BaseException, *, api: str = "the status API") -> str:
    """How a wait that ended without an answer is described (stderr and relayed ERROR);
    *api* names the watched API (``ESS``, ``the Fusion Job Scheduler``...)."""
    if isinstance(error, RequestNotFoundError):
        return f"{what} does not exist: {error}"
    if isinstance(error, WaitTimeout):
        if error.last_error is not None:
            return f"unreachable: {error.last_error}"
        last = f" (last state {error.last_status.describe()})" if error.last_status else ""
        return f"timed out waiting for {what} after {error.waited:.0f} s{last}"
    if isinstance(error, RejectedError):  # 401, 403 and other refusals: waiting won't help
        return f"refused by {api}: {str(error).removeprefix(f'{api} answered ')}"
    if isinstance(error, MalformedAnswerError):
        return f"unreadable answer from {api}: {error}"
    return f"unreachable: {error}"


def final_status(
    what: str, result: JobStatus | BaseException, *, api: str = "the status API"
) -> tuple[Status, str | None]:
    """The status (and message) that relays how the wait for *what* ended.

    SUCCEEDED -> SUCCESS (WARNING when the raw status was a warning), FAILED -> ERROR with
    the other job's message, CANCELLED -> CANCEL; a job that does not exist (404) ->
    BUSINESS_ERROR; a wait that ended without an answer (timeout, unreachable, refused,
    unreadable) -> ERROR.
    """
    if isinstance(result, RequestNotFoundError):
        return Status.BUSINESS_ERROR, failure_text(what, result, api=api)
    if isinstance(result, BaseException):
        return Status.ERROR, failure_text(what, result, api=api)
    said = f": {result.message}" if result.message else ""
    if result.state is JobState.SUCCEEDED:
        if result.is_warning:
            return Status.WARNING, f"{what} ended with {result.raw_status}{said}"
        return Status.SUCCESS, None
    if result.state is JobState.CANCELLED:
        return Status.CANCEL, f"{what} {result.raw_status or 'CANCELLED'}{said}"
    return Status.ERROR, f"{what} {result.raw_status or result.state.value}{said}"


class Relay:
    """Posts UPDATEs carrying the watched job's progress, then one final status, through a
    ``ReportingSession``.

    *what* names the watched job in messages (``saas-batch job 44046``); *secrets* are
    extra values (the watched API's credentials) kept out of every message.
    """

    def __init__(
        self,
        settings: Settings,
        what: str,
        *,
        update_interval: float = 10.0,
        secrets: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.what = what
        #: the callbacks delivered, in order
        self.sent: list[Callback] = []
        # ``wait`` says itself, in one line, where an undelivered final status went.
        self.session = ReportingSession(
            settings,
            make_sender(settings, announce_spool=False),
            redact=Redactor([*settings.secrets(), *secrets]),
            update_interval=update_interval,
            sent=self.sent,
        )
        self.session.start_updates()
        self.session.hold_lease("relay")  # before the first poll (docs/guarantees.md)

    def __repr__(self) -> str:
        return f"Relay({self.what!r}, request_id={self.settings.request_id!r})"

    @property
    def local(self) -> bool:
        """True when nothing goes over the network (dry run, recording)."""
        return self.session.sender().local

    def progress(self, status: JobStatus) -> None:
        """Offer an UPDATE describing *status* (throttled; never blocks, never raises)."""
        self.session.update(f"{self.what}: {status.describe()}")

    def finish(self, status: Status, message: str | None) -> Outcome:
        """Send the final status (after any due UPDATE); undeliverable ones are spooled."""
        return self.session.finish(status, message)

    def end(self, status: Status, message: str | None, *, code: int) -> int:
        """Send the final status; return the exit status (``exit_code_for``: *code*, or 75
        or 1 when it was 0 and the status was not delivered), saying why on stderr."""
        return self.session.end(status, message, child_status=code)

    def close(self) -> None:
        """Stop the update thread and close the connections (idempotent)."""
        self.session.close()
