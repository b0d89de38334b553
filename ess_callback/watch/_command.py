"""What ``ess-callback wait`` does, below the click layer: build the reader from options and
environment, wait with a progress display, relay if asked, and choose the exit status.

Exit 0 the watched job succeeded, 1 it failed, was cancelled or does not exist, 75 the wait
timed out, the API stayed unreachable or answered something unreadable, 2 usage or
configuration (raised as ``ConfigurationError`` before any network) or the watched API
refused the request (401, 403: the credentials), 128+N when interrupted by signal N.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, TextIO

import attrs
import click

from .._checks import without_option_hints
from .._errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    ConfigurationError,
    EssCallbackError,
    RejectedError,
    RequestNotFoundError,
)
from .._message import signal_name
from .._output import json_mode, say
from .._settings import (
    resolve_settings,
    resolve_watch_settings,
)
from .._signals import SignalGuard, SignalReceived
from .._status import Status
from ._http import HttpReader
from ._registry import APIS
from ._relay import Relay, failure_text, final_status
from ._state import JobState, JobStatus
from ._wait import wait

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

log = logging.getLogger("ess_callback")


@attrs.frozen
class WaitOptions:
    """The command's arguments, as given (``timeout`` None: no limit)."""

    api: str
    job_id: str
    base_url: str | None = None
    identity_domain: str | None = None
    project_id: str | None = None
    timeout: float | None = 86400.0
    poll: float = 10.0
    relay: bool = False
    update_interval: float = 10.0

    @property
    def what(self) -> str:
        """``saas-batch job 44046``: the watched job, as messages name it."""
        return f"{self.api} job {self.job_id}"


def build_reader(
    options: WaitOptions, env: Mapping[str, str] | None = None
) -> tuple[HttpReader, list[str]]:
    """The reader for ``options.api`` and the secrets it holds; checks the job id too.

    Its base URL and credentials are resolved by ``resolve_watch_settings`` (from *env*,
    default ``os.environ``). Raises ``ConfigurationError`` naming what is missing (base URL,
    identity domain, project id, token) before any network.
    """
    entry = APIS.get(options.api)
    if entry is None:
        raise ConfigurationError(f"API {options.api!r} is not one of {', '.join(APIS)}")
    watched = resolve_watch_settings(
        base_url=options.base_url,
        ess_fallback=entry.ess_fallback,
        missing_url_hint=entry.url_hint,
        env=env,
    )
    reader = entry.build(watched, options.identity_domain, options.project_id)
    reader.url_for(options.job_id)  # a malformed job id is a usage error, found now
    return reader, watched.secrets()


class _Lines:
    """One line on stdout per change (not a terminal)."""

    def tick(self) -> None:
        pass

    def __init__(self, what: str, stream: IO[str] | None = None) -> None:
        self.what = what
        self.stream = stream

    def show(self, status: JobStatus) -> None:
        click.echo(f"{self.what}: {status.describe()}", file=self.stream)

    def close(self, final: JobStatus | None) -> None:
        pass


def _elapsed(seconds: float) -> str:
    """``45s``, ``2m05s``, ``1h02m``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class _Bar:
    """click's progress bar on stderr with the job's percentage and state (a terminal).

    Sized to the terminal so that each redraw stays on one line (a line longer than the
    terminal wraps, and the carriage return then redraws only its last part). While the
    watched job has shown no progress, the bar shows its state and the time waited
    instead of a percentage that would say 0% forever.
    """

    def __init__(
        self,
        what: str,
        stream: TextIO | None = None,
        *,
        columns: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import shutil

        self.what = what
        self.columns = columns or shutil.get_terminal_size((80, 24)).columns
        self.clock = clock
        self.started = clock()
        self.progress_seen = False
        self.status: JobStatus | None = None
        limit = max(10, self.columns // 3)
        label = what if len(what) <= limit else what[: limit - 3] + "..."
        # label, "  [", bar, "]  ", "100%", "  ", item; one column spare for the cursor
        room = self.columns - 1 - len(label) - 3 - 3 - 4 - 2
        width = max(8, min(36, room // 2))
        self.item_room = max(8, room - width)
        self.bar: ProgressBar[JobStatus] = click.progressbar(
            length=100,
            label=label,
            file=stream or sys.stderr,
            show_eta=False,
            show_percent=False,
            item_show_func=self._item,
            width=width,
        )
        self.bar.__enter__()

    def _item(self, status: JobStatus | None) -> str | None:
        if status is None:
            return None
        text = status.describe(percent=False)
        room = self.item_room
        if not self.progress_seen:
            text = f"{text}, {_elapsed(self.clock() - self.started)}"
            room += 6  # no percentage shown
        return text if len(text) <= room else text[: room - 3] + "..."

    def show(self, status: JobStatus) -> None:
        self.status = status
        percent = status.percent
        if status.state is JobState.SUCCEEDED:
            percent = 100
        if percent is not None and not (percent == 0 and not self.progress_seen):
            self.progress_seen = True
        self.bar.show_percent = self.progress_seen
        # Set the position and item, then draw: update() draws only when the position moves,
        # and a change of state alone must show too.
        if percent is not None:
            self.bar.pos = percent
        self.bar.current_item = status
        self.bar.render_progress()

    def tick(self) -> None:
        """Redraw between polls, so the time waited moves while nothing else does."""
        if self.status is not None and not self.progress_seen:
            self.bar.render_progress()

    def close(self, final: JobStatus | None) -> None:
        self.bar.render_finish()
        if final is not None:
            click.echo(f"{self.what}: {final.describe()}")


def run_wait(
    options: WaitOptions, env: Mapping[str, str] | None = None, *, tty: bool = False
) -> int:
    """Wait as ``ess-callback wait`` does and return the exit status.

    Raises ``ConfigurationError`` (exit 2) before waiting when something is missing,
    including, with ``relay``, any ``ESS_*`` setting of this job's own request.
    """
    what = options.what
    reader, secrets = build_reader(options, env)
    try:
        settings = resolve_settings(env=env) if options.relay else None
    except ConfigurationError as exc:
        # wait's --base-url is the watched API's, and it has no --request-id: name only
        # the variables of this job's own request.
        raise without_option_hints(exc) from None
    # No bar in JSON mode, nor when dry-run JSON lines go to the same stderr: they would
    # land inside the bar's line.
    dry_relay = settings is not None and settings.dry_run
    display: _Bar | _Lines = (
        _Bar(what) if tty and not json_mode() and not dry_relay else _Lines(what)
    )
    relay = (
        Relay(settings, what, update_interval=options.update_interval, secrets=secrets)
        if settings is not None
        else None
    )

    def on_change(status: JobStatus) -> None:
        display.show(status)
        if relay is not None:
            relay.progress(status)

    def ticking_sleep(seconds: float) -> None:
        display.tick()
        time.sleep(seconds)

    result: JobStatus | EssCallbackError | None = None
    interrupted: SignalReceived | None = None
    cancel_reason: list[str] = []
    with SignalGuard() as signals:

        def on_cancel(reason: str) -> None:
            # Called from the watcher's thread: stop the wait as SIGTERM would (a real
            # signal: it also breaks the poll's sleep).
            cancel_reason.append(reason)
            signals.interrupt_main()

        watcher = None
        try:
            try:
                if settings is not None and settings.cancel_poll and not relay_is_local(relay):
                    from .._cancel import CancelWatcher

                    watcher = CancelWatcher(settings, on_cancel)
                    watcher.start()
                result = wait(
                    reader,
                    options.job_id,
                    timeout=options.timeout,
                    poll=options.poll,
                    on_change=on_change,
                    sleep=ticking_sleep,
                )
            except ConfigurationError:
                raise
            except EssCallbackError as error:
                result = error
            except SignalReceived as signalled:
                interrupted = signalled
        finally:
            signals.hold()
            if watcher is not None:
                watcher.stop()
            reader.close()
            display.close(result if isinstance(result, JobStatus) else None)
            if relay is not None and result is None and interrupted is None:
                relay.close()  # an unexpected error: stop the update thread, then propagate
        return _finish(options, result, interrupted, cancel_reason, relay, api=reader.api)


def relay_is_local(relay: Relay | None) -> bool:
    """True when there is no relay or it sends nothing over the network."""
    return relay is None or relay.local


def _finish(
    options: WaitOptions,
    result: JobStatus | EssCallbackError | None,
    interrupted: SignalReceived | None,
    cancel_reason: list[str],
    relay: Relay | None,
    *,
    api: str,
) -> int:
    what = options.what
    status: Status
    message: str | None
    if interrupted is not None or result is None:
        signum = int(interrupted.signum if interrupted is not None else signal.SIGTERM)
        code = 128 + signum
        reason = cancel_reason[0] if cancel_reason else f"interrupted by {signal_name(signum)}"
        say(f"stopped waiting for {what}: {reason}")
        status, message = Status.CANCEL, f"stopped waiting for {what}: {reason}"
    elif isinstance(result, JobStatus):
        code = EXIT_OK if result.state is JobState.SUCCEEDED else EXIT_FAILED
        status, message = final_status(what, result)
    else:
        if isinstance(result, RequestNotFoundError):
            code = EXIT_FAILED
        elif isinstance(result, RejectedError):  # credentials (401, 403) or the request
            code = EXIT_USAGE
        else:
            code = EXIT_TEMPFAIL
        say(failure_text(what, result, api=api))
        status, message = final_status(what, result, api=api)
    if relay is None:
        return code
    # The watched job's own failure is the bigger news; a clean end that could not be
    # relayed says whether it is waiting in the outbox (75) or was refused (1).
    return relay.end(status, message, code=code)
