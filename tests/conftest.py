"""Shared fixtures: a clean environment for every test, children that start with default
signal dispositions, and the loopback fake scheduler."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ess_callback.testing import FakeScheduler

pytest_plugins = ["pytester"]

ESS_PREFIXES = ("ESS_", "WATCH_")
#: fixtures that start a server or hand a test what it needs to start processes
INTEGRATION_FIXTURES = frozenset({"fake", "python"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the loopback fake scheduler or starts a process is an integration
    test, so that ``-m "not integration"`` is a unit run (no socket, no process)."""
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After a run of the manual's examples (tests/test_docs_examples.py): the blocks run and
    skipped per language, and each skip with its reason."""
    ran: dict[str, int] = {}
    skipped: dict[str, int] = {}
    skips: list[str] = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "examples_run":
                    for language, count in value.items():
                        ran[language] = ran.get(language, 0) + count
                elif name == "examples_skipped":
                    for language, count in value.items():
                        skipped[language] = skipped.get(language, 0) + count
                elif name == "example_skip":
                    skips.append(value)
    if not ran and not skipped:
        return
    terminalreporter.section("examples of the README and the manual")
    for language in sorted({*ran, *skipped}):
        terminalreporter.write_line(
            f"{language:>10}: {ran.get(language, 0)} run or checked, "
            f"{skipped.get(language, 0)} skipped"
        )
    for skip in skips:
        terminalreporter.write_line(f"skipped {skip}")


#: signals whose SIG_IGN a child inherits but Python sets itself (subprocess and the
#: wrapper give the child their default back), and those no process can catch
_NOT_INHERITED = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGKILL, signal.SIGSTOP}
_saved_dispositions: dict[int, Any] = {}


def _ignore(signum: int, frame: object) -> None:
    """A Python-level "ignore": the runner stays deaf to the signal, as its invoker asked,
    but unlike SIG_IGN it is not inherited across exec."""


def pytest_configure(config: pytest.Config) -> None:
    """Children the tests start get the default signal dispositions, however the runner
    was started. Under ``nohup`` (SIGHUP) or as a background job of a script (SIGINT,
    SIGQUIT) the runner inherits SIG_IGN, and an ignored signal stays ignored across exec:
    the wrapper under test would then rightly ignore the signal a test sends it, and the
    test would hang. Signals blocked by the invoker are unblocked for the same reason."""
    for signum in signal.valid_signals():
        if signum in _NOT_INHERITED or signal.getsignal(signum) != signal.SIG_IGN:
            continue
        default = signal.SIG_DFL if signum == signal.SIGCHLD else _ignore
        _saved_dispositions[signum] = signal.signal(signum, default)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the runner back the dispositions it was started with."""
    for signum, handler in _saved_dispositions.items():
        signal.signal(signum, handler)
    _saved_dispositions.clear()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ESS_* / WATCH_* variable leaks in from the developer's shell; the outbox and XDG
    state live in the test's own folder."""
    for name in list(os.environ):
        if name.startswith(ESS_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("ESS_CALLBACK_OUTBOX", str(tmp_path / "outbox"))
    yield


@pytest.fixture(autouse=True)
def restore_logger() -> Iterator[None]:
    """The CLI configures the ``ess_callback`` logger for its process; in-process CLI tests
    must not leave that behind for later tests (caplog relies on propagation)."""
    logger = logging.getLogger("ess_callback")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]


@pytest.fixture
def fake() -> Iterator[FakeScheduler]:
    """A FakeScheduler on an ephemeral loopback port, accepting any credentials, with
    request 42 submitted (handle "handle-42", as ``job_env`` gives it to the job)."""
    with FakeScheduler() as server:
        server.submit(42, "handle-42")
        yield server


@pytest.fixture
def job_env(fake: FakeScheduler, tmp_path: Path) -> dict[str, str]:
    """Environment for a child process reporting request 42 to the fake scheduler."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ESS_PREFIXES)}
    env.update(fake.env(request_id=42, request_handle="handle-42"))
    env["ESS_CALLBACK_OUTBOX"] = str(tmp_path / "outbox")
    env["ESS_CALLBACK_RETRY_SECONDS"] = "5"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (children use the same installed package)."""
    return sys.executable
