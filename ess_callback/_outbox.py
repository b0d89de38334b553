"""The outbox: final callbacks that could not be delivered, kept on disk until ``flush``.

One JSON file per callback, written atomically (temp file, fsync, rename, fsync of the
folder); folder mode 0700, file mode 0600; never credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._errors import DeliveryError, EssCallbackError
from ._model import Callback

FORMAT_VERSION = 1
SUFFIX = ".json"


class OutboxError(EssCallbackError):
    """The outbox folder cannot be written (permissions, full disk): the message names it."""


def error_record(error: BaseException | None) -> dict[str, Any] | None:
    """What the outbox keeps of the last error (no secrets: our errors never hold any)."""
    if error is None:
        return None
    record: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, DeliveryError):
        record["http_status"] = error.http_status
        record["error_code"] = error.error_code
    return record


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_folder(path: Path) -> Path:
    """Create the folder (and parents) with mode 0700 if needed."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise OutboxError(f"cannot create outbox folder {path}: {exc.strerror or exc}") from None
    return path


def write_atomic(folder: Path, name: str, data: dict[str, Any]) -> Path:
    """Write *data* as ``folder/name`` so that a reader sees all of it or nothing."""
    ensure_folder(folder)
    final = folder / name
    tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutboxError(
            f"cannot write to outbox folder {folder}: {exc.strerror or exc}"
        ) from None
    return final


def spool(
    folder: Path,
    callback: Callback,
    *,
    base_url: str | None,
    attempts: int,
    error: BaseException | None,
) -> Path:
    """Keep one undelivered final callback in the outbox; return the file written.

    File names start with the creation time in nanoseconds, so sorting by name is
    oldest first.
    """
    now_ns = time.time_ns()
    name = (
        f"{now_ns:020d}-{callback.request_id or 0}-{callback.status.value.lower()}-"
        f"{secrets.token_hex(3)}{SUFFIX}"
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
