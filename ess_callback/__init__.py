"""ess-callback: report a job's end to Oracle Enterprise Scheduler, reliably.

Importing this package is cheap: ``requests`` is loaded only when something is sent.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    from typing import Any

    from ._client import SchedulerClient
    from ._control import BusinessError, JobCancelled, JobPaused, JobSuspended, JobWarning
    from ._decorator import job
    from ._errors import (
        AuthenticationError,
        ConfigurationError,
        DeliveryError,
        EssCallbackError,
        InvalidInputError,
        NotAllowedError,
        RejectedError,
        RequestNotFoundError,
        SchedulerUnavailableError,
    )
    from ._execution import JobExecution
    from ._model import Callback, Outcome
    from ._settings import BearerAuth
    from ._status import Status

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BearerAuth",
    "BusinessError",
    "Callback",
    "ConfigurationError",
    "DeliveryError",
    "EssCallbackError",
    "InvalidInputError",
    "JobCancelled",
    "JobExecution",
    "JobPaused",
    "JobSuspended",
    "JobWarning",
    "NotAllowedError",
    "Outcome",
    "RejectedError",
    "RequestNotFoundError",
    "SchedulerClient",
    "SchedulerUnavailableError",
    "Status",
    "__version__",
    "job",
]

# Each public name and the private module that defines it. Names are loaded on first use
# (PEP 562), so that ``ess-callback --version`` and ``import ess_callback`` stay cheap.
_WHERE = {
    "AuthenticationError": "_errors",
    "BearerAuth": "_settings",
    "BusinessError": "_control",
    "Callback": "_model",
    "ConfigurationError": "_errors",
    "DeliveryError": "_errors",
    "EssCallbackError": "_errors",
    "InvalidInputError": "_errors",
    "JobCancelled": "_control",
    "JobExecution": "_execution",
    "JobPaused": "_control",
    "JobSuspended": "_control",
    "JobWarning": "_control",
    "NotAllowedError": "_errors",
    "Outcome": "_model",
    "RejectedError": "_errors",
    "RequestNotFoundError": "_errors",
    "SchedulerClient": "_client",
    "SchedulerUnavailableError": "_errors",
    "Status": "_status",
    "job": "_decorator",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
