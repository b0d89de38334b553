"""``wait()``: poll a reader until the watched job ends, riding out transient trouble."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from .._errors import SchedulerUnavailableError
from ._http import HostNotFoundError, HttpReader
from ._state import JobStatus, WaitTimeout

log = logging.getLogger("ess_callback")

#: each unchanged answer stretches the poll interval by this factor, up to the cap
GROWTH = 1.25
#: the cap is this many times the poll interval, and never more than MAX_POLL seconds
CAP_FACTOR = 8.0
MAX_POLL = 60.0
#: a run of transient errors is logged as a warning at most this often (seconds)
ERROR_LOG_EVERY = 60.0


class Reader(Protocol):
    """Anything with ``status(job_id) -> JobStatus`` (the four readers, or a test double)."""

    def status(self, job_id: str) -> JobStatus: ...


def _signature(status: JobStatus) -> tuple[object, ...]:
    return (status.state, status.raw_status, status.progress, status.message)


def wait(
    reader: Reader,
    job_id: str | int,
    *,
    timeout: float | None,
    poll: float,
    on_change: Callable[[JobStatus], None] | None = None,
    max_poll: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobStatus:
    """Poll *reader* for *job_id* until the job ends; return its final ``JobStatus``.

    The first poll is immediate. While nothing changes the interval grows gently from
    *poll* (x1.25 per poll) up to *max_poll* (default: 8 x *poll*, at most 60 s); a change
    brings it back to *poll*. ``on_change(status)`` is called for the first answer and
    whenever state, raw status, progress or message change.

    Transient failures (5xx, 429, 408, network errors) are logged and ridden out, except a
    host name that cannot be resolved on the first poll (``HostNotFoundError``, raised at
    once: a wrong URL does not fix itself). A 404
    raises ``RequestNotFoundError`` at once, as do other refusals (401, 403, ...) and a
    malformed answer (``MalformedAnswerError``): waiting longer would not fix them. When
    *timeout* seconds pass (None: no limit) it raises ``WaitTimeout``, whose
    ``last_error`` is set when the last poll failed (the API was unreachable).
    """
    if poll <= 0:
        raise ValueError("poll must be more than zero seconds")
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be zero or more seconds (None for no limit)")
    cap = max(poll, min(poll * CAP_FACTOR, MAX_POLL)) if max_poll is None else max(poll, max_poll)
    job = str(job_id)
    start = clock()
    deadline = float("inf") if timeout is None else start + timeout
    interval = poll
    last: JobStatus | None = None
    last_error: SchedulerUnavailableError | None = None
    errors_logged_at = float("-inf")
    first = True
    while True:
        try:
            with _within(reader, deadline - clock()):
                status = reader.status(job)
        except SchedulerUnavailableError as error:
            if first and isinstance(error, HostNotFoundError):
                raise
            last_error = error
            now = clock()
            if now - errors_logged_at >= ERROR_LOG_EVERY:
                errors_logged_at = now
                log.warning("job %s: %s; still waiting", job, error)
            else:
                log.debug("job %s: %s", job, error)
        else:
            if last_error is not None:
                log.info("job %s: the status API answers again", job)
                errors_logged_at = float("-inf")
            last_error = None
            if last is None or _signature(status) != _signature(last):
                interval = poll
                if on_change is not None:
                    on_change(status)
            last = status
            if status.is_terminal:
                return status
        first = False
        now = clock()
        if now >= deadline:
            raise _timeout(job, now - start, last, last_error)
        sleep(min(interval, deadline - now))
        interval = min(cap, interval * GROWTH)


@contextlib.contextmanager
def _within(reader: Reader, seconds: float) -> Iterator[None]:
    """Bound one read of an HTTP reader by what is left of the wait (a slow answer cannot
    hold the wait past its timeout); other readers are left as they are."""
    if not isinstance(reader, HttpReader) or seconds >= reader.timeout:
        yield
        return
    saved = reader.timeout
    reader.timeout = max(0.5, seconds)
    try:
        yield
    finally:
        reader.timeout = saved


def _timeout(
    job: str,
    waited: float,
    last: JobStatus | None,
    error: SchedulerUnavailableError | None,
) -> WaitTimeout:
    if error is not None:
        text = f"unreachable: {error}"
    else:
        state = f" (last state {last.describe()})" if last is not None else ""
        text = f"timed out waiting for job {job} after {waited:.0f} s{state}"
    return WaitTimeout(text, job_id=job, waited=waited, last_status=last, last_error=error)
