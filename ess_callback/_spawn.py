"""Starting ``run``'s command so that it dies with the wrapper (Linux: parent-death signal).

``posix_spawn`` cannot ask the kernel for a parent-death signal, which only the child
itself can set (``prctl(PR_SET_PDEATHSIG)``) between fork and exec. So on Linux, in a
wrapper with one thread (a fork of a threaded process may deadlock in the child), the
command is forked: the child puts itself in its own process group, takes its file
descriptors and default signal dispositions, asks for SIGKILL on its parent's death,
makes sure that parent is still there, and execs. It reports an exec failure's errno
through a close-on-exec pipe, as ``subprocess`` does. Elsewhere, or with other threads
running, ``posix_spawn`` starts it as before (no parent-death signal).

The kernel sends the signal when the *thread* that forked ends: ``run`` forks from its
main thread, which lives as long as the wrapper.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence

from . import _host

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import Any

PR_SET_PDEATHSIG = 1


def parent_death_available() -> bool:
    """True when the command can be started with a parent-death signal here and now."""
    return sys.platform.startswith("linux") and _host.thread_count() == 1


def fork_exec(
    argv: Sequence[str],
    env: dict[str, str],
    dups: Iterable[tuple[int, int]],
    default_signals: Iterable[int],
) -> tuple[int, int]:
    """Fork and exec *argv* in a process group of its own, with SIGKILL as its
    parent-death signal; return its pid and the read end of the exec-result pipe (for
    :func:`exec_result`). *dups* are ``(fd, target)`` pairs; *default_signals* are set to
    their default action in the child."""
    dups = list(dups)
    resets = list(default_signals)
    program = _first_on_path(argv[0], env)
    parent = os.getpid()
    set_death_signal = _prctl()  # looked up here: an import in the child costs far more
    read_end, write_end = os.pipe()  # both close-on-exec: the write end closes at exec
    # No signal runs a handler of ours in the child before it resets them.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child: measured by its effects)
            _child(argv, env, dups, resets, parent, old_mask, write_end, set_death_signal, program)
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    finally:
        if os.getpid() == parent:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    os.close(write_end)
    # As the child does, so that the group exists whichever runs first; an error means
    # that the child exec'd (it did it itself) or died (exec_result says why).
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    return pid, read_end


def _child(
    argv: Sequence[str],
    env: dict[str, str],
    dups: list[tuple[int, int]],
    resets: list[int],
    parent: int,
    old_mask: Iterable[int],
    report: int,
    set_death_signal: Callable[[], object] | None,
    program: str | None = None,
) -> None:  # pragma: no cover  (runs in the child only)
    code = 127
    try:
        os.setpgid(0, 0)
        for fd, target in dups:
            os.dup2(fd, target)
        for signum in resets:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_DFL)
        if set_death_signal is not None:
            # Without it the command still runs; the next flush stops what is left.
            set_death_signal()
        if os.getppid() != parent:  # the wrapper died before the signal was asked for
            code = 128 + int(signal.SIGKILL)
            raise SystemExit
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if program is not None:
            with contextlib.suppress(OSError):  # then the whole search, as execvpe does it
                os.execve(program, list(argv), env)
        os.execvpe(argv[0], list(argv), env)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.write(report, str(exc.errno or 0).encode("ascii"))
    except BaseException:
        pass
    os._exit(code)


def _first_on_path(name: str, env: dict[str, str]) -> str | None:
    """The file ``os.execvpe(name, ..., env)`` would run first: the first executable file
    named *name* in the folders of env's PATH (None for a name with a slash, or none found).

    Found in the parent, so that the child, a copy of a large process where every step
    costs, tries it at once instead of failing through the PATH folders before it; should
    that exec fail, the child still searches as ``execvpe`` does, with the same result.
    """
    if os.path.dirname(name):
        return None
    for folder in os.get_exec_path(env):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _prctl() -> Callable[[], object] | None:
    """A call that sets SIGKILL as this process's parent-death signal, or None."""
    global _death_signal
    if _death_signal is None:
        prctl = _c_function("prctl")
        if prctl is None:
            return None
        _death_signal = functools.partial(prctl, PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    return _death_signal


def _c_function(name: str) -> Callable[..., object] | None:
    """The C library's function *name*, called as ``ctypes.CDLL(None, use_errno=True)``
    calls it (int arguments, int result), or None.

    Built on ``_ctypes``, the core of ctypes: the ctypes package around it costs more to
    import than the fork it serves, and only runs before the command starts. Should that
    core not offer what is needed, ctypes itself is used.
    """
    try:
        import _ctypes

        # dlopen is missing from older typeshed stubs (mypy 1.8): looked up untyped
        core: Any = _ctypes

        class _Library:
            _handle = core.dlopen(None, 0)  # this program

        class _Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO

        return _Function((name, _Library()))  # type: ignore[arg-type]
    except (ImportError, OSError, AttributeError, TypeError):
        pass
    try:
        import ctypes

        function: Callable[..., object] = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (ImportError, OSError, AttributeError):
        return None
    return function


_death_signal: Callable[[], object] | None = None


def exec_result(read_end: int) -> OSError | None:
    """Wait until the forked child exec'd (None) or failed to (the error); closes the pipe."""
    data = b""
    try:
        while True:
            chunk = os.read(read_end, 64)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
    if not data:
        return None
    number = int(data)
    return OSError(number, os.strerror(number))
