"""Every code example of the README and the manual (docs/**/*.md) runs as printed.

One test per page: its fenced blocks run in order in a folder of the page's own, against a
loopback fake scheduler, by their info string and the ``<!-- example: ... -->`` markers
(the convention is in ``tests/doc_examples.py`` and docs/development.md). A failure names
the page, the line of the block's fence and the block, with the output it gave.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_examples import (
    ROOT,
    Block,
    ExampleFailed,
    console_commands,
    ess_commands,
    match_output,
    pages,
    parse_markers,
    problems,
    read_blocks,
    run_page,
    with_help,
)

from ess_callback.testing import FakeScheduler

PAGES = pages()


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.integration
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_examples_of_the_page_run_as_printed(
    page: Path, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    """Each block of the page runs (or parses) as its info string says, in order, sharing
    one folder; commands exit as shown and print the lines shown."""
    folder = tmp_path / "page"
    folder.mkdir()
    failure = None
    with FakeScheduler(auto_submit=True) as fake:
        try:
            result = run_page(page, folder, fake.url)
        except ExampleFailed as exc:
            failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    record_property("examples_run", result.ran)
    record_property("examples_skipped", result.skipped)
    for skip in result.skips:
        record_property("example_skip", skip)


def test_every_block_has_a_known_info_string_and_every_skip_a_reason() -> None:
    """No block the harness would not know how to check, no marker it would not
    understand, no skip without a reason, no command to type in a text block."""
    found = [problem for page in PAGES for problem in problems(read_blocks(page))]
    assert not found, "\n".join(found)


def test_the_pages_hold_examples() -> None:
    """The harness reads the README and the manual (it would pass on nothing at all)."""
    names = {page_id(page) for page in PAGES}
    assert "README.md" in names
    assert "docs/index.md" in names
    assert any(b.info == "console" for b in read_blocks(ROOT / "README.md"))


# -- the harness itself ---------------------------------------------------------------------


def test_markers_are_parsed_and_a_skip_needs_a_reason() -> None:
    markers, errors = parse_markers(" file=job.py; env A=1 B='x y'; exit=3 ")
    assert markers == {"file": "job.py", "env": "A=1 B='x y'", "exit": "3"}
    assert errors == []
    assert parse_markers(" skip ")[1] == ["a skip needs a reason: <!-- example: skip REASON -->"]
    assert parse_markers(" frobnicate ")[1] == ["unknown marker 'frobnicate'"]
    block = Block("p.md", 3, 1, "rust", "fn main() {}\n")
    assert problems([block]) == [
        "p.md:3: block 1 (rust): unknown info string 'rust'; use one of bash, console, "
        "crontab, dockerfile, ini, json, pycon, python, sh, text, toml, yaml"
    ]


def test_console_blocks_split_into_commands_outputs_and_exit_statuses() -> None:
    text = "$ echo a \\\n  b\na b\n$ false  # exits 1\n$ true\n"
    assert console_commands(text) == [
        ("echo a \\\n  b", 0, ["a b"]),
        ("false  # exits 1", 1, []),
        ("true", 0, []),
    ]


def test_expected_lines_match_in_order_with_ellipses() -> None:
    output = "one\ntwo 2\nthree\nfour\n"
    assert match_output(["one", "...", "four"], output) is None
    assert match_output(["two ...", "four"], output) is None
    assert match_output(["four", "one"], output) == "expected line not found (in order): 'one'"
    assert match_output(["tw"], output) == "expected line not found (in order): 'tw'"


def test_commands_are_found_in_config_files_and_checked_with_help() -> None:
    unit = "[Service]\nExecStart=/opt/ess/bin/ess-callback flush --metrics /m.prom\n"
    assert ess_commands("ini", unit) == ["ess-callback flush --metrics /m.prom"]
    cron = "*/5 * * * * batch /opt/ess/bin/ess-callback flush -q >>/var/log/f.log 2>&1\n"
    assert ess_commands("crontab", cron) == ["ess-callback flush -q"]
    yaml = 'command: ["ess-callback", "flush"]\nargs:\n  - ess-callback\n  - run\n  - --\n'
    assert ess_commands("yaml", yaml) == ["ess-callback flush", "ess-callback run --"]
    assert with_help("ess-callback run -- ./job.sh") == "ess-callback run --help"
    assert with_help("ess-callback flush -q") == "ess-callback flush -q --help"


def test_blocks_are_read_with_their_lines_and_markers(tmp_path: Path) -> None:
    page = ROOT / "README.md"
    blocks = read_blocks(page)
    lines = page.read_text(encoding="utf-8").splitlines()
    for block in blocks:
        assert lines[block.line - 1].lstrip().startswith(("```", "~~~")), block.where


def test_the_api_reference_documents_every_public_name() -> None:
    """docs/reference/api.md names each public name of ess_callback (listed one by one, in
    an order that reads well) and documents the other three modules whole."""
    import ess_callback

    api = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    missing = [
        name
        for name in ess_callback.__all__
        if name != "__version__" and not re.search(rf"::\s+ess_callback\.{name}\s*$", api, re.M)
    ]
    assert missing == []
    for module in ("ess_callback.testing", "ess_callback.watch", "ess_callback.outbox"):
        assert re.search(rf"^\.\. automodule:: {re.escape(module)}\n   :members:", api, re.M)
