"""SPEC section 4: ``Callback`` and ``Outcome`` are the tuples SPEC writes, as frozen values."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from ess_callback import Callback, Outcome, SchedulerUnavailableError, Status


def test_callback_unpacks_as_its_four_fields() -> None:
    """A Callback unpacks as (request_id, request_handle, status, message)."""
    request_id, handle, status, message = Callback(42, "h-42", "warning", "3 rows skipped")
    assert (request_id, handle, status, message) == (42, "h-42", Status.WARNING, "3 rows skipped")
    assert status is Status.WARNING


def test_callback_tuple_and_list() -> None:
    """tuple() and list() of a Callback give its fields in SPEC order, None included."""
    callback = Callback(None, None, Status.SUCCESS)
    assert tuple(callback) == (None, None, Status.SUCCESS, None)
    assert list(Callback(7, "h", "UPDATE", "half")) == [7, "h", Status.UPDATE, "half"]


def test_outcome_unpacks_as_its_five_fields() -> None:
    """An Outcome unpacks as (status, message, delivered, attempts, error)."""
    error = SchedulerUnavailableError("ESS answered 503", attempts=3)
    status, message, delivered, attempts, got = Outcome(
        Status.ERROR, "boom", delivered=False, attempts=3, error=error
    )
    assert (status, message, delivered, attempts) == (Status.ERROR, "boom", False, 3)
    assert got is error


def test_outcome_tuple_leaves_out_spooled_to(tmp_path: Path) -> None:
    """spooled_to is an attribute, not part of the tuple (five items, always)."""
    kept = tmp_path / "x.json"
    outcome = Outcome(Status.SUCCESS, None, delivered=False, attempts=8, spooled_to=kept)
    assert tuple(outcome) == (Status.SUCCESS, None, False, 8, None)
    assert outcome.spooled_to == kept
    assert len(tuple(Outcome(Status.SUCCESS, None, delivered=True))) == 5


def test_values_stay_frozen_and_comparable() -> None:
    """Unpacking does not make them tuples: they stay frozen and compare as values."""
    callback = Callback(1, "h", Status.CANCEL, "SIGTERM")
    assert callback == Callback(1, "h", "cancel", "SIGTERM")
    assert callback != (1, "h", Status.CANCEL, "SIGTERM")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        callback.message = "other"  # type: ignore[misc]
