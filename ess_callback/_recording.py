"""Process-wide callback recording, the switch behind ``ess_callback.testing.record_callbacks``.

Lives outside ``testing/`` because the sending code consults it on every callback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import overload

from ._model import Callback
from ._status import Status

_lock = threading.Lock()
_active: list[Recorder] = []


class Recorder(Sequence[Callback]):
    """A thread-safe, list-like record of the callbacks that would have been sent.

    Returned by ``record_callbacks()``; active from creation until ``stop()`` (or the end of
    its ``with`` block), when the recording that was active before comes back.
    """

    def __init__(self) -> None:
        self._items: list[Callback] = []
        self._items_lock = threading.Lock()
        self._stopped = False

    # -- list-like -------------------------------------------------------------------
    @overload
    def __getitem__(self, index: int) -> Callback: ...
    @overload
    def __getitem__(self, index: slice) -> list[Callback]: ...
    def __getitem__(self, index: int | slice) -> Callback | list[Callback]:
        with self._items_lock:
            return self._items[index]

    def __len__(self) -> int:
        with self._items_lock:
            return len(self._items)

    def __iter__(self) -> Iterator[Callback]:
        with self._items_lock:
            return iter(list(self._items))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Recorder):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Recorder({list(self)!r})"

    def append(self, callback: Callback) -> None:
        """Record one callback."""
        with self._items_lock:
            self._items.append(callback)

    def clear(self) -> None:
        """Forget what was recorded so far."""
        with self._items_lock:
            self._items.clear()

    @property
    def statuses(self) -> list[Status]:
        """The recorded statuses, in order."""
        return [c.status for c in self]

    @property
    def messages(self) -> list[str | None]:
        """The recorded messages, in order."""
        return [c.message for c in self]

    @property
    def last(self) -> Callback:
        """The last callback recorded (the terminal one, once a job has ended)."""
        with self._items_lock:
            if not self._items:
                raise IndexError("no callback was recorded")
            return self._items[-1]

    # -- activation ------------------------------------------------------------------
    def start(self) -> Recorder:
        with _lock:
            _active.append(self)
        return self

    def stop(self) -> None:
        """Stop recording and restore whatever recording was active before."""
        with _lock:
            if self in _active:
                # remove this very object (not an equal one)
                for i in range(len(_active) - 1, -1, -1):
                    if _active[i] is self:
                        del _active[i]
                        break
            self._stopped = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def record_callbacks() -> Recorder:
    """Record, instead of sending, every callback of every JobExecution and SchedulerClient.

    Works as a context manager (``with record_callbacks() as calls:``) and as a plain call
    (``calls = record_callbacks()`` ... ``calls.stop()``). Recordings nest; the innermost wins.
    """
    return Recorder().start()


def active_recorder() -> Recorder | None:
    """The recorder in force, if any."""
    return _active[-1] if _active else None
