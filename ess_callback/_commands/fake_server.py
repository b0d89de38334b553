"""``ess-callback fake-server``: the loopback fake scheduler from the terminal."""

from __future__ import annotations

import sys

import click

from .._cli_options import (
    CONTEXT_SETTINGS,
    fail,
    setup_logging,
)
from .._errors import EXIT_OK, EssCallbackError


@click.command("fake-server", context_settings=CONTEXT_SETTINGS)
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
    from ..testing._serve import serve

    try:
        serve(host=host, port=port, username=username, password=password, token=token)
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    sys.exit(EXIT_OK)
