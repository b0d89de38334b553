"""``ess-callback outbox``: what the outbox holds, and dropping or requeueing entries."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from .._cli_options import CONTEXT_SETTINGS, fail, log_format_option, setup_logging
from .._errors import EXIT_FAILED, EssCallbackError

_OUTBOX_HELP = (
    "The outbox folder [env: ESS_CALLBACK_OUTBOX; default $XDG_STATE_HOME/ess-callback/outbox]"
)


def _folder(ctx: click.Context, outbox: str | None) -> Path:
    """The folder: the subcommand's --outbox, else the group's, else the default."""
    from .._settings import outbox_folder

    given = outbox or (ctx.obj or {}).get("outbox")
    return outbox_folder(given or None)


def _redactor() -> Any:
    """Hides this environment's credentials (an outbox never holds any; belt and braces)."""
    from .._credentials import auth_secrets
    from .._message import Redactor
    from .._settings import auth_from_env

    try:
        secrets = auth_secrets(auth_from_env(os.environ))
    except EssCallbackError:
        secrets = []
    return Redactor(secrets)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@click.group("outbox", invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.option("--outbox", metavar="DIR", envvar="ESS_CALLBACK_OUTBOX", help=_OUTBOX_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON array of objects on stdout.")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v INFO, -vv DEBUG).")
@click.option("-q", "--quiet", is_flag=True, help="Log only errors.")
@log_format_option
@click.pass_context
def outbox_group(
    ctx: click.Context, outbox: str | None, as_json: bool, verbose: int, quiet: bool
) -> None:
    """List what the outbox holds: pending, rejected and corrupt entries, and the leases of
    running executions, each with its name, request id, status, age, attempts and last
    error. Exit 0, 2 usage or an unreadable folder.

    \b
    Examples:
      ess-callback outbox
      ess-callback outbox --outbox /var/lib/batch/outbox --json
      ess-callback outbox drop 01796364761278598343-42-success-d555ee.json
      ess-callback outbox requeue --rejected
    """
    setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["outbox"] = outbox
    if ctx.invoked_subcommand is not None:
        return
    from ..outbox._listing import outbox_items

    folder = _folder(ctx, None)
    try:
        items = outbox_items(folder)
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    redact = _redactor()
    if as_json:
        import json

        objects = []
        for item in items:
            record = item.as_json()
            if record["last_error"] is not None:
                record["last_error"] = redact(record["last_error"])
            objects.append(record)
        click.echo(json.dumps(objects, indent=2))
        return
    if not items:
        click.echo(f"outbox {folder}: nothing pending, rejected, corrupt or running")
        return
    click.echo(f"outbox {folder}:")
    for item in items:
        fields = [item.state.ljust(8), item.name]
        if item.request_id is not None:
            fields.append(f"request {item.request_id}")
        if item.status is not None:
            fields.append(item.status)
        fields.append(f"age {_age(item.age_seconds)}")
        if item.attempts is not None:
            fields.append(f"attempts {item.attempts}")
        if item.last_error:
            fields.append(f"last error: {redact(item.last_error)}")
        click.echo("  " + "  ".join(fields))


def _names_ok(names: tuple[str, ...]) -> None:
    from ..outbox._listing import check_name

    for name in names:
        try:
            check_name(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="NAME") from None


@click.command("drop", context_settings=CONTEXT_SETTINGS)
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.option("--outbox", metavar="DIR", help=_OUTBOX_HELP)
@log_format_option
@click.pass_context
def drop_command(ctx: click.Context, names: tuple[str, ...], outbox: str | None) -> None:
    """Delete outbox entries by NAME (pending, rejected or corrupt): their status is given
    up and will never reach ESS. Exit 0, 1 a named entry does not exist, 2 usage.

    \b
    Examples:
      ess-callback outbox drop 01796364761278598343-42-success-d555ee.json
    """
    from ..outbox._listing import NoSuchEntryError, drop

    _names_ok(names)
    folder = _folder(ctx, outbox)
    code = 0
    for name in names:
        try:
            state, item = drop(folder, name)
        except NoSuchEntryError as exc:
            _say(str(exc))
            code = EXIT_FAILED
            continue
        except EssCallbackError as exc:
            fail(str(exc), exc.exit_code)
        what = f"{item.status} for request {item.request_id}" if item.status else "its content"
        click.echo(f"dropped {state} entry {name}: {what} is given up and will not be sent")
    sys.exit(code)


@click.command("requeue", context_settings=CONTEXT_SETTINGS)
@click.argument("names", metavar="NAME...", nargs=-1)
@click.option("--rejected", "all_rejected", is_flag=True, help="Requeue every rejected entry.")
@click.option("--outbox", metavar="DIR", help=_OUTBOX_HELP)
@log_format_option
@click.pass_context
def requeue_command(
    ctx: click.Context, names: tuple[str, ...], all_rejected: bool, outbox: str | None
) -> None:
    """Move rejected entries back among the pending ones, once the cause is fixed (e.g. a
    permission granted); the next 'ess-callback flush' sends them. Exit 0, 1 a named entry
    is not among the rejected, 2 usage.

    \b
    Examples:
      ess-callback outbox requeue 01796364761278598343-42-success-d555ee.json
      ess-callback outbox requeue --rejected && ess-callback flush
    """
    from ..outbox._listing import NoSuchEntryError, rejected_names, requeue

    if bool(names) == all_rejected:
        raise click.UsageError("give the NAME of rejected entries, or --rejected (not both)")
    _names_ok(names)
    folder = _folder(ctx, outbox)
    try:
        targets = list(names) or rejected_names(folder)
    except EssCallbackError as exc:
        fail(str(exc), exc.exit_code)
    code = 0
    for name in targets:
        try:
            requeue(folder, name)
        except NoSuchEntryError as exc:
            _say(str(exc))
            code = EXIT_FAILED
            continue
        except EssCallbackError as exc:
            fail(str(exc), exc.exit_code)
        click.echo(f"requeued {name}: 'ess-callback flush' will send it")
    if not targets:
        click.echo("no rejected entry to requeue")
    sys.exit(code)


outbox_group.add_command(drop_command)
outbox_group.add_command(requeue_command)


def _say(text: str) -> None:
    from .._output import say

    say(text)
