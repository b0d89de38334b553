"""Passing a child's output through as it comes, and reading its progress pipe.

Memory stays bounded whatever the child prints: one reusable read buffer, a fixed-size ring
for the tail (runitor's idea) and a length limit on progress lines.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
from collections.abc import Callable

from ._posix import fcntl

#: bytes read from a pipe at once; with a pipe this large, one read empties it
READ_SIZE = 1 << 17
#: pipe buffer asked for: room for the child to write on while a read is copied out
PIPE_SIZE = 1 << 20
#: longest progress line kept; the rest of a longer line is dropped
MAX_LINE = 8192


def make_pipe() -> tuple[int, int]:
    """A close-on-exec pipe whose ends sit at fd 10 or above, with a large buffer.

    Keeping our ends away from 0..9 means the child's dup2 onto a low number (2, 3, ...)
    never meets one of our own descriptors.
    """
    low_r, low_w = os.pipe()
    try:
        read_end = fcntl.fcntl(low_r, fcntl.F_DUPFD_CLOEXEC, 10)
        write_end = fcntl.fcntl(low_w, fcntl.F_DUPFD_CLOEXEC, 10)
    finally:
        os.close(low_r)
        os.close(low_w)
    set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_pipe_size is not None:  # Linux: fewer wake-ups per megabyte; optional elsewhere
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, set_pipe_size, PIPE_SIZE)
    os.set_blocking(read_end, False)
    return read_end, write_end


def open_standard_fds() -> None:
    """Put /dev/null on a closed fd 0, 1 or 2, so that no pipe of ours takes its number
    (the child's output would go into our own plumbing)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)


def progress_fd() -> int:
    """The lowest descriptor from 3 to 9 that the child would not inherit anyway."""
    for fd in range(3, 10):
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            return fd
        if flags & fcntl.FD_CLOEXEC:  # one of our own: the child never sees it
            return fd
    raise OSError(errno.EMFILE, "no file descriptor from 3 to 9 is free for ESS_CALLBACK_FD")


def parse_progress(line: str) -> tuple[str, str] | None:
    """``("UPDATE", text)`` or ``("WARNING", text)`` for a progress line, else None."""
    word, _, text = line.strip().partition(" ")
    keyword = word.upper()
    if keyword in ("UPDATE", "WARNING"):
        return keyword, text.strip()
    return None


class TailBuffer:
    """The last *size* bytes written, kept in a ring of fixed size."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._ring = bytearray(self.size)
        self.pos = 0
        #: bytes written in all, kept or not
        self.total = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Remember *data* as the newest bytes, forgetting the oldest beyond ``size``."""
        count = len(data)
        self.total += count
        size = self.size
        if size == 0 or count == 0:
            return
        if count >= size:
            self._ring[:] = data[count - size :]
            self.pos = 0
            return
        end = self.pos + count
        if end <= size:
            self._ring[self.pos : end] = data
        else:
            first = size - self.pos
            self._ring[self.pos :] = data[:first]
            self._ring[: count - first] = data[first:]
        self.pos = end % size

    def getvalue(self) -> bytes:
        """The bytes kept, oldest first."""
        if self.total < self.size:
            return bytes(self._ring[: self.total])
        return bytes(self._ring[self.pos :] + self._ring[: self.pos])

    def text(self) -> str:
        """The tail as text; a character cut in two at its start is left out."""
        data = self.getvalue()
        if self.total > self.size:
            start = 0
            while start < min(len(data), 3) and (data[start] & 0xC0) == 0x80:
                start += 1
            data = data[start:]
        return data.decode("utf-8", "replace")

    def section(self, name: str) -> str | None:
        """The tail under a title line naming *name* (and the cut), or None if empty."""
        text = self.text().strip("\n")
        if not text:
            return None
        cut = f"last {self.size} bytes of " if self.total > self.size else ""
        return f"--- {cut}{name} ---\n{text}"


class OutputPipe:
    """One pipe from the child, copied to *dest* (the wrapper's fd 1 or 2) as it comes.

    Each relay runs in a thread of its own doing blocking reads: a ``poll`` before every
    read would cost more than the copy itself (measured: about 0.6 of a ``cat`` pipe's
    throughput with poll, 0.95 without). Writes go straight to the descriptor (no Python
    buffering). If *dest* is gone (closed, broken pipe) the data is still read, so the
    child never blocks on a full pipe.
    """

    def __init__(self, name: str, fd: int, dest: int, tail: TailBuffer) -> None:
        self.name = name
        self.fd = fd
        self.dest = dest
        self.tail = tail
        self._dest_ok = True
        self._buffer = bytearray(READ_SIZE)
        self._thread: threading.Thread | None = None
        #: the last chunk read when it holds the whole tail and is not yet in the ring
        self._pending: memoryview | None = None
        #: set once the pipe reached end of file (or failed)
        self.done = threading.Event()

    def start(self, on_done: Callable[[], None]) -> bool:
        """Relay in a daemon thread until end of file, then call *on_done* (from it).

        False when no thread could be started (the user's process limit): the caller then
        calls ``read_once`` whenever the pipe is readable.
        """
        os.set_blocking(self.fd, True)

        def pump() -> None:
            try:
                self._pump()
            finally:
                self.done.set()
                on_done()

        thread = threading.Thread(target=pump, name=f"relay-{self.name}", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread"
            return False
        self._thread = thread
        return True

    def read_once(self) -> bool:
        """Relay one chunk in the caller's thread (the pipe is readable); False at its end."""
        try:
            count = os.readv(self.fd, [self._buffer])
        except OSError:
            count = 0
        if count == 0:
            self.done.set()
            return False
        view = memoryview(self._buffer)[:count]
        if self._dest_ok:
            self._write(view)
        self.tail.write(view)
        return True

    @property
    def running(self) -> bool:
        """True while the relay thread may still read the pipe (its fd must stay open)."""
        return self._thread is not None and not self.done.is_set()

    def _pump(self) -> None:
        """``read()`` until end of file, unrolled: at gigabytes a second each read's Python
        overhead counts, so the loop keeps to local names, no calls and no lock.

        Only this thread writes the tail; the supervising thread reads it once this one is
        done (or, for a pipe a daemon still holds, at the very end, when a torn last chunk
        does no harm).
        """
        fd, dest, tail = self.fd, self.dest, self.tail
        keep = tail.size
        # Two buffers read into in turn: while one is being filled, the other still holds
        # the previous chunk. A chunk at least as long as the tail *is* the tail, so it is
        # copied into the ring only when a shorter chunk follows it, or at the end.
        lists = ([self._buffer], [bytearray(len(self._buffer))])
        views = (memoryview(lists[0][0]), memoryview(lists[1][0]))
        readv, write = os.readv, os.write
        dest_ok = self._dest_ok
        pending: memoryview | None = None
        turn = 0
        try:
            while True:
                try:
                    count = readv(fd, lists[turn])
                except OSError:
                    return
                if count == 0:
                    return
                view = views[turn][:count]
                turn ^= 1
                if dest_ok:
                    try:
                        written = write(dest, view)
                    except OSError:
                        written = 0
                    if written != count:  # short write, non-blocking or gone: the slow way
                        self._write(view[written:])
                        dest_ok = self._dest_ok
                if 0 < keep <= count:
                    if pending is not None:
                        tail.total += len(pending)  # superseded: counted, never copied
                    pending = self._pending = view
                else:
                    if pending is not None:
                        tail.write(pending)
                        pending = self._pending = None
                    tail.write(view)
        finally:
            if pending is not None:
                tail.write(pending)
            self._pending = None

    def section(self) -> str | None:
        """The tail under its title (see ``TailBuffer.section``).

        While the relay still runs (a daemon holds the pipe), the last chunk may not have
        reached the ring yet: the answer is then taken from a copy that includes it.
        """
        pending = self._pending
        if pending is None or not self.running:
            return self.tail.section(self.name)
        snapshot = TailBuffer(self.tail.size)
        snapshot.write(self.tail.getvalue())
        snapshot.write(bytes(pending))
        snapshot.total = self.tail.total + len(pending)
        return snapshot.section(self.name)

    def _write(self, view: memoryview) -> None:
        while view:
            try:
                written = os.write(self.dest, view)
            except BlockingIOError:  # our own stdout/stderr was left non-blocking
                select.select([], [self.dest], [])
                continue
            except OSError:  # closed, broken pipe, full disk: keep reading for the tail
                self._dest_ok = False
                return
            view = view[written:]


class LineReader:
    """Splits the progress pipe into text lines, each cut to at most *limit* bytes."""

    def __init__(self, fd: int, limit: int = MAX_LINE) -> None:
        self.fd = fd
        self.limit = limit
        self._partial = bytearray()

    def read(self) -> list[str] | None:
        """The complete lines that arrived; None at end of file (after the last lines)."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        if not data:
            return None
        return self.feed(data)

    def feed(self, data: bytes) -> list[str]:
        """Add *data*; return the lines it completed."""
        lines: list[str] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                self._add(data[start:])
                return lines
            self._add(data[start:newline])
            lines.append(self._take())
            start = newline + 1

    def rest(self) -> list[str]:
        """A last line that did not end with a newline, if any."""
        return [self._take()] if self._partial else []

    def _add(self, chunk: bytes) -> None:
        room = self.limit - len(self._partial)
        if room > 0:
            self._partial += chunk[:room]

    def _take(self) -> str:
        line = self._partial.decode("utf-8", "replace").rstrip("\r")
        self._partial.clear()
        return line
