"""Exceptions a job raises inside ``JobExecution`` to say how it ends.

They are consumed by the block: raising one is the job's way of choosing its status.
"""

from __future__ import annotations


class BusinessError(Exception):
    """End the job with BUSINESS_ERROR: a failure that running again will not fix."""


class JobWarning(Exception):
    """End the job with WARNING carrying this text (after any ``job.warn`` messages)."""


class JobPaused(Exception):
    """End this run with PAUSE; *state* is the paused state ESS hands back on resume."""

    def __init__(self, state: str = "") -> None:
        super().__init__(state)
        self.state = state


class JobSuspended(Exception):
    """End this run with SUSPEND."""


class JobCancelled(BaseException):
    """End the job with CANCEL.

    Derives from ``BaseException`` (like ``KeyboardInterrupt``) so that a broad
    ``except Exception`` in job code does not swallow a cancellation.
    """

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(*(() if reason is None else (reason,)))
        self.reason = reason
