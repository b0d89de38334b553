"""The outbox: final callbacks that could not be delivered, kept on disk until ``flush``.

One JSON file per callback, written atomically (temp file, fsync, rename, fsync of the
folder); folder mode 0700, file mode 0600; never credentials. This module writes, reads and
claims those files; ``_flush.py`` sends them.

A flush *claims* a file with an exclusive ``fcntl.flock`` on the file itself before sending
it, and removes (or moves) it while still holding the claim. Every file is thus its own lock
file: any number of concurrent flushes, or a flush racing a job that is spooling, send each
file at most once, and a flush killed by a signal drops its claims with its descriptors.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from .._checks import parse_request_id
from .._errors import DeliveryError
from .._model import Callback
from .._posix import fcntl
from .._settings import parse_base_url
from .._status import Status
from ._store import SUFFIX as SUFFIX
from ._store import TMP_SUFFIX as TMP_SUFFIX
from ._store import OutboxError as OutboxError
from ._store import UnsafeOutboxError as UnsafeOutboxError
from ._store import _install
from ._store import ensure_folder as ensure_folder
from ._store import fsync_dir as fsync_dir
from ._store import make_durable as make_durable
from ._store import open_folder as open_folder
from ._store import write_atomic as write_atomic

FORMAT_VERSION = 1
REJECTED = "rejected"
CORRUPT = "corrupt"
#: an outbox file is a few kB; anything far bigger did not come from us
MAX_FILE_BYTES = 1024 * 1024


class CorruptEntryError(ValueError):
    """An outbox file that cannot be read back as a callback (truncated, edited, foreign)."""


class NewerFormatError(ValueError):
    """An outbox file written by a newer ess-callback: left alone, never destroyed."""


def error_record(error: BaseException | None) -> dict[str, Any] | None:
    """What the outbox keeps of the last error (no secrets: our errors never hold any)."""
    if error is None:
        return None
    record: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, DeliveryError):
        record["http_status"] = error.http_status
        record["error_code"] = error.error_code
    return record


def now_iso() -> str:
    """The current time, UTC, ISO 8601."""
    return datetime.now(timezone.utc).isoformat()


def spool(
    folder: Path,
    callback: Callback,
    *,
    base_url: str | None,
    attempts: int,
    error: BaseException | None,
    name: str | None = None,
) -> Path:
    """Keep one undelivered final callback in the outbox; return the file written.

    File names start with the creation time in nanoseconds, so sorting by name is
    oldest first. A given *name* (a dead execution's, made from its lease) replaces a file
    of that name: writing the same entry twice keeps one.
    """
    now_ns = time.time_ns()
    name = name or (
        f"{now_ns:020d}-{callback.request_id or 0}-{callback.status.value.lower()}-"
        f"{os.urandom(3).hex()}{SUFFIX}"
    )
    record = {
        "format": FORMAT_VERSION,
        "base_url": base_url,
        "request_id": callback.request_id,
        "request_handle": callback.request_handle,
        "status": callback.status.value,
        "message": callback.message,
        "created": datetime.fromtimestamp(now_ns / 1e9, tz=timezone.utc).isoformat(),
        "attempts": attempts,
        "last_error": error_record(error),
    }
    return write_atomic(folder, name, record)


# -- reading -------------------------------------------------------------------------------
@attrs.frozen
class OutboxEntry:
    """One kept callback, read back from its file."""

    path: Path
    base_url: str
    request_id: int
    request_handle: str = attrs.field(repr=False)
    status: Status
    message: str | None = attrs.field(repr=False)
    created: str | None
    attempts: int
    last_error: dict[str, Any] | None = attrs.field(repr=False)
    #: the whole JSON object, unknown keys included (kept when the file is rewritten)
    record: dict[str, Any] = attrs.field(repr=False, eq=False)

    @property
    def callback(self) -> Callback:
        """The callback to send again."""
        return Callback(self.request_id, self.request_handle, self.status, self.message)


def parse_entry(path: Path, raw: bytes) -> OutboxEntry:
    """Validate the bytes of an outbox file; raise ``CorruptEntryError`` saying what is wrong."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptEntryError("not a complete JSON document") from None
    if not isinstance(data, dict):
        raise CorruptEntryError("not a JSON object")
    version = data.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptEntryError("no valid 'format' version")
    if version > FORMAT_VERSION:
        raise NewerFormatError(
            f"format {version} was written by a newer ess-callback (this one reads "
            f"{FORMAT_VERSION}); flush it with that version"
        )

    def field(key: str, check: Any, what: str) -> Any:
        value = data.get(key)
        if not check(value):
            raise CorruptEntryError(f"'{key}' is {what}")
        return value

    base_url = field("base_url", lambda v: isinstance(v, str) and v, "missing or not a string")
    try:
        base_url = parse_base_url(base_url, allow_http=True)
        request_id = parse_request_id(data.get("request_id"))
    except ValueError as exc:
        raise CorruptEntryError(str(exc).split(";")[0]) from None
    if isinstance(data.get("request_id"), str):
        raise CorruptEntryError("'request_id' is not a number")
    handle = field("request_handle", lambda v: isinstance(v, str) and v.strip(), "missing")
    try:
        status = Status.parse(field("status", lambda v: isinstance(v, str), "missing"))
    except ValueError as exc:
        raise CorruptEntryError(str(exc)) from None
    if not status.is_final:
        raise CorruptEntryError(f"'status' {status.value} is never kept in the outbox")
    message = field("message", lambda v: v is None or isinstance(v, str), "not a string")
    created = data.get("created") if isinstance(data.get("created"), str) else None
    attempts = data.get("attempts")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        attempts = 0
    last_error = data.get("last_error") if isinstance(data.get("last_error"), dict) else None
    return OutboxEntry(
        path=path,
        base_url=base_url,
        request_id=request_id,
        request_handle=handle,
        status=status,
        message=message,
        created=created,
        attempts=attempts,
        last_error=last_error,
        record=data,
    )


def read_entry(path: str | os.PathLike[str]) -> OutboxEntry:
    """Read one outbox file (without claiming it); raise ``CorruptEntryError`` if invalid."""
    file = Path(path)
    with open(file, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise CorruptEntryError(f"larger than {MAX_FILE_BYTES} bytes")
    return parse_entry(file, raw)


def is_entry_name(name: str) -> bool:
    """True for the names of kept callbacks (not temp files, not hidden files)."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def entry_paths(folder: Path) -> list[Path]:
    """The kept callbacks in *folder*, oldest first (names start with the creation time).

    Raises ``FileNotFoundError`` when the folder does not exist, ``OSError`` when it cannot
    be listed.
    """
    with os.scandir(folder) as it:
        names = [e.name for e in it if is_entry_name(e.name)]
    return [folder / name for name in sorted(names)]


def remove_stale_temp_files(folder: Path, *, older_than: float) -> int:
    """Delete temp files left by writers killed mid-write, once older than *older_than*
    seconds (a live writer holds its temp file for milliseconds). Returns how many."""
    removed = 0
    cutoff = time.time() - older_than
    with contextlib.suppress(OSError), os.scandir(folder) as it:
        for item in it:
            if item.name.startswith(".") and item.name.endswith(TMP_SUFFIX):
                with contextlib.suppress(OSError):
                    if item.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(item.path)
                        removed += 1
    return removed


def move_into(path: Path, folder: Path) -> Path:
    """Move *path* as it is into *folder* (created private when missing, never followed
    through a symbolic link: the move is made relative to the folder's descriptor)."""
    dir_fd = open_folder(folder)
    try:
        os.replace(path, path.name, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    fsync_dir(path.parent)
    return folder / path.name


# -- claims --------------------------------------------------------------------------------
class Claim:
    """An exclusive hold on one outbox file; whoever holds it may send, move or delete it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def __repr__(self) -> str:
        return f"Claim({self.path.name!r}, held={self._fd is not None})"

    def read(self) -> bytes:
        """The file's bytes, read through the claimed descriptor (at most MAX_FILE_BYTES + 1)."""
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    def entry(self) -> OutboxEntry:
        """The claimed file as an entry; ``CorruptEntryError`` if it is not a valid one."""
        raw = self.read()
        if len(raw) > MAX_FILE_BYTES:
            raise CorruptEntryError(f"larger than {MAX_FILE_BYTES} bytes")
        return parse_entry(self.path, raw)

    def delete(self) -> None:
        """Remove the file for good (it was delivered), durably, still holding the claim."""
        os.unlink(self.path)
        fsync_dir(self.path.parent)

    def move_to(self, folder: Path) -> Path:
        """Move the file as it is into *folder* (``corrupt/``)."""
        return move_into(self.path, folder)

    def replace_with(self, data: dict[str, Any], folder: Path | None = None) -> Path:
        """Write *data* in place of the file (in *folder*, when given, removing the original).

        Rewriting in place keeps the claim on the new file, so no concurrent flush can pick
        it up again in this round.
        """
        target_folder = self.path.parent if folder is None else folder
        target, fd = _install(target_folder, self.path.name, data, lock=folder is None)
        if folder is None:
            self.release()
            self._fd = fd
        else:
            os.close(fd)
            self.delete()
        return target

    def release(self) -> None:
        """Let go of the file (closing the descriptor drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim(path: Path) -> Claim | None:
    """Claim *path* for sending; None when another flush holds it or already dealt with it.

    ``OSError`` (unreadable file) is left to the caller.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder before us may have delivered (unlinked), moved or rewritten the file
        # between our open and our lock: only the file still at *path* is ours to send.
        current = os.stat(path, follow_symlinks=False)
        if not os.path.samestat(os.fstat(fd), current):
            os.close(fd)
            return None
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return Claim(path, fd)
