"""Our own lines on stderr: ``ess-callback: text``, or one JSON object per line.

``--log-format json`` (``ESS_CALLBACK_LOG_FORMAT=json``) is for a container's log pipeline:
then every line a command writes to stderr, log records and closing messages alike, is an
object with ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, when known,
``request_id``. The child of ``run`` keeps its own stderr: that is the job's log, not ours.
"""

from __future__ import annotations

import contextlib
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    import logging
    from typing import Any, TextIO

FORMATS = ("text", "json")
LOGGER = "ess_callback"


class _State:
    """The process's choice (one command line per process)."""

    json = False
    request_id: int | None = None


def set_format(name: str) -> None:
    """``text`` or ``json`` (any case); anything else is a ``ValueError``."""
    key = name.strip().lower()
    if key not in FORMATS:
        raise ValueError(f"log format {name!r}: use one of {', '.join(FORMATS)}")
    _State.json = key == "json"


def json_mode() -> bool:
    """True when our stderr lines are JSON objects."""
    return _State.json


def reset() -> None:
    """Text, no request id: how each command line starts (tests run many in one process)."""
    _State.json = False
    _State.request_id = None


def set_request_id(request_id: int | None) -> None:
    """The request the lines are about, added to each JSON line from now on."""
    _State.request_id = request_id


def json_line(
    level: str, message: str, *, logger: str = LOGGER, request_id: int | None = None
) -> str:
    """One JSON object (no newline) as ``--log-format json`` writes it."""
    # Imported here: the command line loads this module at start-up, in text mode too.
    import json
    from datetime import datetime, timezone

    record: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }
    rid = request_id if request_id is not None else _State.request_id
    if rid is not None:
        record["request_id"] = rid
    return json.dumps(record, ensure_ascii=False)


def say(text: str, *, level: str = "ERROR", stream: TextIO | None = None) -> None:
    """One line of ours on stderr: ``ess-callback: text``, or a JSON object with *level*.

    Callers redact *text* first. Without a usable stderr there is nowhere to say it.
    """
    line = json_line(level, text) if _State.json else f"ess-callback: {text}"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        out = stream or sys.stderr
        out.write(line + "\n")
        out.flush()


def json_formatter() -> logging.Formatter:
    """A formatter writing log records as JSON lines (the traceback, if any, inside
    ``message``). Built on demand: ``--version`` must not pay for importing logging."""
    import logging

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self.formatException(record.exc_info)
            rid = getattr(record, "request_id", None)
            return json_line(
                record.levelname,
                message,
                logger=record.name,
                request_id=rid if isinstance(rid, int) else None,
            )

    return JsonFormatter()


def configure_logging(verbose: int, quiet: bool) -> None:
    """``ess_callback`` logger on stderr: WARNING by default, 1 INFO, 2 DEBUG, *quiet*
    ERROR; lines are JSON objects in JSON mode. One handler of ours, following the current
    stderr (under a test runner each invocation has its own)."""
    import logging

    level = (
        logging.ERROR
        if quiet
        else (logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    )
    formatter = (
        json_formatter()
        if json_mode()
        else logging.Formatter("ess-callback: %(levelname)s: %(message)s")
    )
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    for existing in logger.handlers:
        if getattr(existing, "_ess_callback", False):
            existing.setStream(sys.stderr)  # type: ignore[attr-defined]
            existing.setFormatter(formatter)
    if not any(getattr(h, "_ess_callback", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        handler._ess_callback = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
