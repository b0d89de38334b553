"""The ``ess_callback`` logger, with ``logging`` imported on its first use.

``run`` starts its command before it imports anything the command does not wait for;
``logging`` (with traceback, tokenize, string, weakref...) is one of those. The modules on
that path log through :data:`log`, which loads the logger when a record is first made;
settings for the logger given meanwhile (its handler, a filter) wait in :func:`defer` and
are applied first, so that no record is ever made without them. :func:`load` applies them
at once (``run`` does so as soon as its command runs, before any other module logs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    import logging
    from typing import Any

NAME = "ess_callback"


class _State:
    logger: logging.Logger | None = None
    pending: list[Callable[[logging.Logger], object]] = []
    lock = threading.RLock()  # an action may log (and so load) itself


def load() -> logging.Logger:
    """The ``ess_callback`` logger, with every deferred setting applied (in order)."""
    logger = _State.logger
    if logger is not None and not _State.pending:
        return logger
    with _State.lock:  # a thread of ours may log while the main thread loads it
        if _State.logger is None:
            import logging

            _State.logger = logging.getLogger(NAME)
        while _State.pending:
            _State.pending.pop(0)(_State.logger)
        return _State.logger


def defer(action: Callable[[logging.Logger], object]) -> None:
    """``action(logger)`` now if the logger is loaded, else just before its first use."""
    with _State.lock:
        if _State.logger is None:
            _State.pending.append(action)
            return
    action(load())


class _LazyLogger:
    """Stands for the ``ess_callback`` logger; loads it on the first attribute asked for."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load(), name)


#: the ``ess_callback`` logger, loaded on first use
log: logging.Logger = _LazyLogger()  # type: ignore[assignment]
