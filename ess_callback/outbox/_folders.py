"""Private folders for the outbox: mode 0700, parents included, whatever the umask; never
followed through a symbolic link, never another user's, never open to others' writes.

A kept callback carries the request handle that identifies a live execution, so the outbox
and every folder made for it are for the job's user alone (docs/howto/install.md). The folder is
opened with ``O_NOFOLLOW | O_DIRECTORY`` and checked and tightened through that descriptor
(``fstat``, ``fchmod``), and files are written and moved relative to it, so that a link
planted in place of the folder (``corrupt -> /etc``) is refused, not followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .._checks import folder_problem
from .._errors import ConfigurationError
from .._log import log

#: folders already warned about as readable by others (once per process is enough)
_warned_open: set[str] = set()

_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFolderError(ConfigurationError):
    """An outbox folder is a symbolic link, another user's, or writable by others."""


def private_folder(path: Path) -> None:
    """Make sure *path* is a private folder (see :func:`open_private_folder`)."""
    os.close(open_private_folder(path))


def open_private_folder(path: Path) -> int:
    """A descriptor of the folder *path*, created 0700 when missing (missing parents too).

    Refused with ``UnsafeFolderError`` when *path* is a symbolic link, belongs to another
    user, or is writable by group or others; a folder of ours that others may only read is
    set to 0700 (a warning, once, when that is refused). ``OSError`` when it cannot be
    created or opened.
    """
    _make(path)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise _unsafe(path, "is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        problem = folder_problem(info)
        if problem is not None:
            raise _unsafe(path, problem)
        _tighten(path, fd, stat.S_IMODE(info.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unsafe(path: Path, problem: str) -> UnsafeFolderError:
    return UnsafeFolderError(
        f"outbox folder {path} {problem}: it is not used (the statuses kept there carry the "
        "request handle); point ESS_CALLBACK_OUTBOX (or --outbox) at a folder of your own, "
        "mode 0700"
    )


def _make(path: Path) -> None:
    """Create *path* and its missing parents 0700 (``mkdir -p`` would make the parents 0777
    under umask 0); nothing that exists already is changed."""
    if os.path.lexists(path):
        return
    if path.parent != path:
        _make(path.parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return  # made by a concurrent writer just now; checked when opened
    fd = os.open(path, _OPEN_FLAGS)
    try:  # mkdir's mode goes through the umask, which may take our own bits
        os.chmod(fd, 0o700)
    finally:
        os.close(fd)


def _tighten(path: Path, fd: int, mode: int) -> None:
    """Others may read our folder (never write: refused before): make it 0700."""
    if not mode & 0o077:
        return
    try:
        os.chmod(fd, 0o700)
        return
    except OSError as exc:  # a read-only file system, say: keep it, but say so
        why = exc.strerror or str(exc)
    if str(path) not in _warned_open:
        _warned_open.add(str(path))
        log.warning(
            "outbox folder %s is mode %o, readable by other users, and cannot be made 0700 "
            "(%s); the statuses kept there carry the request handle",
            path,
            mode,
            why,
        )
