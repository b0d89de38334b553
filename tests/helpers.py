"""Helpers shared by the test modules: polling with a deadline, the files of an outbox, and
a watched API's answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> bool:
    """Poll *predicate* until it holds (for things with no event to wait on); True then,
    an AssertionError naming *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)
    return True


def outbox_files(folder: Path, pattern: str = "*.json") -> list[Path]:
    """The files of an outbox *folder* matching *pattern* (the entries, by default), sorted;
    none when the folder does not exist."""
    if not folder.exists():
        return []
    return sorted(path for path in folder.glob(pattern) if path.is_file())


def saas_body(status: str, pct: str, completed: bool = False, message: str = "") -> dict[str, Any]:
    """A Fusion Job Scheduler answer with this status, completed percentage and message."""
    return {
        "jobDetails": {
            "jobProgress": {
                "status": status,
                "completedPercentage": pct,
                "completed": completed,
                "message": message,
            }
        }
    }
