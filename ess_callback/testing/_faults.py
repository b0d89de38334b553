"""Fault injection for ``FakeScheduler``: planned failures, resets, delays and chaos.

A mixin, so the fake's state machine and its misbehaviours each stay readable on their own;
it works on the fake's lock and fault lists.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from ._http import Fault


class FaultInjection:
    """``fail_next``, ``reset_next``, ``reset_after_accept``, ``delay_next`` and ``chaos``."""

    _lock: threading.Condition
    _faults: list[Fault]
    _resets_after_accept: int
    _chaos: tuple[float, tuple[int, ...], bool, random.Random] | None

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        retry_after: str | float | None = None,
        body: dict[str, Any] | str | bytes | None = None,
        content_type: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next *count* calls with *status* and a ``SimpleExceptionDetail`` body
        (or *body*), with a ``Retry-After`` header when given. *method* ("POST" or "GET")
        limits the fault to those calls; by default any call counts.

        *body* is a dict (sent as JSON), or a str (UTF-8) or bytes sent raw, e.g. a proxy's
        HTML page; *content_type* overrides the default (JSON, ``text/plain`` for a str,
        ``application/octet-stream`` for bytes). Any other body is a ``TypeError`` here.
        """
        if body is not None and not isinstance(body, dict | str | bytes):
            # Caught now: in the server it would only become a puzzling 500 for the client.
            raise TypeError(
                f"fail_next body must be a dict (JSON), str or bytes, not {type(body).__name__}"
            )
        self._add_fault(
            Fault(
                "status",
                count,
                status=status,
                body=body,
                content_type=content_type,
                retry_after=None if retry_after is None else str(retry_after),
                method=method,
            )
        )

    def reset_next(self, count: int = 1, *, method: str | None = None) -> None:
        """Drop the connection of the next *count* calls without answering (a TCP reset)."""
        self._add_fault(Fault("reset", count, method=method))

    def reset_after_accept(self, count: int = 1) -> None:
        """For the next *count* callbacks it accepts, take the status (the request moves)
        and then drop the connection without answering: the answer is lost on the way."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        with self._lock:
            self._resets_after_accept += count

    def _take_reset_after_accept(self) -> bool:
        with self._lock:
            if self._resets_after_accept <= 0:
                return False
            self._resets_after_accept -= 1
            return True

    def delay_next(
        self, count: int = 1, seconds: float = 1.0, *, method: str | None = None
    ) -> None:
        """Answer the next *count* calls only after *seconds* (then normally)."""
        self._add_fault(Fault("delay", count, delay=seconds, method=method))

    def chaos(
        self,
        rate: float,
        *,
        statuses: tuple[int, ...] = (500, 502, 503),
        resets: bool = True,
        seed: int | None = None,
    ) -> None:
        """Fail a random share (*rate*, 0..1) of calls with one of *statuses* or a reset;
        ``chaos(0)`` stops it. Planned faults (``fail_next`` ...) are applied first."""
        if not 0 <= rate <= 1:
            raise ValueError(f"chaos rate {rate} is not between 0 and 1")
        with self._lock:
            self._chaos = None if rate == 0 else (rate, statuses, resets, random.Random(seed))

    def _add_fault(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"count must be at least 1, not {fault.remaining}")
        if fault.method is not None:
            fault.method = fault.method.upper()
        with self._lock:
            self._faults.append(fault)

    def _next_fault(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method is None or fault.method == method:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
            if self._chaos is not None:
                rate, statuses, resets, rng = self._chaos
                if rng.random() < rate:
                    choices = [*statuses, *((0,) if resets else ())]
                    pick = rng.choice(choices)
                    return Fault("reset", 1) if pick == 0 else Fault("status", 1, status=pick)
            return None
