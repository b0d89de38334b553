"""The example harness of the manual: every fenced code block of README.md and docs/**/*.md is
read here, and run (or parsed) by its info string.

The convention (also told in docs/development.md):

* An HTML comment on the line right before a fence, ``<!-- example: ... -->``, carries
  markers, several separated by ``;``: ``file=NAME``, ``exit=N``, ``env NAME=VALUE ...``,
  ``unset NAME ...``, ``background``, ``run``, ``skip REASON``.
* The blocks of a page run in order in one folder of the page's own (the working directory
  and ``HOME``), with a loopback fake scheduler (``auto_submit``) behind
  ``ESS_BASE_URL``, ``ESS_REQUEST_ID=42`` and ``ESS_REQUEST_HANDLE=handle-42``.
* A console command that is only ``export NAME=VALUE ...`` changes the page's environment
  for the blocks after it, as in a shell.
* The ports 8765 to 8799 that examples give ``ess-callback fake-server`` (8765 is its
  default) are replaced by free ports of the page's own, everywhere on that page (pages run
  side by side, with other tests): a fake-server command without ``--port`` gets
  ``--port`` with the one for 8765.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: what each info string means to the harness
RUN_AS_PROGRAM = {"python", "bash", "sh"}
CONFIG = {"ini", "yaml", "dockerfile", "toml", "json", "crontab"}
KNOWN = RUN_AS_PROGRAM | CONFIG | {"pycon", "console", "text"}
MARKERS = {"file", "exit", "env", "unset", "background", "run", "skip"}
#: the ports examples give fake-server (8765 its default); each page gets free ones instead
EXAMPLE_PORTS = re.compile(r"(?<![\d.])87(?:6[5-9]|[7-9]\d)(?!\d)")
DEFAULT_PORT = "8765"
#: a fake-server command line that does not name its port (it listens on 8765 then)
_FAKE_SERVER = re.compile(r"ess-callback\s+fake-server(?![^\n]*(?:\\\n[^\n]*)*--port)")
#: how long one block (or one console command) may run
BLOCK_TIMEOUT = 60.0

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MARKER = re.compile(r"^\s*<!--\s*example:(?P<body>.*?)-->\s*$")
_EXITS = re.compile(r"\s#\s*exits\s+(\d+)\s*$")


def pages() -> list[Path]:
    """README.md and every Markdown page of docs/ (not the build output), sorted."""
    found = [ROOT / "README.md"]
    docs = ROOT / "docs"
    if docs.is_dir():
        found += sorted(p for p in docs.rglob("*.md") if "_build" not in p.relative_to(docs).parts)
    return found


@dataclass
class Block:
    """One fenced code block of a page."""

    page: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    number: int  # 1-based, among the page's blocks
    info: str  # the first word of the info string ("" when none)
    text: str
    headings: tuple[str, ...] = ()  # the titles of the sections it stands in, outermost first
    markers: dict[str, str] = field(default_factory=dict)
    marker_errors: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: block {self.number} ({self.info or 'no info string'})"

    @property
    def is_directive(self) -> bool:
        """A MyST directive (```{toctree}, ```{eval-rst}...), not an example."""
        return self.info.startswith("{")


def parse_markers(body: str) -> tuple[dict[str, str], list[str]]:
    """The markers of one ``<!-- example: ... -->`` comment, and what is wrong in it."""
    markers: dict[str, str] = {}
    errors = []
    for part in (p.strip() for p in body.split(";")):
        if not part:
            continue
        if part.startswith("file="):
            key, value = "file", part[len("file=") :].strip()
        elif part.startswith("exit="):
            key, value = "exit", part[len("exit=") :].strip()
            if not value.isdigit():
                errors.append(f"exit= wants a number, not {value!r}")
        else:
            key, _, value = part.partition(" ")
            value = value.strip()
        if key not in MARKERS:
            errors.append(f"unknown marker {part!r}")
            continue
        if key == "skip" and not value:
            errors.append("a skip needs a reason: <!-- example: skip REASON -->")
        if key in ("env", "unset", "file") and not value:
            errors.append(f"{key} needs a value")
        markers[key] = (
            f"{markers[key]} {value}" if key in ("env", "unset") and key in markers else value
        )
    return markers, errors


def read_blocks(path: Path) -> list[Block]:
    """The fenced blocks of the Markdown page *path*, in order, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        match = _FENCE.match(stripped)
        if match is None:
            heading = _HEADING.match(lines[i])
            if heading is not None:
                level = len(heading.group(1))
                headings = [h for h in headings if h[0] < level] + [(level, heading.group(2))]
            i += 1
            continue
        opened = len(lines[i]) - len(stripped)  # a fence may be indented inside a list item
        fence = match.group("fence")
        info = match.group("info").strip().split(" ")[0] if match.group("info").strip() else ""
        start = i
        body = []
        i += 1
        while i < len(lines):
            candidate = lines[i].strip()
            if candidate.startswith(fence[0] * len(fence)) and set(candidate) == {fence[0]}:
                break
            raw = lines[i]
            # drop the fence's own indentation from the block's lines
            body.append(raw[opened:] if raw[:opened].strip() == "" else raw.lstrip())
            i += 1
        i += 1
        markers: dict[str, str] = {}
        errors: list[str] = []
        if start > 0:
            comment = _MARKER.match(lines[start - 1])
            if comment is not None:
                markers, errors = parse_markers(comment.group("body"))
        text = "\n".join(body) + "\n"
        titles = tuple(title for _, title in headings)
        blocks.append(Block(page, start + 1, len(blocks) + 1, info, text, titles, markers, errors))
    return blocks


def problems(blocks: list[Block]) -> list[str]:
    """What is wrong with the blocks of a page as examples (info strings, markers)."""
    found = []
    for block in blocks:
        if block.is_directive:
            continue
        if block.info not in KNOWN:
            found.append(
                f"{block.where}: unknown info string {block.info!r}; use one of "
                + ", ".join(sorted(KNOWN))
            )
        found += [f"{block.where}: {error}" for error in block.marker_errors]
        if block.info == "text":
            typed = [ln for ln in block.text.splitlines() if ln.startswith("$ ")]
            if typed:
                found.append(
                    f"{block.where}: a text block holds a command to type ({typed[0]!r}); "
                    "make it a console block"
                )
    return found


# -- running ------------------------------------------------------------------------------


class ExampleFailed(AssertionError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def page_environment(home: Path, fake_url: str) -> dict[str, str]:
    """The environment of a page: the user's, with no ESS_*/WATCH_* variable and no
    XDG_STATE_HOME, HOME the page folder, the test's interpreter first on PATH, the fake."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ESS_", "WATCH_")) and k != "XDG_STATE_HOME"
    }
    env["HOME"] = str(home)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(ESS_BASE_URL=fake_url, ESS_REQUEST_ID="42", ESS_REQUEST_HANDLE="handle-42")
    return env


def console_commands(text: str) -> list[tuple[str, int, list[str]]]:
    """(command, expected exit status, expected lines) of each ``$ `` command of a console
    block; continuation lines (ending in a backslash) are joined to their command."""
    commands: list[tuple[str, int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if commands:
                commands[-1][2].append(line)
            elif line.strip():
                raise ExampleFailed(f"output line {line!r} comes before any '$ ' command")
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command + "\n" + lines[i]
        match = _EXITS.search(command)
        expected = int(match.group(1)) if match else 0
        commands.append((command, expected, []))
        i += 1
    return commands


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in expected.rstrip().split("...")]
    return re.compile(".*".join(parts))


def match_output(expected: list[str], output: str) -> str | None:
    """None when every expected line appears in *output*, in order (``...`` inside a line
    matches anything, a line of only ``...`` any number of lines); else what is missing."""
    got = [line.rstrip() for line in output.splitlines()]
    position = 0
    for want in expected:
        if not want.strip() or want.strip() == "...":
            continue
        pattern = _line_pattern(want)
        while position < len(got) and not pattern.fullmatch(got[position]):
            position += 1
        if position == len(got):
            return f"expected line not found (in order): {want!r}"
        position += 1
    return None


def _report(block: Block, what: str, output: str = "") -> ExampleFailed:
    text = f"{block.where}: {what}\n--- the block ---\n{block.text}"
    if output:
        text += f"--- output ---\n{output}"
    return ExampleFailed(text)


@dataclass
class Page:
    """One page's run: its folder, environment and background processes."""

    folder: Path
    env: dict[str, str]
    ports: dict[str, str] = field(default_factory=dict)
    background: list[subprocess.Popen[str]] = field(default_factory=list)
    #: (command, output) of every command run, background ones included (once stopped)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    _background_output: list[tuple[str, list[str], threading.Thread]] = field(default_factory=list)
    ran: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    skips: list[str] = field(default_factory=list)

    def localize(self, text: str) -> str:
        """*text* with the page's own ports for 8765 to 8799, given or implied (8765 is
        fake-server's default), so that pages run side by side."""
        text = _FAKE_SERVER.sub(rf"\g<0> --port {DEFAULT_PORT}", text)
        return EXAMPLE_PORTS.sub(self._port_for, text)

    def _port_for(self, match: re.Match[str]) -> str:
        if match.group(0) not in self.ports:
            self.ports[match.group(0)] = str(free_port())
        return self.ports[match.group(0)]

    def shell(self, command: str, timeout: float = BLOCK_TIMEOUT) -> tuple[int, str]:
        try:
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=self.folder,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
            out += f"\n[timed out after {timeout:.0f} s]"
            self.outputs.append((command, out))
            return -1, out
        self.outputs.append((command, done.stdout))
        return done.returncode, done.stdout

    def run(self, argv: list[str]) -> tuple[int, str]:
        return self.shell(shlex.join(argv))

    def stop(self) -> None:
        for process in self.background:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for command, seen, pump in self._background_output:
            pump.join(timeout=5)
            self.outputs.append((command, "".join(seen)))
        self._background_output.clear()

    @property
    def output(self) -> str:
        """Everything the page's commands printed, in the order they ran (a background
        command's output once it was stopped)."""
        return "".join(output for _, output in self.outputs)


def run_page(path: Path, folder: Path, fake_url: str, section: str | None = None) -> Page:
    """Run every block of the page at *path* in *folder* (only those under a heading that
    starts with *section*, when given); raise ExampleFailed at the first block that fails.
    Returns what ran, what was skipped and what the commands printed."""
    page = Page(folder, page_environment(folder, fake_url))
    try:
        for block in read_blocks(path):
            if block.is_directive:
                continue
            if section is not None and not any(h.startswith(section) for h in block.headings):
                continue
            wrong = problems([block])
            if wrong:
                raise ExampleFailed("\n".join(wrong))
            run_block(page, block)
    finally:
        page.stop()
    return page


def run_block(page: Page, block: Block) -> None:
    markers = block.markers
    if "skip" in markers:
        page.skipped[block.info] = page.skipped.get(block.info, 0) + 1
        page.skips.append(f"{block.where}: {markers['skip']}")
        return
    for name in markers.get("unset", "").split():
        page.env.pop(name, None)
    for assignment in shlex.split(page.localize(markers.get("env", ""))):
        name, _, value = assignment.partition("=")
        page.env[name] = value
    text = page.localize(block.text)
    page.ran[block.info] = page.ran.get(block.info, 0) + 1
    if "file" in markers:
        target = page.folder / markers["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        if text.startswith("#!"):
            target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        if block.info in CONFIG:
            check_config(page, block, text)
        return
    if block.info == "text":
        return
    if block.info in ("python", "bash", "sh"):
        script = page.folder / f".example-{block.number}.{'py' if block.info == 'python' else 'sh'}"
        script.write_text(text, encoding="utf-8")
        argv = (
            [sys.executable, script.name] if block.info == "python" else ["bash", "-e", script.name]
        )
        code, output = page.run(argv)
        want = int(markers.get("exit", "0"))
        if code != want:
            raise _report(block, f"exit status {code}, expected {want}", output)
    elif block.info == "pycon":
        doctest_file = page.folder / f".example-{block.number}.txt"
        doctest_file.write_text(text, encoding="utf-8")
        argv = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", "-o", "NORMALIZE_WHITESPACE"]
        code, output = page.run([*argv, doctest_file.name])
        if code != 0:
            raise _report(block, "the doctest failed", output)
    elif block.info == "console":
        run_console(page, block, text)
    elif block.info in CONFIG:
        check_config(page, block, text)


def run_console(page: Page, block: Block, text: str) -> None:
    try:
        commands = console_commands(text)
    except ExampleFailed as exc:
        raise _report(block, str(exc)) from None
    if "background" in block.markers:
        if len(commands) != 1:
            raise _report(block, "a background block holds exactly one command")
        start_background(page, block, *commands[0])
        return
    for command, want, expected in commands:
        code, output = page.shell(command)
        if code != want:
            raise _report(block, f"`{command}` exited {code}, expected {want}", output)
        missing = match_output(expected, output)
        if missing:
            raise _report(block, f"`{command}`: {missing}", output)
        apply_export(page, command)


#: one word of an ``export`` line: NAME=VALUE
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)


def apply_export(page: Page, command: str) -> None:
    """A console command that is only ``export NAME=VALUE ...`` sets those variables for
    the page's later blocks too, as it would in the reader's shell."""
    try:
        words = shlex.split(command)
    except ValueError:
        return
    if len(words) < 2 or words[0] != "export":
        return
    if not all(_ASSIGNMENT.fullmatch(word) for word in words[1:]):
        return
    for word in words[1:]:
        name, _, value = word.partition("=")
        page.env[name] = value


def start_background(
    page: Page, block: Block, command: str, want: int, expected: list[str]
) -> None:
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=page.folder,
        env=page.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    page.background.append(process)
    seen: list[str] = []
    assert process.stdout is not None
    stream = process.stdout

    def pump() -> None:
        for line in stream:
            seen.append(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    page._background_output.append((command, seen, pumping))
    deadline = time.monotonic() + 20
    while True:
        output = "".join(seen)
        missing = match_output(expected, output)
        if missing is None:
            return
        if process.poll() is not None:
            time.sleep(0.2)
            raise _report(
                block, f"`{command}` ended ({process.returncode}); {missing}", "".join(seen)
            )
        if time.monotonic() > deadline:
            raise _report(block, f"`{command}` after 20 s: {missing}", output)
        time.sleep(0.05)


# -- configuration files ------------------------------------------------------------------

_SHELL_END = re.compile(r"\s(?:>>?|2>|&&|\|\||\||;)\s?.*$")


def _from_line(line: str) -> str | None:
    """The ``ess-callback ...`` command inside a line of a config file, if any."""
    at = re.search(r"(?:^|[\s/\"'=])(ess-callback(?:\s|$).*)", line)
    if at is None:
        return None
    command = at.group(1)
    command = _SHELL_END.sub("", command).strip().rstrip("\"'")
    return command


def ess_commands(info: str, text: str) -> list[str]:
    """Every ``ess-callback ...`` command a config block would run, as a shell line."""
    commands: list[str] = []
    if info in ("yaml", "dockerfile", "json"):
        # exec forms: ["ess-callback", "flush", ...] on one line, or a YAML list of items
        for found in re.finditer(r"\[\s*\"(?:[^\"]*/)?ess-callback\"[^\]]*\]", text):
            words = json.loads(found.group(0))
            commands.append(shlex.join(["ess-callback", *words[1:]]))
        lines = text.splitlines()
        for i, line in enumerate(lines):
            item = re.match(r"^(\s*)-\s*[\"']?(?:\S*/)?ess-callback[\"']?\s*$", line)
            if item is None:
                continue
            words = ["ess-callback"]
            for following in lines[i + 1 :]:
                more = re.match(r"^(\s*)-\s*(.*)$", following)
                if more is None or len(more.group(1)) != len(item.group(1)):
                    break
                words.append(more.group(2).strip().strip("\"'"))
            commands.append(shlex.join(words))
        if commands:
            return commands
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if info == "ini" and not re.match(r"\s*Exec\w*\s*=", line):
            continue
        command = _from_line(line)
        if command:
            commands.append(command)
    return commands


def with_help(command: str) -> str:
    """*command* with ``--help`` before its ``--`` (the command it wraps), else at the end."""
    words = shlex.split(command)
    if "--" in words:
        at = words.index("--")
        words = [*words[:at], "--help"]
    else:
        words.append("--help")
    return shlex.join(words)


def check_config(page: Page, block: Block, text: str) -> None:
    """Parse a config block where a parser is at hand, then check (or run) its commands."""
    try:
        if block.info == "ini":
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            parser.read_string(text)
        elif block.info == "json":
            json.loads(text)
        elif block.info == "toml" and sys.version_info >= (3, 11):
            import tomllib

            tomllib.loads(text)
        elif block.info == "yaml":
            with contextlib.suppress(ImportError):
                import yaml  # type: ignore[import-untyped]

                list(yaml.safe_load_all(text))
        elif block.info == "crontab":
            check_crontab(text)
    except Exception as exc:
        raise _report(block, f"does not parse as {block.info}: {exc}") from None
    for command in ess_commands(block.info, text):
        line = command if "run" in block.markers else with_help(command)
        code, output = page.shell(line)
        if code != 0:
            raise _report(block, f"`{line}` exited {code}", output)


def check_crontab(text: str) -> None:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            continue
        fields = line.split()
        if line.startswith("@"):
            continue
        if len(fields) < 6 or not all(re.fullmatch(r"[\d*/,\-A-Za-z]+", f) for f in fields[:5]):
            raise ValueError(f"not a crontab line: {line!r}")
