"""SPEC section 2 (statuses) and 4 (``Status`` is a str enum of the wire names)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ess_callback import Callback, Status

WIRE_NAMES = [
    "SUCCESS",
    "UPDATE",
    "PAUSE",
    "WARNING",
    "ERROR",
    "BUSINESS_ERROR",
    "CANCEL",
    "SUSPEND",
]
TERMINAL_NAMES = {"SUCCESS", "WARNING", "ERROR", "BUSINESS_ERROR", "CANCEL"}


def test_exactly_the_eight_wire_names() -> None:
    """Status has exactly the eight statuses of the ESS reference, value equal to name."""
    assert sorted(s.value for s in Status) == sorted(WIRE_NAMES)
    assert all(s.name == s.value for s in Status)


def test_is_a_str_enum() -> None:
    """A Status is a str equal to its wire name, and serialises to it as JSON."""
    for name in WIRE_NAMES:
        status = Status(name)
        assert isinstance(status, str)
        assert status == name
        assert str(status) == name
        assert f"{status}" == name
        assert json.dumps({"status": status}) == json.dumps({"status": name})


def test_terminal_set() -> None:
    """SUCCESS, WARNING, ERROR, BUSINESS_ERROR and CANCEL are terminal; the rest are not."""
    assert {s.value for s in Status if s.is_terminal} == TERMINAL_NAMES


def test_final_set() -> None:
    """Every status but UPDATE can be the final callback of a run (SPEC section 6)."""
    assert {s for s in Status if not s.is_final} == {Status.UPDATE}


@given(
    name=st.sampled_from(WIRE_NAMES),
    flips=st.lists(st.booleans(), min_size=14, max_size=14),
    pad=st.sampled_from(["", " ", "\t", "  \n"]),
)
def test_parse_ignores_case_and_blanks(name: str, flips: list[bool], pad: str) -> None:
    """Status.parse accepts any mix of upper and lower case, with surrounding blanks."""
    mixed = "".join(c.lower() if flip else c for c, flip in zip(name, flips, strict=False))
    assert Status.parse(pad + mixed + pad) is Status(name)


def test_parse_accepts_a_status() -> None:
    """Status.parse returns a Status it is given unchanged."""
    assert Status.parse(Status.WARNING) is Status.WARNING


@pytest.mark.parametrize("text", ["", "DONE", "SUCCEEDED", "success!", "FAIL", "CANCELLED"])
def test_parse_unknown_lists_valid_names(text: str) -> None:
    """An unknown name is a ValueError that quotes it and lists every valid status."""
    with pytest.raises(ValueError) as info:
        Status.parse(text)
    message = str(info.value)
    assert repr(text) in message
    for name in WIRE_NAMES:
        assert name in message


@given(
    st.one_of(
        st.text(max_size=30),
        # non-ASCII letters that str.upper() maps onto ASCII ones (long s, dotless i)
        st.sampled_from(["\u017fuccess", "bus\u0131ness_error", "BUSINESS-ERROR"]),
    )
)
def test_parse_never_guesses(text: str) -> None:
    """Status.parse returns a status only for a wire name (ASCII case, blanks, '-' for '_')."""
    key = text.strip().upper().replace("-", "_")
    if text.strip().isascii() and key in WIRE_NAMES:
        assert Status.parse(text).value == key
    else:
        with pytest.raises(ValueError):
            Status.parse(text)


def test_callback_status_is_a_status() -> None:
    """A Callback built from a status name holds the Status, and refuses an unknown one."""
    callback = Callback(42, "h", "business_error", "closed")
    assert callback.status is Status.BUSINESS_ERROR
    with pytest.raises(ValueError, match="SUSPEND"):
        Callback(42, "h", "FINISHED")
