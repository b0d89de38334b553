"""Relay: report another job's progress and end as this job's own ESS callbacks.

UPDATEs go through the same throttle as ``job.update()`` (``UpdatePump``); the final status
goes through the sending seam (``make_sender``), so it reaches the outbox like any other
final status when it cannot be delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._errors import RejectedError, RequestNotFoundError
from .._message import Redactor, truncate_message
from .._model import Callback, Outcome
from .._sender import make_sender
from .._status import Status
from .._updates import UpdatePump
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
    """Posts UPDATEs carrying the watched job's progress, then one final status.

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
        self._redact = Redactor([*settings.secrets(), *secrets])
        # ``wait`` says itself, in one line, where an undelivered final status went.
        self._sender = make_sender(settings, announce_spool=False)
        self._pump = UpdatePump(
            self._deliver_update, update_interval, background=not self._sender.local
        )
        self._finished = False
        #: the callbacks delivered, in order
        self.sent: list[Callback] = []

    def __repr__(self) -> str:
        return f"Relay({self.what!r}, request_id={self.settings.request_id!r})"

    @property
    def local(self) -> bool:
        """True when nothing goes over the network (dry run, recording)."""
        return self._sender.local

    def progress(self, status: JobStatus) -> None:
        """Offer an UPDATE describing *status* (throttled; never blocks, never raises)."""
        if not self._finished:
            self._pump.offer(f"{self.what}: {status.describe()}")

    def finish(self, status: Status, message: str | None) -> Outcome:
        """Send the final status (after any due UPDATE); undeliverable ones are spooled."""
        self._finished = True
        self._pump.close()
        try:
            callback = self._callback(status, message)
            outcome = self._sender.send(callback, final=True)
            if outcome.delivered:
                self.sent.append(callback)
            return outcome
        finally:
            self.close()

    def close(self) -> None:
        """Stop the update thread and close the connections (idempotent)."""
        self._finished = True
        self._pump.close()
        close = getattr(self._sender, "close", None)
        if close is not None:
            close()

    def _callback(self, status: Status, message: str | None) -> Callback:
        if message is not None:
            message = truncate_message(self._redact(message)) or None
        return Callback(self.settings.request_id, self.settings.request_handle, status, message)

    def _deliver_update(self, message: str) -> None:
        callback = self._callback(Status.UPDATE, message)
        outcome = self._sender.send(callback, final=False)
        if outcome.delivered:
            self.sent.append(callback)
        else:
            log.warning("UPDATE not delivered: %s", outcome.error)
