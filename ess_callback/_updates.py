"""Throttled UPDATE callbacks: ``job.update()`` stores, a background thread sends.

``offer()`` is the hot path (a job may call it for every row): it stores the message and
compares one clock reading, nothing more, unless an update is due. One rule decides what is
sent, whether inline (dry run, recording) or by the thread (HTTP):

* an update is *due* when the previous one became due at least ``interval`` ago (the first
  at once);
* a due update carries the message that was the latest at the moment it became due, and
  the next one becomes due ``interval`` after that moment (however long the POST took), or,
  when the thread started the POST later than that moment, ``interval`` after its start: no
  two posts are ever closer than ``interval``;
* a message offered while none is due is held and, if still the latest, goes when the next
  one becomes due (trailing edge); one still held when the pump closes is dropped.

So inline sending and the thread give the same sequence for the same timing (the thread's
wake-up latency, microseconds, aside).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("ess_callback")

Item = tuple[int, str]  # (sequence number, message)


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
        self._latest: Item | None = None
        self._claimed = 0  # number of the last message that fell due
        self._next_due = float("-inf")
        self._due: Item | None = None  # fell due, for the thread to send
        self._closed = False
        self._background = background
        # Set by offer() when an update falls due, and by close(); the thread waits on it.
        self._wake = threading.Event()
        # Guards the rule's state; never held across a POST, so offer() never waits on one.
        self._state = threading.Lock()
        self._lock = threading.Lock()  # serialises deliveries
        self._thread: threading.Thread | None = None
        if background:
            thread = threading.Thread(target=self._run, name="ess-callback-updates", daemon=True)
            try:
                thread.start()
                self._thread = thread
            except RuntimeError:  # no thread to spare: updates are sent inline instead
                log.warning("cannot start a thread for updates; they are sent inline")
                self._background = False

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
        item = (next(self._numbers), message)
        self._latest = item
        if self._clock() >= self._next_due:
            self._fall_due(held, item)

    # -- the rule ----------------------------------------------------------------------
    def _claim(self, now: float, held: Item | None, offered: Item | None) -> list[Item]:
        """What falls due by *now* (call with ``_state`` held), oldest first.

        *held* is the latest message before *offered*; it went out at the trailing edge
        (``_next_due``) if it was still unsent then. *offered* (None from the thread and
        from close) is due itself if *now* is at least the next due time after that.
        """
        items: list[Item] = []
        # The trailing edge passed before this offer, or is now (thread, close).
        at_edge = now > self._next_due or (offered is None and now >= self._next_due)
        if held is not None and held[0] > self._claimed and at_edge:
            items.append(held)
            self._claimed = held[0]
            self._next_due += self._interval
        if offered is not None and offered[0] > self._claimed and now >= self._next_due:
            items.append(offered)
            self._claimed = offered[0]
            self._next_due = now + self._interval
        return items

    def _fall_due(self, held: Item | None, offered: Item) -> None:
        if not self._background:
            with self._lock:  # inline: deliver in order, as the thread would
                with self._state:
                    items = self._claim(self._clock(), held, offered)
                for _, message in items:
                    self._deliver_safely(message)
            return
        with self._state:
            items = self._claim(self._clock(), held, offered)
            if not items:
                return
            # One slot: if the thread is still busy with an earlier POST, the latest wins.
            self._due = items[-1]
        self._wake.set()

    # -- sending -----------------------------------------------------------------------
    def _deliver_safely(self, message: str) -> None:
        try:
            self._deliver(message)
        except Exception:  # never let progress reporting hurt the job
            log.warning("could not send an UPDATE", exc_info=True)

    def _run(self) -> None:
        while True:
            # Clear before looking, so that an offer's set() after the look is not lost.
            self._wake.clear()
            with self._state:
                item, self._due = self._due, None
                closed = self._closed
                if item is None and not closed:
                    now = self._clock()
                    held = self._latest
                    if held is not None and now >= self._next_due:
                        claimed = self._claim(now, held, None)
                        item = claimed[-1] if claimed else None
                pause = self._next_due - self._clock()
            if item is not None:
                with self._lock:
                    with self._state:
                        # However late the thread woke, never two posts closer than the
                        # interval (due once the previous was *posted* that long ago).
                        self._next_due = max(self._next_due, self._clock() + self._interval)
                    self._deliver_safely(item[1])
                continue
            if closed:
                return
            # Wait for the trailing edge (a held message may be due then), or, once it has
            # passed, for an offer that finds an update due; close() wakes either wait.
            self._wake.wait(pause if pause > 0 else None)

    def close(self) -> None:
        """Stop; a due update still held is sent now, one held back by the throttle dropped.

        Returns only when no UPDATE is in flight, so the caller's terminal status is last.
        Closing again does nothing: a message held back at the first close stays dropped
        (sent later, it would follow the terminal status).
        """
        if self._closed:
            return
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._wake.set()
            thread.join()  # it sends an update already due, then stops
        with self._lock:
            with self._state:
                items = self._claim(self._clock(), self._latest, None)
            for _, message in items:
                self._deliver_safely(message)
