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


def parse_status_argument(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """STATUS, case-insensitive; an unknown one is a usage error listing the valid ones."""
    from .._status import Status

    try:
        return Status.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def complete_status(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of STATUS: the statuses that start with what was typed (any case)."""
    from click.shell_completion import CompletionItem

    from .._status import Status

    typed = incomplete.upper()
    return [CompletionItem(s.value) for s in Status if s.value.startswith(typed)]


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument(
    "status", metavar="STATUS", callback=parse_status_argument, shell_complete=complete_status
)
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
    sys.exit(send_status(settings, status, message))


def send_status(settings: Any, status: Any, message: str | None) -> int:
    """Send one status through a ``ReportingSession``; return the exit status.

    SIGTERM, SIGINT or SIGHUP during an HTTP delivery stops the retries once, and a final
    status then goes to the outbox instead of being lost (never the writing of the file).
    """
    from .._errors import DeliveryInterrupted
    from .._message import Redactor
    from .._sender import make_sender
    from .._session import ReportingSession
    from .._signals import SignalGuard

    stop = SignalGuard(DeliveryInterrupted, once=True, say_late=False)
    # The session says itself, in one line, where an undelivered status went.
    sender = make_sender(settings, announce_spool=False, stop=stop)
    session = ReportingSession(settings, sender, redact=Redactor(settings.secrets()))
    if not sender.local:
        stop.install(armed=False)
    try:
        return session.end(status, message)
    finally:
        stop.restore()


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
