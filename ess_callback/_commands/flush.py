"""``ess-callback flush``: send what the outbox holds."""

from __future__ import annotations

import sys

import click

from .._cli_options import (
    CONTEXT_SETTINGS,
    fail,
    log_format_option,
    setup_logging,
)
from .._errors import EssCallbackError


@click.command(context_settings=CONTEXT_SETTINGS)
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
@log_format_option
def flush(outbox: str | None, dry_run: bool | None, verbose: int, quiet: bool) -> None:
    """Send the final statuses kept in the outbox again, oldest first.

    Each goes to the base URL it was meant for, with the credentials of this environment
    (ESS_USERNAME + ESS_PASSWORD(_FILE) or ESS_TOKEN(_FILE); ESS_CA_BUNDLE, ESS_MEDIA_TYPE,
    ESS_CALLBACK_RETRY_SECONDS). Delivered files are deleted; refused ones (400, 403, 404)
    move to rejected/, unreadable ones to corrupt/; 401 or an unreachable scheduler keep
    them. Safe to run concurrently and from cron. Prints one summary line. Exit 0 all
    delivered (or nothing to do), 1 something was rejected or unreadable, 75 something is
    still pending, 2 usage, configuration, or an outbox folder that cannot be read or
    written.

    \b
    Examples:
      ess-callback flush
      ess-callback flush --outbox /var/lib/batch/outbox -v
      ess-callback flush --dry-run
    """
    setup_logging(verbose, quiet)
    from ..outbox import flush_outbox

    try:
        report = flush_outbox(outbox or None, dry_run=dry_run)
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        # Claims die with the process: whatever was not yet deleted is sent next time.
        fail("flush interrupted; what was not delivered stays in the outbox", 130)
    click.echo(f"ess-callback flush: {report.summary()}")
    sys.exit(report.exit_code)
