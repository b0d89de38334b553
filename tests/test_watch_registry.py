"""The registry of watched APIs (``watch/_registry.py``): one table that the ``wait``
command and the fake server go by."""

from __future__ import annotations

from ess_callback.testing import _watched
from ess_callback.watch._http import HttpReader
from ess_callback.watch._registry import APIS


def test_the_fake_serves_every_watched_api_but_ess() -> None:
    """The fake server fakes exactly the registered APIs other than ESS (it is ESS itself)."""
    assert set(_watched.APIS) == set(APIS) - {"ess"}


def test_every_entry_names_a_reader_and_a_url_hint() -> None:
    """Each registered API has a reader class and says where its base URL comes from."""
    for name, entry in APIS.items():
        assert issubclass(entry.reader, HttpReader), name
        assert entry.url_hint.startswith("give --base-url"), name
    assert [name for name, entry in APIS.items() if entry.ess_fallback] == ["ess"]
