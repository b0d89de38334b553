"""The outbox's files on disk: its folders (0700) and atomic writes of JSON files (0600).

Everything ``_outbox.py`` (entries, claims) and the leases write goes through
``write_atomic``/``_install``. Light on purpose: ``run`` writes its lease with it before it
starts the command.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

from .._errors import ConfigurationError, EssCallbackError
from .._posix import fcntl
from ._folders import UnsafeFolderError, open_private_folder

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import Any

SUFFIX = ".json"
TMP_SUFFIX = ".tmp"


class OutboxError(EssCallbackError):
    """The outbox folder cannot be read or written (permissions, full disk, not a folder);
    the message names the folder."""

    exit_code = 2


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in *path* durable (never through a symbolic link)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


class UnsafeOutboxError(OutboxError, ConfigurationError):
    """An outbox folder is a symbolic link, another user's, or writable by others: it is
    not used (exit 2, like any configuration error)."""


def open_folder(path: Path) -> int:
    """A descriptor of the outbox folder *path* (never followed through a symbolic link),
    created 0700 when missing; see ``open_private_folder``. ``OutboxError`` otherwise."""
    try:
        return open_private_folder(path)
    except UnsafeFolderError as exc:
        raise UnsafeOutboxError(str(exc)) from None
    except OSError as exc:
        if isinstance(exc, NotADirectoryError) and os.path.lexists(path):
            raise OutboxError(
                f"outbox {path} is not a folder; set ESS_CALLBACK_OUTBOX (or --outbox) to a folder"
            ) from None
        raise OutboxError(f"cannot create outbox folder {path}: {_why(exc)}") from None


def ensure_folder(path: Path) -> Path:
    """The folder, mode 0700: created with any missing parent, or tightened when others may
    read it; refused when unsafe (see ``open_folder``)."""
    os.close(open_folder(path))
    return path


def dumps(data: dict[str, Any]) -> str:
    """*data* as ``json.dumps(data, indent=2, sort_keys=True)`` writes it.

    A flat object (strings, numbers, booleans, null: what a lease holds) is written here
    with the C string encoder alone, because importing the ``json`` package before ``run``
    starts its command costs more than the rest of writing the lease; anything else is
    left to ``json``.
    """
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # an interpreter without the C accelerator
        from json.encoder import py_encode_basestring_ascii as quote

    fields = []
    for key in sorted(data):
        value = data[key]
        if value is None or isinstance(value, bool):
            text = {None: "null", True: "true", False: "false"}[value]
        elif isinstance(value, str):
            text = quote(value)
        elif type(value) is int:
            text = int.__repr__(value)
        elif type(value) is float and math.isfinite(value):
            text = float.__repr__(value)
        else:
            break
        fields.append(f"  {quote(key)}: {text}")
    else:
        return "{\n" + ",\n".join(fields) + "\n}" if fields else "{}"
    import json

    return json.dumps(data, indent=2, sort_keys=True)


def _write_temp(
    dir_fd: int, name: str, data: dict[str, Any], *, lock: bool, durable: bool = True
) -> tuple[str, int]:
    """Write *data* to a fresh temp file next to *name* in the folder *dir_fd*; return its
    name and its open fd (synced to disk unless not *durable*)."""
    tmp = f".{name}.{os.urandom(4).hex()}{TMP_SUFFIX}"
    payload = (dumps(data) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        if lock:
            # Claimed before it gets its final name, so no other flush can take it between
            # the rename and our next step.
            fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return tmp, fd


def _install(
    folder: Path, name: str, data: dict[str, Any], *, lock: bool, durable: bool = True
) -> tuple[Path, int]:
    dir_fd = open_folder(folder)
    tmp: str | None = None
    try:
        tmp, fd = _write_temp(dir_fd, name, data, lock=lock, durable=durable)
        try:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            if durable:
                os.fsync(dir_fd)
        except BaseException:
            os.close(fd)
            raise
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
        raise OutboxError(f"cannot write to outbox folder {folder}: {_why(exc)}") from None
    finally:
        os.close(dir_fd)
    return folder / name, fd


def write_atomic(folder: Path, name: str, data: dict[str, Any], *, durable: bool = True) -> Path:
    """Write *data* as ``folder/name`` so that a reader sees all of it or nothing; with
    *durable* (the default) it is on disk too before this returns (else see ``make_durable``)."""
    final, fd = _install(folder, name, data, lock=False, durable=durable)
    os.close(fd)
    return final


def make_durable(path: Path) -> None:
    """Put a file written with ``durable=False`` on disk: its bytes, then its name."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
