"""``ess-callback check``: verify a host's set-up before the job runs, posting nothing."""

from __future__ import annotations

import sys

import click

from .._cli_options import CONTEXT_SETTINGS, common_options, setup_logging
from .._errors import EXIT_FAILED, EXIT_OK


@click.command("check", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help='One JSON object: {"ok", "checks"}.')
@common_options
def check(
    as_json: bool,
    base_url: str | None,
    request_id: str | None,
    request_handle: str | None,
    media_type: str | None,
    dry_run: bool | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Check, without posting any status, that this host can report on its ESS request.

    Every setting at once (all problems listed, not only the first), the outbox folder,
    name resolution, the TCP connection, TLS (with ESS_CA_BUNDLE), the credentials, and
    the request itself, read with GET: it must exist and be RUNNING. One line per check,
    'ok' or 'FAIL' with what to fix; secrets are never shown. Exit 0 all passed, 1 a
    check failed, 2 usage.

    \b
    Examples:
      ess-callback check
      ESS_REQUEST_ID=4711 ess-callback check --json
      sudo -u batch env $(cat /etc/batch/ess.env) ess-callback check
    """
    setup_logging(verbose, quiet)
    from .._preflight import run_checks

    checks = run_checks(
        base_url=base_url or None,
        request_id=request_id or None,
        request_handle=request_handle,
        media_type=media_type,
    )
    ok = all(item.ok for item in checks)
    if as_json:
        import json

        objects = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        click.echo(json.dumps({"ok": ok, "checks": objects}, indent=2))
    else:
        for item in checks:
            click.echo(item.line())
        skipped = sum(item.detail.startswith("not checked") for item in checks)
        failed = sum(not item.ok for item in checks) - skipped
        later = f", {skipped} not checked because of them" if skipped else ""
        click.echo("all checks passed" if ok else f"{failed} check(s) failed{later}")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)
