"""The README's first command runs samples/quickstart.py: it must keep showing the whole flow
through the real ``ess-callback fake-server`` (SPEC section 7): sample jobs report to it over
HTTP, its own per-callback lines appear as they arrive, and it is stopped cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_examples import ROOT, match_output, read_blocks

QUICKSTART = Path(__file__).resolve().parent.parent / "samples" / "quickstart.py"


@pytest.mark.integration
def test_quickstart_shows_the_whole_flow_through_fake_server_and_exits_0(tmp_path: Path) -> None:
    """The quick start starts 'ess-callback fake-server --port 0', shows its lines for every
    callback of four jobs (Python and shell, SUCCESS to BUSINESS_ERROR), stops it with
    SIGTERM, and ends with a summary in which every request ended as expected."""
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
    assert "$ ess-callback fake-server --port 0" in out
    listening = re.search(
        r"ESS \| # fake ESS scheduler listening on http://127\.0\.0\.1:(\d+)", out
    )
    assert listening is not None, out
    assert int(listening.group(1)) != 0  # the port the server picked, not the one asked for
    # The fake server's own lines (time, request, status, message), as it received them.
    stamp = r"ESS \| \d\d:\d\d:\d\d  "
    for line in (
        r"request 101  UPDATE  loaded \d+ of 5000 rows",
        r"request 101  SUCCESS$",
        r"request 102  WARNING  3 rows skipped \(missing cost centre\)",
        r"request 103  UPDATE  extracted \d+ of 1000 rows",
        r"request 103  SUCCESS$",
        r"request 104  BUSINESS_ERROR  exit code 3",
    ):
        assert re.search(stamp + line, out, re.MULTILINE), line
    assert "job | ended with SUCCESS" in out
    # SIGTERM ended it cleanly: its own last line counts what it received.
    assert re.search(r"ESS \| # stopped; \d+ callback\(s\) received", out)
    for request_id, status, code in (
        (101, "SUCCESS", 0),
        (102, "WARNING", 0),
        (103, "SUCCESS", 0),
        (104, "BUSINESS_ERROR", 3),
    ):
        assert f"request {request_id}  ended {status}  (job exit {code})  as expected" in out
    assert "UNEXPECTED" not in out
    assert "Traceback" not in out + done.stderr
    # The README's excerpt of this output shows only what the run prints.
    (excerpt,) = (
        block.text
        for block in read_blocks(ROOT / "README.md")
        if block.info == "text" and "Quick start" in block.headings
    )
    missing = match_output(excerpt.splitlines(), out)
    assert missing is None, f"README.md's quick start output: {missing}\n{out}"
