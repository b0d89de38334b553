"""Private folders for the outbox: mode 0700, parents included, whatever the umask.

A kept callback carries the request handle that identifies a live execution, so the outbox
and every folder made for it are for the job's user alone (SPEC section 6).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("ess_callback")

#: folders already warned about as open to others (once per process is enough)
_warned_open: set[str] = set()


def private_folder(path: Path) -> None:
    """Make sure *path* is a folder with mode 0700.

    A missing folder is created with its missing parents, each 0700 (``mkdir -p`` would
    make the parents 0777 under umask 0). An existing one open to group or others is
    tightened to 0700 when it is ours; when it cannot be, one warning says so. Raises
    ``OSError`` when the folder cannot be created.
    """
    if not _make(path):
        _tighten(path)


def _make(path: Path) -> bool:
    """Create *path* and its missing parents 0700; False when it was there already."""
    if path.is_dir():
        return False
    if path.parent != path:
        _make(path.parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not path.is_dir():
            raise
        return False  # made by a concurrent writer just now
    os.chmod(path, 0o700)  # mkdir's mode goes through the umask, which may take our own bits
    return True


def _tighten(path: Path) -> None:
    info = os.stat(path)
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return
    why = "it belongs to another user"
    if info.st_uid == os.geteuid():  # another user's folder (root's flush) stays as it is
        try:
            os.chmod(path, 0o700)
            return
        except OSError as exc:  # a read-only file system, say: keep it, but say so
            why = exc.strerror or str(exc)
    if str(path) not in _warned_open:
        _warned_open.add(str(path))
        log.warning(
            "outbox folder %s is mode %o, open to other users, and cannot be made 0700 (%s); "
            "the statuses kept there carry the request handle",
            path,
            mode,
            why,
        )
