"""pytest plugin (entry point ``pytest11``): the ``ess_callbacks`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._recording import Recorder, record_callbacks


@pytest.fixture
def ess_callbacks() -> Iterator[Recorder]:
    """Record every ESS callback made during the test instead of sending it.

    No ESS setting is needed while it is active; nothing reaches the network or the outbox.
    """
    with record_callbacks() as recorder:
        yield recorder
