"""``CancelWatcher``: notice that an operator cancelled the job's own ESS request.

ESS cannot signal a process it did not start: a cancelled asynchronous request goes to
CANCELLING and waits for the job to report CANCEL. So the job looks, in a daemon thread,
with Oracle's job-side call ``POST .../requests/{id}/checkInCancelling`` (which also counts
as the job's check-in for ``forceCancel``), or, from an ESS without that call, by reading
the request's state (``_request_state.py``; docs/howto/cancel.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import DeliveryError, EssCallbackError

if TYPE_CHECKING:
    from ._request_state import RequestStateReader
    from ._settings import Settings

log = logging.getLogger("ess_callback")

#: the raw ESS request states that mean "an operator cancelled this request"
CANCEL_STATES = frozenset({"CANCELLING", "CANCELLED"})
#: polling errors are logged at most this often (seconds); the job carries on regardless
ERROR_LOG_EVERY = 60.0
#: how long one state read may take (seconds), so that ``stop()`` is never held up long
READ_TIMEOUT = 5.0
CHECK_IN_PATH = "/ess/rest/scheduler/v1/requests/{request_id}/checkInCancelling"
#: answers of an ESS that has no checkInCancelling: read the request state instead
NO_CHECK_IN = frozenset({400, 404, 405, 501})


class _NoCheckIn(Exception):
    """ESS answered checkInCancelling with 400, 404, 405 or 501."""


class CancelWatcher:
    """Asks ESS every ``settings.cancel_poll`` seconds whether the job's own request was
    cancelled: ``checkInCancelling`` with the request handle (a JSON boolean answer); when
    ESS answers that with 400, 404, 405 or 501, it says so once at INFO and reads the
    request state with GET for the rest of the job.

    When ESS answers ``true``, or the state read is CANCELLING or CANCELLED, it calls
    ``on_cancel(reason)`` once, from its own thread, and stops. Polling errors are logged
    (at most once a minute) and never stop the job. Needs ``settings.base_url``,
    ``request_id`` and ``cancel_poll``; without them ``start()`` does nothing.

    >>> from ess_callback._settings import resolve_settings
    >>> settings = resolve_settings(cancel_poll=30)     # the job's own ESS_* variables
    >>> watcher = CancelWatcher(settings, on_cancel=lambda reason: print(reason))
    >>> watcher.start()
    >>> # the job's work
    >>> watcher.stop()
    """

    def __init__(
        self,
        settings: Settings,
        on_cancel: Callable[[str], None],
        *,
        interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.on_cancel = on_cancel
        self.interval = interval if interval is not None else settings.cancel_poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fired = False
        self._errors_logged_at = float("-inf")
        #: False once ESS showed it has no checkInCancelling (or there is no handle)
        self.check_in = settings.request_handle is not None

    def __repr__(self) -> str:
        return (
            f"CancelWatcher(request_id={self.settings.request_id!r}, interval={self.interval!r}, "
            f"running={self.running})"
        )

    @property
    def running(self) -> bool:
        """True while the polling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def fired(self) -> bool:
        """True once ``on_cancel`` was called."""
        return self._fired

    def start(self) -> None:
        """Start polling in a daemon thread (once; later calls do nothing)."""
        if self._thread is not None:
            return
        settings = self.settings
        if not self.interval or settings.base_url is None or settings.request_id is None:
            log.warning(
                "cancel polling needs ESS_BASE_URL, ESS_REQUEST_ID and a poll interval; it is off"
            )
            return
        from ._client import CREDENTIAL_HINT, new_session
        from ._credentials import redaction_secrets
        from ._reading import auth_object
        from ._request_state import RequestStateReader

        reader = RequestStateReader(
            settings.base_url,
            new_session(auth_object(settings.auth)),
            ca_bundle=settings.ca_bundle,
            timeout=min(READ_TIMEOUT, max(1.0, self.interval)),
            credential_hint=CREDENTIAL_HINT,
            secrets=redaction_secrets(settings.auth),
        )
        thread = threading.Thread(
            target=self._run, args=(reader,), name="ess-callback-cancel-watch", daemon=True
        )
        try:
            thread.start()
        except RuntimeError as exc:  # the user's process limit: the job goes on unwatched
            log.warning("cancel polling is off: cannot start its thread (%s)", exc)
            reader.close()
            return
        self._thread = thread

    def stop(self, timeout: float = 1.0) -> None:
        """Stop polling; wait up to *timeout* seconds for the thread.

        A read still in flight then is abandoned (the thread is a daemon, and it calls
        ``on_cancel`` only if not stopped), so a slow server never delays the job's end.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> CancelWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the thread ----------------------------------------------------------------------
    def _run(self, reader: RequestStateReader) -> None:
        assert self.interval is not None and self.settings.request_id is not None
        try:
            while not self._stop.wait(self.interval):
                raw = self._poll(reader, self.settings.request_id)
                if raw is None or raw.upper() not in CANCEL_STATES:
                    continue
                if self._stop.is_set():
                    return
                self._fired = True
                try:
                    self.on_cancel(f"cancelled in ESS (state {raw.upper()})")
                except Exception:  # the job must carry on even if the callback is broken
                    log.exception("the cancellation handler failed")
                return
        finally:
            reader.close()

    def _poll(self, reader: RequestStateReader, request_id: int) -> str | None:
        """The request's state as far as this poll tells: CANCELLING when checkInCancelling
        answered true, RUNNING when it answered false, else what a GET reads."""
        if self.check_in:
            try:
                return "CANCELLING" if self._check_in(reader, request_id) else "RUNNING"
            except _NoCheckIn as why:
                self.check_in = False
                log.info(
                    "ESS answered checkInCancelling with %s; checking for cancellation by "
                    "reading the request state instead",
                    why,
                )
            except Exception as error:  # whatever goes wrong here, the job carries on
                self._log_error(error)
                return None
        return self._read_state(reader, request_id)

    def _check_in(self, reader: RequestStateReader, request_id: int) -> bool:
        """``POST .../checkInCancelling`` with the handle: ESS's JSON boolean answer."""
        import json

        from ._answers import error_for_response

        url = reader.base_url + CHECK_IN_PATH.format(request_id=request_id)
        body: dict[str, Any] = {"requestExecutionContext": self.settings.request_handle}
        try:
            response = reader.request(
                "POST",
                url,
                data=json.dumps(body).encode("utf-8"),
                headers={"Content-Type": "application/json"},
            )
        except DeliveryError as exc:
            raise EssCallbackError(str(exc)) from None
        code = response.status_code
        if code in NO_CHECK_IN:
            raise _NoCheckIn(f"{code} {reader.redact(response.reason)}".strip())
        if not 200 <= code < 300:
            error: DeliveryError = error_for_response(
                code,
                response.reason,
                response.body,
                1,
                location=response.headers.get("Location"),
                redact=reader.redact,
            )
            raise EssCallbackError(str(error).replace("ESS answered", "checkInCancelling:", 1))
        try:
            answer = json.loads(response.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        if not isinstance(answer, bool):
            shown = reader.redact(repr(response.body[:80]))
            raise EssCallbackError(f"checkInCancelling answered {shown}, not a JSON boolean")
        return answer

    def _read_state(self, reader: RequestStateReader, request_id: int) -> str | None:
        try:
            return reader.state(request_id)
        except Exception as error:  # whatever goes wrong here, the job carries on
            self._log_error(error)
            return None

    def _log_error(self, error: Exception) -> None:
        """Log a polling error: loud at most once a minute, the rest at DEBUG."""
        now = time.monotonic()
        loud = now - self._errors_logged_at >= ERROR_LOG_EVERY
        if loud:
            self._errors_logged_at = now
        # Our own errors are self-explaining; anything else is a bug worth a traceback.
        expected = isinstance(error, EssCallbackError | OSError)
        log.log(
            logging.WARNING if loud else logging.DEBUG,
            "cannot check for cancellation in ESS: %s",
            error,
            exc_info=not expected,
        )
