"""``flush_outbox``: send the kept final callbacks again, oldest first, each at most once.

Each file goes to its own base URL with the credentials of the flushing environment. A
delivered file is deleted; one refused for good (400, 403, 404 and the other 4xx that a
retry cannot change) moves to ``rejected/`` with the reason; one refused with 401, or still
undeliverable, stays. A file that cannot be read back moves to ``corrupt/``. Concurrent
flushes cooperate through per-file claims (see ``_outbox``).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import _recording
from .._checks import folder_problem
from .._errors import AuthenticationError, DeliveryError, RejectedError
from .._message import DEFAULT_MAX_MESSAGE_BYTES, Redactor, truncate_message
from .._settings import FlushSettings, parse_base_url, resolve_flush_settings
from .._status import Status
from .._url import split_url
from . import _leases, _outbox
from ._flush_report import (
    CORRUPT,
    DELIVERED,
    ELSEWHERE,
    PENDING,
    REJECTED,
    FlushReport,
    FlushResult,
)
from ._outbox import Claim, CorruptEntryError, NewerFormatError, OutboxEntry, OutboxError

if TYPE_CHECKING:
    from .._client import SchedulerClient

log = logging.getLogger("ess_callback")

#: temp files older than this were left by a writer that died mid-write
STALE_TEMP_SECONDS = 3600.0
#: 4xx answers that a later retry may turn around: the flush's own setup is at fault
FIXABLE_STATUSES = frozenset({401, 407, 415})
#: a final status sent this long after it was kept says when the job ended (SPEC 11)
LATE_SECONDS = 60.0
LATE_STATUSES = frozenset({Status.ERROR, Status.BUSINESS_ERROR, Status.WARNING})
DEFAULT_PORTS = {"https": 443, "http": 80}


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of *url* (the port its scheme's default when absent)."""
    parts = split_url(url)
    port = parts.port if parts.port is not None else DEFAULT_PORTS.get(parts.scheme)
    return parts.scheme, parts.host.lower(), port


def shown_origin(url: str) -> str:
    """``https://other.example.com``: the scheme, host and port of *url*, as written."""
    parts = split_url(url)
    host = f"[{parts.host}]" if parts.bracketed else parts.host
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


def late_message(entry: OutboxEntry, message: str | None) -> str | None:
    """An ERROR, BUSINESS_ERROR or WARNING sent more than LATE_SECONDS after it was kept
    ends with `` [ended <UTC time>; reported late]``, within the message's byte limit (the
    text is cut, never the suffix). ESS ignores the message of SUCCESS and CANCEL."""
    if entry.status not in LATE_STATUSES or entry.created is None:
        return message
    try:
        created = datetime.fromisoformat(entry.created)
    except ValueError:
        return message
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    if (datetime.now(timezone.utc) - created).total_seconds() <= LATE_SECONDS:
        return message
    when = created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    suffix = f" [ended {when}; reported late]"
    room = DEFAULT_MAX_MESSAGE_BYTES - len(suffix.encode("utf-8"))
    return truncate_message(message or "", room) + suffix


#: errors that say the system is short of something, not that the file is bad
_SHORT_OF_RESOURCES = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN, errno.EINTR}
)


def _rejection(error: DeliveryError) -> dict[str, Any]:
    record = _outbox.error_record(error) or {}
    record["at"] = _outbox.now_iso()
    record["title"] = error.title
    record["detail"] = error.detail
    return record


class _Flush:
    """One pass over the outbox (an object only to share the clients and stop reasons)."""

    def __init__(self, folder: Path, config: FlushSettings) -> None:
        self.folder = folder
        self.config = config
        self.redact = Redactor(config.secrets())
        self.clients: dict[str, SchedulerClient] = {}
        #: base URL -> why the remaining files for it are not tried in this run
        self.stopped: dict[str, str] = {}
        #: pending files stay claimed until the end, so no concurrent flush retries them now
        self.held: list[Claim] = []

    def client(self, base_url: str) -> SchedulerClient:
        if base_url not in self.clients:
            from .._client import RetryPolicy, SchedulerClient

            self.clients[base_url] = SchedulerClient(
                base_url,
                auth=self.config.auth,
                media_type=self.config.media_type,
                retry=RetryPolicy(budget=self.config.retry_seconds),
                ca_bundle=self.config.ca_bundle,
                allow_http=self.config.allow_http,
            )
        return self.clients[base_url]

    def other_server(self, base_url: str) -> str | None:
        """The origin of *base_url* when credentials are set and it is not theirs, else None."""
        if self.config.auth is None or self.config.base_url is None:
            return None
        theirs = origin(base_url)
        return None if theirs == origin(self.config.base_url) else shown_origin(base_url)

    def close(self) -> None:
        for held in self.held:
            held.release()
        for client in self.clients.values():
            client.close()

    def one(self, path: Path) -> FlushResult:
        try:
            claim = _outbox.claim(path)
        except OSError as exc:
            if exc.errno in _SHORT_OF_RESOURCES:
                return self.left_pending(path, exc)
            return self.set_aside(path, None, f"cannot open it: {exc.strerror or exc}")
        if claim is None:
            return FlushResult(path, ELSEWHERE)
        keep = False
        try:
            try:
                entry = claim.entry()
            except NewerFormatError as exc:
                log.warning("%s: %s; left in place", path.name, exc)
                return FlushResult(path, PENDING, now_at=path, reason=str(exc))
            except OSError as exc:
                if exc.errno in _SHORT_OF_RESOURCES:
                    return self.left_pending(path, exc)
                return self.set_aside(path, claim, str(exc.strerror or exc))
            except CorruptEntryError as exc:
                return self.set_aside(path, claim, str(exc))
            result = self.send(claim, entry)
            keep = result.result == PENDING and result.error is not None
            return result
        finally:
            if keep:
                self.held.append(claim)
            else:
                claim.release()

    def left_pending(self, path: Path, exc: OSError) -> FlushResult:
        """The system, not the file, is short of something (descriptors, memory): the entry
        stays pending for the next flush."""
        why = f"cannot open it now: {exc.strerror or exc}"
        log.warning("%s: %s; left pending", path.name, why)
        return FlushResult(path, PENDING, now_at=path, reason=why)

    def set_aside(self, path: Path, claim: Claim | None, why: str) -> FlushResult:
        """Move an unreadable file to ``corrupt/`` (as it is: it cannot be annotated)."""
        target = self.folder / _outbox.CORRUPT
        try:
            moved = claim.move_to(target) if claim is not None else _outbox.move_into(path, target)
        except _outbox.UnsafeOutboxError:
            raise  # a planted link or an open folder: refused, never followed
        except (OSError, OutboxError) as exc:
            log.warning("%s is unreadable (%s) and could not be moved aside: %s", path, why, exc)
            return FlushResult(path, CORRUPT, now_at=path, reason=why)
        log.warning("%s is unreadable (%s); moved to %s", path.name, why, moved)
        return FlushResult(path, CORRUPT, now_at=moved, reason=why)

    def send(self, claim: Claim, entry: OutboxEntry) -> FlushResult:
        path = claim.path
        stop = self.stopped.get(entry.base_url)
        if stop is not None:
            log.info("%s kept, not tried: %s", path.name, stop)
            return FlushResult(path, PENDING, entry, now_at=path, reason=f"not tried: {stop}")
        server = self.other_server(entry.base_url)
        if server is not None:
            # Credentials go only to their own server (SPEC 6): this one waits for a flush
            # with that server's settings, untouched.
            log.info("%s kept: it is for another server, %s", path.name, server)
            why = f"for another server, {server}"
            return FlushResult(path, PENDING, entry, now_at=path, reason=why, server=server)
        try:
            parse_base_url(entry.base_url, allow_http=self.config.allow_http)
        except ValueError as exc:
            self.stopped[entry.base_url] = str(exc)
            log.warning("%s kept: %s", path.name, exc)
            return FlushResult(path, PENDING, entry, now_at=path, reason=str(exc))
        message = self.redact(entry.message) if entry.message else entry.message
        message = late_message(entry, message)
        try:
            outcome = self.client(entry.base_url).post_status(
                entry.request_id,
                entry.request_handle,
                entry.status,
                message,
                sent_before=entry.attempts > 0,  # its answer may have been lost
            )
        except DeliveryError as error:
            return self.failed(claim, entry, error)
        try:
            claim.delete()
        except OSError as exc:
            log.error(
                "%s was delivered but cannot be removed (%s): it will be sent again",
                path,
                exc.strerror or exc,
            )
        log.info(
            "delivered %s for request %d (%s, %d attempt(s))",
            entry.status,
            entry.request_id,
            path.name,
            outcome.attempts,
        )
        return FlushResult(path, DELIVERED, entry)

    def failed(self, claim: Claim, entry: OutboxEntry, error: DeliveryError) -> FlushResult:
        path = claim.path
        record = dict(entry.record)
        record["attempts"] = entry.attempts + error.attempts
        record["last_error"] = _outbox.error_record(error)
        record["last_attempt"] = _outbox.now_iso()
        status = error.http_status
        permanent = isinstance(error, RejectedError) and not (
            isinstance(error, AuthenticationError)
            or status in FIXABLE_STATUSES
            or (status is not None and 300 <= status < 400)
        )
        if permanent:
            record["reason"] = str(error)
            record["rejected"] = _rejection(error)
            try:
                moved = claim.replace_with(record, self.folder / _outbox.REJECTED)
            except _outbox.UnsafeOutboxError:
                raise  # a planted link or an open folder: refused, never followed
            except (OSError, OutboxError) as exc:
                log.error("%s was rejected (%s) but could not be moved: %s", path, error, exc)
                moved = path
            log.warning(
                "%s for request %d rejected: %s; moved to %s",
                entry.status,
                entry.request_id,
                error,
                moved,
            )
            return FlushResult(path, REJECTED, entry, now_at=moved, reason=str(error), error=error)
        # Everything else may go through later: the same server will answer the same now.
        self.stopped[entry.base_url] = str(error)
        try:
            claim.replace_with(record)
        except (OSError, OutboxError) as exc:
            log.debug("could not record the attempt in %s: %s", path, exc)
        log.warning("%s for request %d kept: %s", entry.status, entry.request_id, error)
        return FlushResult(path, PENDING, entry, now_at=path, reason=str(error), error=error)


def _dry_run(paths: list[Path], dead: list[_leases.DeadExecution]) -> list[FlushResult]:
    """What a flush would send, through the dry-run sender (or the test recorder, when one
    is active); no file is claimed or touched, no process stopped."""
    from .._recording import active_recorder
    from .._seam import DryRunSender, RecordingSender

    recorder = active_recorder()
    sender: DryRunSender | RecordingSender = (
        DryRunSender() if recorder is None else RecordingSender(recorder)
    )
    for found in dead:
        log.info("%s is a dead execution; it would be reported", found.lease.path.name)
        sender.send(found.callback, final=True)
    results = []
    for path in paths:
        try:
            entry = _outbox.read_entry(path)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            log.warning("%s is unreadable (%s); a flush would move it aside", path.name, why)
            results.append(FlushResult(path, CORRUPT, now_at=path, reason=str(why or exc)))
            continue
        log.info("%s would go to %s", path.name, entry.base_url)
        sender.send(entry.callback, final=True)
        results.append(FlushResult(path, PENDING, entry, now_at=path, reason="dry run"))
    return results


def _check_folder(folder: Path, *, write: bool = True) -> list[Path] | None:
    """The files to flush, oldest first; None when there is no outbox; OutboxError when it
    cannot be used (a flush that cannot delete would send the same files again), or is
    unsafe (a symbolic link, another user's, writable by others)."""
    if os.path.lexists(folder):
        if write:
            _outbox.ensure_folder(folder)  # refused when unsafe; 0700 when others may read
        else:
            problem = folder_problem(os.lstat(folder))
            if problem is not None and problem != "is not a folder":
                raise _outbox.UnsafeOutboxError(f"outbox folder {folder} {problem}")
    try:
        paths = _outbox.entry_paths(folder)
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

    First, each dead execution of this host (a lease in ``running/`` whose process is gone,
    SPEC 11) has what is left of it stopped and becomes an ERROR entry, sent with the rest;
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
    paths = _check_folder(folder, write=not config.dry_run)
    if paths is None:
        return FlushReport(folder, existed=False, dry_run=config.dry_run)
    if config.dry_run:
        dead = _leases.find_dead(folder)
        return FlushReport(
            folder, tuple(_dry_run(paths, dead)), dry_run=True, dead_reported=len(dead)
        )
    # The dead first: each becomes an ERROR entry of the outbox, sent below like any other.
    dead = _leases.report_dead(folder)
    if dead:
        paths = _check_folder(folder) or []
    removed = _outbox.remove_stale_temp_files(folder, older_than=STALE_TEMP_SECONDS)
    if removed:
        log.info("removed %d temp file(s) left by interrupted writers", removed)
    flush = _Flush(folder, config)
    results: list[FlushResult] = []
    try:
        for path in paths:
            results.append(flush.one(path))
    finally:
        flush.close()
    return FlushReport(folder, tuple(results), dead_reported=len(dead))
