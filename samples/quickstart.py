"""Quick start: run sample jobs against ``ess-callback fake-server`` and watch the callbacks.

    python samples/quickstart.py

Starts the real ``ess-callback fake-server --port 0`` (a fake ESS scheduler on a free
loopback port) as a process of its own, with the four requests the demo runs submitted to
it (``--request ID:HANDLE``: as in ESS, a request exists only once submitted), reads the
URL it prints, then runs four jobs
against it with ``ESS_BASE_URL``, ``ESS_REQUEST_ID`` and ``ESS_REQUEST_HANDLE`` set as ESS
would set them: ``samples/nightly_job.py`` (Python, ``JobExecution``) twice, then
``samples/shell_job.sh`` twice under the ``ess-callback run`` wrapper. The fake server's own
lines (one per callback it receives) are shown as they arrive, marked ``ESS |``; the jobs'
output is marked ``job |``. At the end the server is stopped with SIGTERM, as from a
terminal. Exits 0 when every request ended with the status expected.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: how long the fake server may take to start, and a job's callbacks to be shown (seconds)
DEADLINE = 20.0
#: a line of the fake server for a callback: "17:00:39  request 101  SUCCESS ..."
#: the requests the demo submits to the fake server (as ESS would, before starting each job)
REQUESTS = (101, 102, 103, 104)
SUBMIT = [arg for rid in REQUESTS for arg in ("--request", f"{rid}:quickstart-{rid}")]
CALLBACK_LINE = re.compile(r"\d\d:\d\d:\d\d  request (\d+)  ([A-Z_]+)")
FINAL = {"SUCCESS", "WARNING", "ERROR", "BUSINESS_ERROR", "CANCEL", "PAUSE", "SUSPEND"}
_print_lock = threading.Lock()


def say(text: str = "") -> None:
    """Print a line at once (the server's lines come from another thread)."""
    with _print_lock:
        print(text, flush=True)


def cli() -> list[str]:
    """The ``ess-callback`` console script next to this interpreter, else the same through
    ``-c`` (a checkout used without installing the script)."""
    script = Path(sys.executable).with_name("ess-callback")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ess_callback.cli import main; main()"]


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any ESS_* of theirs (a real scheduler, dry run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class FakeServer:
    """``ess-callback fake-server`` as a child process, its output shown and followed."""

    def __init__(self) -> None:
        self.url: str | None = None
        #: request id -> the last final status the server printed for it
        self.finals: dict[int, str] = {}
        self._changed = threading.Condition()
        self._url_lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [*cli(), "fake-server", "--port", "0", *SUBMIT],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # refused requests are logged there: show them too
            text=True,
        )
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def _follow(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            if line.startswith("# fake ESS scheduler listening on "):
                self._url_lines.put(line.split()[6])
            # The banner's 'export' lines are for a shell; the jobs here get their own.
            if not line.startswith(("export ", "# point", "# no credentials", "# and ")):
                say(f"   ESS | {line}")
            match = CALLBACK_LINE.match(line)
            if match and match.group(2) in FINAL:
                with self._changed:
                    self.finals[int(match.group(1))] = match.group(2)
                    self._changed.notify_all()
        self._url_lines.put(None)  # the server ended

    def wait_url(self) -> str:
        """The URL the server printed; RuntimeError if it ended or took too long."""
        try:
            url = self._url_lines.get(timeout=DEADLINE)
        except queue.Empty:
            url = None
        if url is None:
            raise RuntimeError("the fake server did not start (see its lines above)")
        self.url = url
        return url

    def wait_final(self, request_id: int) -> str | None:
        """The final status the server printed for *request_id* (waits for its line)."""
        with self._changed:
            self._changed.wait_for(lambda: request_id in self.finals, timeout=DEADLINE)
            return self.finals.get(request_id)

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C or a service manager would: the server says how many
        callbacks it received and exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=DEADLINE)
        return code


@contextmanager
def fake_server() -> Iterator[FakeServer]:
    """Start the server, and stop it whatever happens."""
    server = FakeServer()
    try:
        yield server
    finally:
        server.stop()


def run_job(title: str, command: list[str], shown: str, env: dict[str, str]) -> int:
    """Run one job as a child process, its output marked ``job |``."""
    say()
    say(title)
    say(f"   $ {shown}")
    child = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=HERE.parent,
    )
    assert child.stdout is not None
    for line in child.stdout:
        say(f"   job | {line.rstrip()}")
    return child.wait()


def main() -> int:
    results: list[tuple[int, str, str | None, int]] = []
    say(f"$ ess-callback fake-server --port 0 {' '.join(SUBMIT)}")
    with fake_server() as server, tempfile.TemporaryDirectory(prefix="ess-quickstart-") as box:
        try:
            url = server.wait_url()
        except RuntimeError as exc:
            say(f"quickstart: {exc}")
            return 1

        def job(title: str, request_id: int, expected: str, code: list[str], **extra: str) -> None:
            own = {"ESS_BASE_URL": url, "ESS_REQUEST_ID": str(request_id)}
            own["ESS_REQUEST_HANDLE"] = f"quickstart-{request_id}"
            # A private outbox: the demo never touches the user's real one.
            env = clean_env(**own, **extra, ESS_CALLBACK_OUTBOX=box)
            shown = [f"{k}={shlex.quote(v)}" for k, v in {**own, **extra}.items()]
            program = {"python": [sys.executable], "ess-callback": cli()}[code[0]]
            exit_code = run_job(title, [*program, *code[1:]], " ".join([*shown, *code]), env)
            results.append((request_id, expected, server.wait_final(request_id), exit_code))

        job(
            "1. A Python job with JobExecution",
            101,
            "SUCCESS",
            ["python", "samples/nightly_job.py"],
        )
        job(
            "2. The same job with 3 rows skipped: the end becomes WARNING",
            102,
            "WARNING",
            ["python", "samples/nightly_job.py"],
            SAMPLE_SKIP="3",
        )
        shell_job = ["ess-callback", "run", "--business-error-exit-code", "3", "--"]
        job(
            "3. A shell script under the wrapper; progress goes through $ESS_CALLBACK_FD",
            103,
            "SUCCESS",
            [*shell_job, "samples/shell_job.sh"],
        )
        job(
            "4. The same script when the period is closed: exit 3 is a BUSINESS_ERROR",
            104,
            "BUSINESS_ERROR",
            [*shell_job, "samples/shell_job.sh"],
            SAMPLE_PERIOD_CLOSED="1",
        )
        say()
        say("Stopping the fake server with SIGTERM (as Ctrl-C would):")
        stopped = server.stop()

    say()
    say(f"Summary: {len(results)} jobs reported to ess-callback fake-server at {url}:")
    ok = stopped == 0
    for request_id, expected, final, exit_code in results:
        verdict = "as expected" if final == expected else f"UNEXPECTED: {expected} was expected"
        ok = ok and final == expected
        say(f"   request {request_id}  ended {final}  (job exit {exit_code})  {verdict}")
    if stopped != 0:
        say(f"   UNEXPECTED: the fake server exited {stopped}")
    say()
    say("Next: run 'ess-callback fake-server' in a terminal of your own and point a job at it;")
    say("docs/howto/testing.md shows how to unit-test a job without any server.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
