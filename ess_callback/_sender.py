"""The one seam every callback goes through.

Three implementations: HTTP delivery (with the outbox behind it), dry run (a JSON line on
stderr), and recording (``ess_callback.testing``). ``JobExecution`` and the command line
pick one and hand it every callback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from ._errors import DeliveryError
from ._model import Callback, Outcome
from ._recording import Recorder, active_recorder

if TYPE_CHECKING:
    from ._client import RetryPolicy, SchedulerClient
    from ._settings import Settings

log = logging.getLogger("ess_callback")


class Sender(Protocol):
    """Delivers callbacks. ``local`` senders (dry run, recording) cost nothing to call."""

    local: bool

    def send(self, callback: Callback, *, final: bool) -> Outcome:
        """Send one callback; never raises for delivery trouble, reports it in the Outcome."""
        ...


class DryRunSender:
    """Prints each callback as one JSON line on stderr and keeps it in ``sent``."""

    local = True

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self.sent: list[Callback] = []

    def send(self, callback: Callback, *, final: bool) -> Outcome:
        line = json.dumps(
            {
                "dry_run": True,
                "request_id": callback.request_id,
                "requestHandle": callback.request_handle,
                "status": callback.status.value,
                "statusMessage": callback.message,
            }
        )
        stream = self._stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()
        self.sent.append(callback)
        return Outcome(callback.status, callback.message, delivered=True, attempts=0)


class RecordingSender:
    """Appends each callback to a testing recorder."""

    local = True

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def send(self, callback: Callback, *, final: bool) -> Outcome:
        self.recorder.append(callback)
        return Outcome(callback.status, callback.message, delivered=True, attempts=0)


class HttpSender:
    """Posts over HTTP; a final callback that fails for a retryable reason, or with 401,
    goes to the outbox before the failure is reported."""

    local = False

    def __init__(
        self,
        client: SchedulerClient,
        *,
        outbox: Path | None,
        update_retry: RetryPolicy | None = None,
        announce_spool: bool = True,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.update_retry = update_retry
        self.announce_spool = announce_spool

    def close(self) -> None:
        self.client.close()

    def send(self, callback: Callback, *, final: bool) -> Outcome:
        from ._client import is_spoolable

        try:
            return self.client.post_status(
                callback.request_id or 0,
                callback.request_handle or "",
                callback.status,
                callback.message,
                retry=None if final else self.update_retry,
            )
        except DeliveryError as error:
            spooled = None
            if final and self.outbox is not None and is_spoolable(error):
                from . import _outbox  # only on this rare path: keeps start-up light

                try:
                    spooled = _outbox.spool(
                        self.outbox,
                        callback,
                        base_url=self.client.base_url,
                        attempts=error.attempts,
                        error=error,
                    )
                except _outbox.OutboxError as spool_error:
                    log.error("%s; the %s status is lost", spool_error, callback.status)
                else:
                    # A caller that tells the user itself (one line, undelivered_text())
                    # asks for no announcement; the note then stays at INFO.
                    log.log(
                        logging.WARNING if self.announce_spool else logging.INFO,
                        "%s not delivered (%s); kept in the outbox as %s: "
                        "run 'ess-callback flush' to send it",
                        callback.status,
                        error,
                        spooled,
                    )
            return Outcome(
                callback.status,
                callback.message,
                delivered=False,
                attempts=error.attempts,
                error=error,
                spooled_to=spooled,
            )


def undelivered_text(outcome: Outcome) -> str:
    """One line saying that a final callback was not delivered, why, and where it is kept."""
    if outcome.spooled_to is not None:
        return (
            f"{outcome.status} not delivered ({outcome.error}); kept in the outbox as "
            f"{outcome.spooled_to}: run 'ess-callback flush' to send it"
        )
    return f"{outcome.status} not delivered: {outcome.error}"


def make_sender(
    settings: Settings,
    *,
    client: SchedulerClient | None = None,
    max_message_bytes: int | None = None,
    announce_spool: bool = True,
) -> Sender:
    """The sender these settings call for: recording if active, else dry run, else HTTP.

    Recording and dry run need no settings at all; HTTP builds a ``SchedulerClient``
    (importing requests only now) unless one is given. With ``announce_spool=False`` a
    final status kept in the outbox is logged at INFO only: the caller says it itself.
    """
    recorder = active_recorder()
    if recorder is not None:
        return RecordingSender(recorder)
    if settings.dry_run:
        return DryRunSender()
    from ._client import RetryPolicy, SchedulerClient
    from ._message import DEFAULT_MAX_MESSAGE_BYTES

    if client is None:
        if settings.base_url is None:  # resolve_settings requires it outside dry run
            raise ValueError("a base URL is needed to send")
        client = SchedulerClient(
            settings.base_url,
            auth=settings.auth,
            media_type=settings.media_type,
            retry=RetryPolicy(budget=settings.retry_seconds),
            ca_bundle=settings.ca_bundle,
            max_message_bytes=max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES,
        )
    return HttpSender(
        client,
        outbox=settings.outbox,
        update_retry=RetryPolicy(attempts=2, budget=5.0, timeout=5.0),
        announce_spool=announce_spool,
    )
