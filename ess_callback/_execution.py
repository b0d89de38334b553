"""``JobExecution``: the context manager that reports how a block of job code ended."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from . import _recording
from ._control import BusinessError, JobCancelled, JobPaused, JobSuspended, JobWarning
from ._errors import ConfigurationError, DeliveryError
from ._message import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Redactor,
    describe_exception,
    exception_text,
    signal_name,
    truncate_message,
)
from ._model import Callback, Outcome
from ._posix import CANCEL_SIGNALS
from ._sender import HttpSender, Sender, make_sender, undelivered_text
from ._settings import Settings, resolve_settings
from ._status import Status
from ._updates import UpdatePump

if TYPE_CHECKING:
    from ._cancel import CancelWatcher
    from ._client import SchedulerClient

log = logging.getLogger("ess_callback")

HANDLED_SIGNALS = CANCEL_SIGNALS


class _SignalReceived(BaseException):
    """Raised in the main thread by our handler to unwind the block on SIGTERM/INT/HUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: exit status of a job whose final status is in the outbox (EX_TEMPFAIL, as the CLI)
EXIT_TEMPFAIL = 75
_REPORT_ATTR = "_ess_callback_report"
_hook_lock = threading.Lock()


def report_if_uncaught(error: BaseException, line: str, exit_code: int) -> None:
    """Should *error* end the program uncaught, print *line* and exit with *exit_code*.

    A Python job is run like a command: an error the user can cause (a missing setting, a
    status that could not be delivered) ends it with one line on stderr and the exit code
    the command line would give, not a traceback. Only the default ``sys.excepthook`` is
    replaced; a hook the application installed (an error reporter) stays in charge, and
    code that catches the error sees nothing of this.
    """
    setattr(error, _REPORT_ATTR, (line, exit_code))
    with _hook_lock:
        if sys.excepthook is sys.__excepthook__:
            sys.excepthook = _excepthook


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    report = getattr(exc, _REPORT_ATTR, None)
    if report is None:
        sys.__excepthook__(exc_type, exc, tb)
        return
    line, exit_code = report
    sys.stderr.write(f"ess-callback: {line}\n")
    sys.stderr.flush()
    # SystemExit raised by an excepthook ends the process with that status (CPython
    # handles it as it would at top level); without it an uncaught error always exits 1.
    raise SystemExit(exit_code)


class JobExecution:
    """Report the end of a block of job code to ESS.

    >>> with JobExecution() as job:          # settings from ESS_* variables
    ...     job.update("extracted 1200 rows")
    ...     job.warn("3 rows skipped")       # the end becomes WARNING

    How the block ended decides the status (SPEC section 4): cancellation and signals give
    CANCEL, ``JobPaused`` PAUSE, ``JobSuspended`` SUSPEND, ``classify(exc)`` may choose,
    ``BusinessError`` (or a class in *business_errors*) BUSINESS_ERROR, ``JobWarning`` or
    ``job.warn`` WARNING, any other exception ERROR, a normal end SUCCESS.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        request_id: int | str | None = None,
        request_handle: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        dry_run: bool | None = None,
        business_errors: Iterable[type[BaseException]] = (),
        classify: Callable[[BaseException], Status | None] | None = None,
        update_interval: float = 10.0,
        handle_signals: bool = True,
        cancel_poll: float | None = None,
        outbox: str | Any | None = None,
        client: SchedulerClient | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        media_type: str | None = None,
    ) -> None:
        recording = _recording.active_recorder() is not None
        allow_http: bool | None = None
        if base_url is None and client is not None:
            base_url = client.base_url
            # A client built with allow_http=True was allowed its http:// URL explicitly.
            allow_http = getattr(client, "allow_http", None) or None
        try:
            self.settings: Settings = resolve_settings(
                base_url=base_url,
                request_id=request_id,
                request_handle=request_handle,
                username=username,
                password=password,
                token=token,
                dry_run=dry_run,
                outbox=outbox,
                cancel_poll=cancel_poll,
                media_type=media_type,
                allow_http=allow_http,
                require=not recording,
            )
        except ConfigurationError as exc:
            report_if_uncaught(exc, str(exc), exc.exit_code)
            raise
        self.business_errors = tuple(business_errors)
        for kind in self.business_errors:
            # Checked now: isinstance() would only fail when the block ends.
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"business_errors holds {kind!r}, not an exception class")
        self.classify = classify
        self.update_interval = float(update_interval)
        self.handle_signals = handle_signals
        self.max_message_bytes = max_message_bytes
        self._client = client
        client_secrets = getattr(client, "secrets", None)
        self._redact = Redactor(
            [*self.settings.secrets(), *(client_secrets() if callable(client_secrets) else [])]
        )
        self._warnings: list[str] = []
        self._sender: Sender | None = None
        self._pump: UpdatePump | None = None
        self._watcher: CancelWatcher | None = None
        self._old_handlers: dict[int, Any] = {}
        self._finishing = False
        #: a signal received while the end was being reported (acted on after it)
        self._late_signal: int | None = None
        self._cancel_reason: str | None = None
        self.cancel_requested = False
        #: the callbacks sent (dry run: that would have been sent), in order
        self.sent: list[Callback] = []
        #: how the execution ended; set when the block exits
        self.outcome: Outcome | None = None

    def __repr__(self) -> str:
        return f"JobExecution(request_id={self.settings.request_id!r}, outcome={self.outcome!r})"

    # -- the job's calls -----------------------------------------------------------------
    def update(self, message: str) -> None:
        """Report progress (UPDATE), throttled to one post per ``update_interval`` seconds.

        The latest message wins; never blocks on the network and never raises for delivery.
        """
        pump = self._pump
        if pump is not None:
            pump.offer(message)  # str() happens when it is sent, off this hot path

    def warn(self, message: str) -> None:
        """Record a warning; a block that then ends normally ends with WARNING."""
        self._warnings.append(str(message))

    @property
    def warnings(self) -> list[str]:
        """The warnings recorded so far, in order."""
        return list(self._warnings)

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if the scheduler asked for cancellation (``cancel_poll``)."""
        if self.cancel_requested:
            raise JobCancelled(self._cancel_reason)

    # -- context manager -----------------------------------------------------------------
    def __enter__(self) -> JobExecution:
        self._sender = self._make_sender()
        self._pump = UpdatePump(
            self._deliver_update, self.update_interval, background=not self._sender.local
        )
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        if self.settings.cancel_poll and not self._sender.local:
            from ._cancel import CancelWatcher

            self._watcher = CancelWatcher(self.settings, self._on_cancel_requested)
            self._watcher.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._finishing = True
        try:
            if self._watcher is not None:
                _safely(self._watcher.stop, "stopping the cancel watcher")
            try:
                status, message, consume, exit_code = self._end_status(exc)
            except Exception:
                # A last resort: the job's end is still reported, its exception goes on.
                log.warning("could not decide how the block ended; sending ERROR", exc_info=True)
                text = describe_exception(exc) if exc is not None else "the end was not classified"
                status, message, consume, exit_code = Status.ERROR, text, False, None
            if self._pump is not None:
                _safely(self._pump.close, "stopping the UPDATE pump")
            try:
                outcome = self._send_final(status, message)
            except Exception as broken:  # a custom client's bug must not hide the job's end
                outcome = Outcome(status, message, delivered=False, error=broken)
        finally:
            self._restore_handlers()
            _safely(self._close_client, "closing the connection")
        self.outcome = outcome
        if exit_code is None and self._late_signal is not None:
            # A signal that came while the end was being reported still ends the process
            # as signalled: a job its scheduler stopped must not carry on after the block.
            exit_code = 128 + self._late_signal
        if not outcome.delivered:
            error = outcome.error
            if isinstance(exc, SystemExit) and exc.code in (0, None) and exit_code is None:
                # The job meant to succeed, but its end was not reported: like run for a
                # command that exited 0, say so and leave with 75 (kept) or 1 (lost).
                sys.stderr.write(f"ess-callback: {undelivered_text(outcome)}\n")
                sys.stderr.flush()
                raise SystemExit(EXIT_TEMPFAIL if outcome.spooled_to is not None else 1) from None
            if exit_code is not None or (exc is not None and not consume):
                # The job's own exception (or the signal's exit) goes on; never hide it.
                log.error("%s", undelivered_text(outcome))
            elif error is not None:
                if isinstance(error, DeliveryError):
                    code = EXIT_TEMPFAIL if outcome.spooled_to is not None else error.exit_code
                    report_if_uncaught(error, undelivered_text(outcome), code)
                raise error
        if exit_code is not None:
            raise SystemExit(exit_code) from None
        return consume

    # -- internals -----------------------------------------------------------------------
    def _make_sender(self) -> Sender:
        # __exit__ says itself, in one line, when the final status went to the outbox.
        sender = make_sender(
            self.settings,
            client=self._client,
            max_message_bytes=self.max_message_bytes,
            announce_spool=False,
        )
        if isinstance(sender, HttpSender) and self._client is None:
            self._owned_sender: HttpSender | None = sender
        return sender

    def _close_client(self) -> None:
        owned = getattr(self, "_owned_sender", None)
        if owned is not None:
            owned.close()

    def _callback(self, status: Status, message: str | None) -> Callback:
        if message is not None:
            message = truncate_message(self._redact(str(message)), self.max_message_bytes)
            if message == "":
                message = None
        return Callback(self.settings.request_id, self.settings.request_handle, status, message)

    def _deliver_update(self, message: str) -> None:
        assert self._sender is not None
        callback = self._callback(Status.UPDATE, str(message))
        outcome = self._sender.send(callback, final=False)
        if outcome.delivered:
            self.sent.append(callback)
        else:
            log.warning("UPDATE not delivered: %s", outcome.error)

    def _send_final(self, status: Status, message: str | None) -> Outcome:
        assert self._sender is not None
        callback = self._callback(status, message)
        outcome = self._sender.send(callback, final=True)
        if outcome.delivered:
            self.sent.append(callback)
        return outcome

    def _warning_text(self, extra: str | None = None) -> str:
        return "\n".join([*self._warnings, *([extra] if extra else [])])

    def _end_status(self, exc: BaseException | None) -> tuple[Status, str | None, bool, int | None]:
        """(status, message, consume the exception?, exit code to leave with) for this end."""
        if isinstance(exc, _SignalReceived):
            reason = self._cancel_reason if self.cancel_requested else None
            return Status.CANCEL, reason or signal_name(exc.signum), True, 128 + exc.signum
        if isinstance(exc, JobCancelled):
            return Status.CANCEL, _text_or_none(exc.reason), True, None
        if isinstance(exc, KeyboardInterrupt):
            return Status.CANCEL, "SIGINT", False, None
        if isinstance(exc, JobPaused):
            return Status.PAUSE, _text_or_none(exc.state), True, None
        if isinstance(exc, JobSuspended):
            return Status.SUSPEND, exception_text(exc) or None, True, None
        if isinstance(exc, Exception) and self.classify is not None:
            chosen = self._classified(exc)
            if chosen is not None:
                consume = isinstance(exc, BusinessError | JobWarning)
                return chosen, describe_exception(exc, where=False), consume, None
        if isinstance(exc, BusinessError):
            return Status.BUSINESS_ERROR, describe_exception(exc, where=False), True, None
        if self.business_errors and isinstance(exc, self.business_errors):
            return Status.BUSINESS_ERROR, describe_exception(exc, where=False), False, None
        if isinstance(exc, JobWarning):
            return Status.WARNING, self._warning_text(exception_text(exc)), True, None
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            exc = None
        if exc is not None:
            return Status.ERROR, describe_exception(exc), False, None
        if self._warnings:
            return Status.WARNING, self._warning_text(), False, None
        return Status.SUCCESS, None, False, None

    def _classified(self, exc: BaseException) -> Status | None:
        assert self.classify is not None
        try:
            chosen = self.classify(exc)
        except Exception:
            log.warning("classify() raised; using the default mapping", exc_info=True)
            return None
        if chosen is None:
            return None
        try:
            return Status.parse(chosen)
        except ValueError:
            log.warning("classify() returned %r, not a Status; using the default mapping", chosen)
            return None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._finishing:
            # The final status is on its way: let it finish, then end as signalled.
            log.warning("%s received while reporting the end; finishing first", signal_name(signum))
            if self._late_signal is None:
                self._late_signal = signum
            return
        raise _SignalReceived(signum)

    def _on_cancel_requested(self, reason: str) -> None:
        """Called by the cancel watcher's thread when ESS shows CANCELLING or CANCELLED."""
        if self.cancel_requested:
            return
        self._cancel_reason = reason
        self.cancel_requested = True
        if self._old_handlers and not self._finishing:
            log.warning("%s: stopping the job", reason)
            # A real SIGTERM to the main thread (interrupt_main only sets a flag): it also
            # breaks a blocking call (sleep, recv); our handler unwinds the block, exit 143.
            main = threading.main_thread().ident
            if main is not None:  # always set: the main thread is running
                signal.pthread_kill(main, signal.SIGTERM)
        else:
            log.warning("%s: job.check_cancelled() now raises JobCancelled", reason)

    def _restore_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):  # not the main thread
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._old_handlers.clear()


def _text_or_none(value: object) -> str | None:
    """A control exception's argument as message text: ``JobPaused(123)`` gives "123";
    one that cannot be shown as text never stops the status from being reported."""
    if value is None or isinstance(value, str):
        return value or None
    return exception_text(value)


def _safely(step: Callable[[], object], what: str) -> None:
    """Run one clean-up step of ``__exit__``; a failure is logged, never raised over the
    job's own end."""
    try:
        step()
    except Exception:
        log.warning("failed %s", what, exc_info=True)
