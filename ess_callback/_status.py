"""The eight callback statuses of the ESS executionStatus call."""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """A callback status; the value is the name on the wire."""

    SUCCESS = "SUCCESS"
    UPDATE = "UPDATE"
    PAUSE = "PAUSE"
    WARNING = "WARNING"
    ERROR = "ERROR"
    BUSINESS_ERROR = "BUSINESS_ERROR"
    CANCEL = "CANCEL"
    SUSPEND = "SUSPEND"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for the statuses that end an execution for good."""
        return self in TERMINAL

    @property
    def is_final(self) -> bool:
        """True for the statuses that end a run of the job (terminal, PAUSE, SUSPEND)."""
        return self is not Status.UPDATE

    @classmethod
    def parse(cls, text: str | Status) -> Status:
        """Return the status named by *text*, ignoring case and surrounding blanks.

        Raises ``ValueError`` naming the valid statuses when *text* is not one.
        """
        if isinstance(text, Status):
            return text
        key = str(text).strip()
        try:
            # ASCII only: str.upper() would turn look-alikes such as the long s (U+017F) into "S".
            if not key.isascii():
                raise ValueError(key)
            return cls(key.upper().replace("-", "_"))
        except ValueError:
            import difflib  # only on this error path: parsing a good status stays cheap

            valid = ", ".join(s.value for s in cls)
            close = difflib.get_close_matches(
                key.upper().replace("-", "_"), [s.value for s in cls], n=1, cutoff=0.6
            )
            guess = f"did you mean {close[0]}? " if close else ""
            raise ValueError(f"unknown status {text!r}: {guess}use one of {valid}") from None


TERMINAL = frozenset(
    {Status.SUCCESS, Status.WARNING, Status.ERROR, Status.BUSINESS_ERROR, Status.CANCEL}
)
