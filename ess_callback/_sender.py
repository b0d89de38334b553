"""HTTP delivery through the one seam every callback goes through, with the outbox behind it.

Three implementations of ``Sender`` (``_seam.py``): HTTP delivery (here), dry run (a JSON
line on stderr), and recording (``ess_callback.testing``). ``make_sender`` picks the one the
settings call for; every entry point hands it every callback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import (
    DeliveryError,
    DeliveryInterrupted,
    EssCallbackError,
    SchedulerUnavailableError,
)
from ._model import Callback, Outcome
from ._recording import active_recorder
from ._seam import DryRunSender, RecordingSender, Sender

if TYPE_CHECKING:
    from ._client import RetryPolicy, SchedulerClient
    from ._settings import Settings
    from ._signals import SignalGuard

log = logging.getLogger("ess_callback")


#: what to do when an outbox folder cannot take a final status
OUTBOX_HINT = "set ESS_CALLBACK_OUTBOX to a folder the job may write"


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
        stop: SignalGuard | None = None,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.update_retry = update_retry
        self.announce_spool = announce_spool
        self.stop = stop

    def close(self) -> None:
        self.client.close()

    def send(self, callback: Callback, *, final: bool) -> Outcome:
        from ._client import is_spoolable

        try:
            with self.stop.armed() if self.stop is not None else contextlib.nullcontext():
                return self.client.post_status(
                    callback.request_id or 0,
                    callback.request_handle or "",
                    callback.status,
                    callback.message,
                    retry=None if final else self.update_retry,
                )
        except DeliveryInterrupted as stop:
            # The signal came just before or just after the client's retries: as unknown
            # as a connection cut mid-answer (the outbox may send it twice, never lose it).
            from ._message import signal_name

            error: DeliveryError = SchedulerUnavailableError(
                f"sending to {self.client.base_url} was interrupted by {signal_name(stop.signum)}"
            )
        except DeliveryError as failed:
            error = failed
        spooled = spool_error = None
        if final and self.outbox is not None and is_spoolable(error):
            spooled, spool_error = self._spool(callback, error)
        return Outcome(
            callback.status,
            callback.message,
            delivered=False,
            attempts=error.attempts,
            error=error,
            spooled_to=spooled,
            spool_error=spool_error,
        )

    def _spool(
        self, callback: Callback, error: DeliveryError
    ) -> tuple[Path | None, EssCallbackError | None]:
        from .outbox import _outbox  # only on this rare path: keeps start-up light

        assert self.outbox is not None
        try:
            spooled = _outbox.spool(
                self.outbox,
                callback,
                base_url=self.client.base_url,
                attempts=error.attempts,
                error=error,
            )
        except _outbox.OutboxError as failed:
            spool_error = EssCallbackError(f"{failed}; {OUTBOX_HINT}")
            # Always told, even to a caller that tells the rest itself: a job that catches
            # the DeliveryError must still leave a trace that the status is lost.
            log.error("%s; the %s status is lost", spool_error, callback.status)
            return None, spool_error
        # A caller that tells the user itself (one line, undelivered_text()) asks for no
        # announcement: the line would otherwise show twice.
        if self.announce_spool:
            log.warning(
                "final status %s was not delivered (%s); kept in the outbox as %s: "
                "run 'ess-callback flush' to send it",
                callback.status,
                error,
                spooled,
            )
        return spooled, None


def _import_http() -> None:
    # What the first post loads: requests, its adapters and urllib3's pools.
    import requests
    import requests.adapters  # noqa: F401
    import urllib3.connectionpool  # noqa: F401


def preload_http() -> threading.Thread | None:
    """Start importing what the first post needs in a daemon thread, so that a block's end
    does not wait for it; join the thread before sending. None when no thread can be
    started (the send then imports it itself)."""
    thread = threading.Thread(target=_import_http, name="ess-callback-import", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # "can't start new thread"
        return None
    return thread


def undelivered_text(outcome: Outcome) -> str:
    """One line saying that a final callback was not delivered, why, and where it is kept."""
    if outcome.spooled_to is not None:
        return (
            f"final status {outcome.status} was not delivered ({outcome.error}); kept in the "
            f"outbox as {outcome.spooled_to}: run 'ess-callback flush' to send it"
        )
    # When the outbox failed too (outcome.spool_error), that was logged as it happened.
    # "final status" first: a bare "WARNING not delivered" reads like a log level.
    kind = "final status" if outcome.status.is_final else "status"
    return f"{kind} {outcome.status} was not delivered: {outcome.error}"


def make_sender(
    settings: Settings,
    *,
    client: SchedulerClient | None = None,
    max_message_bytes: int | None = None,
    announce_spool: bool = True,
    stop: SignalGuard | None = None,
) -> Sender:
    """The sender these settings call for: recording if active, else dry run, else HTTP.

    Recording and dry run need no settings at all; HTTP builds a ``SchedulerClient``
    (importing requests only now) unless one is given. With ``announce_spool=False`` a
    status kept in the outbox is not logged: the caller says it itself, in one line
    (``undelivered_text``). A status the outbox could not keep is always logged.
    With *stop* (a ``SignalGuard``), a signal stops an HTTP delivery in progress.
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
            allow_http=settings.allow_http,
        )
    return HttpSender(
        client,
        outbox=settings.outbox,
        update_retry=RetryPolicy(attempts=2, budget=5.0, timeout=5.0),
        announce_spool=announce_spool,
        stop=stop,
    )
