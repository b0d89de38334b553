"""``ess-callback run``: run a command as the job and report how it ended."""

from __future__ import annotations

import click

from .._cli_options import (
    RUN_CONTEXT_SETTINGS,
    Seconds,
    common_options,
    resolve_from_cli,
    resume_gc_for_long_run,
    setup_logging,
)


class _RunCommand(click.Command):
    """``run``'s parser: everything after the first ``--`` is the command, untouched."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["ess_callback.command"] = tuple(args[cut + 1 :])
            args = args[:cut]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [self.options_metavar or "[OPTIONS]", "--", "COMMAND", "[ARG]..."]


def check_regexes(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """Each --redact REGEX must compile; a bad one is a usage error naming it."""
    import re

    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise click.BadParameter(
                f"{pattern!r} is not a valid regular expression: {exc}"
            ) from None
    return value


@click.command("run", cls=_RunCommand, context_settings=RUN_CONTEXT_SETTINGS)
@click.option(
    "--warning-exit-code",
    "warning_codes",
    metavar="N",
    multiple=True,
    type=click.IntRange(0, 255),
    help="An exit code that ends as WARNING (repeatable).",
)
@click.option(
    "--business-error-exit-code",
    "business_codes",
    metavar="N",
    multiple=True,
    type=click.IntRange(0, 255),
    help="An exit code that ends as BUSINESS_ERROR (repeatable).",
)
@click.option(
    "--timeout",
    metavar="SECONDS",
    type=Seconds(positive=True),
    help="Stop the command after this long (SIGTERM, then SIGKILL) and report ERROR.",
)
@click.option(
    "--kill-after",
    metavar="SECONDS",
    type=Seconds(),
    default=10.0,
    show_default=True,
    help="Time between SIGTERM and SIGKILL when the command is stopped.",
)
@click.option(
    "--tail-bytes",
    metavar="N",
    type=click.IntRange(min=0, max=1_000_000),
    default=2000,
    show_default=True,
    help="How much of the end of the output goes into ERROR, BUSINESS_ERROR and WARNING "
    "(at most 1000000; the message itself is cut to 4000 bytes).",
)
@click.option(
    "--capture",
    type=click.Choice(["both", "stderr", "none"]),
    default="stderr",
    show_default=True,
    help="The output whose tail is kept (both: stdout too; none: no tail).",
)
@click.option(
    "--redact",
    metavar="REGEX",
    multiple=True,
    callback=check_regexes,
    help="Hide matches as *** in all we send, spool, log or print (repeatable).",
)
@click.option(
    "--update-interval",
    metavar="SECONDS",
    type=Seconds(),
    default=10.0,
    show_default=True,
    help="At most one UPDATE per this many seconds (0: every one).",
)
@click.option(
    "--cancel-poll",
    metavar="SECONDS",
    type=Seconds(positive=True),
    # No envvar= here: resolve_settings reads ESS_CALLBACK_CANCEL_POLL when the option is
    # absent, and its message names the variable rather than the option.
    help="Look at the request in ESS this often; an operator's cancel stops the command "
    "[env: ESS_CALLBACK_CANCEL_POLL]",
)
@click.argument("stray", nargs=-1, type=click.UNPROCESSED)
@common_options
def run_command(
    warning_codes: tuple[int, ...],
    business_codes: tuple[int, ...],
    timeout: float | None,
    kill_after: float,
    tail_bytes: int,
    capture: str,
    redact: tuple[str, ...],
    update_interval: float,
    cancel_poll: float | None,
    stray: tuple[str, ...],
    base_url: str | None,
    request_id: str | None,
    request_handle: str | None,
    media_type: str | None,
    dry_run: bool | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Run COMMAND as the job (no shell), then report how it ended to ESS.

    Exit 0 ends as SUCCESS (WARNING after a WARNING line), listed exit codes as WARNING
    or BUSINESS_ERROR, any other end as ERROR. SIGTERM, SIGINT and SIGHUP are passed on to
    the command's process group and end as CANCEL; other signals (SIGQUIT, SIGALRM, SIGUSR1,
    ...) are passed on too, and SIGTSTP stops the command and then the wrapper (SIGCONT
    resumes both). Stdout and stderr pass through; the
    tail of stderr goes into the message. The command may write "UPDATE <text>" and
    "WARNING <text>" lines to the file descriptor in $ESS_CALLBACK_FD.

    Exit status: the command's own (128+N when killed by signal N, 127 not found, 126 not
    executable); when it was 0 but the status was not delivered, 75 (kept in the outbox)
    or 1 (rejected); 2 for a usage or configuration error, before anything runs.

    \b
    Examples:
      ess-callback run -- ./nightly_extract.sh --full
      ess-callback run --timeout 3600 --business-error-exit-code 3 -- ./load.sh
      ess-callback run --warning-exit-code 1 --capture both -- python3 etl.py
      ess-callback run --redact 'pwd=[^ ]+' -- ./sync.sh
      ess-callback run --dry-run -- sh -c 'echo "UPDATE half way" >&$ESS_CALLBACK_FD'
    """
    import os

    setup_logging(verbose, quiet)
    command = click.get_current_context().meta.get("ess_callback.command")
    if command is None:
        raise click.UsageError("put '--' before the command: ess-callback run [OPTIONS] -- COMMAND")
    if stray:
        raise click.UsageError(f"unexpected argument {stray[0]!r} before '--'")
    if not command or not command[0]:
        raise click.UsageError("missing COMMAND after '--'")
    both = sorted(set(warning_codes) & set(business_codes))
    if both:
        raise click.UsageError(f"exit code {both[0]} cannot be both a warning and a business error")
    from .._recording import active_recorder

    settings = resolve_from_cli(
        base_url,
        request_id,
        request_handle,
        media_type,
        dry_run,
        cancel_poll=cancel_poll,
        require=active_recorder() is None,  # as in dry run, recording needs no setting
    )
    from .._settings import environment_secrets
    from .._supervisor import RunOptions, Supervisor

    options = RunOptions(
        command=command,
        warning_codes=frozenset(warning_codes),
        business_codes=frozenset(business_codes),
        timeout=timeout,
        kill_after=kill_after,
        tail_bytes=tail_bytes,
        capture=capture,
        redact=redact,
        update_interval=update_interval,
        secrets=environment_secrets(os.environ),
    )
    code = Supervisor(settings, options, os.environ, on_started=resume_gc_for_long_run).run()
    # The end is delivered or kept and the lease settled: nothing of the teardown is needed.
    from .._lifecycle import leave

    leave(code)
