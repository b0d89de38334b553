"""What ``ess-callback run`` tells ESS, and how a command's end maps to a status.

The mapping (SPEC section 7, the ``run`` table) is made of pure functions of what the
supervisor saw, so that every row can be tested without a process. ``Reporter`` sends:
throttled UPDATEs from the progress pipe while the command runs, then the final status,
redacted and truncated, through the one sending seam.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import threading
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import attrs

from ._message import Redactor, signal_name, truncate_message
from ._model import Callback, Outcome
from ._relay import parse_progress
from ._status import Status
from ._updates import UpdatePump

if TYPE_CHECKING:
    from ._sender import Sender
    from ._settings import Settings

log = logging.getLogger("ess_callback")

SECRET_SUFFIXES = ("PASSWORD", "TOKEN", "SECRET", "KEY")
MIN_SECRET_LENGTH = 4
EXIT_FAILED = 1
EXIT_TEMPFAIL = 75
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
#: the warnings kept in memory; the message holds 4000 bytes anyway
MAX_WARNING_BYTES = 8000


def environment_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Values of the variables named ``*PASSWORD``, ``*TOKEN``, ``*SECRET`` or ``*KEY``.

    Values shorter than four characters are flags (``1``, ``yes``), not secrets: hiding
    them would turn every "exit code 1" into "exit code ***".
    """
    return tuple(
        value
        for name, value in environ.items()
        if name.upper().endswith(SECRET_SUFFIXES) and len(value) >= MIN_SECRET_LENGTH
    )


class _SenderFuture:
    """``make_sender`` in a thread, so that requests is imported while the child runs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sender: Sender | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._make, name="ess-callback-sender", daemon=True)
        self._thread.start()

    def _make(self) -> None:
        try:
            from ._sender import make_sender

            # The wrapper says itself, in one line, where an undelivered status went.
            self._sender = make_sender(self._settings, announce_spool=False)
            if not self._sender.local:
                import requests  # noqa: F401  (loaded on first send: do it now, in parallel)
        except BaseException as exc:  # handed to the caller of get()
            self._error = exc

    def get(self) -> Sender:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._sender is not None
        return self._sender


class _RedactingFilter(logging.Filter):
    """Hides secrets in every record of the ``ess_callback`` logger while ``run`` works."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._redact(text)
        return True


class WarningList:
    """The ``WARNING`` lines of a run, in order, bounded in memory."""

    def __init__(self, limit: int = MAX_WARNING_BYTES) -> None:
        self.items: list[str] = []
        self.dropped = 0
        self._room = limit

    def add(self, text: str) -> None:
        """Record one warning (only counted once the kept ones fill the limit)."""
        if len(text) + 1 > self._room:
            self.dropped += 1
            return
        self.items.append(text)
        self._room -= len(text) + 1

    def __bool__(self) -> bool:
        return bool(self.items or self.dropped)

    def lines(self) -> list[str]:
        """The warnings for a message, one per line, then how many were left out."""
        lines = list(self.items)
        if self.dropped:
            lines.append(f"({self.dropped} more warnings)")
        return lines


@attrs.frozen
class ChildEnd:
    """What the supervisor saw of the command's end."""

    command: str
    #: the status word ``waitpid`` gave; None when the command could not be started
    wait_status: int | None
    spawn_error: OSError | None = None
    #: (status, reason) when the wrapper stopped the command itself (signal, cancel, timeout)
    stopped: tuple[Status, str] | None = None
    warnings: tuple[str, ...] = ()
    #: ``--- stderr ---`` sections holding the tail of the captured output
    tails: tuple[str, ...] = ()


def not_found(end: ChildEnd) -> bool:
    """True when the command does not exist (exit 127) rather than cannot run (126)."""
    error = end.spawn_error
    if error is None:
        return False
    if error.errno == errno.EACCES and "/" not in end.command:
        # The PATH search met a folder we may not search (or a file we may not run) and
        # found nothing better. Like bash, count it as found only when a PATH folder
        # visibly holds it; a name behind a folder we cannot search is "not found".
        return not _on_path(end.command)
    if error.errno not in (errno.ENOENT, errno.ENOTDIR):
        return False
    # ENOENT for a file that exists means its #! interpreter is missing: 126, as in sh.
    return not ("/" in end.command and os.path.exists(end.command))


def _on_path(name: str) -> bool:
    """True when a folder of PATH (as ``posix_spawnp`` read it: ours) holds *name*."""
    folders = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return any(os.path.exists(os.path.join(folder or ".", name)) for folder in folders)


def spawn_message(end: ChildEnd) -> str:
    """Why the command could not be started, in one line."""
    error = end.spawn_error
    assert error is not None
    if not_found(end):
        why = "command not found"
    elif error.errno == errno.ENOENT:
        why = "bad interpreter (the #! line names a missing program)"
    elif error.errno == errno.EACCES:
        why = "permission denied (not executable?)"
    else:
        why = error.strerror or str(error)
    return f"cannot run {end.command!r}: {why}"


def exit_code(end: ChildEnd) -> int:
    """The command's own exit status: its code, 128+N when killed by signal N,
    127/126 when it could not be started."""
    if end.wait_status is None:
        return EXIT_NOT_FOUND if not_found(end) else EXIT_CANNOT_EXECUTE
    code = os.waitstatus_to_exitcode(end.wait_status)
    return 128 - code if code < 0 else code


def end_status(
    end: ChildEnd,
    *,
    warning_codes: Collection[int] = (),
    business_codes: Collection[int] = (),
) -> tuple[Status, str | None]:
    """The final status and its message (first matching rule wins).

    The wrapper stopping the command (a signal it received, a cancel in ESS, ``--timeout``)
    decides first; then how the command ended. ERROR, BUSINESS_ERROR and WARNING messages
    carry the warnings and the tail of the output; an exit code the user listed wins even
    for 0.
    """
    if end.wait_status is None:
        return Status.ERROR, spawn_message(end)
    if end.stopped is not None:
        status, reason = end.stopped
        return status, reason if status is Status.CANCEL else _compose(reason, end)
    word = end.wait_status
    if os.WIFSIGNALED(word):
        reason = f"killed by {signal_name(os.WTERMSIG(word))}"
        if os.WCOREDUMP(word):
            reason += " (core dumped)"
        return Status.ERROR, _compose(reason, end)
    code = os.waitstatus_to_exitcode(word)
    if code in business_codes:
        return Status.BUSINESS_ERROR, _compose(f"exit code {code}", end)
    if code in warning_codes:
        return Status.WARNING, _compose(f"exit code {code}", end)
    if code == 0:
        if end.warnings:
            return Status.WARNING, _compose(None, end)
        return Status.SUCCESS, None
    return Status.ERROR, _compose(f"exit code {code}", end)


def _compose(reason: str | None, end: ChildEnd) -> str:
    """The reason, the warnings one per line, then the tails."""
    return "\n".join([*([reason] if reason else []), *end.warnings, *end.tails])


class Reporter:
    """Everything ``run`` tells ESS, redacted and truncated, through the sending seam.

    The sender is built in a thread (``prepare``), so that requests is imported while the
    command already runs.
    """

    def __init__(self, settings: Settings, *, redact: Redactor, update_interval: float) -> None:
        self.settings = settings
        self.redact = redact
        self.update_interval = update_interval
        self.warnings = WarningList()
        #: hides secrets in the ``ess_callback`` logger's records while ``run`` works
        self.log_filter = _RedactingFilter(redact)
        self._future: _SenderFuture | None = None
        self._pump: UpdatePump | None = None
        #: how the final status went, once ``finish`` returned
        self.outcome: Outcome | None = None

    def prepare(self) -> None:
        """Start building the sender in the background."""
        if self._future is None:
            self._future = _SenderFuture(self.settings)

    def sender(self) -> Sender:
        """The sender (waits for ``prepare`` to be done); raises what building it raised."""
        self.prepare()
        assert self._future is not None
        return self._future.get()

    def progress(self, line: str) -> None:
        """Act on one line of the progress pipe: UPDATE, WARNING, or ignore it."""
        parsed = parse_progress(line)
        if parsed is None:
            log.debug("ignored a progress line (not UPDATE or WARNING): %.200s", line)
        elif parsed[0] == "WARNING":
            log.info("warning from the job: %s", parsed[1])
            self.warnings.add(parsed[1] or "WARNING")
        else:
            self._update(parsed[1])

    def _update(self, text: str) -> None:
        if self._pump is None:
            try:
                local = self.sender().local
            except Exception as exc:
                log.warning("cannot send UPDATE: %s", exc)
                return
            self._pump = UpdatePump(
                self._deliver_update, self.update_interval, background=not local
            )
        self._pump.offer(text)

    def _deliver_update(self, text: str) -> None:
        outcome = self.sender().send(self._callback(Status.UPDATE, text), final=False)
        if not outcome.delivered:
            log.warning("UPDATE not delivered: %s", outcome.error)

    def finish(
        self,
        end: ChildEnd,
        *,
        warning_codes: Collection[int] = (),
        business_codes: Collection[int] = (),
    ) -> int:
        """Post the final status for *end*; return the wrapper's exit status.

        That is the command's own, except when it was 0 and the status was not delivered:
        75 when it is in the outbox, 1 when it was rejected or lost.
        """
        end = attrs.evolve(end, warnings=tuple(self.warnings.lines()))
        status, message = end_status(
            end, warning_codes=warning_codes, business_codes=business_codes
        )
        code = exit_code(end)
        if self._pump is not None:
            self._pump.close()  # a due UPDATE goes first: the final status is the last one
        callback = self._callback(status, message)
        sender: Sender | None = None
        try:
            sender = self.sender()
            outcome = sender.send(callback, final=True)
        except Exception as exc:  # whatever breaks here, the job's exit status survives
            outcome = Outcome(status, callback.message, delivered=False, error=exc)
        finally:
            close = getattr(sender, "close", None)
            if close is not None:
                close()
        self.outcome = outcome
        if outcome.delivered:
            return code
        from ._sender import undelivered_text

        self.say(undelivered_text(outcome))  # why, and whether the outbox holds it
        if code != 0:
            return code
        return EXIT_FAILED if outcome.spooled_to is None else EXIT_TEMPFAIL

    def _callback(self, status: Status, message: str | None) -> Callback:
        text = truncate_message(self.redact(message)) if message else None
        settings = self.settings
        return Callback(settings.request_id, settings.request_handle, status, text or None)

    def say(self, text: str) -> None:
        """One line of our own on stderr, redacted."""
        # No stderr (closed, or a broken pipe): there is nowhere to say it.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"ess-callback: {self.redact(text)}\n")
            sys.stderr.flush()
