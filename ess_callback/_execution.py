"""``JobExecution``: the context manager that reports how a block of job code ended."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _recording
from ._checks import python_hints
from ._control import JobCancelled
from ._endings import Ending, block_ending
from ._errors import ConfigurationError, DeliveryError
from ._message import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Redactor,
    describe_exception,
    truncate_message,
)
from ._model import Callback, Outcome
from ._sender import make_sender, preload_http, undelivered_text
from ._session import ReportingSession, WarningList, exit_code_for
from ._settings import Settings, resolve_settings
from ._signals import SignalGuard, SignalReceived
from ._status import Status

if TYPE_CHECKING:
    from ._cancel import CancelWatcher
    from ._client import SchedulerClient

log = logging.getLogger("ess_callback")


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
    from ._output import say

    say(line)
    # SystemExit raised by an excepthook ends the process with that status (CPython
    # handles it as it would at top level); without it an uncaught error always exits 1.
    raise SystemExit(exit_code)


class JobExecution:
    """Report the end of a block of job code to ESS.

    >>> with JobExecution() as job:          # settings from ESS_* variables
    ...     job.update("extracted 1200 rows")
    ...     job.warn("3 rows skipped")       # the end becomes WARNING

    How the block ended decides the status (docs/reference/status-mapping.md):
    cancellation and signals give CANCEL, ``JobPaused`` PAUSE, ``JobSuspended`` SUSPEND,
    ``classify(exc)`` may choose,
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
            error = python_hints(exc)
            report_if_uncaught(error, str(error), error.exit_code)
            raise error from None
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
        # The message keeps the first and the last warnings (truncate_message cuts its
        # middle): the first and the latest of them are kept, twice the message's size
        # each, and the ones between only counted. Whole warnings are left out, so no
        # secret is cut in two before it is redacted; when a match may run over a line
        # break, they are all kept.
        keep = None if self._redact.crosses_lines else max(0, 2 * max_message_bytes)
        self._warnings = WarningList(limit=keep, tail=keep or 0)
        #: a warning longer than this is redacted at once and cut (see ``warn``)
        self._warning_cut = keep
        self._session: ReportingSession | None = None
        self._offer: Callable[[str], None] | None = None
        self._watcher: CancelWatcher | None = None
        self._preload: threading.Thread | None = None
        self._signals = SignalGuard()
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
        offer = self._offer  # the session's throttle, once the block runs
        if offer is not None:
            offer(message)  # str() happens when it is sent, off this hot path

    def warn(self, message: str) -> None:
        """Record a warning; a block that then ends normally ends with WARNING."""
        text = str(message)
        cut = self._warning_cut
        if cut is not None and len(text) > cut:
            # Redacted before it is cut: a secret across the cut is hidden whole. Half the
            # window, so that it fits in it with others.
            text = truncate_message(self._redact(text), cut // 2)
        self._warnings.add(text)

    @property
    def warnings(self) -> list[str]:
        """The warnings recorded so far, in order (past twice the message's size, the
        first and the latest ones)."""
        return self._warnings.kept()

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if the scheduler asked for cancellation (``cancel_poll``)."""
        if self.cancel_requested:
            raise JobCancelled(self._cancel_reason)

    # -- context manager -----------------------------------------------------------------
    def __enter__(self) -> JobExecution:
        # __exit__ says itself, in one line, when the final status went to the outbox.
        sender = make_sender(
            self.settings,
            client=self._client,
            max_message_bytes=self.max_message_bytes,
            announce_spool=False,
        )
        session = ReportingSession(
            self.settings,
            sender,
            redact=self._redact,
            update_interval=self.update_interval,
            max_message_bytes=self.max_message_bytes,
            warnings=self._warnings,
            sent=self.sent,
            owns_sender=self._client is None,  # a client handed in stays open
        )
        session.hold_lease("python")  # a kill of this process is then reported by a flush
        if not sender.local and self._preload is None:
            # requests is loaded while the block runs, not when it ends (as run does).
            self._preload = preload_http()
        self._offer = session.start_updates()
        self._session = session
        if self.handle_signals:
            self._signals.install()
        if self.settings.cancel_poll and not sender.local:
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
        self._signals.hold()  # a signal now waits until the end is reported
        try:
            ending, outcome = self._report(exc)
        finally:
            self._signals.restore()
        return self._leave(exc, ending, outcome)

    # -- async context manager -------------------------------------------------------------
    async def __aenter__(self) -> JobExecution:
        """``async with``: as ``with``, with signals that cancel the block's task."""
        import asyncio

        from ._async import LoopSignalGuard, off_loop

        sends = self._client is None and not self.settings.dry_run
        if sends and "ess_callback._client" not in sys.modules and not _recording.active_recorder():
            # requests is imported on the first send: not on the loop's time.
            _, cancelled = await off_loop(_import_client)
            if cancelled:
                raise asyncio.CancelledError
        task = asyncio.current_task()
        if task is not None:
            self._signals = LoopSignalGuard(asyncio.get_running_loop(), task)
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """As ``__exit__``; the final send runs in a thread, so the loop never waits on it."""
        import asyncio

        from ._async import LoopSignalGuard, off_loop

        guard = self._signals
        guard.hold()
        cancelled = False
        if isinstance(guard, LoopSignalGuard) and guard.cancelled:
            # A signal (or a cancel seen in ESS) cancelled the task: that is the block's end.
            assert guard.signum is not None
            exc = SignalReceived(guard.signum)
        try:
            (ending, outcome), cancelled = await off_loop(lambda: self._report(exc))
        finally:
            guard.restore()
            if isinstance(guard, LoopSignalGuard):
                guard.forget_cancel()
        if not cancelled or isinstance(exc, asyncio.CancelledError):
            return self._leave(exc, ending, outcome)
        # The task was cancelled while the end was sent: the cancellation goes on.
        try:
            self._leave(exc, ending, outcome)
        except Exception as error:  # the delivery error: said, and the cause of the cancel
            log.error("%s", undelivered_text(outcome))
            raise asyncio.CancelledError from error
        raise asyncio.CancelledError

    # -- internals -----------------------------------------------------------------------
    def _report(self, exc: BaseException | None) -> tuple[Ending, Outcome]:
        """Stop the cancel watcher, decide the end and send it (``finish``). Blocks until
        the final status went out (``__aexit__`` runs it in a thread)."""
        if self._watcher is not None:
            _safely(self._watcher.stop, "stopping the cancel watcher")
        ending = self._ending(exc)
        assert self._session is not None
        preload, self._preload = self._preload, None
        if preload is not None:
            preload.join()  # a block shorter than the import waits for it here
        self.outcome = self._session.finish(ending.status, ending.message)
        return ending, self.outcome

    def _ending(self, exc: BaseException | None) -> Ending:
        """How the block's end is reported (``block_ending``); ERROR should that fail."""
        try:
            return block_ending(
                exc,
                warnings=self._warnings.lines(),
                classify=self.classify,
                business_errors=self.business_errors,
                cancel_reason=self._cancel_reason,
            )
        except Exception:
            # A last resort: the job's end is still reported, its exception goes on.
            log.warning("could not decide how the block ended; sending ERROR", exc_info=True)
            text = describe_exception(exc) if exc is not None else "the end was not classified"
            return Ending(Status.ERROR, text)

    def _leave(self, exc: BaseException | None, ending: Ending, outcome: Outcome) -> bool:
        """What leaves the block once the end was sent: the signal's exit, the job's own
        exception, or, when nothing else does, the delivery error; True consumes *exc*."""
        exit_code = ending.exit_code
        if exit_code is None and self._signals.late is not None:
            # A signal that came while the end was being reported still ends the process
            # as signalled: a job its scheduler stopped must not carry on after the block.
            exit_code = 128 + self._signals.late
        if not outcome.delivered:
            error = outcome.error
            if isinstance(exc, SystemExit) and exc.code in (0, None) and exit_code is None:
                # The job meant to succeed, but its end was not reported: like run for a
                # command that exited 0, say so and leave with 75 (kept) or 1 (lost).
                assert self._session is not None
                self._session.say(undelivered_text(outcome))
                raise SystemExit(exit_code_for(outcome)) from None
            if exit_code is not None or (exc is not None and not ending.consume):
                # The job's own exception (or the signal's exit) goes on; never hide it.
                log.error("%s", undelivered_text(outcome))
            elif error is not None:
                if isinstance(error, DeliveryError):
                    report_if_uncaught(error, undelivered_text(outcome), exit_code_for(outcome))
                raise error
        if exit_code is not None:
            raise SystemExit(exit_code) from None
        return ending.consume

    def _on_cancel_requested(self, reason: str) -> None:
        """Called by the cancel watcher's thread when ESS shows CANCELLING or CANCELLED."""
        if self.cancel_requested:
            return
        self._cancel_reason = reason
        self.cancel_requested = True
        if self._signals.interruptible:
            log.warning("%s: stopping the job", reason)
            # A real SIGTERM to the main thread: the guard's handler unwinds the block, 143.
            self._signals.interrupt_main()
        else:
            log.warning("%s: job.check_cancelled() now raises JobCancelled", reason)


def _import_client() -> None:
    from . import _client  # noqa: F401


def _safely(step: Callable[[], object], what: str) -> None:
    """Run one clean-up step of ``__exit__``; a failure is logged, never raised over the
    job's own end."""
    try:
        step()
    except Exception:
        log.warning("failed %s", what, exc_info=True)
