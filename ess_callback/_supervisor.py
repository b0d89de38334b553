"""``ess-callback run``: run a command as the job, then report how it ended.

The process handling follows tini and dumb-init: the child runs without a shell in its own
process group, signals are passed on to that group, the child is reaped and nothing of the
group is left running. The output follows runitor and cronitor exec: stderr passes through
and its tail goes into the status message (``_run_report`` says what is sent). The child
starts before anything only the end needs (requests) is imported, and the wrapper sleeps in
``poll`` while the child runs.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Mapping

from . import _host, _log
from ._errors import DeliveryInterrupted
from ._log import log
from ._message import RedactingFilter, Redactor, signal_name
from ._process_group import PYTHON_IGNORES, group_members, passed_signals
from ._relay import LineReader, OutputPipe, TailBuffer, make_pipe, open_standard_fds, progress_fd
from ._run_options import RunOptions
from ._signals import STOP_SIGNALS, SignalGuard, give_back
from ._spawn import exec_result, fork_exec, parent_death_available

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    from typing import Any

    from ._cancel import CancelWatcher
    from ._endings import ChildEnd
    from ._run_report import Reporter
    from ._settings import Settings
    from ._status import Status
    from .outbox._lease_file import Lease

__all__ = ["RunOptions", "Supervisor"]

#: signals that stop the job: passed on to its group, and the end is CANCEL
CANCEL_SIGNALS = STOP_SIGNALS
#: the streams relayed through a pipe (and their tail kept) for each --capture
CAPTURED = {"none": (), "stderr": ((2, "stderr"),), "both": ((1, "stdout"), (2, "stderr"))}
#: the longest single poll() (an hour): long timers are waited in pieces
MAX_POLL_MS = 3_600_000
#: how long output is still relayed once the child and its group are gone
DRAIN_SECONDS = 0.2
#: how often the group is looked at while waiting for left-behind processes to stop
GROUP_POLL_SECONDS = 0.05


class Supervisor:
    """Runs one command as the job: start it, relay, pass signals on, reap, report.

    >>> from ess_callback._settings import resolve_settings
    >>> settings = resolve_settings()               # the job's own ESS_* variables
    >>> Supervisor(settings, RunOptions(("true",)), os.environ).run()
    0
    """

    def __init__(
        self,
        settings: Settings,
        options: RunOptions,
        environ: Mapping[str, str],
        *,
        on_started: Callable[[], None] | None = None,
    ):
        self.settings = settings
        self.options = options
        self._environ = environ
        #: called once the command runs (the command line resumes its GC there)
        self._on_started = on_started
        self._redact = Redactor([*settings.secrets(), *options.secrets], options.redact)
        #: hides secrets in the ``ess_callback`` logger's records while ``run`` works
        self._log_filter = RedactingFilter(self._redact)
        #: a stop signal while the final status is being delivered stops the delivery
        #: (the status goes to the outbox) rather than wait out the retry budget
        self._delivery_stop = SignalGuard(DeliveryInterrupted, once=True, say_late=False)
        self._finishing = False
        #: what is told to ESS; built once the command runs (what only the end needs, and
        #: attrs, are imported then: the command does not wait for them)
        self.reporter: Reporter | None = None
        self._lease: Lease | None = None
        #: ("signal", signum) from our handlers, ("cancel", reason) from the cancel watcher
        self._events: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake_r = self._wake_w = -1
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup: int | None = None
        self._relays: list[OutputPipe] = []
        self._progress: LineReader | None = None
        self.pid: int | None = None
        self._wait_status: int | None = None
        self._spawn_error: OSError | None = None
        self._stopping: tuple[Status, str] | None = None  # why we stopped the child ourselves
        self._deadline: float | None = None  # --timeout
        self._kill_at: float | None = None
        self._group_kill_at: float | None = None
        self._group_done = False
        self._look_at_child = True  # set again by each SIGCHLD
        self._watcher: CancelWatcher | None = None
        self._exec_pipe = -1  # a forked command's exec result (see _spawn.py)
        #: the cgroup whose memory.events tells an OOM kill (docs/guarantees.md)
        self._cgroup = _host.cgroup_folder(settings.cgroup_dir)
        self._oom_before: int | None = None

    # -- the whole run -------------------------------------------------------------------
    def run(self) -> int:
        """Run the command to its end, post the final status; return the exit status."""
        # Added before any record of the run (logging itself is loaded only when the
        # first one is made, or once the command runs).
        _log.defer(lambda logger: logger.addFilter(self._log_filter))
        try:
            open_standard_fds()
            self._install_signals()
            # The lease before the command: from now on a kill is reported by a flush.
            self._hold_lease()
            try:
                self._spawn()
            except OSError as exc:
                self._spawn_error = exc
                _log.load()
                reporter = self._make_reporter()
            else:
                if self._on_started is not None:
                    self._on_started()
                _log.load()  # the logger as set up, before the modules loaded now log
                reporter = self._make_reporter()
                reporter.prepare()
                self._spawn_error = self._exec_result()  # the sender is built meanwhile
            if self._spawn_error is not None:
                from ._endings import spawn_message

                reporter.say(spawn_message(self._end()))
            else:
                self._start_watcher()
                self._supervise()
            self._close_pipes()  # a daemon still writing now gets EPIPE, not a full pipe
            if self._watcher is not None:
                self._watcher.stop()
            self._finishing = True
            code = reporter.finish(
                self._end(),
                warning_codes=self.options.warning_codes,
                business_codes=self.options.business_codes,
            )
            stopped_by = self._delivery_stop.signum
            if stopped_by is not None:  # the delivery was cut short: end as signalled
                log.warning(
                    "%s received while delivering the final status: delivery stopped",
                    signal_name(stopped_by),
                )
                return 128 + stopped_by
            return code
        finally:
            self._cleanup()
            log.removeFilter(self._log_filter)

    def _hold_lease(self) -> None:
        """Write the lease (not in dry run or recording), as ``ReportingSession.hold_lease``
        does; the reporter takes it over once built."""
        from .outbox._lease_file import open_lease

        self._lease = open_lease(
            self.settings, "run", command=self.options.command, redact=self._redact, durable=False
        )

    def _make_reporter(self) -> Reporter:
        from ._run_report import Reporter

        reporter = Reporter(
            self.settings,
            redact=self._redact,
            update_interval=self.options.update_interval,
            stop=self._delivery_stop,
        )
        reporter.session.lease = self._lease
        self.reporter = reporter
        return reporter

    def _spawn(self) -> None:
        opts = self.options
        actions: list[tuple[Any, ...]] = []
        child_ends: list[int] = []
        try:
            for fd, name in CAPTURED[opts.capture]:
                read_end, write_end = make_pipe()
                child_ends.append(write_end)
                self._relays.append(OutputPipe(name, read_end, fd, TailBuffer(opts.tail_bytes)))
                actions.append((os.POSIX_SPAWN_DUP2, write_end, fd))
            read_end, write_end = make_pipe()
            child_ends.append(write_end)
            self._progress = LineReader(read_end)
            target = progress_fd()
            actions.append((os.POSIX_SPAWN_DUP2, write_end, target))
            env = {**self._environ, "ESS_CALLBACK_FD": str(target)}
            # Python ignores these; a child expects the defaults (as Popen restores them)
            defaults = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD)
            self._oom_before = _host.oom_kills(self._cgroup)
            if parent_death_available():
                # Forked, to die with the wrapper even when it is killed (see _spawn).
                self.pid, self._exec_pipe = fork_exec(
                    opts.command,
                    env,
                    [(a[1], a[2]) for a in actions],
                    (*defaults, *self._old_handlers),
                )
            else:
                self.pid = os.posix_spawnp(
                    opts.command[0],
                    list(opts.command),
                    env,
                    file_actions=actions,
                    setpgroup=0,
                    setsigdef=defaults,
                )
        finally:
            for fd in child_ends:
                os.close(fd)
        lease = self._lease
        if lease is not None:
            lease.set_group(self.pid)
            # In the background: a short job need not wait for the disk (the lease is
            # removed at its end anyway); a long one has it on disk within moments.
            try:
                threading.Thread(
                    target=lease.make_durable, name="ess-callback-lease", daemon=True
                ).start()
            except RuntimeError:  # "can't start new thread": put it on disk now instead
                lease.make_durable()
        if opts.timeout is not None:
            self._deadline = time.monotonic() + opts.timeout
        log.info("started %s (pid %d)", " ".join(opts.command), self.pid)

    def _exec_result(self) -> OSError | None:
        """Wait until a forked command exec'd; when it could not, reap it and say why."""
        if self._exec_pipe < 0:
            return None
        error = exec_result(self._exec_pipe)
        self._exec_pipe = -1
        if error is not None and self.pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = None
        return error

    # -- the loop ------------------------------------------------------------------------
    def _supervise(self) -> None:
        readers: dict[int, Callable[[], bool]] = {self._wake_r: self._read_wake}
        for relay in self._relays:
            # Output flows in threads of its own (EOF wakes us); when none can be started,
            # this loop relays it.
            if not relay.start(self._poke):
                log.debug("no thread for relaying %s: relayed by the main loop", relay.name)
                readers[relay.fd] = relay.read_once
        if self._progress is not None:
            readers[self._progress.fd] = self._read_progress
        poller = select.poll()
        for fd in readers:
            poller.register(fd, select.POLLIN)
        drain_until: float | None = None
        while True:
            self._handle_events()
            if self._wait_status is None and (self._look_at_child or not self._old_handlers):
                self._look_at_child = False
                self._reap()
            wait = self._child_timers() if self._wait_status is None else self._group_timers()
            if self._group_done:
                if len(readers) == 1 and not any(r.running for r in self._relays):
                    return  # every pipe reached end of file
                # Something outside the group (a daemon that left it) still holds a pipe:
                # relay a little longer, then stop instead of waiting for its end of file.
                drain_until = drain_until or time.monotonic() + DRAIN_SECONDS
                wait = drain_until - time.monotonic()
                if wait <= 0:
                    self._last_drain()
                    return
            if not self._old_handlers:  # no SIGCHLD to wake us: look at the child often
                wait = 0.1 if wait is None else min(wait, 0.1)
            # poll() takes at most 2**31-1 ms (24.8 days); the loop looks at its timers again
            # on every wake-up anyway, so a long --timeout is waited in pieces.
            timeout = None if wait is None else min(max(0, math.ceil(wait * 1000)), MAX_POLL_MS)
            for fd, _ in poller.poll(timeout):
                if fd in readers and not readers[fd]():
                    poller.unregister(fd)
                    del readers[fd]

    def _reap(self) -> None:
        assert self.pid is not None
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == self.pid:
            self._wait_status = status
            log.debug("the child ended (wait status %d)", status)

    def _child_timers(self) -> float | None:
        """Apply --timeout and --kill-after; seconds until the next of them."""
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            timeout = self.options.timeout
            log.warning("timed out after %g s: stopping the job", timeout)
            from ._status import Status

            self._stop(Status.ERROR, f"timed out after {timeout:g} s")
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            log.warning("the job did not stop within %g s: SIGKILL", self.options.kill_after)
            self._signal_group(signal.SIGKILL)
        due = [t for t in (self._deadline, self._kill_at) if t is not None]
        return max(0.0, min(due) - now) if due else None

    def _group_timers(self) -> float | None:
        """Once the child ended: stop what it left in its group (SIGTERM, then SIGKILL)."""
        if self._group_done:
            return None
        assert self.pid is not None
        count = group_members(self.pid)
        now = time.monotonic()
        if count == 0:
            self._group_done = True
            return None
        many = "some" if count is None else str(count)
        if self._group_kill_at is None:
            log.warning(
                "%s process(es) left running in the job's process group: SIGTERM "
                "(SIGKILL after %g s; a daemon meant to outlive the job must leave the "
                "group, e.g. with setsid)",
                many,
                self.options.kill_after,
            )
            self._signal_group(signal.SIGTERM)
            self._group_kill_at = now + self.options.kill_after
        elif now >= self._group_kill_at:
            log.warning("%s process(es) still running after SIGTERM: SIGKILL", many)
            self._signal_group(signal.SIGKILL)
            self._group_done = True
            return None
        return min(GROUP_POLL_SECONDS, max(0.0, self._group_kill_at - now))

    def _handle_events(self) -> None:
        from ._status import Status  # loaded by the reporter by now

        while self._events:
            kind, value = self._events.popleft()
            if kind == "cancel" and self._wait_status is None:
                log.warning("%s: stopping the job", value)
                self._stop(Status.CANCEL, value)
            elif kind == "signal" and value[0] == signal.SIGCHLD:
                self._look_at_child = True
            elif kind == "signal":
                signum, passed = value
                if not passed:  # it came before the child was there
                    self._signal_group(signum)
                name = signal_name(signum)
                if signum in CANCEL_SIGNALS and self._wait_status is None:
                    log.warning("received %s: passed it on to the job", name)
                    self._stop(Status.CANCEL, f"received {name}", None)
                else:
                    log.info("received %s: passed it on to the job", name)

    def _stop(self, status: Status, reason: str, signum: int | None = signal.SIGTERM) -> None:
        """Ask the group to stop (*signum* None: already sent); the first reason given is
        the one reported."""
        if self._stopping is None:
            self._stopping = (status, reason)
        if signum is not None:
            self._signal_group(signum)
        if self._kill_at is None:
            self._kill_at = time.monotonic() + self.options.kill_after

    def _signal_group(self, signum: int) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)

    # -- input from the child and from our handlers ---------------------------------------
    def _read_wake(self) -> bool:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        return True

    def _read_progress(self) -> bool:
        assert self._progress is not None
        lines = self._progress.read()
        if lines is None:
            self._handle_lines(self._progress.rest())
            return False
        self._handle_lines(lines)
        return True

    def _last_drain(self) -> None:
        # A relay thread still reading belongs to a pipe some process outside the group
        # holds open; it is left to the end of the process (its fd stays open till then).
        if self._progress is not None:
            for _ in range(16):
                lines = self._progress.read()
                if not lines:
                    break
                self._handle_lines(lines)
            self._handle_lines(self._progress.rest())

    def _handle_lines(self, lines: list[str]) -> None:
        assert self.reporter is not None
        for line in lines:
            self.reporter.progress(line)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Passed on here rather than in the loop: a handler runs even while a relayed write
        # blocks on a stalled reader of our stderr. The loop does the bookkeeping.
        passed = signum != signal.SIGCHLD and self.pid is not None and not self._group_done
        if passed:
            self._signal_group(signum)
        if signum == signal.SIGTSTP:
            # Ctrl-Z: the group has stopped; stop too, so that the shell sees a stopped job
            # (dumb-init's way). Its SIGCONT resumes us, and our handler passes it on.
            passed = True  # once resumed, stopping the group would be wrong
            os.kill(os.getpid(), signal.SIGSTOP)
        self._events.append(("signal", (signum, passed)))  # the wakeup fd woke poll already
        if self._finishing and signum in CANCEL_SIGNALS:
            self._delivery_stop.notify(signum)  # raises while a delivery is under way

    def _poke(self) -> None:
        """Wake the supervising loop (from another thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _on_cancel(self, reason: str) -> None:
        """Called from the cancel watcher's thread when ESS shows CANCELLING/CANCELLED."""
        self._events.append(("cancel", reason))
        self._poke()

    # -- the end -------------------------------------------------------------------------
    def _end(self) -> ChildEnd:
        from ._endings import ChildEnd

        tails = (relay.section() for relay in self._relays)
        return ChildEnd(
            command=self.options.command[0],
            wait_status=self._wait_status if self._spawn_error is None else None,
            spawn_error=self._spawn_error,
            stopped=self._stopping,
            tails=tuple(t for t in tails if t is not None),
            out_of_memory=self._oom_fired(),
        )

    def _oom_fired(self) -> bool:
        """True when the command was killed by SIGKILL while the cgroup's ``oom_kill``
        count rose."""
        word = self._wait_status
        if word is None or not os.WIFSIGNALED(word) or os.WTERMSIG(word) != signal.SIGKILL:
            return False
        after = _host.oom_kills(self._cgroup)
        return self._oom_before is not None and after is not None and after > self._oom_before

    # -- helpers -------------------------------------------------------------------------
    def _start_watcher(self) -> None:
        if not self.settings.cancel_poll:
            return
        assert self.reporter is not None
        try:
            local = self.reporter.sender().local
        except Exception:
            return  # the end will report why nothing can be sent
        if not local:  # dry run and recording have no scheduler to ask
            from ._cancel import CancelWatcher

            self._watcher = CancelWatcher(self.settings, self._on_cancel)
            self._watcher.start()

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        if threading.current_thread() is not threading.main_thread():
            return  # handlers only work there; the loop then looks at the child often
        for signum in (*passed_signals(), signal.SIGCHLD):
            ignored = signal.getsignal(signum) == signal.SIG_IGN
            if ignored and signum not in PYTHON_IGNORES and signum != signal.SIGCHLD:
                continue  # ignored on purpose (nohup): the child inherits that, as with exec
            with contextlib.suppress(OSError, ValueError):  # one the C library keeps for itself
                self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def _cleanup(self) -> None:
        if self._exec_pipe >= 0:
            with contextlib.suppress(OSError):
                os.close(self._exec_pipe)
            self._exec_pipe = -1
        if self.pid is not None and self._wait_status is None:
            self._signal_group(signal.SIGKILL)  # never leave the job running
            with contextlib.suppress(ChildProcessError):
                self._wait_status = os.waitpid(self.pid, 0)[1]
        if self._watcher is not None:
            self._watcher.stop()
        late = [v[0] for k, v in self._events if k == "signal" and v[0] in CANCEL_SIGNALS]
        if late and self._delivery_stop.signum is None:
            log.warning("%s received while reporting the end; finished first", signal_name(late[0]))
        if self._old_wakeup is not None:
            signal.set_wakeup_fd(self._old_wakeup)
        give_back(self._old_handlers)
        self._close_pipes()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _close_pipes(self) -> None:
        """Close our ends of the child's pipes, once (a number closed twice may be reused)."""
        holders: list[OutputPipe | LineReader] = [*self._relays]
        if self._progress is not None:
            holders.append(self._progress)
        for holder in holders:
            # Never close a pipe a relay thread may still read: the number could be reused
            # by a file of ours before its read returns.
            if holder.fd >= 0 and not (isinstance(holder, OutputPipe) and holder.running):
                with contextlib.suppress(OSError):
                    os.close(holder.fd)
                holder.fd = -1
