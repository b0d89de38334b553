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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import _recording
from .._checks import folder_problem
from .._errors import AuthenticationError, DeliveryError, RejectedError
from .._message import Redactor
from .._settings import FlushSettings, parse_base_url, resolve_flush_settings
from . import _outbox
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
        try:
            parse_base_url(entry.base_url, allow_http=self.config.allow_http)
        except ValueError as exc:
            self.stopped[entry.base_url] = str(exc)
            log.warning("%s kept: %s", path.name, exc)
            return FlushResult(path, PENDING, entry, now_at=path, reason=str(exc))
        message = self.redact(entry.message) if entry.message else entry.message
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


def _dry_run(paths: list[Path]) -> list[FlushResult]:
    """What a flush would send, through the dry-run sender (or the test recorder, when one
    is active); no file is claimed or touched."""
    from .._recording import active_recorder
    from .._seam import DryRunSender, RecordingSender, Sender

    recorder = active_recorder()
    sender: Sender = DryRunSender() if recorder is None else RecordingSender(recorder)
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
    Raises ``ConfigurationError`` for malformed settings and ``OutboxError`` when the folder
    cannot be read or written; every per-file trouble ends up in the report instead.

    With *dry_run* (default ``ESS_CALLBACK_DRY_RUN``) nothing is sent and no file is touched:
    each callback that would be sent is printed on stderr as a dry-run JSON line. While
    ``ess_callback.testing.record_callbacks()`` is active, they are recorded instead, and
    the outbox is left alone as well.
    """
    config = resolve_flush_settings(
        outbox,
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
        return FlushReport(folder, tuple(_dry_run(paths)), dry_run=True)
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
    return FlushReport(folder, tuple(results))
