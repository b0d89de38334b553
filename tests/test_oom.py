"""Out of memory told apart (SPEC 11): SIGKILL while the cgroup's ``oom_kill`` count rose."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ess_callback import Status
from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")
HINT = "killed by SIGKILL (out of memory: the OOM killer fired)"


def run(fake: FakeScheduler, tmp_path: Path, command: str, **extra: str) -> Status:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env.update(fake.env(request_id=42, request_handle="handle-42"))
    env.update(ESS_CALLBACK_OUTBOX=str(tmp_path / "outbox"), **extra)
    proc = subprocess.run(
        [SCRIPT, "run", "--", "sh", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    (end,) = fake.received
    return end


def test_a_sigkill_while_oom_kill_rises_says_out_of_memory(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    """The cgroup's memory.events shows a new OOM kill: the ERROR says so."""
    events = tmp_path / "cgroup" / "memory.events"
    events.parent.mkdir()
    events.write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    command = f"printf 'low 0\\nhigh 0\\nmax 9\\noom 2\\noom_kill 2\\n' > {events}; kill -KILL $$"
    end = run(fake, tmp_path, command, ESS_CALLBACK_CGROUP_DIR=str(events.parent))
    assert end.status is Status.ERROR
    assert (end.message or "").startswith(HINT)


def test_a_sigkill_without_an_oom_kill_names_only_the_signal(
    tmp_path: Path, fake: FakeScheduler
) -> None:
    """No OOM kill counted during the run: the plain "killed by SIGKILL"."""
    events = tmp_path / "cgroup" / "memory.events"
    events.parent.mkdir()
    events.write_text("oom 0\noom_kill 0\n")
    end = run(fake, tmp_path, "kill -KILL $$", ESS_CALLBACK_CGROUP_DIR=str(events.parent))
    assert (end.message or "").startswith("killed by SIGKILL")
    assert "out of memory" not in (end.message or "")


@pytest.fixture
def memory_cgroup(tmp_path: Path) -> Iterator[Path]:
    """A real cgroup v2 limited to 64 MiB, made for this test (root and cgroup v2 only)."""
    root = Path("/sys/fs/cgroup")
    controllers = root / "cgroup.controllers"
    if os.geteuid() != 0:
        pytest.skip("a real memory-limited cgroup needs root")
    if not controllers.exists() or "memory" not in controllers.read_text().split():
        pytest.skip("no cgroup v2 with the memory controller at /sys/fs/cgroup")
    group = root / f"ess-callback-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.max").write_text(str(64 * 1024 * 1024))
        if (group / "memory.swap.max").exists():
            (group / "memory.swap.max").write_text("0")
    except OSError as exc:
        shutil.rmtree(group, ignore_errors=True)
        pytest.skip(f"cannot make a memory-limited cgroup here: {exc}")
    yield group
    group.rmdir()


def test_a_real_oom_kill_is_told_apart(
    tmp_path: Path, fake: FakeScheduler, memory_cgroup: Path
) -> None:
    """In a 64 MiB cgroup, a command allocating 1 GiB is OOM-killed: the ERROR says so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "WATCH_"))}
    env.update(fake.env(request_id=42, request_handle="handle-42"))
    env["ESS_CALLBACK_OUTBOX"] = str(tmp_path / "outbox")
    hog = f"{sys.executable} -c 'b = bytearray(1 << 30)'"
    proc = subprocess.run(
        ["sh", "-c", f'echo $$ > {memory_cgroup}/cgroup.procs && exec "$0" run -- {hog}', SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (end,) = fake.received
    assert end.status is Status.ERROR, proc.stderr
    assert (end.message or "").startswith(HINT)
