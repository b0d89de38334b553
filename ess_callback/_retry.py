"""When to stop and how long to wait between attempts: the retry schedule, apart from the
sending (``_client.py``) and from what is worth retrying (``_answers.RETRY_STATUSES``)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import attrs

from ._checks import DEFAULT_RETRY_SECONDS

MAX_SINGLE_WAIT = 30.0
#: no attempt is started with less time than this left of the budget
MIN_ATTEMPT_SECONDS = 0.5


@attrs.frozen
class RetryPolicy:
    """How hard to try: attempts, total time budget, per-attempt timeout and backoff.

    Written by hand rather than with ``urllib3.util.Retry``: that class has no total time
    budget, does not cap ``Retry-After``, and does not report the attempt count on success,
    all three of which the delivery guarantees rest on.
    """

    attempts: int = 8
    budget: float = DEFAULT_RETRY_SECONDS
    timeout: float = 10.0
    backoff: float = 0.5
    max_wait: float = MAX_SINGLE_WAIT
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)

    def backoff_wait(self, failed_attempts: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped at ``max_wait``."""
        base = min(self.max_wait, self.backoff * 2.0 ** (failed_attempts - 1))
        return base / 2 + random.uniform(0, base / 2)

    def schedule(self) -> RetrySchedule:
        """A fresh schedule for one delivery, its budget starting now."""
        return RetrySchedule(self, self.clock() + self.budget)


@attrs.define
class RetrySchedule:
    """One delivery's clock: how long the next attempt may take, and whether (and how long)
    to wait before another one."""

    policy: RetryPolicy
    deadline: float
    attempts: int = 0

    def remaining(self) -> float:
        return self.deadline - self.policy.clock()

    def attempt_seconds(self) -> float:
        """The wall-clock seconds an exchange started now may take (never past the budget)."""
        return max(MIN_ATTEMPT_SECONDS, min(self.policy.timeout, self.remaining()))

    def start_attempt(self) -> float:
        """Count an attempt; the wall-clock seconds it may take."""
        self.attempts += 1
        return self.attempt_seconds()

    def wait_before_next(self, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None when it is time to stop."""
        remaining = self.remaining()
        if self.attempts >= self.policy.attempts or remaining <= MIN_ATTEMPT_SECONDS:
            return None
        wait = self.policy.backoff_wait(self.attempts) if retry_after is None else retry_after
        return max(0.0, min(wait, self.policy.max_wait, remaining - MIN_ATTEMPT_SECONDS))
