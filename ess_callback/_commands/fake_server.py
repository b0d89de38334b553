"""``ess-callback fake-server``: the loopback fake scheduler from the terminal."""

from __future__ import annotations

import sys

import click

from .._cli_options import (
    CONTEXT_SETTINGS,
    fail,
    log_format_option,
    setup_logging,
)
from .._errors import EXIT_OK, EssCallbackError
from ..testing._watched import APIS as WATCHED_APIS


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
@click.option(
    "--request",
    "requests",
    multiple=True,
    metavar="ID[:HANDLE]",
    help="Submit this request at start (repeatable); the handle is generated when not given. "
    "Without any, one request is submitted.",
)
@click.option(
    "--auto-submit",
    is_flag=True,
    help="Submit an unknown request on its first callback, with that callback's handle.",
)
@click.option(
    "--watched",
    multiple=True,
    metavar="API:JOB_ID:STATUS[@PERCENT],...",
    help=f"Fake a job of a watched API ({', '.join(WATCHED_APIS)}) for 'ess-callback wait': "
    "each GET answers the next status (the last repeats). Repeatable.",
)
@click.option("--username", metavar="USER", help="Require HTTP Basic auth with this user.")
@click.option("--password", metavar="PASSWORD", help="The password --username must give.")
@click.option("--token", metavar="TOKEN", help="Require this bearer token instead.")
@click.option(
    "-v", "--verbose", count=True, help="Also log every HTTP request on stderr (-v INFO)."
)
@click.option("-q", "--quiet", is_flag=True, help="Do not log refused requests.")
@log_format_option
def fake_server(
    host: str,
    port: int,
    requests: tuple[str, ...],
    auto_submit: bool,
    watched: tuple[str, ...],
    username: str | None,
    password: str | None,
    token: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Run a fake ESS scheduler on loopback and print each callback it receives.

    Prints its URL, each submitted request with its handle and the 'export ESS_...' lines
    to paste into a job's shell, then one line per callback as it arrives (the whole
    message on one line). As in ESS, requests exist only once submitted (--request, POST
    /ess/rest/scheduler/v1/requests, or --auto-submit): a callback for an unknown request
    is refused 404, one with another handle 400. Refused calls are logged on stderr. It
    keeps each request's state (GET /ess/rest/scheduler/v1/requests/ID), answers cancel and
    checkInCancelling, and stops cleanly on Ctrl-C or SIGTERM (exit 0). A port already in
    use exits 2.

    \b
    Examples:
      ess-callback fake-server --request 42:demo-42
      ess-callback fake-server --port 0 --username alice --password s3cret
      ess-callback fake-server --auto-submit --token test-token -v
      ess-callback fake-server --watched saas-batch:44046:ENQUEUED,RUNNING@50,SUCCEEDED
    \b
    Then, in another shell:
      export ESS_BASE_URL=http://127.0.0.1:8765 ESS_REQUEST_ID=42 ESS_REQUEST_HANDLE=demo-42
      ess-callback send SUCCESS
    """
    setup_logging(verbose, quiet)
    if (username is None) != (password is None):
        raise click.UsageError("--username and --password go together")
    if token is not None and username is not None:
        raise click.UsageError("use --username/--password or --token, not both")
    from ..testing._serve import serve
    from ..testing._watched import parse_watched

    if not _usable_host(host):
        shown = host.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise click.BadParameter(
            f"'{shown}' is not an address or a host name (e.g. 127.0.0.1, ::1, localhost)",
            param_hint="--host",
        )
    submitted: list[tuple[int | None, str | None]] = []
    for text in requests:
        raw_id, _, handle = text.partition(":")
        if not (raw_id.isascii() and raw_id.isdigit() and int(raw_id) > 0) or (
            ":" in text and not handle
        ):
            raise click.BadParameter(
                f"{text!r} is not ID[:HANDLE] (a positive request id, then an optional handle)",
                param_hint="--request",
            )
        if any(int(raw_id) == known for known, _ in submitted):
            raise click.BadParameter(f"request {raw_id} is given twice", param_hint="--request")
        submitted.append((int(raw_id), handle or None))
    jobs = []
    for text in watched:
        try:
            jobs.append(parse_watched(text))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--watched") from None
    try:
        serve(
            host=host,
            port=port,
            username=username,
            password=password,
            token=token,
            requests=submitted,
            auto_submit=auto_submit,
            watched=jobs,
        )
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    sys.exit(EXIT_OK)


def _usable_host(host: str) -> bool:
    """True when *host* can be handed to ``bind`` at all: printable, encodable for DNS (raw
    bytes from the shell arrive as lone surrogates, which no resolver takes)."""
    if not host or any(not ch.isprintable() or "\ud800" <= ch <= "\udfff" for ch in host):
        return False
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True
