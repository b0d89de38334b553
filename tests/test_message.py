"""SPEC section 2 (statusMessage limit) and 4 (``Type: text`` messages, redaction)."""

from __future__ import annotations

import re
import sys

from hypothesis import assume, example, given
from hypothesis import strategies as st

from ess_callback._message import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Redactor,
    describe_exception,
    truncate_message,
)

MARKER = re.compile(r"\.\.\.\[truncated (\d+) bytes\]\.\.\.")

# Text that mixes 1-, 2-, 3- and 4-byte UTF-8 characters, so cuts land inside characters.
characters = (
    st.sampled_from(["a", "Z", " ", "\n", "é", "ß", "€", "中", "😀", "𝄞"]) | st.characters()
)
mixed_text = st.text(alphabet=characters, max_size=400)
long_text = st.text(alphabet=characters, min_size=40, max_size=400)


def valid(text: str) -> str:
    """*text* with every lone surrogate (no UTF-8 form) replaced by U+FFFD."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def utf8_len(text: str) -> int:
    return len(valid(text).encode("utf-8"))


def split_at_marker(text: str, result: str) -> tuple[str, int, str] | None:
    """(head, N, tail) when *result* is a prefix of *text*, a marker and a suffix of it."""
    for match in MARKER.finditer(result):
        head, tail = result[: match.start()], result[match.end() :]
        if text.startswith(head) and text.endswith(tail):
            return head, int(match.group(1)), tail
    return None


def test_default_limit_is_4000_bytes() -> None:
    """The default limit is the common Oracle VARCHAR2 size, 4000 bytes."""
    assert DEFAULT_MAX_MESSAGE_BYTES == 4000
    assert utf8_len(truncate_message("x" * 10_000)) <= 4000
    assert truncate_message("x" * 4000) == "x" * 4000


@given(text=mixed_text, limit=st.integers(min_value=0, max_value=600))
@example(text="😀" * 50, limit=1)
@example(text="😀" * 50, limit=3)
@example(text="é" * 100, limit=41)
def test_truncate_fits_and_stays_valid(text: str, limit: int) -> None:
    """The result is valid UTF-8, within the limit, and the text itself when it fits."""
    result = truncate_message(text, limit)
    encoded = result.encode("utf-8")  # raises on a split (surrogate) character
    assert len(encoded) <= limit
    encoded.decode("utf-8")
    if utf8_len(text) <= limit:
        assert result == valid(text)


@given(text=long_text, data=st.data())
@example(text="a" * 100 + "😀" * 100 + "b" * 100, data=None)
def test_truncate_keeps_head_and_tail_around_exact_marker(text: str, data: st.DataObject) -> None:
    """With room for the marker, head and tail of the text surround a marker whose N is
    the exact number of bytes left out, and the limit is used nearly in full."""
    size = utf8_len(text)
    room_for_marker = len(f"...[truncated {size} bytes]...") + 2
    assume(size > room_for_marker)
    limit = (
        data.draw(st.integers(min_value=room_for_marker, max_value=size - 1))
        if data is not None
        else 100
    )
    text = valid(text)
    result = truncate_message(text, limit)
    parts = split_at_marker(text, result)
    assert parts is not None, result
    head, removed, tail = parts
    assert utf8_len(head) + removed + utf8_len(tail) == size
    assert removed > 0
    # Each cut may give back at most 3 bytes of a character, and the marker may be
    # shorter than the one the room was planned for.
    assert utf8_len(result) >= limit - 6 - len(str(size))
    # Neither end is sacrificed to the other.
    assert abs(utf8_len(head) - utf8_len(tail)) <= 4


def test_truncate_example() -> None:
    """A long ASCII message keeps its first and last characters and names the cut."""
    text = "".join(f"{i:05d}" for i in range(2000))  # 10000 bytes
    result = truncate_message(text, 4000)
    assert len(result.encode()) <= 4000
    assert result.startswith("00000000010000200003")
    assert result.endswith("0199701998" + "01999")
    head, removed, tail = split_at_marker(text, result) or ("", -1, "")
    assert removed == 10000 - len(head) - len(tail)
    assert removed > 6000


def test_truncate_never_splits_a_character() -> None:
    """Cuts fall on character boundaries: a 4-byte character is kept whole or dropped."""
    text = "😀" * 3000
    result = truncate_message(text, 1000)
    assert set(MARKER.sub("", result)) == {"😀"}
    assert len(result.encode()) <= 1000


def test_truncate_replaces_lone_surrogates() -> None:
    """A lone surrogate (e.g. from an undecodable file name) becomes U+FFFD, fit or not."""
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")
    assert truncate_message(f"cannot open {name}") == "cannot open report-\ufffd.csv"
    long = truncate_message(name * 1000, 200)
    long.encode("utf-8")
    assert "\ufffd" in long


def test_truncate_tiny_limit_keeps_head() -> None:
    """A limit too small for the marker keeps only the head, still within the limit."""
    assert truncate_message("abcdefghij" * 10, 5) == "abcde"
    assert truncate_message("€€€", 5) == "€"
    assert truncate_message("abc", 0) == ""


def test_describe_exception_type_text_and_place() -> None:
    """``Type: text`` on the first line, then the file:line where it was raised."""
    try:
        line = sys._getframe().f_lineno + 1
        raise ValueError("bad row 17")
    except ValueError as exc:
        described = describe_exception(exc)
    first, *rest = described.splitlines()
    assert first == "ValueError: bad row 17"
    assert f"{__file__}:{line}" in "\n".join(rest)


def test_describe_exception_names_the_innermost_frame() -> None:
    """The place is where the exception was raised, not where it was caught."""

    def inner() -> None:
        raise KeyError("k")

    try:
        inner()
    except KeyError as exc:
        described = describe_exception(exc)
    assert described.startswith("KeyError: 'k'\n")
    assert f"{__file__}:{inner.__code__.co_firstlineno + 1}" in described


def test_describe_exception_without_text_or_place() -> None:
    """An exception without text is its type name; one never raised has no place."""
    assert describe_exception(KeyError()) == "KeyError"
    assert describe_exception(RuntimeError("boom")) == "RuntimeError: boom"
    try:
        raise OSError("disk full")
    except OSError as exc:
        assert describe_exception(exc, where=False) == "OSError: disk full"


class _UnprintableText(Exception):
    """An exception whose text cannot be had: str() raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class _Unprintable(_UnprintableText):
    """An exception that can be neither str()-ed nor repr()-ed."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def test_describe_exception_whose_str_raises_falls_back_to_repr() -> None:
    """An exception whose __str__ raises is described by its repr, never raising itself."""
    try:
        raise _UnprintableText("row 7")
    except _UnprintableText as exc:
        described = describe_exception(exc)
        short = describe_exception(exc, where=False)
    assert described.startswith("_UnprintableText('row 7')\n  at ")
    assert short == "_UnprintableText('row 7')"


def test_describe_exception_neither_str_nor_repr() -> None:
    """When repr() raises too, the exception is named as unprintable."""
    assert describe_exception(_Unprintable(), where=False) == "<unprintable _Unprintable>"


# Secrets that cannot be rebuilt from the replacement text itself.
secret_text = st.text(min_size=1, max_size=20).filter(lambda s: "*" not in s)


@given(
    secrets=st.lists(secret_text, min_size=1, max_size=4),
    pieces=st.lists(st.text(max_size=10), max_size=6),
    data=st.data(),
)
@example(secrets=["ab", "bc"], pieces=["a", "c"], data=None)
@example(secrets=["aba"], pieces=["ab", "a"], data=None)
def test_redactor_leaves_no_secret(
    secrets: list[str], pieces: list[str], data: st.DataObject | None
) -> None:
    """Whatever surrounds them, no secret value survives redaction."""
    # Build text that interleaves secrets and other text, so secrets overlap and touch.
    parts: list[str] = []
    for i, piece in enumerate(pieces):
        parts.append(piece)
        parts.append(secrets[i % len(secrets)])
    if data is not None:
        parts = data.draw(st.permutations(parts))
    text = "".join(parts) or secrets[0]
    result = Redactor(secrets)(text)
    for secret in secrets:
        assert secret not in result


@given(
    secret=secret_text,
    text=st.text(max_size=50),
)
def test_redactor_without_secrets_in_text_changes_nothing(secret: str, text: str) -> None:
    """Text that holds no secret comes back unchanged."""
    assume(secret not in text)
    assert Redactor([secret])(text) == text


def test_redactor_replaces_with_stars() -> None:
    """Secrets and pattern matches become ``***``; the rest is kept."""
    redact = Redactor(["hunter2"], [r"AKIA[0-9A-Z]{4}"])
    assert redact("pw=hunter2 key=AKIAABCD end") == "pw=*** key=*** end"
    assert bool(redact)
    assert not Redactor([""], [])
    assert Redactor()("hunter2") == "hunter2"


def test_redactor_prefers_the_longest_secret() -> None:
    """When one secret starts another, the whole longer one goes (no tail of it is left)."""
    assert Redactor(["ab", "abcdef"])("x abcdef y") == "x *** y"


@given(text=st.text(max_size=60))
def test_redactor_empty_match_does_not_corrupt(text: str) -> None:
    """A pattern that can match the empty string replaces real matches only."""
    redact = Redactor([], [r"x*", r"(?:)"])
    assert redact(text) == re.sub(r"x+", "***", text)


def test_redactor_secret_wins_over_empty_pattern() -> None:
    """A secret is replaced even when an empty-matching pattern is also given."""
    assert Redactor(["token123"], [r"q*"])("a token123 b") == "a *** b"
