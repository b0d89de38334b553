"""``flush_outbox``: send the kept final callbacks again, oldest first, each at most once.

What one run (one ``ess-callback flush``, one ``flush_outbox()`` call) does:

1. Each dead execution of this host (docs/guarantees.md) becomes an ERROR entry of the outbox.
2. The folder is listed once, by name (names start with the creation time: oldest first).
   Only the names are held; each file is claimed, read, sent and let go one at a time, so a
   run's memory does not grow with the backlog. The report keeps counts and at most
   ``SAMPLES`` results of each kind.
3. The first *sweep* goes over every file, oldest first, with one attempt each (no retries
   within it; up to 10 s). Delivered: deleted. Refused for good (400, 403, 404, ...): moved
   to ``rejected/`` with the reason. Unreadable: moved to ``corrupt/``. For another server
   than the credentials': kept, untouched. Not delivered: kept, its ``attempts`` and
   ``last_error`` updated in the file.
4. What failed in a way the server may not repeat (408, 429, 5xx, a reset) is swept again,
   oldest first, after a short wait (0.1 to 1 s, growing; longer when the server sent
   ``Retry-After``, up to 30 s, and counting the time the sweep itself took), for as long
   as the run's retry budget lasts (``ESS_CALLBACK_RETRY_SECONDS``, default 60 s, counted
   from the end of the first sweep: one budget for the whole run, not one per file).
5. A server is given up for the rest of the run after 30 such failures in a row; after 3
   attempts in a row that found nothing there (a refused connection, a name that does not
   resolve) or got no answer in time; or at once when TLS fails or it refuses the flush's
   setup (401, 407, 415, a redirect). Its files stay pending (see ``_flush_send``).
   One WARNING line tells of each server's first failure and one of each server given up,
   never one per file.

Whatever is still pending at the end stays for the next run (exit 75).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path

import attrs

from .. import _recording
from .._checks import folder_problem
from .._retry import MAX_SINGLE_WAIT, MIN_ATTEMPT_SECONDS
from .._settings import resolve_flush_settings
from . import _leases, _outbox
from ._flush_report import CORRUPT, PENDING, FlushReport, FlushResult, ReportBuilder
from ._flush_send import FIXABLE_STATUSES as FIXABLE_STATUSES
from ._flush_send import LATE_SECONDS as LATE_SECONDS
from ._flush_send import Again, FlushSender, entry_path
from ._flush_send import late_message as late_message
from ._flush_send import origin as origin
from ._flush_send import shown_origin as shown_origin
from ._outbox import OutboxError

log = logging.getLogger("ess_callback")

#: temp files older than this were left by a writer that died mid-write
STALE_TEMP_SECONDS = 3600.0
#: the longest one attempt of a flush may take (the per-attempt timeout, docs/reference/retries.md)
ATTEMPT_SECONDS = 10.0
#: the wait before sweep n+1 grows from SWEEP_WAIT (jittered) up to SWEEP_MAX_WAIT: a sweep
#: over many files already spaces the attempts at each one, so the wait matters only once
#: few are left
SWEEP_WAIT = 0.2
SWEEP_MAX_WAIT = 1.0


def _pause(seconds: float) -> None:
    """The wait between two sweeps (one name, so that tests can see it)."""
    time.sleep(seconds)


def sweep_wait(sweep: int, retry_after: float | None) -> float:
    """Seconds between the start of sweep *sweep* and that of the next one."""
    base = min(SWEEP_MAX_WAIT, SWEEP_WAIT * 2.0 ** (sweep - 1))
    wait = base / 2 + random.uniform(0, base / 2)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_SINGLE_WAIT))
    return wait


def _dry_run(
    folder: Path, names: list[str], dead: list[_leases.DeadExecution], found: ReportBuilder
) -> None:
    """What a flush would send, through the dry-run sender (or the test recorder, when one
    is active); no file is claimed or touched, no process stopped."""
    from .._recording import active_recorder
    from .._seam import DryRunSender, RecordingSender

    recorder = active_recorder()
    sender: DryRunSender | RecordingSender = (
        DryRunSender() if recorder is None else RecordingSender(recorder)
    )
    for lease in dead:
        log.info("%s is a dead execution; it would be reported", lease.lease.path.name)
        sender.send(lease.callback, final=True)
    for name in names:
        path = entry_path(folder, name)
        try:
            entry = _outbox.read_entry(path)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            log.warning("%s is unreadable (%s); a flush would move it aside", path.name, why)
            found.add(FlushResult(path, CORRUPT, now_at=path, reason=str(why or exc)))
            continue
        log.info("%s would go to %s", path.name, entry.base_url)
        sender.send(entry.callback, final=True)
        found.add(FlushResult(path, PENDING, entry, now_at=path, reason="dry run"))


def _sweep(
    sender: FlushSender, names: list[str], retry_seconds: float, found: ReportBuilder
) -> int:
    """Send the files *names* (oldest first) as step 3 to 5 of the module's docstring say;
    add what became of each to *found*; return the number of sweeps made."""
    # What the sweep has still to try, newest first: pop() takes the oldest and lets go of
    # its name at once. Beside each name, how it last failed (empty in the first sweep).
    # Two flat lists, not an object per file: this is all a run holds per file; the files
    # that failed alike share one Again.
    left: list[str] = names
    left.reverse()
    failed: list[Again | None] = []
    alike: dict[Again, Again] = {}
    deadline: float | None = None
    sweeps = 0
    while left:
        sweeps += 1
        started = time.monotonic()
        again: list[str] = []
        again_failed: list[Again | None] = []
        retry_after: float | None = None
        while left:
            seconds = ATTEMPT_SECONDS
            if deadline is not None:
                seconds = min(seconds, deadline - time.monotonic())
                if seconds < MIN_ATTEMPT_SECONDS:
                    break  # the budget is spent: the rest stays as it is
            name = left.pop()
            how = failed.pop() if failed else None
            outcome = sender.one(name, seconds)
            if isinstance(outcome, Again):
                if len(alike) > 1000:
                    alike.clear()
                how = alike.setdefault(outcome, outcome)
                if outcome.retry_after is not None:
                    retry_after = max(retry_after or 0.0, outcome.retry_after)
            else:
                found.add(outcome)
                continue
            again.append(name)
            again_failed.append(how)
        # not reached in this sweep (newer than all tried): after them, oldest first
        again.extend(reversed(left))
        again_failed.extend(reversed(failed) if failed else [None] * len(left))
        left, failed = [], []
        for name, how in zip(again, again_failed, strict=True):
            if how is not None and how.base_url in sender.stopped:
                # its server was given up later in the sweep: no need to open it again
                found.add(_still_pending(sender.folder, name, how))
            else:
                left.append(name)
                failed.append(how)
        left.reverse()
        failed.reverse()
        if deadline is None:
            deadline = time.monotonic() + retry_seconds
        if not left:
            break
        wait = sweep_wait(sweeps, retry_after) - (time.monotonic() - started)
        remaining = deadline - time.monotonic() - MIN_ATTEMPT_SECONDS
        if remaining <= 0 or (wait > remaining and retry_after is not None):
            break  # no time left for another sweep, or not before the server asked
        if wait > 0:
            _pause(min(wait, remaining))
    for name, how in zip(reversed(left), reversed(failed), strict=True):
        found.add(_still_pending(sender.folder, name, how))
    if left:
        log.warning(
            "%d final status(es) not delivered in %d sweep(s) within the retry budget of %.0f s"
            " (ESS_CALLBACK_RETRY_SECONDS); they stay in the outbox for the next flush",
            len(left),
            sweeps,
            retry_seconds,
        )
    return sweeps


def _still_pending(folder: Path, name: str, how: Again | None) -> FlushResult:
    path = entry_path(folder, name)
    return FlushResult(path, PENDING, now_at=path, reason=None if how is None else how.reason)


def entry_names(folder: Path) -> list[str]:
    """The names of the kept callbacks in *folder*, oldest first (names only: a list of
    ``Path`` objects would cost several times the memory at a large backlog)."""
    with os.scandir(folder) as it:
        names = [item.name for item in it if _outbox.is_entry_name(item.name)]
    names.sort()
    return names


def _check_folder(folder: Path, *, write: bool = True) -> list[str] | None:
    """The names of the files to flush, oldest first; None when there is no outbox;
    OutboxError when it cannot be used (a flush that cannot delete would send the same
    files again), or is unsafe (a symbolic link, another user's, writable by others)."""
    if os.path.lexists(folder):
        if write:
            _outbox.ensure_folder(folder)  # refused when unsafe; 0700 when others may read
        else:
            problem = folder_problem(os.lstat(folder))
            if problem is not None and problem != "is not a folder":
                raise _outbox.UnsafeOutboxError(f"outbox folder {folder} {problem}")
    try:
        paths = entry_names(folder)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        what = "is not a folder" if os.path.lexists(folder) else "is under a file, not a folder"
        raise OutboxError(
            f"outbox {folder} {what}; set ESS_CALLBACK_OUTBOX (or --outbox) to a folder"
        ) from None
    except OSError as exc:
        raise OutboxError(
            f"cannot read outbox folder {folder}: {exc.strerror or exc}; fix its permissions "
            "or set ESS_CALLBACK_OUTBOX (or --outbox)"
        ) from None
    if write and paths and not os.access(folder, os.W_OK | os.X_OK):
        raise OutboxError(
            f"cannot write to outbox folder {folder} (delivered files must be removed): "
            "permission denied; fix its permissions or run as its owner"
        )
    return paths


def flush_outbox(
    outbox: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    media_type: str | None = None,
    ca_bundle: str | None = None,
    retry_seconds: float | None = None,
    dry_run: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> FlushReport:
    """Send the outbox again, oldest first, and return a :class:`FlushReport`.

    *outbox* defaults to ``ESS_CALLBACK_OUTBOX``, else ``$XDG_STATE_HOME/ess-callback/outbox``.
    Credentials, CA bundle, media type and retry budget are the explicit values, else the
    ``ESS_*`` variables of *env* (default ``os.environ``) — never anything from the files.
    With credentials, *base_url* (else ``ESS_BASE_URL``) is required, and only the files
    for its scheme, host and port are sent: the others wait for a flush with their own
    server's settings. Without credentials, each file goes to its own base URL.

    One run makes a first sweep over every file (one attempt each), then sweeps again over
    what failed in a way the server may not repeat (5xx, 429, 408, a reset), with a short
    wait between sweeps, while the retry budget lasts (*retry_seconds*, else
    ``ESS_CALLBACK_RETRY_SECONDS``, default 60 s: one budget for the whole run, counted from
    the end of the first sweep). A server is given up for the run after 30 such failures in
    a row, after 3 attempts in a row that find nothing there or get no answer in time, or
    at once for TLS and setup refusals (401, ...); ``report.given_up`` says which and why.
    The report counts every file (``report.counts``) but keeps at most ``SAMPLES`` results
    of each kind, so that its memory stays flat at any backlog.

    First, each dead execution of this host (a lease in ``running/`` whose process is gone,
    docs/guarantees.md) has what is left of it stopped and becomes an ERROR entry, sent with
    the rest;
    ``report.dead_reported`` counts them.
    Raises ``ConfigurationError`` for malformed settings and ``OutboxError`` when the folder
    cannot be read or written; every per-file trouble ends up in the report instead.

    With *dry_run* (default ``ESS_CALLBACK_DRY_RUN``) nothing is sent and no file is touched:
    each callback that would be sent is printed on stderr as a dry-run JSON line. While
    ``ess_callback.testing.record_callbacks()`` is active, they are recorded instead, and
    the outbox is left alone as well.
    """
    config = resolve_flush_settings(
        outbox,
        base_url=base_url,
        username=username,
        password=password,
        token=token,
        media_type=media_type,
        ca_bundle=ca_bundle,
        retry_seconds=retry_seconds,
        dry_run=dry_run,
        env=env,
    )
    folder = config.outbox
    if _recording.active_recorder() is not None:
        config = attrs.evolve(config, dry_run=True)
    names = _check_folder(folder, write=not config.dry_run)
    if names is None:
        return FlushReport(folder, existed=False, dry_run=config.dry_run)
    found = ReportBuilder(folder)
    if config.dry_run:
        dead = _leases.find_dead(folder)
        _dry_run(folder, names, dead, found)
        return found.report(dry_run=True, dead_reported=len(dead))
    # The dead first: each becomes an ERROR entry of the outbox, sent below like any other.
    dead = _leases.report_dead(folder)
    if dead:
        names = _check_folder(folder) or []
    removed = _outbox.remove_stale_temp_files(folder, older_than=STALE_TEMP_SECONDS)
    if removed:
        log.info("removed %d temp file(s) left by interrupted writers", removed)
    sender = FlushSender(folder, config)
    try:
        sweeps = _sweep(sender, names, config.retry_seconds, found) if names else 0
    finally:
        sender.close()
    return found.report(dead_reported=len(dead), given_up=tuple(sender.given_up), sweeps=sweeps)
