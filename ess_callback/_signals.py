"""The one signal guard: SIGTERM, SIGINT and SIGHUP while a job runs and its end is reported.

A guard takes the three signals over (in the main thread only: Python runs handlers there
alone), and gives them back to the handlers that had them. While it is *armed*, a signal
raises an exception in the main thread, which unwinds the job (or stops a delivery in
progress); once it *holds*, because the final status is on its way, a signal is only noted
and acted on after the status went out. ``JobExecution``, ``send`` and ``wait`` use it;
``run`` passes every signal on to its command and keeps its own handlers
(``_supervisor.py``), restored with :func:`give_back`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType

from ._log import log
from ._message import signal_name
from ._posix import CANCEL_SIGNALS

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import Any

#: the signals that stop a job: passed on, and its end is CANCEL
STOP_SIGNALS = CANCEL_SIGNALS


class SignalReceived(BaseException):
    """Raised in the main thread by the guard's handler to unwind the job."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def in_main_thread() -> bool:
    """True in the main thread, the only one where signal handlers can be installed."""
    return threading.current_thread() is threading.main_thread()


def take_over(signums: Iterable[int], handler: Callable[[int, Any], Any]) -> dict[int, Any]:
    """Install *handler* for *signums*; return the handlers they had (for ``give_back``)."""
    return {signum: signal.signal(signum, handler) for signum in signums}


def give_back(previous: dict[int, Any]) -> None:
    """Give each signal back the handler it had before ``take_over`` (and empty *previous*)."""
    for signum, handler in previous.items():
        with contextlib.suppress(ValueError, TypeError):  # not the main thread
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    previous.clear()


class SignalGuard:
    """SIGTERM, SIGINT and SIGHUP for one execution (main thread only).

    *interrupt* builds the exception a signal raises while the guard is armed
    (``SignalReceived`` by default). With *once*, only the first signal raises, and a signal
    that came before an ``armed()`` window stops it at its start (``send``: a delivery is
    stopped once, then the outbox is written in peace). *say_late* logs a signal received
    while the guard holds.

    >>> guard = SignalGuard()
    >>> guard.install()           # armed: a signal unwinds the block
    True
    >>> guard.hold()              # the final status is on its way: signals are noted
    >>> guard.restore()
    """

    def __init__(
        self,
        interrupt: Callable[[int], BaseException] = SignalReceived,
        *,
        once: bool = False,
        say_late: bool = True,
    ) -> None:
        self._interrupt = interrupt
        self._once = once
        self._say_late = say_late
        self._previous: dict[int, Any] = {}
        self._armed = False
        #: True once ``hold()`` was called: the final status is being reported
        self.holding = False
        #: the first signal received, if any
        self.signum: int | None = None
        #: the first signal received while holding (acted on once the end is reported)
        self.late: int | None = None

    @property
    def installed(self) -> bool:
        """True while the guard has the signals (it was installed in the main thread)."""
        return bool(self._previous)

    def install(self, *, armed: bool = True) -> bool:
        """Take the signals over (main thread only; elsewhere nothing happens, False)."""
        if not in_main_thread():
            return False
        self._armed = armed
        self._previous.update(take_over(STOP_SIGNALS, self._on_signal))
        return True

    def restore(self) -> None:
        """Give the signals back to the handlers that had them."""
        self._armed = False
        give_back(self._previous)

    def hold(self) -> None:
        """From now on a signal is only noted (``late``): the final status goes out first."""
        self.holding = True
        self._armed = False

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """A window in which a signal raises (with *once*: one that came before, at once)."""
        if self._once and self.signum is not None:
            raise self._interrupt(self.signum)
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    @property
    def interruptible(self) -> bool:
        """True when ``interrupt_main`` would stop the job (installed, not yet holding)."""
        return self.installed and not self.holding

    def interrupt_main(self) -> None:
        """Stop the main thread as SIGTERM would (from another thread: a cancel seen in ESS).

        A real signal rather than ``_thread.interrupt_main``, which only sets a flag: it also
        breaks a blocking call (sleep, recv). Does nothing unless ``interruptible``.
        """
        main = threading.main_thread().ident
        if self.interruptible and main is not None:  # always set: the main thread runs
            signal.pthread_kill(main, signal.SIGTERM)

    def notify(self, signum: int) -> None:
        """Act on *signum* as if the guard had received it (for a caller that keeps its own
        handlers, ``run``'s supervisor): raises inside an ``armed()`` window."""
        self._on_signal(signum, None)

    def __enter__(self) -> SignalGuard:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self._armed and (first or not self._once):
            if self._once:
                self._armed = False
            raise self._interrupt(signum)
        if self.holding:
            if self._say_late:
                log.warning(
                    "%s received while reporting the end; finishing first", signal_name(signum)
                )
            if self.late is None:
                self.late = signum
