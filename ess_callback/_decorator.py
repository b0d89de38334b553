"""``@job``: a function whose every call is one execution reported to ESS.

See docs/howto/python-job.md.

A plain function runs inside ``with JobExecution(...)``, an ``async def`` one inside
``async with JobExecution(...)``: the end rules, signals and the final send are those of
``JobExecution`` itself, nothing is decided here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from ._execution import JobExecution

P = ParamSpec("P")
R = TypeVar("R")

#: the parameter through which a decorated function receives its execution
JOB_PARAMETER = "job"
_PASSABLE = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class JobDecorator:
    """What ``job(**kwargs)`` returns: applied to a function, it reports each call."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        # A misspelt argument is a TypeError now, not at the job's first run.
        inspect.signature(JobExecution).bind(**kwargs)
        self.kwargs = kwargs

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"job({args})"

    # An async function matches both: the first wins (older mypy calls that overlap unsafe).
    @overload
    def __call__(  # type: ignore[overload-overlap, unused-ignore]
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R | None]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R | None]: ...
    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"@job cannot report {func.__qualname__}: a generator returns before its "
                "work is done; decorate the function that consumes it"
            )
        passes_job = _takes_job(func)
        kwargs = self.kwargs

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **call_kwargs: Any) -> Any:
                _check_no_job(func, passes_job, call_kwargs)
                async with JobExecution(**kwargs) as execution:
                    if passes_job:
                        call_kwargs[JOB_PARAMETER] = execution
                    return await func(*args, **call_kwargs)
                return None  # a control exception was consumed

            return run_async

        @functools.wraps(func)
        def run(*args: Any, **call_kwargs: Any) -> Any:
            _check_no_job(func, passes_job, call_kwargs)
            with JobExecution(**kwargs) as execution:
                if passes_job:
                    call_kwargs[JOB_PARAMETER] = execution
                result = func(*args, **call_kwargs)
                if inspect.iscoroutine(result):  # an async callable not seen as one
                    result.close()
                    raise TypeError(
                        f"{func!r} returned a coroutine: @job reports an async function "
                        "only when it is written async def"
                    )
                return result
            return None  # a control exception was consumed

        return run


def job(**kwargs: Any) -> JobDecorator:
    """Report every call of the decorated function as one execution: a fresh
    ``JobExecution(**kwargs)`` per call (the same keyword arguments).

    >>> @job(update_interval=1)
    ... def main(*, job: JobExecution) -> None:
    ...     job.update("half way")

    Works on plain and ``async def`` functions (``async with`` then, which never blocks
    the event loop). A function with a parameter named ``job`` receives the execution as
    that keyword. The return value is passed through; None when a control exception
    (``BusinessError``, ``JobWarning``, ...) was consumed.
    """
    return JobDecorator(kwargs)


def _takes_job(func: Callable[..., Any]) -> bool:
    """True when *func* has a parameter ``job`` that can be passed by keyword."""
    try:
        parameter = inspect.signature(func).parameters.get(JOB_PARAMETER)
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return False
    if parameter is None or parameter.kind == inspect.Parameter.VAR_KEYWORD:
        return False
    if parameter.kind not in _PASSABLE:
        raise TypeError(
            f"@job passes the execution to {func.__qualname__} as job=..., "
            "but its job parameter is positional-only"
        )
    return True


def _check_no_job(func: Callable[..., Any], passes_job: bool, call_kwargs: dict[str, Any]) -> None:
    if passes_job and JOB_PARAMETER in call_kwargs:
        raise TypeError(
            f"{func.__qualname__}() got job= from its caller: @job passes a fresh "
            "JobExecution itself"
        )
