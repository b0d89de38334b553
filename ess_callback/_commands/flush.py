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
@click.option(
    "--metrics",
    metavar="FILE",
    help="After the run, write Prometheus gauges (outbox depth, oldest entry, delivered) to "
    "FILE atomically, for node exporter's textfile collector (e.g. .../ess_callback.prom).",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v INFO, -vv DEBUG).")
@click.option("-q", "--quiet", is_flag=True, help="Log only errors.")
@log_format_option
def flush(
    outbox: str | None, dry_run: bool | None, metrics: str | None, verbose: int, quiet: bool
) -> None:
    """Send the final statuses kept in the outbox again, oldest first.

    Each goes to the base URL it was meant for, with the credentials of this environment
    (ESS_USERNAME + ESS_PASSWORD(_FILE) or ESS_TOKEN(_FILE); ESS_CA_BUNDLE, ESS_MEDIA_TYPE,
    ESS_CALLBACK_RETRY_SECONDS); with credentials, only the files for ESS_BASE_URL's
    server are sent, the others wait for their own server's settings. First, each job of
    this host that died without reporting (a lease in running/ whose process is gone) is
    reported as ERROR. Delivered files are deleted; refused ones (400, 403, 404)
    move to rejected/, unreadable ones to corrupt/; 401 or an unreachable scheduler keep
    them. Each file gets one attempt per sweep; what failed with a 5xx, 429, 408 or a
    reset is swept again, after a short wait, while the retry budget lasts (one for the
    whole run); a server is given up for the run after 30 failures in a row, or 3 refused
    or unanswered attempts. Safe to run concurrently and from cron. Prints one summary
    line. Exit 0 all delivered (or nothing to do), 1 something was rejected or unreadable,
    75 something is still pending, 2 usage, configuration, or an outbox folder that cannot
    be read or written.

    \b
    Examples:
      ess-callback flush
      ess-callback flush --outbox /var/lib/batch/outbox -v
      ess-callback flush --dry-run
      ess-callback flush -q --metrics /var/lib/node_exporter/textfile/ess_callback.prom
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
    if metrics and not report.dry_run:
        from ..outbox._metrics import write_metrics

        try:
            write_metrics(metrics, report)
        except EssCallbackError as exc:
            click.echo(f"ess-callback flush: {report.summary()}")
            fail(str(exc), exc.exit_code)
    click.echo(f"ess-callback flush: {report.summary()}")
    sys.exit(report.exit_code)
