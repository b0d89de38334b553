"""One attempt at one outbox file, and what a server's failures mean for the rest of a flush.

:class:`FlushSender` claims a file, reads it, sends it once (a single attempt, no retries of
its own: the flush sweeps again over what is left) and settles it: a delivered file is
deleted; one refused for good (400, 403, 404 and the other 4xx that a retry cannot change)
moves to ``rejected/`` with the reason; one refused with 401, or not delivered, stays with
its ``attempts`` and ``last_error`` updated. A file that cannot be read back moves to
``corrupt/``.

A failure the same server may well not repeat (an answer 408, 429, 500, 502, 503 or 504, a
connection reset, an answer cut short) leaves the file for the next sweep: :class:`Again`.
A server is given up for the rest of the run after :data:`GIVE_UP_AFTER` such failures in a
row; after :data:`GIVE_UP_AFTER_SILENT` attempts in a row that found nothing there (a
refused connection, a name that does not resolve, no route) or got no answer in time; and
at once when TLS or a proxy fails, or when it refuses the flush's own setup (401, 407, 415,
a redirect): every other file for it would meet the same answer.
"""

from __future__ import annotations

import errno
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._answers import RETRY_STATUSES
from .._errors import AuthenticationError, DeliveryError, RejectedError
from .._message import DEFAULT_MAX_MESSAGE_BYTES, Redactor, truncate_message
from .._retry import MIN_ATTEMPT_SECONDS
from .._settings import FlushSettings, parse_base_url
from .._status import Status
from .._url import split_url
from . import _outbox
from ._flush_report import CORRUPT, DELIVERED, ELSEWHERE, PENDING, REJECTED, FlushResult
from ._outbox import Claim, CorruptEntryError, NewerFormatError, OutboxEntry, OutboxError

if TYPE_CHECKING:
    from .._client import SchedulerClient

log = logging.getLogger("ess_callback")

#: 4xx answers that a later retry may turn around: the flush's own setup is at fault
FIXABLE_STATUSES = frozenset({401, 407, 415})
#: a final status sent this long after it was kept says when the job ended (docs/guarantees.md)
LATE_SECONDS = 60.0
LATE_STATUSES = frozenset({Status.ERROR, Status.BUSINESS_ERROR, Status.WARNING})
DEFAULT_PORTS = {"https": 443, "http": 80}
#: failures in a row (5xx, 429, 408, resets) after which a server is given up for the run.
#: A server failing half of its calls at random fails 30 in a row with a chance of about
#: n / 2**31 over n calls: about 1 in 100,000 for a 10,000-entry backlog.
GIVE_UP_AFTER = 30
#: attempts in a row that found nothing there or got no answer in time (a timeout may take
#: 10 s; a refused connection takes a millisecond, but says the server is down)
GIVE_UP_AFTER_SILENT = 3
#: network reasons that say nothing listens there (rather than one call's bad luck)
UNREACHABLE = (
    "connection refused",
    "name or service not known",
    "temporary failure in name resolution",
    "failed to resolve",
    "nodename nor servname",
    "no route to host",
    "network is unreachable",
)


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


def entry_path(folder: Path, name: str) -> Path:
    """``folder / name``, made from a copy of *name*.

    pathlib (before Python 3.12) interns every part of a path it builds: handed the names a
    flush run holds, it would keep every one of them in the interpreter's table of interned
    strings too, a table that never shrinks (about 2 MB more at 50,000 files). The copy is
    interned instead, and goes away with the path.
    """
    return folder / "".join((name[:1], name[1:]))


def failure_kind(error: DeliveryError) -> str:
    """``again`` (the next call may go through), ``silent`` (nothing there, or no answer in
    time), or ``stop`` (no other call of this run would do better)."""
    if not error.retryable:
        return "stop"  # 401, 407, 415, a redirect, a request the HTTP library refused
    if error.http_status is not None:
        return "again" if error.http_status in RETRY_STATUSES else "stop"
    network = (error.network or "").lower()
    if not network:
        return "stop"  # TLS, a proxy, an unusable CA bundle
    if network == "timed out" or any(marker in network for marker in UNREACHABLE):
        return "silent"
    return "again"  # a reset, a connection closed without an answer, an answer cut short


@attrs.frozen
class Again:
    """The attempt failed in a way the server may not repeat: the file stays, with the
    attempt recorded in it, and is tried again in the next sweep while the run lasts."""

    #: the base URL the file is for
    base_url: str
    reason: str
    #: the seconds the server asked to wait (``Retry-After``), if it did
    retry_after: float | None = None


class FlushSender:
    """Sends outbox files one attempt at a time and keeps, per server, the failures in a row
    and whether it was given up for the run (an object to share the clients)."""

    def __init__(self, folder: Path, config: FlushSettings) -> None:
        self.folder = folder
        self.config = config
        self.redact = Redactor(config.secrets())
        self.clients: dict[str, SchedulerClient] = {}
        #: base URL -> why the remaining files for it are not tried in this run
        self.stopped: dict[str, str] = {}
        #: (server, why) for each base URL given up, in the order it happened
        self.given_up: list[tuple[str, str]] = []
        #: base URL -> failures in a row, and attempts in a row that found nothing there
        self.failures: dict[str, int] = {}
        self.silent: dict[str, int] = {}
        #: base URLs whose first failure in this run was told at WARNING level
        self.warned: set[str] = set()

    def client(self, base_url: str) -> SchedulerClient:
        if base_url not in self.clients:
            from .._client import SchedulerClient

            self.clients[base_url] = SchedulerClient(
                base_url,
                auth=self.config.auth,
                media_type=self.config.media_type,
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
        for client in self.clients.values():
            client.close()

    def one(self, name: str, seconds: float) -> FlushResult | Again:
        """Claim, read and send the file *name* once, within *seconds*."""
        path = entry_path(self.folder, name)
        try:
            claim = _outbox.claim(path)
        except OSError as exc:
            if exc.errno in _SHORT_OF_RESOURCES:
                return self.left_pending(path, exc)
            return self.set_aside(path, None, f"cannot open it: {exc.strerror or exc}")
        if claim is None:
            return FlushResult(path, ELSEWHERE)
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
            return self.send(claim, entry, seconds)
        finally:
            # Let go at once, also of a file tried again later: a run holds one file at a
            # time, however many stay pending (a concurrent flush may try it meanwhile; the
            # claim still lets only one of them send it at a time).
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

    def send(self, claim: Claim, entry: OutboxEntry, seconds: float) -> FlushResult | Again:
        from .._client import RetryPolicy

        path = claim.path
        stop = self.stopped.get(entry.base_url)
        if stop is not None:
            log.debug("%s kept, not tried: %s", path.name, stop)
            return FlushResult(path, PENDING, entry, now_at=path, reason=f"not tried: {stop}")
        server = self.other_server(entry.base_url)
        if server is not None:
            # Credentials go only to their own server: this one waits for a flush
            # with that server's settings, untouched.
            log.info("%s kept: it is for another server, %s", path.name, server)
            why = f"for another server, {server}"
            return FlushResult(path, PENDING, entry, now_at=path, reason=why, server=server)
        try:
            parse_base_url(entry.base_url, allow_http=self.config.allow_http)
        except ValueError as exc:
            self.give_up(entry.base_url, str(exc))
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
                # one attempt: the flush itself sweeps again over what is left
                retry=RetryPolicy(attempts=1, budget=seconds),
                sent_before=entry.attempts > 0,  # its answer may have been lost
            )
        except DeliveryError as error:
            return self.failed(claim, entry, error)
        self.failures[entry.base_url] = self.silent[entry.base_url] = 0
        try:
            claim.delete()
        except OSError as exc:
            log.error(
                "%s was delivered but cannot be removed (%s): it will be sent again",
                path,
                exc.strerror or exc,
            )
        log.info(
            "delivered %s for request %d (%s, attempt %d)",
            entry.status,
            entry.request_id,
            path.name,
            entry.attempts + outcome.attempts,
        )
        return FlushResult(path, DELIVERED, entry)

    def give_up(self, base_url: str, why: str) -> None:
        """No other file for *base_url* is tried in this run."""
        self.stopped[base_url] = why
        self.given_up.append((shown_origin(base_url), why))

    def failed(self, claim: Claim, entry: OutboxEntry, error: DeliveryError) -> FlushResult | Again:
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
        # Everything else may go through later: the file stays, the attempt recorded in it.
        try:
            claim.replace_with(record)
        except (OSError, OutboxError) as exc:
            log.debug("could not record the attempt in %s: %s", path, exc)
        base = entry.base_url
        kind = failure_kind(error)
        if kind == "stop":
            self.give_up(base, str(error))
            log.warning("%s for request %d kept: %s", entry.status, entry.request_id, error)
            return FlushResult(path, PENDING, entry, now_at=path, reason=str(error), error=error)
        self.failures[base] = failures = self.failures.get(base, 0) + 1
        silent = self.silent[base] = (self.silent.get(base, 0) + 1) if kind == "silent" else 0
        if failures >= GIVE_UP_AFTER or silent >= GIVE_UP_AFTER_SILENT:
            if silent >= GIVE_UP_AFTER_SILENT:
                in_a_row = f"{silent} attempts in a row without an answer"
            else:
                in_a_row = f"{failures} failures in a row"
            self.give_up(base, f"{in_a_row}, the last: {error}")
            log.warning(
                "giving up on %s for this run after %s; what is left for it stays in the outbox",
                shown_origin(base),
                in_a_row,
            )
            return FlushResult(path, PENDING, entry, now_at=path, reason=str(error), error=error)
        if base not in self.warned:
            # the retry notice (docs/reference/retries.md), once per server and run: not one
            # line per file.
            self.warned.add(base)
            budget = self.config.retry_seconds
            log.warning(
                "final status %s not delivered yet: %s; %s",
                entry.status,
                error,
                f"retrying for up to {budget:.0f} s after every file had its first attempt "
                f"(one notice for {shown_origin(base)}, not one per file)"
                if budget >= MIN_ATTEMPT_SECONDS
                else "not retried in this run (the retry budget, ESS_CALLBACK_RETRY_SECONDS, is 0)",
            )
        log.info("%s for request %d not delivered yet: %s", entry.status, entry.request_id, error)
        return Again(base, str(error), error.retry_after)
