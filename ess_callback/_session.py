"""``ReportingSession``: how one execution reports to ESS, whichever way it runs.

``JobExecution``, ``run``'s reporter, ``wait --relay``'s relay and ``send`` each hold one
session: throttled UPDATEs (``UpdatePump``), the warnings, the final status (redacted,
truncated, through the one sending seam, so that an undeliverable one lands in the outbox),
one line saying so when it was not delivered, and the exit status policy,
:func:`exit_code_for`.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import EXIT_FAILED, EXIT_TEMPFAIL, DeliveryError
from ._message import DEFAULT_MAX_MESSAGE_BYTES, Redactor, truncate_message
from ._model import Callback, Outcome
from ._status import Status
from ._updates import UpdatePump

if TYPE_CHECKING:
    from ._seam import Sender
    from ._settings import Settings
    from ._signals import SignalGuard
    from .outbox._lease_file import Lease

log = logging.getLogger("ess_callback")

#: the warnings a command's run keeps in memory; the message holds 4000 bytes anyway
MAX_WARNING_BYTES = 8000


def exit_code_for(outcome: Outcome, child_status: int = 0) -> int:
    """The exit status once the end was sent: the job's own (*child_status*), except when
    that was 0 and the final status was not delivered: 75 when the outbox holds it, 1 when
    it was refused (or lost)."""
    if outcome.delivered or child_status != 0:
        return child_status
    return EXIT_TEMPFAIL if outcome.spooled_to is not None else EXIT_FAILED


class WarningList:
    """The warnings of an execution, in order; bounded in memory with a *limit* (characters).

    Once the kept ones fill *limit*, later warnings are only counted; with *tail* (also
    characters), the latest of them are kept too, in a window that drops the oldest: the
    first and the last warnings then stay, and how many were left out between them.
    Warnings are kept or left out whole, never cut.
    """

    def __init__(self, limit: int | None = MAX_WARNING_BYTES, *, tail: int = 0) -> None:
        self.items: list[str] = []
        self.dropped = 0
        self._room = limit
        self._tail: collections.deque[str] | None = collections.deque() if tail > 0 else None
        self._tail_room = tail

    def add(self, text: str) -> None:
        """Record one warning (only counted once the kept ones fill the limit)."""
        if self._room is not None:
            size = len(text) + 1
            if size > self._room:
                self._past_limit(text, size)
                return
            self._room -= size
        self.items.append(text)

    def _past_limit(self, text: str, size: int) -> None:
        tail = self._tail
        if tail is None:
            self.dropped += 1  # a later, shorter warning may still fit
            return
        self._room = 0  # the first ones are kept: the rest goes through the window
        tail.append(text)
        self._tail_room -= size
        while self._tail_room < 0 and tail:
            self._tail_room += len(tail.popleft()) + 1
            self.dropped += 1

    def __bool__(self) -> bool:
        return bool(self.items or self.dropped or self._tail)

    def kept(self) -> list[str]:
        """The warnings kept, in order (all of them while under the limit)."""
        return [*self.items, *(self._tail or ())]

    def lines(self) -> list[str]:
        """The warnings for a message, one per line, and how many were left out (last, or
        between the first and the latest ones kept)."""
        lines = list(self.items)
        if self.dropped:
            lines.append(f"({self.dropped} more warnings)")
        lines.extend(self._tail or ())
        return lines


class SenderFuture:
    """``make_sender`` in a thread, so that requests is imported while the command runs."""

    def __init__(self, settings: Settings, *, stop: SignalGuard | None = None) -> None:
        self._settings = settings
        self._stop = stop
        self._sender: Sender | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._inline = False

    def start(self) -> None:
        """Start building the sender in the background (once); when no thread can be
        started (the user's process limit), ``get()`` builds it itself."""
        if self._thread is None and not self._inline:
            thread = threading.Thread(target=self._make, name="ess-callback-sender", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't start new thread"
                self._inline = True
                return
            self._thread = thread

    def _make(self) -> None:
        try:
            from ._sender import make_sender

            # The session says itself, in one line, where an undelivered status went.
            self._sender = make_sender(self._settings, announce_spool=False, stop=self._stop)
            if not self._sender.local:
                import requests  # noqa: F401  (loaded on first send: do it now, in parallel)
        except BaseException as exc:  # handed to the caller of get()
            self._error = exc

    def get(self) -> Sender:
        """The sender (waits for it); raises what building it raised."""
        self.start()
        if self._inline:
            if self._sender is None and self._error is None:
                self._make()
        else:
            assert self._thread is not None
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._sender is not None
        return self._sender


class ReportingSession:
    """Everything one execution tells ESS, through one sender.

    *sender* is a ``Sender`` or a :class:`SenderFuture`; with *owns_sender* it is closed
    once the final status went out. Messages are redacted (*redact*) and cut to
    *max_message_bytes*. The callbacks delivered are appended to *sent* when one is given.

    >>> from ess_callback._message import Redactor
    >>> from ess_callback._sender import make_sender
    >>> from ess_callback._settings import resolve_settings
    >>> settings = resolve_settings()               # the job's own ESS_* variables
    >>> session = ReportingSession(settings, make_sender(settings), redact=Redactor())
    >>> session.update("half way")                  # throttled, never blocks, never raises
    >>> outcome = session.finish(Status.SUCCESS, None)
    >>> outcome.status, outcome.delivered, exit_code_for(outcome)
    (<Status.SUCCESS: 'SUCCESS'>, True, 0)
    """

    def __init__(
        self,
        settings: Settings,
        sender: Sender | SenderFuture,
        *,
        redact: Redactor,
        update_interval: float = 10.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        warnings: WarningList | None = None,
        sent: list[Callback] | None = None,
        owns_sender: bool = True,
    ) -> None:
        self.settings = settings
        self.redact = redact
        self.update_interval = update_interval
        self.max_message_bytes = max_message_bytes
        self.warnings = warnings if warnings is not None else WarningList()
        self.sent = sent
        self._sender = sender
        self._owns_sender = owns_sender
        self._pump: UpdatePump | None = None
        self._finished = False
        #: how the final status went, once ``finish`` returned
        self.outcome: Outcome | None = None
        #: the execution's lease in the outbox's ``running/`` (docs/guarantees.md), once held
        self.lease: Lease | None = None

    def __repr__(self) -> str:
        return (
            f"ReportingSession(request_id={self.settings.request_id!r}, outcome={self.outcome!r})"
        )

    def sender(self) -> Sender:
        """The sender (waits for a ``SenderFuture``); raises what building it raised."""
        if isinstance(self._sender, SenderFuture):
            self._sender = self._sender.get()
        return self._sender

    # -- while the job runs ----------------------------------------------------------------
    def hold_lease(
        self, kind: str, *, command: tuple[str, ...] | None = None, durable: bool = True
    ) -> None:
        """Write the execution's lease (not in dry run or recording), so that a flush can
        report it should the process die without reporting (docs/guarantees.md)."""
        from .outbox._lease_file import open_lease

        self.lease = open_lease(
            self.settings, kind, command=command, redact=self.redact, durable=durable
        )

    def start_updates(self) -> Callable[[str], None]:
        """Start the UPDATE throttle now (else the first ``update`` does); return its
        ``offer``, which does what ``update`` does with one call less, for a caller whose
        update is a hot path (``job.update()``)."""
        if self._pump is None:
            local = self.sender().local
            self._pump = UpdatePump(
                self._deliver_update, self.update_interval, background=not local
            )
            if self._finished:
                self._pump.close()  # nothing may follow the final status
        return self._pump.offer

    def update(self, message: str) -> None:
        """Offer progress: an UPDATE at most once per ``update_interval``, the latest wins;
        never blocks on the network and never raises for delivery."""
        pump = self._pump
        if pump is None:
            if self._finished:
                return
            try:
                offer = self.start_updates()
            except Exception as exc:
                log.warning("cannot send UPDATE: %s", exc)
                return
            offer(message)
            return
        pump.offer(message)

    def warn(self, text: str) -> None:
        """Record a warning (the end becomes WARNING)."""
        self.warnings.add(text)

    def callback(self, status: Status, message: str | None) -> Callback:
        """The callback for *status*: its message redacted and cut to size (empty: none)."""
        if message is not None:
            message = truncate_message(self.redact(str(message)), self.max_message_bytes) or None
        return Callback(self.settings.request_id, self.settings.request_handle, status, message)

    def _deliver_update(self, message: str) -> None:
        callback = self.callback(Status.UPDATE, str(message))
        outcome = self.sender().send(callback, final=False)
        if outcome.delivered:
            if self.sent is not None:
                self.sent.append(callback)
        else:
            log.warning("status UPDATE was not delivered: %s", outcome.error)

    # -- the end ---------------------------------------------------------------------------
    def finish(self, status: Status, message: str | None, *, final: bool = True) -> Outcome:
        """Send the final status, after any due UPDATE (nothing is sent after it).

        Never raises: whatever breaks while sending, the Outcome says it was not delivered.
        A final status that could not be delivered for a retryable reason is in the outbox
        (``outcome.spooled_to``).
        """
        self._stop_updates()
        callback = self.callback(status, message)
        try:
            outcome = self.sender().send(callback, final=final)
        except Exception as exc:  # a custom client's bug must not hide the job's end
            outcome = Outcome(status, callback.message, delivered=False, error=exc)
        finally:
            self.close()
        if outcome.delivered and self.sent is not None:
            self.sent.append(callback)
        self.outcome = outcome
        self._settle_lease(outcome)
        return outcome

    def _settle_lease(self, outcome: Outcome) -> None:
        """Remove the lease once the end is safe: delivered, in the outbox, or refused for
        good. An end the outbox could not keep leaves it, for a flush to report."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        if not (outcome.delivered or outcome.spooled_to is not None):
            from ._client import is_spoolable

            refused = isinstance(outcome.error, DeliveryError) and not is_spoolable(outcome.error)
            if not refused:
                return
        lease.remove()

    def end(self, status: Status, message: str | None, *, child_status: int = 0) -> int:
        """``finish``, one line on stderr when the status was not delivered, and the exit
        status (:func:`exit_code_for`)."""
        from ._sender import undelivered_text

        outcome = self.finish(status, message, final=status.is_final)
        if not outcome.delivered:
            self.say(undelivered_text(outcome))  # why, and whether the outbox holds it
        return exit_code_for(outcome, child_status)

    def close(self) -> None:
        """Stop the UPDATE thread and close the sender's connections (idempotent)."""
        self._stop_updates()
        if self._owns_sender and not isinstance(self._sender, SenderFuture):
            close = getattr(self._sender, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.warning("failed closing the connection", exc_info=True)

    def _stop_updates(self) -> None:
        self._finished = True
        pump, self._pump = self._pump, None
        if pump is not None:
            try:
                pump.close()  # a due UPDATE goes first: the final status is the last one
            except Exception:
                log.warning("failed stopping the UPDATE pump", exc_info=True)

    def say(self, text: str) -> None:
        """One line of our own on stderr, redacted."""
        from ._output import say

        say(self.redact(text))  # text, or a JSON line with --log-format json
