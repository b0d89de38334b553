"""The ``ess-callback`` command line: only the click layer.

Each command resolves its settings at the edge and hands them to the module that does the
work; heavy imports (requests, http.server) happen inside the commands that need them, so
``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import logging
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


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one clear line on stderr and exit with *code* (never a traceback)."""
    click.echo(f"ess-callback: {message}", err=True)
    sys.exit(code)


def setup_logging(verbose: int, quiet: bool) -> None:
    """``ess_callback`` logger on stderr: WARNING by default, -v INFO, -vv DEBUG, -q ERROR."""
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


@click.group(context_settings=CONTEXT_SETTINGS)
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


def deliver_final(
    settings: Any,
    status: Any,
    message: str | None,
    *,
    secrets: tuple[str, ...] = (),
    redact: tuple[str, ...] = (),
    announce_spool: bool = True,
) -> Any:
    """Send one final callback through the sending seam; return its Outcome.

    With ``announce_spool=False`` the caller reports an undelivered status itself."""
    from ._message import Redactor, truncate_message
    from ._model import Callback
    from ._sender import make_sender

    scrub = Redactor([*settings.secrets(), *secrets], redact)
    if message is not None:
        message = truncate_message(scrub(message)) or None
    sender = make_sender(settings, announce_spool=announce_spool)
    try:
        return sender.send(
            Callback(settings.request_id, settings.request_handle, status, message),
            final=status.is_final,
        )
    finally:
        close = getattr(sender, "close", None)
        if close is not None:
            close()


def exit_code_for(outcome: Any) -> int:
    """0 delivered, 75 kept in the outbox, 1 rejected (or lost)."""
    if outcome.delivered:
        return EXIT_OK
    if outcome.spooled_to is not None:
        return EXIT_TEMPFAIL
    return EXIT_FAILED


@main.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--outbox",
    metavar="DIR",
    envvar="ESS_CALLBACK_OUTBOX",
    help="The outbox folder [env: ESS_CALLBACK_OUTBOX; default "
    "$XDG_STATE_HOME/ess-callback/outbox]",
)
@click.option(
    "--dry-run",
    is_flag=True,
    default=None,
    help="Send nothing and touch no file; print each callback that would be sent as a "
    "JSON line on stderr [env: ESS_CALLBACK_DRY_RUN]",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v INFO, -vv DEBUG).")
@click.option("-q", "--quiet", is_flag=True, help="Log only errors.")
def flush(outbox: str | None, dry_run: bool | None, verbose: int, quiet: bool) -> None:
    """Send the final statuses kept in the outbox again, oldest first.

    Each goes to the base URL it was meant for, with the credentials of this environment
    (ESS_USERNAME + ESS_PASSWORD(_FILE) or ESS_TOKEN(_FILE); ESS_CA_BUNDLE, ESS_MEDIA_TYPE,
    ESS_CALLBACK_RETRY_SECONDS). Delivered files are deleted; refused ones (400, 403, 404)
    move to rejected/; 401 or an unreachable scheduler keep them. Safe to run concurrently
    and from cron. Prints one summary line. Exit 0 all delivered (or nothing to do),
    1 something was rejected, 75 something is still pending, 2 usage, configuration, or
    an outbox folder that cannot be read or written.

    \b
    Examples:
      ess-callback flush
      ess-callback flush --outbox /var/lib/batch/outbox -v
      ess-callback flush --dry-run
    """
    setup_logging(verbose, quiet)
    from ._flush import flush_outbox

    try:
        report = flush_outbox(outbox or None, dry_run=dry_run)
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        # Claims die with the process: whatever was not yet deleted is sent next time.
        fail("flush interrupted; what was not delivered stays in the outbox", 130)
    click.echo(f"ess-callback flush: {report.summary()}")
    sys.exit(report.exit_code)


@main.command("fake-server", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDRESS",
    help="Address to listen on (0.0.0.0 for every interface).",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on (0: any free port).",
)
@click.option("--username", metavar="USER", help="Require HTTP Basic auth with this user.")
@click.option("--password", metavar="PASSWORD", help="The password --username must give.")
@click.option("--token", metavar="TOKEN", help="Require this bearer token instead.")
@click.option(
    "-v", "--verbose", count=True, help="Also log every HTTP request on stderr (-v INFO)."
)
@click.option("-q", "--quiet", is_flag=True, help="Do not log refused requests.")
def fake_server(
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    token: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Run a fake ESS scheduler on loopback and print each callback it receives.

    Prints its URL and the 'export ESS_...' lines to paste into a job's shell, then one
    line per callback as it arrives. Refused calls (bad body, wrong credentials) are logged
    on stderr. It accepts any request id and handle, keeps each request's state (GET
    /ess/rest/scheduler/v1/requests/ID), and stops cleanly on Ctrl-C or SIGTERM (exit 0).
    A port already in use exits 2.

    \b
    Examples:
      ess-callback fake-server
      ess-callback fake-server --port 0 --username alice --password s3cret
      ess-callback fake-server --token test-token -v
    \b
    Then, in another shell:
      export ESS_BASE_URL=http://127.0.0.1:8765 ESS_REQUEST_ID=1 ESS_REQUEST_HANDLE=handle-1
      ess-callback send SUCCESS
    """
    setup_logging(verbose, quiet)
    if (username is None) != (password is None):
        raise click.UsageError("--username and --password go together")
    if token is not None and username is not None:
        raise click.UsageError("use --username/--password or --token, not both")
    from .testing._serve import serve

    try:
        serve(host=host, port=port, username=username, password=password, token=token)
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    sys.exit(EXIT_OK)


def parse_status_argument(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """STATUS, case-insensitive; an unknown one is a usage error listing the valid ones."""
    from ._status import Status

    try:
        return Status.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("status", metavar="STATUS", callback=parse_status_argument)
@click.option("-m", "--message", metavar="TEXT", help="The statusMessage to send.")
@click.option(
    "--message-file",
    metavar="PATH",
    help="Read the statusMessage from a UTF-8 file ('-' for standard input); "
    "a trailing newline is dropped.",
)
@common_options
def send(
    status: Any,
    message: str | None,
    message_file: str | None,
    base_url: str | None,
    request_id: str | None,
    request_handle: str | None,
    media_type: str | None,
    dry_run: bool | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Post one STATUS for this job's ESS request.

    STATUS is one of SUCCESS, UPDATE, PAUSE, WARNING, ERROR, BUSINESS_ERROR, CANCEL,
    SUSPEND (any case). Exit 0 delivered, 75 not delivered but kept in the outbox (run
    'ess-callback flush' later), 1 rejected, 2 usage or configuration error.

    \b
    Examples:
      ess-callback send SUCCESS
      ess-callback send warning --message "3 rows skipped"
      ess-callback send ERROR --message-file /tmp/job.err
      ess-callback send UPDATE -m "50% done" --dry-run
    """
    setup_logging(verbose, quiet)
    if message is not None and message_file is not None:
        raise click.UsageError("use --message or --message-file, not both")
    if message_file is not None:
        message = read_message_file(message_file)
    settings = resolve_from_cli(base_url, request_id, request_handle, media_type, dry_run)
    outcome = deliver_final(settings, status, message, announce_spool=False)
    code = exit_code_for(outcome)
    if code != EXIT_OK:
        from ._sender import undelivered_text

        click.echo(f"ess-callback: {undelivered_text(outcome)}", err=True)
    sys.exit(code)


def read_message_file(path: str) -> str:
    """The text of *path* ('-': standard input) without its trailing newline; an unreadable
    file ends the command with one line and exit 2 (click.File would print a usage block)."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        fail(f"cannot read --message-file {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"cannot read --message-file {path}: not UTF-8 text")
    return text.removesuffix("\n").removesuffix("\r")


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


@main.command("run", cls=_RunCommand, context_settings=RUN_CONTEXT_SETTINGS)
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
    type=click.FloatRange(min=0, min_open=True),
    help="Stop the command after this long (SIGTERM, then SIGKILL) and report ERROR.",
)
@click.option(
    "--kill-after",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Time between SIGTERM and SIGKILL when the command is stopped.",
)
@click.option(
    "--tail-bytes",
    metavar="N",
    type=click.IntRange(min=0),
    default=2000,
    show_default=True,
    help="How much of the end of the output goes into ERROR, BUSINESS_ERROR and WARNING.",
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
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="At most one UPDATE per this many seconds (0: every one).",
)
@click.option(
    "--cancel-poll",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    envvar="ESS_CALLBACK_CANCEL_POLL",
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
    the command's process group and end as CANCEL. Stdout and stderr pass through; the
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
    from ._recording import active_recorder

    settings = resolve_from_cli(
        base_url,
        request_id,
        request_handle,
        media_type,
        dry_run,
        cancel_poll=cancel_poll,
        require=active_recorder() is None,  # as in dry run, recording needs no setting
    )
    from ._supervisor import RunOptions, Supervisor, environment_secrets

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
    sys.exit(Supervisor(settings, options, os.environ).run())


@main.command("wait", context_settings=CONTEXT_SETTINGS)
@click.argument(
    "api", metavar="API", type=click.Choice(["ess", "saas-batch", "paas", "huawei"], False)
)
@click.argument("job_id", metavar="JOB_ID")
@click.option(
    "--base-url",
    metavar="URL",
    help="The watched API's server (for 'ess' defaults to ESS_BASE_URL).",
)
@click.option(
    "--identity-domain", metavar="DOMAIN", help="paas: the identity domain (X-ID-TENANT-NAME)."
)
@click.option("--project-id", metavar="ID", help="huawei: the project id of the job's path.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=86400.0,
    show_default=True,
    metavar="S",
    help="Give up after S seconds (0: no limit); exit 75.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="S",
    help="Seconds between polls at first; it grows gently while nothing changes.",
)
@click.option(
    "--relay",
    is_flag=True,
    help="Also report the watched job's progress and end to this job's own ESS request "
    "(ESS_* settings).",
)
@click.option(
    "--update-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="S",
    help="With --relay: at most one UPDATE every S seconds.",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v INFO, -vv DEBUG).")
@click.option("-q", "--quiet", is_flag=True, help="Log only errors.")
def wait_command(
    api: str,
    job_id: str,
    base_url: str | None,
    identity_domain: str | None,
    project_id: str | None,
    timeout: float,
    poll: float,
    relay: bool,
    update_interval: float,
    verbose: int,
    quiet: bool,
) -> None:
    """Wait for another job (API: ess, saas-batch, paas, huawei) to end.

    Credentials for the watched API come from WATCH_USERNAME + WATCH_PASSWORD(_FILE) or
    WATCH_TOKEN(_FILE); for 'ess' the ESS_* ones serve when no WATCH_* is set. Shows a
    progress bar on a terminal, else one line per change on stdout. Exit 0 succeeded,
    1 failed, cancelled or not found, 75 timed out or unreachable, 2 usage.

    \b
    Examples:
      ess-callback wait ess 4711 --timeout 3600
      WATCH_TOKEN_FILE=~/.fa-token ess-callback wait saas-batch 44046 \\
          --base-url https://fa.example.com --relay
      ess-callback wait paas 17465 --base-url https://apaas.us.oraclecloud.com \\
          --identity-domain ExampleIdentityDomain
      ess-callback wait huawei f588ce71-e26c-400d-8981-f854355f6849 \\
          --base-url https://dataarts.example.com --project-id 09bb24e6fe80d23d2fa2c010b53b418c
    """
    import os

    from .watch._command import WaitOptions, run_wait

    setup_logging(verbose, quiet)
    options = WaitOptions(
        api=api,
        job_id=job_id,
        base_url=base_url or None,
        identity_domain=identity_domain,
        project_id=project_id,
        timeout=timeout or None,
        poll=poll,
        relay=relay,
        update_interval=update_interval,
    )
    try:
        code = run_wait(options, os.environ, tty=sys.stderr.isatty())
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    sys.exit(code)
