"""What a reader returns: the normalised ``JobState`` and the ``JobStatus`` value object.

Also the small parsers every reader shares (times, percentages), and the errors of waiting.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any

import attrs

from .._errors import EXIT_TEMPFAIL, EssCallbackError
from .._reading import MalformedAnswerError as MalformedAnswerError


class JobState(str, enum.Enum):
    """A watched job's state, the same whichever API reported it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True once the job has ended for good (succeeded, failed or cancelled)."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


#: ESS request states (``oracle.as.scheduler.State``, docs/howto/wait.md); anything else is UNKNOWN
ESS_STATES: dict[str, JobState] = {
    **dict.fromkeys(
        ("WAIT", "READY", "BLOCKED", "HOLD", "PENDING_VALIDATION", "ERROR_AUTO_RETRY"),
        JobState.PENDING,
    ),
    **dict.fromkeys(("RUNNING", "COMPLETED", "PAUSED", "CANCELLING"), JobState.RUNNING),
    **dict.fromkeys(("SUCCEEDED", "WARNING", "FINISHED"), JobState.SUCCEEDED),
    **dict.fromkeys(("ERROR", "ERROR_MANUAL_RECOVERY", "VALIDATION_FAILED"), JobState.FAILED),
    **dict.fromkeys(("CANCELLED", "EXPIRED", "SCHEDULE_ENDED"), JobState.CANCELLED),
}


def normalise(raw: str | None, table: dict[str, JobState]) -> JobState:
    """Look *raw* up in *table*, ignoring case and blanks; UNKNOWN when it is not there."""
    if raw is None:
        return JobState.UNKNOWN
    return table.get(raw.strip().upper(), JobState.UNKNOWN)


def ess_state(raw: str | None) -> JobState:
    """The ``JobState`` of an ESS request state (``CANCELLING`` is still RUNNING)."""
    return normalise(raw, ESS_STATES)


def _aware(instance: object, attribute: attrs.Attribute[Any], value: dt.datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{attribute.name} must be a timezone-aware datetime, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"progress must be between 0 and 1, got {value!r}")


@attrs.frozen
class JobStatus:
    """One reading of a watched job.

    ``state`` is normalised; ``raw_status`` is the API's own word for it, always kept (a
    relay tells a WARNING end from a clean one by it). ``progress`` is 0..1 or None,
    ``started``/``ended`` are timezone-aware, ``cause`` is why ESS says the request is where
    it is (RequestDetails ``cause``, e.g. ``PROCESS_BIZ_ERROR``; None for the other APIs or
    when absent), ``raw`` is the decoded body.
    """

    state: JobState = attrs.field(converter=JobState)
    raw_status: str | None
    progress: float | None = attrs.field(default=None, validator=_fraction)
    message: str | None = None
    started: dt.datetime | None = attrs.field(default=None, validator=_aware)
    ended: dt.datetime | None = attrs.field(default=None, validator=_aware)
    raw: Any = attrs.field(default=None, eq=False, repr=False)
    cause: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the job has ended for good."""
        return self.state.is_terminal

    @property
    def is_warning(self) -> bool:
        """True for a success that the API reported as a warning (ESS ``WARNING``, PaaS
        ``WARN``)."""
        return self.state is JobState.SUCCEEDED and "WARN" in (self.raw_status or "").upper()

    @property
    def percent(self) -> int | None:
        """Progress as a whole percentage, or None when the API gives none."""
        return None if self.progress is None else round(self.progress * 100)

    def describe(self, *, percent: bool = True) -> str:
        """``RUNNING 50% - message`` (the raw status in brackets when it says more)."""
        text = self.state.value
        if self.raw_status and self.raw_status.upper() != self.state.value:
            text += f" ({self.raw_status})"
        if percent and self.percent is not None:
            text += f" {self.percent}%"
        if self.message:
            text += f" - {self.message}"
        return text


class WaitTimeout(EssCallbackError, TimeoutError):
    """``wait()`` ran out of time before the watched job ended (also a ``TimeoutError``).

    ``last_status`` is the last answer read (or None), ``last_error`` the error of the last
    poll when it failed: then the API was unreachable rather than the job slow.
    """

    exit_code = EXIT_TEMPFAIL

    def __init__(
        self,
        message: str,
        *,
        job_id: str = "",
        waited: float = 0.0,
        last_status: JobStatus | None = None,
        last_error: EssCallbackError | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.waited = waited
        self.last_status = last_status
        self.last_error = last_error

    @property
    def unreachable(self) -> bool:
        """True when the last poll failed: the API, not the job, is the problem."""
        return self.last_error is not None


# -- shared parsers --------------------------------------------------------------------

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
#: below this an epoch number is seconds, above it milliseconds (1e11 s is the year 5138)
_MILLIS_FROM = 1e11


def parse_time(value: object) -> dt.datetime | None:
    """A timezone-aware datetime from what status APIs send, or None.

    Accepts epoch numbers (int, float or a numeric string; milliseconds, or seconds when
    too small to be milliseconds) and ISO-like text with ``Z``, ``+0800`` or ``+08:00``
    offsets and optional fractions (``2017-04-12T16:01:28.238+0000``). Text without an
    offset is taken as UTC. Anything else gives None rather than an error: a time is
    never worth failing a status read.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            return _parse_iso(text)
    if number != number or abs(number) == float("inf"):
        return None
    seconds = number / 1000.0 if abs(number) >= _MILLIS_FROM else number
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_iso(text: str) -> dt.datetime | None:
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = dt.timezone.utc
    if offset and offset.upper() != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or "0")
        try:
            tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
        except ValueError:
            return None
    try:
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or "0"),
            micro,
            tzinfo=tz,
        )
    except ValueError:
        return None


def parse_percentage(value: object) -> float | None:
    """``"50"`` (or 50, or ``"50%"``) as 0.5, clamped to 0..1; None when not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
    if number != number:
        return None
    return min(1.0, max(0.0, number / 100.0))


def text_or_none(value: object) -> str | None:
    """A non-empty string, or None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None
