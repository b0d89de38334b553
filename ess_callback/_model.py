"""Value objects: what is sent (``Callback``) and how an execution ended (``Outcome``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ._status import Status


def _to_status(value: Status | str) -> Status:
    return Status.parse(value)


@attrs.frozen
class Callback:
    """One executionStatus call: request id, request handle, status and message.

    ``request_id`` and ``request_handle`` are ``None`` only in dry run and recording
    when they were not configured.
    """

    request_id: int | None
    request_handle: str | None
    status: Status = attrs.field(converter=_to_status)
    message: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body sent to ESS (``statusMessage`` left out when there is none)."""
        body: dict[str, Any] = {"requestHandle": self.request_handle, "status": self.status.value}
        if self.message is not None and self.message != "":
            body["statusMessage"] = self.message
        return body

    def __iter__(self) -> Iterator[Any]:
        """Unpack as a tuple: ``(request_id, request_handle, status, message)``."""
        return iter((self.request_id, self.request_handle, self.status, self.message))


@attrs.frozen
class Outcome:
    """How one execution ended: the status posted, its message, whether it was delivered,
    how many HTTP attempts it took, and the error when it was not delivered."""

    status: Status
    message: str | None
    delivered: bool
    attempts: int = 0
    error: BaseException | None = attrs.field(default=None, eq=False)
    #: the outbox file holding the callback, when it was not delivered but kept
    spooled_to: Path | None = None
    #: why a final callback that belonged in the outbox could not be written there
    spool_error: BaseException | None = attrs.field(default=None, eq=False)

    def __iter__(self) -> Iterator[Any]:
        """Unpack as ``(status, message, delivered, attempts, error)``; ``spooled_to`` and
        ``spool_error`` are extra attributes, not part of the tuple."""
        return iter((self.status, self.message, self.delivered, self.attempts, self.error))
