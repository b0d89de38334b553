"""The warnings a ``JobExecution`` holds are bounded: the first and the latest are kept,
whole, and the message sent is the one it always was while they fit; no secret leaks
through a cut, and requests is imported while the block runs."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ess_callback import JobExecution
from ess_callback._message import Redactor, truncate_message
from ess_callback._session import WarningList
from ess_callback.testing import FakeScheduler, Recorder, record_callbacks


def old_message(warnings: list[str], secret: str, limit: int) -> str | None:
    """The WARNING message as it was built before the cap: every warning kept, redacted
    whole, then cut."""
    redact = Redactor([secret, f"u:{secret}"])
    return truncate_message(redact("\n".join(warnings)), limit) or None


def sent_message(warnings: list[str], secret: str, limit: int) -> tuple[str | None, JobExecution]:
    with (
        record_callbacks() as calls,
        JobExecution(
            request_id=1,
            request_handle="h",
            username="u",
            password=secret,
            max_message_bytes=limit,
            handle_signals=False,
        ) as job,
    ):
        for text in warnings:
            job.warn(text)
    return calls.last.message, job


# -- the list ------------------------------------------------------------------------------
def test_window_keeps_the_first_and_the_latest_whole() -> None:
    """Past the limit, the latest warnings stay in a window; the ones between are counted."""
    warnings = WarningList(limit=30, tail=30)
    for number in range(100):
        warnings.add(f"warning {number}")
    lines = warnings.lines()
    assert lines[:3] == ["warning 0", "warning 1", "warning 2"]
    assert lines[-1] == "warning 99"
    marker = [line for line in lines if line.startswith("(")]
    assert marker == [f"({100 - len(warnings.kept())} more warnings)"]
    assert all(line.startswith("warning ") for line in warnings.kept())
    assert sum(len(w) + 1 for w in warnings.kept()) <= 60


def test_window_within_both_limits_keeps_every_warning() -> None:
    """Until head and window are both full, nothing is left out and no marker is added."""
    warnings = WarningList(limit=30, tail=30)
    texts = [f"w{number}" for number in range(15)]  # 45 characters with separators
    for text in texts:
        warnings.add(text)
    assert warnings.lines() == texts == warnings.kept()


def test_without_a_window_later_short_warnings_still_fit() -> None:
    """run's list is unchanged: a warning too long is counted, a shorter later one kept."""
    warnings = WarningList(limit=20)
    for text in ("a" * 15, "b" * 10, "c"):
        warnings.add(text)
    assert warnings.lines() == ["a" * 15, "c", "(1 more warnings)"]


# -- JobExecution --------------------------------------------------------------------------
def nothing_left_out(warnings: list[str], room: int) -> bool:
    """Whether the first part (*room* characters, filled in order until a warning does not
    fit) and the window after it (*room* characters too) hold every warning."""
    head = room
    for split, text in enumerate(warnings):
        head -= len(text) + 1
        if head < 0:
            return sum(len(w) + 1 for w in warnings[split:]) <= room
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    warnings=st.lists(st.text(max_size=40), min_size=1, max_size=12),
    limit=st.integers(min_value=24, max_value=200),
)
# the first part stops at the first warning that does not fit; the rest overflow the window
@example(warnings=["0" * n for n in (6, 17, 23, 5, 6, 11)], limit=24)
def test_message_is_unchanged_while_the_warnings_fit(warnings: list[str], limit: int) -> None:
    """While the warnings fit in the first part and the window (twice the message's size
    each), the message is exactly the one sent before there was a cap."""
    secret = "s3cr3t-pw"
    fits = all(len(w) <= limit for w in warnings) and nothing_left_out(warnings, 2 * limit)
    message, job = sent_message(warnings, secret, limit)
    if fits:
        assert message == old_message(warnings, secret, limit)
        assert job.warnings == warnings


def test_a_million_warnings_hold_a_bounded_amount() -> None:
    """Memory stays bounded: the kept warnings never pass four times the message's size,
    and the message still starts with the first and ends with the last."""
    with (
        record_callbacks() as calls,
        JobExecution(request_id=1, request_handle="h", handle_signals=False) as job,
    ):
        for number in range(200_000):
            job.warn(f"row {number} skipped")
        kept = job.warnings
    assert sum(len(w) + 1 for w in kept) <= 4 * 4000
    assert kept[0] == "row 0 skipped" and kept[-1] == "row 199999 skipped"
    message = calls.last.message
    assert message is not None and len(message.encode()) <= 4000
    assert message.startswith("row 0 skipped\n") and message.endswith("\nrow 199999 skipped")


SECRET_CHARS = "QKZJ"  # in no marker, no replacement and no filler below


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=st.text(alphabet=SECRET_CHARS, min_size=4, max_size=30),
    pieces=st.lists(st.text(alphabet="xyz -\n", max_size=50), min_size=1, max_size=40),
    huge=st.integers(min_value=0, max_value=3),
    limit=st.integers(min_value=24, max_value=120),
)
@example(secret="QKZJQKZJ", pieces=["x" * 11] * 30, huge=2, limit=24)
def test_no_part_of_a_secret_leaks_past_a_cut(
    secret: str, pieces: list[str], huge: int, limit: int
) -> None:
    """Secrets inside warnings, wherever the warnings and the message are cut (and inside
    warnings so long that they are cut on their own), leave no character behind."""
    warnings = [piece + secret + piece for piece in pieces]
    warnings += [(secret + "x" * 7) * (limit // 2 + 5)] * huge
    message, job = sent_message(warnings, secret, limit)
    assert message is not None
    assert not set(message) & set(SECRET_CHARS)
    cut = [w for w in job.warnings if "...[truncated" in w]  # redacted before they were cut
    assert all(not set(w) & set(SECRET_CHARS) for w in cut)


def test_no_cap_when_a_secret_holds_a_line_break() -> None:
    """A match that may run over a line break needs the warnings whole: no cap then."""
    assert Redactor(["a\nb"]).crosses_lines
    assert Redactor([], ["x+"]).crosses_lines
    assert not Redactor(["ab"]).crosses_lines


# -- requests imported while the block runs ------------------------------------------------
def test_block_end_waits_for_the_background_import(
    fake: FakeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block that ends before the import finished waits for it, then sends."""
    import ess_callback._sender as sender_module

    order: list[str] = []

    def slow_import() -> None:
        time.sleep(0.3)
        order.append("imported")

    monkeypatch.setattr(sender_module, "_import_http", slow_import)
    with JobExecution(base_url=fake.url, request_id=42, request_handle="handle-42") as job:
        pass
    order.append("ended")
    assert order == ["imported", "ended"]
    assert job.outcome is not None and job.outcome.delivered
    assert not [t for t in threading.enumerate() if t.name == "ess-callback-import"]


@pytest.mark.parametrize("mode", ["dry run", "recording"])
def test_dry_run_and_recording_import_nothing_in_the_background(
    mode: str, monkeypatch: pytest.MonkeyPatch, ess_callbacks: Recorder
) -> None:
    """Nothing is sent over HTTP there: no import is started."""
    import ess_callback._sender as sender_module

    calls: list[str] = []
    monkeypatch.setattr(sender_module, "_import_http", lambda: calls.append("import"))
    if mode == "dry run":
        ess_callbacks.stop()
        monkeypatch.setenv("ESS_CALLBACK_DRY_RUN", "1")
    with JobExecution(request_id=1, request_handle="h", handle_signals=False):
        pass
    assert calls == []
