"""Quick start: run a sample job against a fake ESS scheduler and watch its callbacks arrive.

    python samples/quickstart.py

Starts ``FakeScheduler`` (a real HTTP server on loopback), then runs ``samples/nightly_job.py``
as a separate process with ``ESS_BASE_URL``, ``ESS_REQUEST_ID`` and ``ESS_REQUEST_HANDLE``
pointing at it, printing every callback as the scheduler receives it: first a clean run,
then one with skipped rows while the scheduler fails its first answer (the SDK retries).
If the ``ess-callback run`` wrapper is installed, a shell command is reported the same way.
Exits 0 when every job ended in the state expected.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ess_callback import Callback
from ess_callback.testing import FakeScheduler, ReceivedRequest

HERE = Path(__file__).resolve().parent
NIGHTLY_JOB = HERE / "nightly_job.py"
_print_lock = threading.Lock()
_started = time.monotonic()


def say(text: str = "") -> None:
    """Print a line at once (callbacks arrive on server threads while the job prints)."""
    with _print_lock:
        print(text, flush=True)


def on_callback(callback: Callback) -> None:
    message = f"  {callback.message.splitlines()[0]}" if callback.message else ""
    stamp = f"{time.monotonic() - _started:5.1f}s"
    say(f"   {stamp}  ESS received  request {callback.request_id}  {callback.status}{message}")


def on_request(request: ReceivedRequest) -> None:
    if request.answer is None or request.answer >= 400:
        answer = "connection reset" if request.answer is None else f"HTTP {request.answer}"
        say(f"           ESS answered   {answer} ({request.reason}); the SDK will retry")


def job_env(fake: FakeScheduler, request_id: int, outbox: str, **extra: str) -> dict[str, str]:
    """The job's environment: the caller's, minus any ESS_* of theirs, plus the fake's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env.update(fake.env(request_id, f"quickstart-{request_id}"))
    env["ESS_CALLBACK_OUTBOX"] = outbox  # never touch the user's real outbox
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_job(title: str, command: list[str], shown: str, env: dict[str, str]) -> int:
    """Run one job as a child process, its output indented under the callbacks."""
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
        say(f"           job says       {line.rstrip()}")
    return child.wait()


def cli_command() -> list[str]:
    """The ``ess-callback`` next to this interpreter, else the same through ``-c``."""
    script = Path(sys.executable).with_name("ess-callback")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ess_callback.cli import main; main()"]


def has_run_command() -> bool:
    from ess_callback.cli import main

    return "run" in getattr(main, "commands", {})


def main() -> int:
    results: list[tuple[str, int, str, str | None, int]] = []
    with (
        FakeScheduler(on_callback=on_callback, on_request=on_request) as fake,
        tempfile.TemporaryDirectory(prefix="ess-quickstart-") as outbox,
    ):
        say(f"A fake ESS scheduler is listening on {fake.url}")
        say("Each line 'ESS received' is a callback that reached it over HTTP.")

        def job(title: str, request_id: int, expected: str, **extra: str) -> None:
            env = job_env(fake, request_id, outbox, **extra)
            names = ["ESS_BASE_URL", "ESS_REQUEST_ID", "ESS_REQUEST_HANDLE", *extra]
            shown = " ".join(
                [f"{name}={shlex.quote(env[name])}" for name in names]
                + ["python samples/nightly_job.py"]
            )
            code = run_job(title, [sys.executable, str(NIGHTLY_JOB)], shown, env)
            results.append((title, request_id, expected, fake.state(request_id), code))

        job("1. A clean run of samples/nightly_job.py", 101, "SUCCEEDED")
        fake.fail_next(1, 503, method="POST")
        job(
            "2. The same job with 3 skipped rows, while ESS fails its first answer",
            102,
            "WARNING",
            SAMPLE_SKIP="3",
        )

        if has_run_command():
            script = (
                'echo "UPDATE copying 3 files" >&"$ESS_CALLBACK_FD"; sleep 0.3; '
                'echo "WARNING file 2 was empty" >&"$ESS_CALLBACK_FD"; echo "copied 3 files"'
            )
            command = [*cli_command(), "run", "--", "sh", "-c", script]
            env = job_env(fake, 103, outbox)
            title = "3. A shell command under the wrapper: ess-callback run -- CMD"
            code = run_job(title, command, f"ess-callback run -- sh -c '{script}'", env)
            results.append((title, 103, "WARNING", fake.state(103), code))
        else:
            say()
            say("(ess-callback run, the wrapper for shell scripts, is not in this version.)")

        received = len(fake.received)

    say()
    say(f"Summary: {len(results)} jobs, {received} callbacks delivered over real HTTP:")
    ok = True
    for _title, request_id, expected, state, code in results:
        verdict = "as expected" if state == expected else f"UNEXPECTED: {expected} was expected"
        ok = ok and state == expected
        say(f"   request {request_id}  ended {state}  (job exit {code})  {verdict}")
    say()
    say("Next: 'ess-callback fake-server' runs the same fake in a terminal of its own;")
    say("the README's 'Testing your jobs' shows how to unit-test a job without any server.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
