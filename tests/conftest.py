"""Shared fixtures: a clean environment for every test, and the loopback fake scheduler."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

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
