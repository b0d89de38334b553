"""The wording of messages a new user meets first (issue: messages that help)."""

from __future__ import annotations

import pytest

from ess_callback import ConfigurationError, JobExecution


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ESS_* variable set."""
    import os

    for name in list(os.environ):
        if name.startswith(("ESS_", "WATCH_")):
            monkeypatch.delenv(name)


def test_job_execution_names_the_keyword_argument_not_the_flag(bare_env: None) -> None:
    """JobExecution() with nothing set names ESS_BASE_URL and base_url=, not --base-url."""
    with pytest.raises(ConfigurationError) as info:
        JobExecution()
    text = str(info.value)
    assert "ESS_BASE_URL" in text and "base_url=" in text
    assert "--base-url" not in text
