"""The pytest plugin (SPEC section 8): registered through ``pytest11``, its ``ess_callbacks``
fixture records for one test and stops afterwards. Run as a user would, in a fresh pytest."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from doc_examples import ROOT, run_page

from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

USER_TESTS = """
import pytest

from ess_callback import BusinessError, ConfigurationError, JobExecution, Status
from ess_callback._recording import active_recorder


def close_period(job):
    raise BusinessError("accounting period 2026-10 is closed")


def test_uses_the_fixture(ess_callbacks):
    with JobExecution(update_interval=0) as job:
        job.update("half way")
        close_period(job)
    assert ess_callbacks.statuses == [Status.UPDATE, Status.BUSINESS_ERROR]
    assert ess_callbacks.last.message == "BusinessError: accounting period 2026-10 is closed"
    assert active_recorder() is ess_callbacks


def test_recording_is_over_after_that_test():
    assert active_recorder() is None
    with pytest.raises(ConfigurationError, match="ESS_BASE_URL"):
        JobExecution()
"""


def test_entry_point_names_the_plugin_module() -> None:
    """The installed distribution registers ess_callback.testing._plugin under pytest11."""
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("ess_callback") == "ess_callback.testing._plugin"


def test_a_users_test_file_with_the_fixture_passes(pytester: pytest.Pytester) -> None:
    """A user's tests using ess_callbacks pass in a plain pytest run (no conftest, no -p),
    and the recording ends with the test that asked for it."""
    pytester.makepyfile(test_user_job=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_wrong_expectation_still_fails(pytester: pytest.Pytester) -> None:
    """The fixture records; it does not hide a job that ended differently than expected."""
    pytester.makepyfile(
        test_wrong="""
from ess_callback import JobExecution, Status

def test_expects_success_but_job_crashes(ess_callbacks):
    try:
        with JobExecution():
            raise ValueError("bad row 17")
    except ValueError:
        pass
    assert ess_callbacks.statuses == [Status.SUCCESS]
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Status.ERROR*"])


def test_fixture_comes_from_the_entry_point(pytester: pytest.Pytester) -> None:
    """`pytest --fixtures` lists ess_callbacks with its docstring; `-p no:ess_callback`
    removes it, so it is the installed plugin that provides it."""
    pytester.makepyfile(test_x="def test_x(ess_callbacks):\n    assert len(ess_callbacks) == 0\n")
    listed = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    listed.stdout.fnmatch_lines(["ess_callbacks*", "*Record every ESS callback*"])
    without = pytester.runpytest_subprocess("-p", "no:ess_callback", "-p", "no:cacheprovider")
    without.stdout.fnmatch_lines(["*fixture 'ess_callbacks' not found*"])
    assert without.ret != 0


@pytest.mark.integration
def test_the_manual_fixture_example_passes(tmp_path: Path) -> None:
    """The testing how-to's fixture example, run as the manual's harness runs it (written to
    test_close_books.py, then pytest), passes both its tests. (The page's other examples,
    recording and the fake scheduler, run in its harness test.)"""
    page = ROOT / "docs" / "howto" / "testing.md"
    with FakeScheduler(auto_submit=True) as fake:
        ran = run_page(page, tmp_path, fake.url, section="The pytest fixture")
    assert re.search(r"^2 passed in ", ran.output, re.MULTILINE), ran.output
