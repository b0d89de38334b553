"""Testing kit: record callbacks instead of sending them, and a fake ESS server on loopback.

``record_callbacks()`` and the pytest fixture ``ess_callbacks`` need nothing else;
``FakeScheduler`` is a real HTTP server that speaks the executionStatus wire format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._recording import Recorder, record_callbacks

if TYPE_CHECKING:
    from ._fake import FakeScheduler, ReceivedRequest, SubmittedRequest

__all__ = ["FakeScheduler", "ReceivedRequest", "Recorder", "SubmittedRequest", "record_callbacks"]


def __getattr__(name: str) -> Any:
    # FakeScheduler pulls in http.server; load it only for those who use it.
    if name in ("FakeScheduler", "ReceivedRequest", "SubmittedRequest"):
        from . import _fake

        return getattr(_fake, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
