"""Outbox files and leases are written as ``json.dumps(indent=2, sort_keys=True)`` writes
them, whether the light writer or ``json`` itself does it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ess_callback.outbox._store import dumps

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(codec=None))
)


@given(st.dictionaries(st.text(), SCALARS, max_size=12))
def test_a_flat_object_is_written_as_json_writes_it(data: dict[str, Any]) -> None:
    """Strings of any code point (surrogates and controls included), integers of any size,
    floats (NaN and infinities too), booleans and null: byte for byte json's output."""
    assert dumps(data) == json.dumps(data, indent=2, sort_keys=True)


@given(
    st.dictionaries(
        st.text(max_size=5),
        SCALARS | st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(), st.integers()),
        max_size=6,
    )
)
def test_nested_values_are_left_to_json(data: dict[str, Any]) -> None:
    """Lists and objects inside: the same text, written by json."""
    assert dumps(data) == json.dumps(data, indent=2, sort_keys=True)


def test_a_lease_like_object_reads_back_whole() -> None:
    """What a lease holds parses back to itself."""
    lease = {
        "base_url": "https://ess.example.com",
        "request_id": 42,
        "request_handle": "h-42 \u00e9\u2603",
        "boot_id": None,
        "pid": 4711,
        "kind": "run",
        "command": 'sh -c "echo \\"hi\\"\n\t"',
        "started": 1733300000.25,
    }
    assert json.loads(dumps(lease)) == lease
