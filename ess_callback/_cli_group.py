"""The ``ess-callback`` command line: only the click layer (``cli.main`` is this group).

Each command resolves its settings at the edge and hands them to the module that does the
work; heavy imports (requests, http.server) happen inside the commands that need them, so
``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

from typing import Any

import click

from . import __version__
from ._cli_options import CONTEXT_SETTINGS, fail, group_logging_options, pause_gc, resume_gc
from ._output import reset as reset_output

#: each command and the module (in ``_commands``) that defines it, in the order of --help
COMMANDS = {
    "run": "run:run_command",
    "send": "send:send",
    "flush": "flush:flush",
    "outbox": "outbox:outbox_group",
    "check": "check:check",
    "wait": "wait:wait_command",
    "fake-server": "fake_server:fake_server",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used.

    ``ess-callback --version`` and ``ess-callback run`` then pay only for what they run
    (click's documented pattern for lazily loaded subcommands).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line with the cyclic GC paused for start-up.

        Start-up creates many long-lived objects (modules, classes) and the collector's
        passes over them cost about 5% of ``ess-callback run -- true`` (measured side by
        side). A command that then runs long calls ``resume_gc_for_long_run()``; otherwise
        the collector comes back when the command returns.
        """
        pause_gc()
        reset_output()
        if not args and kwargs.get("args") is None and kwargs.get("standalone_mode", True):
            # The process's own command line (a caller in-process passes its arguments).
            from ._lifecycle import allow

            allow()
        try:
            return super().main(*args, **kwargs)
        finally:
            resume_gc()

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.ClickException as exc:
            raise _as_json(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise _as_json(exc) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        import importlib

        try:  # every command needs POSIX signals, process groups or file locks
            importlib.import_module("._posix", __package__)
        except ImportError as exc:
            fail(str(exc))
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(f"._commands.{module}", __package__), name)
        assert isinstance(command, click.Command)
        return command


class _JsonUsageError(click.ClickException):
    """A usage error shown as one JSON line (``--log-format json``), same exit status."""

    def __init__(self, original: click.ClickException) -> None:
        text = original.format_message()
        ctx = getattr(original, "ctx", None)
        if isinstance(original, click.UsageError) and ctx is not None:
            text += f" (try '{ctx.command_path} --help')"
        super().__init__(text)
        # Per instance (the original's 1 or 2); a class variable in newer click's stubs.
        object.__setattr__(self, "exit_code", original.exit_code)

    def show(self, file: Any = None) -> None:
        from ._output import say

        say(self.message)


def _as_json(exc: click.ClickException) -> click.ClickException:
    """*exc* as click shows it, or as one JSON line in JSON log mode (click's usage block
    is several lines of text, which a log pipeline reading JSON would choke on)."""
    from ._output import json_mode

    return _JsonUsageError(exc) if json_mode() and not isinstance(exc, _JsonUsageError) else exc


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(
    __version__, "-V", "--version", prog_name="ess-callback", message="%(prog)s %(version)s"
)
@group_logging_options
def main() -> None:
    """Report a batch job's end to Oracle Enterprise Scheduler (ESS).

    \b
    Examples:
      ess-callback run -- ./nightly_extract.sh --full
      ess-callback send SUCCESS
      ess-callback send ERROR --message "source database unreachable"
      ess-callback check
      ess-callback flush --metrics /var/lib/node_exporter/textfile/ess_callback.prom
      ess-callback outbox --json
      ess-callback -v --log-format json send SUCCESS
      ess-callback wait saas-batch 44046 --relay
      ess-callback fake-server --port 8765

    Settings come from ESS_BASE_URL, ESS_REQUEST_ID, ESS_REQUEST_HANDLE and the credentials
    from ESS_USERNAME + ESS_PASSWORD(_FILE) or ESS_TOKEN(_FILE). All of them: the
    manual, docs/reference/environment.md.
    Shell completion (bash): eval "$(_ESS_CALLBACK_COMPLETE=bash_source ess-callback)".
    """
