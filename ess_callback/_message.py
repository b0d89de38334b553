"""Status messages: byte-bounded truncation and the text that describes an exception."""

from __future__ import annotations

import re
from collections.abc import Iterable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    import logging

DEFAULT_MAX_MESSAGE_BYTES = 4000
_SURROGATE = re.compile("[\ud800-\udfff]")


def _marker(removed: int) -> bytes:
    return f"...[truncated {removed} bytes]...".encode()


def _cut_head(data: bytes, size: int) -> bytes:
    """The longest prefix of *data* of at most *size* bytes that ends on a character boundary."""
    if size >= len(data):
        return data
    end = size
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end]


def _cut_tail(data: bytes, size: int) -> bytes:
    """The longest suffix of *data* of at most *size* bytes that starts on a character boundary."""
    if size <= 0:
        return b""
    start = len(data) - size
    if start <= 0:
        return data
    while start < len(data) and (data[start] & 0xC0) == 0x80:
        start += 1
    return data[start:]


def truncate_message(text: str, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> str:
    """Fit *text* into *max_bytes* UTF-8 bytes.

    Text that fits is returned unchanged (but for lone surrogates, which have no UTF-8
    form and become U+FFFD). Longer text keeps its head and its tail around a
    ``...[truncated N bytes]...`` marker, where N counts the bytes left out; no character is
    ever split. When the limit is too small even for the marker, only the head is kept.
    """
    # A lone surrogate (say, from a file name decoded with surrogateescape) has no UTF-8
    # form; the scheduler would store garbage or refuse the body, so it becomes U+FFFD.
    text = _SURROGATE.sub("\ufffd", text)
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    if max_bytes <= 0:
        return ""
    room = max_bytes - len(_marker(len(data)))
    if room < 2:
        return _cut_head(data, max_bytes).decode("utf-8")
    # The marker's own length depends on the number it shows; shrink the room until
    # head + marker + tail fits (at most a couple of rounds).
    while True:
        head = _cut_head(data, room - room // 2)
        tail = _cut_tail(data, room // 2)
        marker = _marker(len(data) - len(head) - len(tail))
        if len(head) + len(marker) + len(tail) <= max_bytes:
            return (head + marker + tail).decode("utf-8")
        room -= 1


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exception_text(exc: object) -> str:
    """``str(exc)``, never raising: a value whose ``__str__`` fails (or returns no string)
    is shown by its repr, or as ``<unprintable Type>``."""
    try:
        text = str(exc)
    except Exception:
        try:
            return repr(exc)
        except Exception:
            return f"<unprintable {type(exc).__name__}>"
    return text


def describe_exception(exc: BaseException, *, where: bool = True) -> str:
    """``Type: text``, then (with *where*) the file:line where it was raised.

    Never raises: when the exception has no text to give, its repr (which names the type)
    or ``<unprintable Type>`` stands for ``Type: text``.
    """
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:
        out = exception_text(exc)
    else:
        out = f"{name}: {text}" if text else name
    if where:
        tb = exc.__traceback__
        if tb is not None:
            while tb.tb_next is not None:
                tb = tb.tb_next
            code = tb.tb_frame.f_code
            out += f"\n  at {code.co_filename}:{tb.tb_lineno} in {code.co_name}"
    return out


def secret_forms(secret: str) -> set[str]:
    """*secret* and the forms it takes on the wire: URL-encoded (a password in a URL or a
    form) and base64 (a Basic ``Authorization`` header carries ``user:password`` so; the
    unpadded form also catches it inside longer base64 text that starts with it)."""
    import base64
    from urllib.parse import quote, quote_plus

    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    for encoding in ("utf-8", "latin-1"):
        try:
            raw = secret.encode(encoding)
        except UnicodeEncodeError:
            continue
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms.add(encoded.decode("ascii"))
            forms.add(encoded.decode("ascii").rstrip("="))
    # An encoded form of a very short secret would hide ordinary words ("a" -> "YQ").
    return {secret} | {form for form in forms if len(form) >= 4}


class Redactor:
    """Replaces secret values and patterns with ``***`` in text we send, spool, log or print.

    Each secret is also hidden in its URL-encoded and base64 forms (see ``secret_forms``).
    """

    def __init__(self, secrets: Iterable[str] = (), patterns: Iterable[str | re.Pattern[str]] = ()):
        forms = {form for s in secrets if s for form in secret_forms(s)}
        literal = sorted(forms, key=len, reverse=True)
        parts = [re.escape(s) for s in literal]
        sources = [p.pattern if isinstance(p, re.Pattern) else p for p in patterns]
        parts += sources
        self._regex = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None
        #: True when a match may run over a line break (a pattern, or a secret holding
        #: one): text joined from lines must then be redacted whole, not line by line
        self.crosses_lines = bool(sources) or any("\n" in form for form in forms)

    def __call__(self, text: str) -> str:
        if self._regex is None or not text:
            return text
        # An empty match (a pattern like "x*") must not sprinkle markers between characters.
        return self._regex.sub(lambda m: "***" if m.group(0) else "", text)

    def __bool__(self) -> bool:
        return self._regex is not None


class RedactingFilter:
    """A logging filter hiding secrets in every record of a logger (``run`` adds one to
    the ``ess_callback`` logger while it works). Duck-typed (``logging`` accepts any object
    with a ``filter`` method), so that this module does not import logging."""

    def __init__(self, redact: Redactor) -> None:
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info:
            import logging

            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._redact(text)
        return True
