"""``ess-callback wait``: wait on another job, optionally relaying its progress."""

from __future__ import annotations

import sys

import click

from .._cli_options import (
    CONTEXT_SETTINGS,
    Seconds,
    fail,
    log_format_option,
    setup_logging,
)
from .._errors import EssCallbackError
from ..watch._registry import APIS as WATCHED_APIS


@click.command("wait", context_settings=CONTEXT_SETTINGS)
@click.argument("api", metavar="API", type=click.Choice(list(WATCHED_APIS), case_sensitive=False))
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
    type=Seconds(),
    default=86400.0,
    show_default=True,
    metavar="S",
    help="Give up after S seconds (0: no limit); exit 75.",
)
@click.option(
    "--poll",
    type=Seconds(positive=True),
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
    type=Seconds(),
    default=10.0,
    show_default=True,
    metavar="S",
    help="With --relay: at most one UPDATE every S seconds.",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v INFO, -vv DEBUG).")
@click.option("-q", "--quiet", is_flag=True, help="Log only errors.")
@log_format_option
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
    1 failed, cancelled or not found, 75 timed out, unreachable or an unreadable answer,
    2 usage, or the watched API refused the credentials (401, 403).

    \b
    Examples:
      ess-callback wait ess 4711 --timeout 3600
      WATCH_TOKEN_FILE=~/.fa-token ess-callback wait saas-batch 44046 \\
          --base-url https://fa.example.com --relay
      ess-callback wait paas 17465 --base-url https://apaas.us.oraclecloud.com \\
          --identity-domain ExampleIdentityDomain
      ess-callback wait huawei f588ce71-e26c-400d-8981-f854355f6849 \\
          --base-url https://cfw.cn-north-4.myhuaweicloud.com \\
          --project-id 09bb24e6fe80d23d2fa2c010b53b418c
    """
    from ..watch._command import WaitOptions, run_wait

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
        code = run_wait(options, tty=sys.stderr.isatty())
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    sys.exit(code)
