"""The one seam every callback goes through, and the two senders that cost nothing.

``Sender`` is what ``JobExecution``, the command line and ``flush --dry-run`` hand each
callback to. Dry run (a JSON line on stderr) and recording (``ess_callback.testing``) live
here; HTTP delivery, with the outbox behind it, is ``_sender.HttpSender``.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Protocol

from ._model import Callback, Outcome
from ._recording import Recorder


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
