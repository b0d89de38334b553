"""Errors raised by ess-callback: one root, typed subclasses that carry the scheduler's answer."""

from __future__ import annotations

#: exit statuses of the command line, and of a job whose end could not be reported
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: EX_TEMPFAIL (sysexits.h): not delivered now, kept in the outbox for later
EXIT_TEMPFAIL = 75


class EssCallbackError(Exception):
    """Root of every error ess-callback raises."""

    #: exit status the command line uses for this error
    exit_code = EXIT_FAILED


class ConfigurationError(EssCallbackError, ValueError):
    """A setting is missing or malformed; the message names the setting and its variable."""

    exit_code = EXIT_USAGE


class DeliveryError(EssCallbackError):
    """A callback could not be delivered.

    Carries what the scheduler said: ``http_status``, ``error_code`` (like ``ESS-00500``),
    ``title``, ``detail``, and how many ``attempts`` were made.
    """

    #: True when trying again later may succeed (network trouble, 5xx, 429, 408)
    retryable = False
    #: when no answer came: the short network reason ("connection refused", "timed out", ...)
    network: str | None = None
    #: the seconds a 429 or 503 asked to wait (``Retry-After``), when it said
    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        error_code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.error_code = error_code
        self.title = title
        self.detail = detail
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, http_status={self.http_status!r}, "
            f"error_code={self.error_code!r}, attempts={self.attempts!r})"
        )


class RejectedError(DeliveryError):
    """The scheduler refused the callback with a 4xx answer; sending it again will not help."""


class InvalidInputError(RejectedError):
    """400: the scheduler found the callback invalid."""


class AuthenticationError(RejectedError):
    """401: the credentials are missing, wrong or expired."""


class NotAllowedError(RejectedError):
    """403: the credentials may not report on this request."""


class RequestNotFoundError(RejectedError):
    """404: the scheduler does not know this request (or the watched job does not exist)."""


class RedirectedError(RejectedError):
    """3xx: the scheduler answered with a redirect, which is never followed (the credentials
    would go along). Not retried, but a final status so answered goes to the outbox: once
    ESS_BASE_URL names the final address, ``flush`` delivers it. ``location`` holds where
    the answer pointed (redacted), or None."""

    def __init__(self, message: str, *, location: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.location = location


class SchedulerUnavailableError(DeliveryError):
    """5xx, 429, 408 or a network failure, still so after the retries were spent."""

    retryable = True


def rejected_class(http_status: int) -> type[RejectedError]:
    """The RejectedError subclass for a 4xx status."""
    return {
        400: InvalidInputError,
        401: AuthenticationError,
        403: NotAllowedError,
        404: RequestNotFoundError,
    }.get(http_status, RejectedError)


class DeliveryInterrupted(BaseException):
    """Raised by a signal handler to stop a delivery in progress (``ess-callback send``).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the
    way swallows it; the client turns it into a ``SchedulerUnavailableError``, so that a
    final status then goes to the outbox.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
