"""ess-callback: report a job's end to Oracle Enterprise Scheduler, reliably.

Importing this package is cheap: ``requests`` is loaded only when something is sent.
"""

from ._client import SchedulerClient
from ._control import BusinessError, JobCancelled, JobPaused, JobSuspended, JobWarning
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
]
