"""This process's start and end as a command: the GC paused for start-up, and leaving
once the work is done without the interpreter's teardown.

Light (no click, no attrs): the command line and ``run``'s quick start both use it.

Leaving:
``run`` ends when the final status is delivered or kept in the outbox (which syncs it)
and its lease is settled. Tearing the interpreter down then (every module, the objects
start-up froze out of the collector's sight) costs more than the post itself, and
nothing of it is needed: :func:`leave` runs the exit handlers (``logging`` flushes its
handlers there), flushes the standard streams and ends the process with ``os._exit``.

Only a process started as the ``ess-callback`` command does so (:func:`allow`); called
in-process (a test runner, an application invoking the click group), :func:`leave` is
``sys.exit``.
"""

from __future__ import annotations

import contextlib
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import NoReturn


class _State:
    allowed = False


def allow() -> None:
    """This process is the ``ess-callback`` command: it may leave without teardown."""
    _State.allowed = True


def _may_skip_teardown() -> bool:
    if not _State.allowed:
        return False
    if "concurrent.futures.thread" in sys.modules:
        return False  # its workers are joined by threading's own exit step: let it run
    import threading

    main = threading.main_thread()
    # A thread that is not a daemon would be waited for at the normal exit.
    return all(t.daemon for t in threading.enumerate() if t is not main)


def leave(code: int) -> NoReturn:
    """Exit with *code*: at once (exit handlers run, streams flushed) when allowed and no
    thread would be waited for, else through ``sys.exit``."""
    if not _may_skip_teardown():
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # logging.shutdown(), among others: every handler flushed
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # nowhere left to say it
            stream.flush()
    os._exit(code)


_gc_paused = False


def resume_gc(*, freeze: bool = False) -> None:
    """Turn the cyclic GC back on if the command line paused it for start-up.

    With *freeze*, what start-up created is first moved out of the collector's sight
    (``gc.freeze``): it lives as long as the process, so scanning it again is wasted.
    """
    global _gc_paused
    if _gc_paused:
        import gc

        _gc_paused = False
        if freeze:
            gc.freeze()
        gc.enable()


def resume_gc_for_long_run() -> None:
    """``resume_gc(freeze=True)``, for a command that now runs long (``run``)."""
    resume_gc(freeze=True)


def pause_gc() -> None:
    """Pause the cyclic GC for start-up (see ``LazyGroup.main`` in ``_cli_group.py``)."""
    global _gc_paused
    import gc

    _gc_paused = gc.isenabled()
    gc.disable()
