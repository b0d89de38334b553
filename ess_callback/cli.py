"""The ``ess-callback`` command line: only the click layer.

Each command resolves its settings at the edge and hands them to the module that does the
work; heavy imports (requests, http.server) happen inside the commands that need them, so
``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from . import __version__
from ._errors import EssCallbackError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: not delivered now, kept in the outbox for later

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: ``run`` stops parsing options at the first argument: the rest belongs to COMMAND
RUN_CONTEXT_SETTINGS = {**CONTEXT_SETTINGS, "allow_interspersed_args": False}

#: each command and the module (in ``_commands``) that defines it, in the order of --help
COMMANDS = {
    "run": "run:run_command",
    "send": "send:send",
    "flush": "flush:flush",
    "wait": "wait:wait_command",
    "fake-server": "fake_server:fake_server",
}


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one clear line on stderr and exit with *code* (never a traceback)."""
    click.echo(f"ess-callback: {message}", err=True)
    sys.exit(code)


def setup_logging(verbose: int, quiet: bool) -> None:
    """``ess_callback`` logger on stderr: WARNING by default, -v INFO, -vv DEBUG, -q ERROR."""
    import logging

    level = (
        logging.ERROR
        if quiet
        else (logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    )
    logger = logging.getLogger("ess_callback")
    logger.setLevel(level)
    for existing in logger.handlers:
        if getattr(existing, "_ess_callback", False):
            # Follow the current stderr: under CliRunner each invocation has its own.
            existing.setStream(sys.stderr)  # type: ignore[attr-defined]
    if not any(getattr(h, "_ess_callback", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("ess-callback: %(levelname)s: %(message)s"))
        handler._ess_callback = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


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

        from ._settings import MAX_SECONDS

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
        return resolve_settings(
            base_url=base_url or None,
            request_id=request_id or None,
            request_handle=request_handle,
            media_type=media_type,
            dry_run=dry_run,
            **extra,
        )
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)


_gc_paused = False


def resume_gc(*, freeze: bool = False) -> None:
    """Turn the cyclic GC back on if the command line paused it for start-up.

    With *freeze*, what start-up created is first moved out of the collector's sight
    (``gc.freeze``): it lives as long as the process, so scanning it again is wasted.
    """
    global _gc_paused
    if _gc_paused:
        import gc

        _gc_paused = False
        if freeze:
            gc.freeze()
        gc.enable()


def resume_gc_for_long_run() -> None:
    """``resume_gc(freeze=True)``, for a command that now runs long (``run``)."""
    resume_gc(freeze=True)


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used.

    ``ess-callback --version`` and ``ess-callback run`` then pay only for what they run
    (click's documented pattern for lazily loaded subcommands).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line with the cyclic GC paused for start-up.

        Start-up creates many long-lived objects (modules, classes) and the collector's
        passes over them cost about 5% of ``ess-callback run -- true`` (measured side by
        side). A command that then runs long calls ``resume_gc_for_long_run()``; otherwise
        the collector comes back when the command returns.
        """
        global _gc_paused
        import gc

        _gc_paused = gc.isenabled()
        gc.disable()
        try:
            return super().main(*args, **kwargs)
        finally:
            resume_gc()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        import importlib

        try:  # every command needs POSIX signals, process groups or file locks
            importlib.import_module("._posix", __package__)
        except ImportError as exc:
            fail(str(exc))
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(f"._commands.{module}", __package__), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(
    __version__, "-V", "--version", prog_name="ess-callback", message="%(prog)s %(version)s"
)
def main() -> None:
    """Report a batch job's end to Oracle Enterprise Scheduler (ESS).

    \b
    Examples:
      ess-callback run -- ./nightly_extract.sh --full
      ess-callback send SUCCESS
      ess-callback send ERROR --message "source database unreachable"
      ess-callback flush
      ess-callback wait saas-batch 44046 --relay
      ess-callback fake-server --port 8765

    Settings come from ESS_BASE_URL, ESS_REQUEST_ID, ESS_REQUEST_HANDLE and the credentials
    from ESS_USERNAME + ESS_PASSWORD(_FILE) or ESS_TOKEN(_FILE). See the README for all.
    """
