"""The README's first command runs samples/quickstart.py: it must keep showing a sample job's
callbacks arriving at the fake scheduler over real HTTP, and end with every state expected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parent.parent / "samples" / "quickstart.py"


@pytest.mark.integration
def test_quickstart_shows_the_whole_flow_and_exits_0(tmp_path: Path) -> None:
    """The quick start prints UPDATE and terminal callbacks as ESS receives them, the retry
    after an injected 503, and a summary in which every request ended as expected."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESS_")}
    env["ESS_CALLBACK_DRY_RUN"] = "1"  # a user's own setting must not leak into the demo
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "A fake ESS scheduler is listening on http://127.0.0.1:" in out
    assert "ESS received  request 101  UPDATE  loaded " in out
    assert "ESS received  request 101  SUCCESS" in out
    assert "ESS answered   HTTP 503 (injected fault); the SDK will retry" in out
    assert "ESS received  request 102  WARNING  3 rows skipped" in out
    assert "job says       ended with SUCCESS" in out
    assert "request 101  ended SUCCEEDED  (job exit 0)  as expected" in out
    assert "request 102  ended WARNING  (job exit 0)  as expected" in out
    assert "UNEXPECTED" not in out
    assert "Traceback" not in out + done.stderr
