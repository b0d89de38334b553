"""``ess-callback send``: post one status for the job's own request."""

from __future__ import annotations

import sys
from typing import Any

import click

from .._cli_options import (
    CONTEXT_SETTINGS,
    common_options,
    fail,
    resolve_from_cli,
    setup_logging,
)
from .._errors import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL


def deliver_final(
    settings: Any,
    status: Any,
    message: str | None,
    *,
    secrets: tuple[str, ...] = (),
    redact: tuple[str, ...] = (),
    announce_spool: bool = True,
    stop_on_signal: bool = False,
) -> Any:
    """Send one final callback through the sending seam; return its Outcome.

    With ``announce_spool=False`` the caller reports an undelivered status itself. With
    ``stop_on_signal`` (the ``send`` command), SIGTERM, SIGINT or SIGHUP during an HTTP
    delivery stops the retries and a final status goes to the outbox instead of being lost.
    """
    from .._errors import DeliveryInterrupted
    from .._message import Redactor, truncate_message
    from .._model import Callback
    from .._sender import make_sender
    from .._signals import SignalGuard

    scrub = Redactor([*settings.secrets(), *secrets], redact)
    if message is not None:
        message = truncate_message(scrub(message)) or None
    # A signal stops the retries once (the status then goes to the outbox), never the
    # writing of the outbox file.
    stop = SignalGuard(DeliveryInterrupted, once=True, say_late=False) if stop_on_signal else None
    sender = make_sender(settings, announce_spool=announce_spool, stop=stop)
    if stop is not None and not sender.local:
        stop.install(armed=False)
    try:
        return sender.send(
            Callback(settings.request_id, settings.request_handle, status, message),
            final=status.is_final,
        )
    finally:
        if stop is not None:
            stop.restore()
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


def parse_status_argument(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """STATUS, case-insensitive; an unknown one is a usage error listing the valid ones."""
    from .._status import Status

    try:
        return Status.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(context_settings=CONTEXT_SETTINGS)
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
    from .._recording import active_recorder

    # Under record_callbacks() nothing is sent, so nothing is required (as for run).
    settings = resolve_from_cli(
        base_url,
        request_id,
        request_handle,
        media_type,
        dry_run,
        require=active_recorder() is None,
    )
    outcome = deliver_final(settings, status, message, announce_spool=False, stop_on_signal=True)
    code = exit_code_for(outcome)
    if code != EXIT_OK:
        from .._sender import undelivered_text

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
