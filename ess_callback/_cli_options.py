"""What the commands of the command line share: options, the seconds type, one-line
failures, logging on stderr, settings from options, and the start-up pause of the GC.

``cli.py`` assembles the commands; each command module and ``cli.py`` import this one, and
it imports neither of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from ._errors import EXIT_USAGE, EssCallbackError
from ._lifecycle import pause_gc as pause_gc
from ._lifecycle import resume_gc as resume_gc
from ._lifecycle import resume_gc_for_long_run as resume_gc_for_long_run

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: ``run`` stops parsing options at the first argument: the rest belongs to COMMAND
RUN_CONTEXT_SETTINGS = {**CONTEXT_SETTINGS, "allow_interspersed_args": False}


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one clear line on stderr and exit with *code* (never a traceback)."""
    from ._output import say

    say(message)  # a JSON object with --log-format json
    sys.exit(code)


#: where the group's own -v/-q/--log-format leave their values for the command
_META_VERBOSE = "ess_callback.verbose"
_META_QUIET = "ess_callback.quiet"
_META_FORMAT = "ess_callback.log_format"


def _group_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    ctx.meta[_META_VERBOSE] = value


def _group_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    ctx.meta[_META_QUIET] = value


def _log_format(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Apply --log-format at once (eager), so even a usage failure found later is in it.

    Given before the command (``ess-callback --log-format json send``) it holds unless the
    command's own option is typed on the command line too.
    """
    from click.core import ParameterSource

    if value is None:
        return
    typed = ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE
    if typed or _META_FORMAT not in ctx.meta:
        ctx.meta[_META_FORMAT] = value
        from ._output import set_format

        set_format(value)


def log_format_option(func: F) -> F:
    """``--log-format json|text`` [env ESS_CALLBACK_LOG_FORMAT], for every command."""
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"], case_sensitive=False),
        envvar="ESS_CALLBACK_LOG_FORMAT",
        expose_value=False,
        is_eager=True,
        callback=_log_format,
        help="Lines on stderr as text (default) or one JSON object each "
        "[env: ESS_CALLBACK_LOG_FORMAT]",
    )(func)


def group_logging_options(func: F) -> F:
    """-v/-q/--log-format given before the command, which honours them."""
    func = log_format_option(func)
    func = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_group_quiet,
        help="Log only errors (any command).",
    )(func)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_group_verbose,
        help="More logging on stderr, for any command (-v INFO, -vv DEBUG).",
    )(func)


def setup_logging(verbose: int, quiet: bool) -> None:
    """``ess_callback`` logger on stderr: WARNING by default, -v INFO, -vv DEBUG, -q ERROR.

    -v/-q given before the command count too; lines are JSON objects with
    ``--log-format json``.
    """
    from ._output import configure_logging

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        verbose += int(ctx.meta.get(_META_VERBOSE, 0) or 0)
        quiet = quiet or bool(ctx.meta.get(_META_QUIET, False))
    configure_logging(verbose, quiet)


class Seconds(click.types.FloatParamType):
    """A number of seconds: finite and not negative (more than zero with ``positive``).

    click.FloatRange lets NaN through (every comparison with it is false), and NaN or
    infinity as a timeout or poll interval means a busy loop or no limit at all.
    """

    name = "seconds"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        from ._checks import MAX_SECONDS

        bound = "more than zero" if self.positive else "zero or more"
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0 or (self.positive and number == 0):
            self.fail(f"{value!r} is not a number of seconds ({bound}).", param, ctx)
        if number > MAX_SECONDS:
            self.fail(
                f"{value!r} is more than ten years: give at most {MAX_SECONDS:.0f} seconds.",
                param,
                ctx,
            )
        return number


def common_options(func: F) -> F:
    """The options shared by ``run`` and ``send``, each also read from its variable."""
    options = [
        click.option(
            "--base-url",
            envvar="ESS_BASE_URL",
            metavar="URL",
            help="ESS server, e.g. https://ess.example.com [env: ESS_BASE_URL]",
        ),
        click.option(
            "--request-id",
            envvar="ESS_REQUEST_ID",
            metavar="ID",
            help="The ESS request number to report on [env: ESS_REQUEST_ID]",
        ),
        click.option(
            "--request-handle",
            envvar="ESS_REQUEST_HANDLE",
            metavar="HANDLE",
            help="The request handle ESS passed to the job [env: ESS_REQUEST_HANDLE]",
        ),
        click.option(
            "--media-type",
            envvar="ESS_MEDIA_TYPE",
            metavar="TYPE",
            # Validated by resolve_settings, whose message names ESS_MEDIA_TYPE (a
            # click.Choice error would not say that the bad value came from the variable).
            help="Content-Type of the callback body: application/json (default) or "
            "application/vnd.oracle.resource+json [env: ESS_MEDIA_TYPE]",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            default=None,
            # No envvar= here: resolve_settings reads ESS_CALLBACK_DRY_RUN when the flag
            # is absent, and names the variable when its value is not a yes/no word.
            help="Send nothing; print each callback as a JSON line on stderr "
            "[env: ESS_CALLBACK_DRY_RUN]",
        ),
        click.option(
            "-v", "--verbose", count=True, help="More logging on stderr (-v INFO, -vv DEBUG)."
        ),
        click.option("-q", "--quiet", is_flag=True, help="Log only errors."),
        log_format_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_from_cli(
    base_url: str | None,
    request_id: str | None,
    request_handle: str | None,
    media_type: str | None,
    dry_run: bool | None,
    **extra: Any,
) -> Any:
    """Settings for the job's own request: options (already merged with their variables),
    then the remaining environment. A ConfigurationError ends the command with exit 2."""
    from ._settings import resolve_settings

    # An empty value typed on the command line is a mistake, not "use the environment".
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        from click.core import ParameterSource

        for name, value in (("base_url", base_url), ("request_id", request_id)):
            if value == "" and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                option = "--" + name.replace("_", "-")
                raise click.BadParameter("must not be empty", ctx=ctx, param_hint=option)
    try:
        settings = resolve_settings(
            base_url=base_url or None,
            request_id=request_id or None,
            request_handle=request_handle,
            media_type=media_type,
            dry_run=dry_run,
            **extra,
        )
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    from ._output import set_request_id

    set_request_id(settings.request_id)  # named on each line with --log-format json
    return settings
