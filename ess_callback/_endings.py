"""How an execution's end becomes a status: the two tables of rules, as pure functions.

``block_ending`` is the Python table (how a ``JobExecution`` block ended), ``command_ending``
the ``run`` table (how a command ended, as the supervisor saw it); both are in
docs/reference/status-mapping.md. Both return an :class:`Ending` and touch nothing, so
every row can be tested without a scheduler or a process.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from collections.abc import Callable, Collection, Sequence

import attrs

from ._control import BusinessError, JobCancelled, JobPaused, JobSuspended, JobWarning
from ._message import describe_exception, exception_text, signal_name
from ._signals import SignalReceived
from ._status import Status

log = logging.getLogger("ess_callback")

EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


@attrs.frozen
class Ending:
    """The final status and message for an end; for a block also whether its exception is
    consumed and the exit code to leave with (a signal's 128+N), if any."""

    status: Status
    message: str | None
    consume: bool = False
    exit_code: int | None = None


# -- the Python table (docs/reference/status-mapping.md) -------------------------------
def block_ending(
    exc: BaseException | None,
    *,
    warnings: Sequence[str] = (),
    classify: Callable[[BaseException], Status | None] | None = None,
    business_errors: tuple[type[BaseException], ...] = (),
    cancel_reason: str | None = None,
) -> Ending:
    """How a ``JobExecution`` block that ended with *exc* (None: normally) is reported.

    The first rule that matches wins (docs/reference/status-mapping.md):
    a signal (``SignalReceived``, with
    *cancel_reason* when a cancel seen in ESS sent it), ``JobCancelled``,
    ``KeyboardInterrupt`` and ``asyncio.CancelledError`` CANCEL; ``JobPaused`` PAUSE;
    ``JobSuspended`` SUSPEND; what *classify* chose; ``BusinessError`` and *business_errors*
    BUSINESS_ERROR; ``JobWarning`` WARNING after the *warnings*; ``SystemExit(0)`` as a
    normal end; any other exception ERROR; a normal end WARNING after *warnings*, else SUCCESS.
    """
    if isinstance(exc, SignalReceived):
        return Ending(
            Status.CANCEL, cancel_reason or signal_name(exc.signum), True, 128 + exc.signum
        )
    if isinstance(exc, JobCancelled):
        return Ending(Status.CANCEL, _text_or_none(exc.reason), True, None)
    if isinstance(exc, KeyboardInterrupt):
        return Ending(Status.CANCEL, "SIGINT", False, None)
    if exc is not None and _task_cancelled(exc):
        return Ending(Status.CANCEL, _text_or_none(exc.args[0] if exc.args else None), False, None)
    if isinstance(exc, JobPaused):
        return Ending(Status.PAUSE, _text_or_none(exc.state), True, None)
    if isinstance(exc, JobSuspended):
        return Ending(Status.SUSPEND, exception_text(exc) or None, True, None)
    if isinstance(exc, Exception) and classify is not None:
        chosen = _classified(classify, exc)
        if chosen is not None:
            consume = isinstance(exc, BusinessError | JobWarning)
            return Ending(chosen, describe_exception(exc, where=False), consume, None)
    if isinstance(exc, BusinessError):
        return Ending(Status.BUSINESS_ERROR, describe_exception(exc, where=False), True, None)
    if business_errors and isinstance(exc, business_errors):
        return Ending(Status.BUSINESS_ERROR, describe_exception(exc, where=False), False, None)
    if isinstance(exc, JobWarning):
        return Ending(Status.WARNING, _warning_text(warnings, exception_text(exc)), True, None)
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        exc = None
    if exc is not None:
        return Ending(Status.ERROR, describe_exception(exc), False, None)
    if warnings:
        return Ending(Status.WARNING, _warning_text(warnings), False, None)
    return Ending(Status.SUCCESS, None, False, None)


def _task_cancelled(exc: BaseException) -> bool:
    """True for ``asyncio.CancelledError`` (asyncio is not imported for this: without it
    loaded, no task can have been cancelled)."""
    module = sys.modules.get("asyncio.exceptions")
    return module is not None and isinstance(exc, module.CancelledError)


def _classified(
    classify: Callable[[BaseException], Status | None], exc: BaseException
) -> Status | None:
    try:
        chosen = classify(exc)
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


def _text_or_none(value: object) -> str | None:
    """A control exception's argument as message text: ``JobPaused(123)`` gives "123";
    one that cannot be shown as text never stops the status from being reported."""
    if value is None or isinstance(value, str):
        return value or None
    return exception_text(value)


def _warning_text(warnings: Sequence[str], extra: str | None = None) -> str:
    """The warnings one per line, then *extra* (a ``JobWarning``'s text), if any."""
    return "\n".join([*warnings, *([extra] if extra else [])])


# -- the run table (docs/reference/status-mapping.md) ----------------------------------
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
    #: killed by SIGKILL while the cgroup's OOM killer fired (``memory.events``)
    out_of_memory: bool = False


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


#: what in a command's name shows it was meant for a shell: blanks, pipes, redirections...
_SHELL_SYNTAX = re.compile(r"[\s|&;<>()$`*?\[\]{}~'\"\\]")


def spawn_message(end: ChildEnd) -> str:
    """Why the command could not be started, in one line."""
    error = end.spawn_error
    assert error is not None
    if not_found(end):
        why = "command not found"
        if _SHELL_SYNTAX.search(end.command):
            # 'cat f | wc -c' as one argument: the wrapper runs no shell, so that whole text
            # was taken for a program's name.
            quoted = end.command.replace("'", "'\\''")
            why += (
                " (no shell is used; for a shell command line run: "
                f"ess-callback run -- sh -c '{quoted}')"
            )
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


def command_ending(
    end: ChildEnd,
    *,
    warning_codes: Collection[int] = (),
    business_codes: Collection[int] = (),
) -> Ending:
    """The final status and its message (first matching rule wins).

    The wrapper stopping the command (a signal it received, a cancel in ESS, ``--timeout``)
    decides first; then how the command ended. ERROR, BUSINESS_ERROR and WARNING messages
    carry the warnings and the tail of the output; an exit code the user listed wins even
    for 0.
    """
    if end.wait_status is None:
        return Ending(Status.ERROR, spawn_message(end))
    if end.stopped is not None:
        status, reason = end.stopped
        return Ending(status, reason if status is Status.CANCEL else _compose(reason, end))
    word = end.wait_status
    if os.WIFSIGNALED(word):
        reason = f"killed by {signal_name(os.WTERMSIG(word))}"
        if end.out_of_memory:
            reason += " (out of memory: the OOM killer fired)"
        if os.WCOREDUMP(word):
            reason += " (core dumped)"
        return Ending(Status.ERROR, _compose(reason, end))
    code = os.waitstatus_to_exitcode(word)
    if code in business_codes:
        return Ending(Status.BUSINESS_ERROR, _compose(f"exit code {code}", end))
    if code in warning_codes:
        return Ending(Status.WARNING, _compose(f"exit code {code}", end))
    if code == 0:
        if end.warnings:
            return Ending(Status.WARNING, _compose(None, end))
        return Ending(Status.SUCCESS, None)
    return Ending(Status.ERROR, _compose(f"exit code {code}", end))


def _compose(reason: str | None, end: ChildEnd) -> str:
    """The reason, the warnings one per line, then the tails."""
    return "\n".join([*([reason] if reason else []), *end.warnings, *end.tails])
