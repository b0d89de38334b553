"""Throttled UPDATE callbacks: ``job.update()`` stores, a background thread sends.

``offer()`` is the hot path (a job may call it for every row): it stores the message and
compares one clock reading, nothing more, unless an update is due. An update is *due* once
the previous UPDATE was posted at least ``interval`` seconds ago (the first is due at once);
the latest message wins. A message held back by the throttle is sent when the interval has
passed (trailing edge), unless the pump is closed first: then it is dropped. Sending inline
(dry run, recording) gives exactly the sequence the thread gives.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("ess_callback")


class UpdatePump:
    """Sends the latest offered message at most once per *interval* seconds.

    With ``background=False`` (dry run, recording: sending is free) a due update is sent
    inline by ``offer``; otherwise a daemon thread sends it, so the job never waits on the
    network and never sees a delivery error. *clock* is injectable for tests.
    """

    def __init__(
        self,
        deliver: Callable[[str], None],
        interval: float,
        *,
        background: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deliver = deliver
        self._interval = max(0.0, float(interval))
        self._clock = clock
        # (sequence number, message) in one attribute, so that a reader on another thread
        # never pairs a message with another offer's number (which could send it twice).
        self._numbers = itertools.count(1)
        self._latest: tuple[int, str] | None = None
        self._sent_number = 0
        self._next_due = float("-inf")
        self._closed = False
        self._background = background
        # Set by offer() when an update is due, and by close(); the thread waits on it.
        self._wake = threading.Event()
        self._signalled = False  # offer() has woken the thread, which has not yet looked
        self._lock = threading.Lock()  # serialises deliveries
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._run, name="ess-callback-updates", daemon=True
            )
            self._thread.start()

    @property
    def interval(self) -> float:
        """Seconds between two UPDATEs at most."""
        return self._interval

    # -- hot path ----------------------------------------------------------------------
    def offer(self, message: str) -> None:
        """Store *message* as the latest progress; send it if an update is due.

        After ``close()`` an offer is ignored: nothing may follow the terminal status.
        """
        if self._closed:
            return
        held = self._latest
        self._latest = (next(self._numbers), message)
        if self._clock() >= self._next_due:
            if not self._background:
                self._send_inline(held)
            elif not self._signalled:
                # Wake the thread once: until it has sent (and moved _next_due on), every
                # offer finds the update due, and Event.set() takes a lock each time.
                self._signalled = True
                self._wake.set()

    # -- sending -----------------------------------------------------------------------
    def _pending(self) -> bool:
        latest = self._latest
        return latest is not None and latest[0] != self._sent_number

    def _send_if_due(self, *, from_thread: bool) -> bool:
        with self._lock:
            # Once close() has begun, the thread must not start a new delivery: close()
            # waits for the thread and then decides itself what is still due.
            if from_thread and self._closed:
                return False
            latest = self._latest
            if latest is None or latest[0] == self._sent_number:
                return False
            if self._clock() < self._next_due:
                return False
            self._sent_number, message = latest
            self._deliver_safely(message)
            self._next_due = self._clock() + self._interval
            return True

    def _send_inline(self, held: tuple[int, str] | None) -> None:
        """Send what the background thread would have sent by now (dry run, recording).

        The thread sends a held message as soon as its interval has passed (trailing
        edge); sending inline happens only on offer() and close(). So when a message held
        back earlier fell due before this offer, it goes first, as if at its due time (the
        next one is due an interval after that); then the new message, if due.
        """
        with self._lock:
            if held is not None and held[0] > self._sent_number:
                due = self._next_due
                if self._clock() > due:
                    self._sent_number = held[0]
                    self._deliver_safely(held[1])
                    self._next_due = due + self._interval
        self._send_if_due(from_thread=False)

    def _deliver_safely(self, message: str) -> None:
        try:
            self._deliver(message)
        except Exception:  # never let progress reporting hurt the job
            log.warning("could not send an UPDATE", exc_info=True)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._signalled = False
            # Send what is due, then hold back until the next update may go; a message
            # offered meanwhile is sent at that moment (trailing edge). Every wait wakes
            # early on close().
            while not self._closed:
                pause = self._next_due - self._clock()
                if pause > 0:
                    if self._wake.wait(pause):
                        self._wake.clear()
                        self._signalled = False
                    continue
                if not self._pending():
                    break
                self._send_if_due(from_thread=True)
            if self._closed:
                return

    def close(self) -> None:
        """Stop; a due update still held is sent now, one held back by the throttle dropped.

        Returns only when no UPDATE is in flight, so the caller's terminal status is last.
        """
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._wake.set()
            thread.join()
        self._send_if_due(from_thread=False)
