"""What ``ess-callback run`` tells ESS: the progress pipe's lines, then the command's end.

``Reporter`` feeds a ``ReportingSession`` (``_session.py``): throttled UPDATEs and bounded
warnings from the progress pipe while the command runs, then the final status that the
``run`` table (``_endings.command_ending``) gives for what the supervisor saw. It also
keeps secrets out of the ``ess_callback`` logger while ``run`` works.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

import attrs

from ._endings import ChildEnd, command_ending, exit_code
from ._message import Redactor
from ._model import Outcome
from ._relay import parse_progress
from ._session import ReportingSession, SenderFuture, WarningList

if TYPE_CHECKING:
    from ._seam import Sender
    from ._settings import Settings
    from ._signals import SignalGuard

log = logging.getLogger("ess_callback")


class Reporter:
    """Everything ``run`` tells ESS, through a ``ReportingSession``: UPDATE and WARNING
    lines from the progress pipe while the command runs, then its end.

    The sender is built in a thread (``prepare``), so that requests is imported while the
    command already runs.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        redact: Redactor,
        update_interval: float,
        stop: SignalGuard | None = None,
    ) -> None:
        self._future = SenderFuture(settings, stop=stop)
        self.session = ReportingSession(
            settings, self._future, redact=redact, update_interval=update_interval
        )

    @property
    def warnings(self) -> WarningList:
        """The WARNING lines of the run, bounded."""
        return self.session.warnings

    @property
    def outcome(self) -> Outcome | None:
        """How the final status went, once ``finish`` returned."""
        return self.session.outcome

    def prepare(self) -> None:
        """Start building the sender in the background."""
        self._future.start()

    def sender(self) -> Sender:
        """The sender (waits for ``prepare`` to be done); raises what building it raised."""
        return self.session.sender()

    def progress(self, line: str) -> None:
        """Act on one line of the progress pipe: UPDATE, WARNING, or ignore it."""
        parsed = parse_progress(line)
        if parsed is None:
            log.debug("ignored a progress line (not UPDATE or WARNING): %.200s", line)
        elif parsed[0] == "WARNING":
            log.info("warning from the job: %s", parsed[1])
            self.session.warn(parsed[1] or "WARNING")
        else:
            self.session.update(parsed[1])

    def finish(
        self,
        end: ChildEnd,
        *,
        warning_codes: Collection[int] = (),
        business_codes: Collection[int] = (),
    ) -> int:
        """Post the final status for *end*; return the wrapper's exit status.

        That is the command's own, except when it was 0 and the status was not delivered:
        75 when it is in the outbox, 1 when it was rejected or lost (``exit_code_for``).
        """
        end = attrs.evolve(end, warnings=tuple(self.warnings.lines()))
        ending = command_ending(end, warning_codes=warning_codes, business_codes=business_codes)
        return self.session.end(ending.status, ending.message, child_status=exit_code(end))

    def say(self, text: str) -> None:
        """One line of our own on stderr, redacted."""
        self.session.say(text)
