"""Process-wide callback recording, the switch behind ``ess_callback.testing.record_callbacks``.

Lives outside ``testing/`` because the sending code consults it on every callback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from types import TracebackType

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    from typing import overload

    # Not at run time: run asks for the active recorder before it starts its command, and
    # _model needs attrs.
    from ._model import Callback
    from ._status import Status

_lock = threading.Lock()
_active: list[Recorder] = []


class Recorder(Sequence["Callback"]):
    """A thread-safe, list-like record of the callbacks that would have been sent.

    ``record_callbacks()`` returns one already started; it stays active until ``stop()``
    (or the end of its ``with`` block), when the recording that was active before comes
    back. While several are active, the innermost (latest started) one gets the callbacks.
    """

    def __init__(self) -> None:
        self._items: list[Callback] = []
        self._items_lock = threading.Lock()

    # -- list-like -------------------------------------------------------------------
    if TYPE_CHECKING:  # typing.overload, without loading typing at run time

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
    @property
    def active(self) -> bool:
        """True while this recorder is on the stack of recordings (innermost or not)."""
        with _lock:
            return any(r is self for r in _active)

    def start(self) -> Recorder:
        """Start recording into this recorder (again, after ``stop()``); returns it."""
        with _lock:
            if not any(r is self for r in _active):
                _active.append(self)
        return self

    def stop(self) -> None:
        """Stop recording and restore whatever recording was active before. Idempotent.

        Stopping an outer recorder while an inner one is active leaves the inner one in
        force; only this recorder leaves the stack.
        """
        with _lock:
            # remove this very object (Recorder.__eq__ compares contents, so no .remove())
            for i in range(len(_active) - 1, -1, -1):
                if _active[i] is self:
                    del _active[i]
                    break

    def __enter__(self) -> Recorder:
        return self.start()

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
    # Read under the lock: another thread may stop the last recorder between a check and
    # the indexing.
    with _lock:
        return _active[-1] if _active else None
