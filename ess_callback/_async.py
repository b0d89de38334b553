"""What ``async with JobExecution()`` needs besides the sync form: signals that cancel the
block's task, and blocking work run off the event loop.

``LoopSignalGuard`` is a ``SignalGuard`` whose signals arrive as event-loop callbacks
(``loop.add_signal_handler``) and cancel the task running the block, instead of raising in
the middle of the loop's own code. ``off_loop`` runs the final send in a thread of the
package's own pool and waits for it without blocking the loop; a cancellation that arrives
meanwhile is noted, and never makes the send be abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TypeVar

from ._message import signal_name
from ._signals import STOP_SIGNALS, SignalGuard, give_back, in_main_thread

log = logging.getLogger("ess_callback")

T = TypeVar("T")


class LoopSignalGuard(SignalGuard):
    """SIGTERM, SIGINT and SIGHUP for one ``async with`` block, through its event loop.

    While armed, the first signal cancels *task* (the task running the block): the job sees
    ``CancelledError`` at its next ``await`` and ``cancelled`` is true. While holding, a
    signal is noted in ``late``, as in the sync guard. Only in the main thread; the handlers
    the signals had are given back by ``restore``. A signal the loop already handles (the
    application's own ``add_signal_handler``) is left to that handler.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object]) -> None:
        super().__init__()
        self._loop = loop
        self._task = task
        self._wakeup_fd: int | None = None
        #: True once a signal cancelled the block's task (``signum`` says which)
        self.cancelled = False

    def install(self, *, armed: bool = True) -> bool:
        """Take the signals over on the loop (main thread only; elsewhere False)."""
        if not in_main_thread():
            return False
        # The loop's own handlers are not public; a signal it already has stays with it.
        owned = getattr(self._loop, "_signal_handlers", {})
        self._armed = armed
        if not owned:
            # add_signal_handler points the wakeup fd at the loop, and removing the loop's
            # last handler resets it to -1: read it now (setting returns the old value) to
            # give it back. (With handlers of its own the loop keeps the fd it has.)
            self._wakeup_fd = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(self._wakeup_fd)
        for signum in STOP_SIGNALS:
            if signum in owned:
                log.debug("%s is handled by the event loop already", signal_name(signum))
                continue
            previous = signal.getsignal(signum)
            try:
                self._loop.add_signal_handler(signum, self._on_signal, signum, None)
            except (NotImplementedError, RuntimeError, ValueError) as exc:  # not this loop
                log.debug("cannot take %s on this event loop: %s", signal_name(signum), exc)
                continue
            self._previous[signum] = previous
        return True

    def restore(self) -> None:
        """Give the signals back to the handlers (and the wakeup fd) they had."""
        self._armed = False
        if not self._previous:
            return
        for signum in self._previous:
            with contextlib.suppress(Exception):  # a closed loop has dropped them already
                self._loop.remove_signal_handler(signum)
        give_back(self._previous)
        if self._wakeup_fd is not None and not getattr(self._loop, "_signal_handlers", None):
            with contextlib.suppress(ValueError, OSError):
                signal.set_wakeup_fd(self._wakeup_fd)

    def interrupt_main(self) -> None:
        """Do what SIGTERM does (from any thread: a cancel seen in ESS)."""
        if self.interruptible:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to stop
                self._loop.call_soon_threadsafe(self._on_cancel_seen)

    def _on_cancel_seen(self) -> None:
        # Unlike a real signal, one that comes once the end is being reported is dropped:
        # the end already is CANCEL, or the job ended before the cancel reached it.
        if self._armed:
            self._on_signal(signal.SIGTERM, None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # An event-loop callback: it never interrupts other code, the task is cancelled.
        if self._armed:
            if not self.cancelled:  # once: the job's clean-up is not cancelled again
                self.cancelled = True
                self.signum = signum
                self._task.cancel()
            return
        if self.signum is None:
            self.signum = signum
        if self.holding:
            if self._say_late:
                log.warning(
                    "%s received while reporting the end; finishing first", signal_name(signum)
                )
            if self.late is None:
                self.late = signum

    def forget_cancel(self) -> None:
        """The task's cancellation by a signal was turned into the block's end: take it
        back (Python 3.11+), so that ``asyncio.timeout`` and task groups around the block
        do not count it."""
        uncancel = getattr(self._task, "uncancel", None)
        if self.cancelled and uncancel is not None:
            uncancel()


#: the final sends of all blocks in the process: threads of their own, not the loop's
#: default executor (jobs fill that with their own blocking calls, and a final status must
#: not queue behind them); kept between blocks, since starting a thread is most of the cost
MAX_SENDERS = 32
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _senders() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            # Its threads are joined at interpreter exit: a final status under way is
            # finished, never cut off.
            _executor = ThreadPoolExecutor(MAX_SENDERS, thread_name_prefix="ess-callback-final")
        return _executor


async def off_loop(work: Callable[[], T]) -> tuple[T, bool]:
    """Run *work* in a thread, off the event loop, which runs on meanwhile.

    Returns its result and whether the task was cancelled while waiting: a cancellation
    never abandons the work (a final status half sent would be lost), it is reported to
    the caller, which raises it again when nothing else leaves.
    """
    done = asyncio.wrap_future(_senders().submit(work))
    cancelled = False
    while True:
        try:
            return await asyncio.shield(done), cancelled
        except asyncio.CancelledError:
            if done.done() and not done.cancelled():
                return done.result(), True
            cancelled = True  # noted; the work goes on
