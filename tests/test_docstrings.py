"""The ``>>>`` examples of the package's docstrings run as doctests, every module of
``ess_callback``, against a loopback fake scheduler (``auto_submit``) that the ``ESS_*``
variables point at, in a folder of the test's own."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import ess_callback
from ess_callback.testing import FakeScheduler

MODULES = [
    "ess_callback",
    *sorted(
        info.name for info in pkgutil.walk_packages(ess_callback.__path__, prefix="ess_callback.")
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [test for test in finder.find(module) if test.examples]
    if not tests:
        return
    monkeypatch.chdir(tmp_path)
    with FakeScheduler(auto_submit=True) as fake:
        for key, value in fake.env(request_id=42, request_handle="handle-42").items():
            monkeypatch.setenv(key, value)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        failures = []
        for test in tests:
            result = runner.run(test, out=failures.append)
            assert result.attempted
        assert not failures, "".join(failures)


def test_the_package_has_docstring_examples() -> None:
    """The doctests above find examples (they would pass on a package without any)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = [
        test.name
        for name in MODULES
        for test in finder.find(importlib.import_module(name))
        if test.examples
    ]
    assert "ess_callback._execution.JobExecution" in found
    assert len(found) >= 5
