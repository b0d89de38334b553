"""Throttled UPDATE callbacks: ``job.update()`` stores, a background thread sends.

``offer()`` is the hot path (a job may call it for every row): it stores the message and
compares one clock reading, nothing more. An update is *due* once the previous UPDATE was
posted at least ``interval`` seconds ago (the first is due at once); the latest message wins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("ess_callback")

_monotonic = time.monotonic


class UpdatePump:
    """Sends the latest offered message at most once per *interval* seconds.

    With ``background=False`` (dry run, recording: sending is free) a due update is sent
    inline by ``offer``; otherwise a daemon thread sends it, so the job never waits on the
    network and never sees a delivery error.
    """

    def __init__(
        self,
        deliver: Callable[[str], None],
        interval: float,
        *,
        background: bool,
    ) -> None:
        self._deliver = deliver
        self._interval = max(0.0, float(interval))
        self._latest: str | None = None
        self._dirty = False
        self._next_due = float("-inf")
        self._closed = False
        self._background = background
        self._wake = threading.Event()
        self._signalled = False
        self._lock = threading.Lock()  # serialises deliveries
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._run, name="ess-callback-updates", daemon=True
            )
            self._thread.start()

    # -- hot path ----------------------------------------------------------------------
    def offer(self, message: str) -> None:
        """Store *message* as the latest progress; send it if an update is due."""
        self._latest = message
        self._dirty = True
        if not self._signalled and _monotonic() >= self._next_due:
            if self._background:
                self._signalled = True
                self._wake.set()
            else:
                self._send_if_due()

    # -- sending -----------------------------------------------------------------------
    def _send_if_due(self) -> bool:
        with self._lock:
            if self._closed and self._background and self._thread is not None:
                return False
            if not self._dirty or _monotonic() < self._next_due:
                return False
            self._dirty = False
            message = self._latest
            if message is None:
                return False
            try:
                self._deliver(message)
            except Exception:  # never let progress reporting hurt the job
                log.warning("could not send an UPDATE", exc_info=True)
            self._next_due = _monotonic() + self._interval
            return True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._signalled = False
            if self._closed:
                return
            self._send_if_due()
            # Hold back until the next update is due; then send the latest held message,
            # if any (trailing edge), or go back to waiting for a new one.
            while not self._closed:
                pause = self._next_due - _monotonic()
                if pause > 0 and self._wake.wait(pause):
                    self._wake.clear()
                    self._signalled = False
                    continue
                if not self._dirty:
                    break
                self._send_if_due()

    def close(self) -> None:
        """Stop; a due update still held is sent now, one held back by the throttle dropped.

        Returns only when no UPDATE is in flight, so the caller's terminal status is last.
        """
        thread = self._thread
        self._closed = True
        if thread is not None:
            self._wake.set()
            thread.join()
            self._thread = None
        self._send_if_due()
