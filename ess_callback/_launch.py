"""``ess-callback run [OPTIONS] -- COMMAND`` started before click is imported.

The job waits for everything the wrapper does before its command starts. That is only:
the settings checked (bad ones exit 2 and the command never runs), the lease written, the
signal handlers, the pipes and the fork (``Supervisor.run``); importing click, attrs and
requests is not, and happens once the command runs, if ever.

:func:`launch` handles the common form only, with the settings from the environment:
``run``'s own options given as ``--name VALUE`` or ``--name=VALUE``, ``-v``, ``-vv``,
``-q``, then ``--`` and the command. Whatever else it meets (another command, an option
it does not know, a value it would refuse, ``--help``, shell completion, a log format
the variable spells wrongly) it hands back untouched to the click group, which then does
exactly what it always did, messages and exit codes included. Every value is converted
and checked as the click options do (``_commands/run.py``).
"""

from __future__ import annotations

import math
import os
import sys

from ._checks import MAX_SECONDS

# typing.TYPE_CHECKING without importing typing: every module loaded before the command
# starts spells it so (mypy takes any TYPE_CHECKING as true), and uses typing's names in
# annotations only, which are not evaluated at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: turns an option's text into its value, or None where the click option would refuse it
    Converter = Callable[[str], Any]


def _int_in(low: int, high: int) -> Converter:
    def convert(text: str) -> int | None:
        try:
            number = int(text)  # as click.INT (and click.IntRange) does
        except ValueError:
            return None
        return number if low <= number <= high else None

    return convert


def _seconds(*, positive: bool = False) -> Converter:
    def convert(text: str) -> float | None:
        try:
            number = float(text)  # as _cli_options.Seconds does
        except ValueError:
            return None
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            return None
        return None if number > MAX_SECONDS else number

    return convert


def _choice(*choices: str) -> Converter:
    return lambda text: text if text in choices else None


def _regex(text: str) -> str | None:
    import re

    try:
        re.compile(text)
    except re.error:
        return None
    return text


#: the options with a value: name -> (keyword of run_command, converter)
VALUED: dict[str, tuple[str, Converter]] = {
    "--warning-exit-code": ("warning_codes", _int_in(0, 255)),
    "--business-error-exit-code": ("business_codes", _int_in(0, 255)),
    "--timeout": ("timeout", _seconds(positive=True)),
    "--kill-after": ("kill_after", _seconds()),
    "--tail-bytes": ("tail_bytes", _int_in(0, 1_000_000)),
    "--capture": ("capture", _choice("both", "stderr", "none")),
    "--redact": ("redact", _regex),
    "--update-interval": ("update_interval", _seconds()),
    "--cancel-poll": ("cancel_poll", _seconds(positive=True)),
}
#: the options that may be given more than once (each value kept, in order)
MULTIPLE = frozenset({"warning_codes", "business_codes", "redact"})
#: the defaults of run's options (_commands/run.py)
DEFAULTS: dict[str, Any] = {
    "warning_codes": (),
    "business_codes": (),
    "timeout": None,
    "kill_after": 10.0,
    "tail_bytes": 2000,
    "capture": "stderr",
    "redact": (),
    "update_interval": 10.0,
    "cancel_poll": None,
    "dry_run": None,
    "verbose": 0,
    "quiet": False,
}
FLAGS = {"-v": ("verbose", 1), "--verbose": ("verbose", 1), "-vv": ("verbose", 2)}


def parse(args: list[str]) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """``run``'s options and command from *args* (what follows ``run``), or None when they
    are not the common form or hold anything click would refuse."""
    if "--" not in args:
        return None
    cut = args.index("--")
    command = tuple(args[cut + 1 :])
    if not command or not command[0]:
        return None
    options = dict(DEFAULTS)
    given = args[:cut]
    i = 0
    while i < len(given):
        word = given[i]
        i += 1
        name, eq, value = word.partition("=")
        if name in VALUED:
            if not eq:
                if i >= len(given):
                    return None
                value = given[i]
                i += 1
            key, convert = VALUED[name]
            converted = convert(value)
            if converted is None:
                return None
            if key in MULTIPLE:
                options[key] = (*options[key], converted)
            else:
                options[key] = converted
        elif word in FLAGS:
            key, count = FLAGS[word]
            options[key] += count
        elif word in ("-q", "--quiet"):
            options["quiet"] = True
        elif word == "--dry-run":
            options["dry_run"] = True
        else:
            return None  # another option, a stray argument, --help, a group option...
    if set(options["warning_codes"]) & set(options["business_codes"]):
        return None
    return options, command


def _environment_is_plain(env: dict[str, str] | os._Environ[str]) -> bool:
    """No shell completion asked for, and a log format click would accept."""
    if env.get("_ESS_CALLBACK_COMPLETE"):
        return False
    log_format = env.get("ESS_CALLBACK_LOG_FORMAT") or ""
    return log_format.lower() in ("", "text", "json")


def launch() -> None:
    """Run ``ess-callback run`` for the process's own command line when it is the common
    form, and never return; return at once (nothing done) otherwise."""
    args = sys.argv[1:]
    if not args or args[0] != "run" or not _environment_is_plain(os.environ):
        return
    parsed = parse(args[1:])
    if parsed is None:
        return
    try:
        from . import _posix  # noqa: F401  (the click group says why, off POSIX)
    except ImportError:
        return
    from ._lifecycle import allow, pause_gc, resume_gc

    pause_gc()
    allow()
    try:
        _run(*parsed)
    except (EOFError, KeyboardInterrupt):
        # As click's standalone mode: a blank line, "Aborted!", exit 1.
        sys.stderr.write("\nAborted!\n")
        sys.exit(1)
    except OSError as exc:
        import errno

        if exc.errno != errno.EPIPE:
            raise
        # As click's standalone mode: a closed pipe ends the command with 1, quietly
        # (no flush of the broken stream at the exit).
        os._exit(1)
    finally:
        resume_gc()


def _run(options: dict[str, Any], command: tuple[str, ...]) -> None:
    """``run_command`` (``_commands/run.py``) without click: the same steps, in order."""
    from . import _log
    from ._errors import EssCallbackError
    from ._output import configure_logging, say, set_format, set_request_id

    log_format = os.environ.get("ESS_CALLBACK_LOG_FORMAT")
    if log_format:
        set_format(log_format)
    verbose, quiet = options["verbose"], options["quiet"]
    # Applied before the first record; logging is imported once the command runs.
    _log.defer(lambda logger: configure_logging(verbose, quiet))
    from ._job_settings import environment_secrets, resolve_settings
    from ._recording import active_recorder

    try:
        settings = resolve_settings(
            dry_run=options["dry_run"],
            cancel_poll=options["cancel_poll"],
            require=active_recorder() is None,
        )
    except EssCallbackError as exc:
        say(str(exc))  # as _cli_options.fail
        sys.exit(exc.exit_code)
    set_request_id(settings.request_id)
    from ._lifecycle import leave, resume_gc_for_long_run
    from ._run_options import RunOptions
    from ._supervisor import Supervisor

    run_options = RunOptions(
        command=command,
        warning_codes=frozenset(options["warning_codes"]),
        business_codes=frozenset(options["business_codes"]),
        timeout=options["timeout"],
        kill_after=options["kill_after"],
        tail_bytes=options["tail_bytes"],
        capture=options["capture"],
        redact=options["redact"],
        update_interval=options["update_interval"],
        secrets=environment_secrets(os.environ),
    )
    code = Supervisor(settings, run_options, os.environ, on_started=resume_gc_for_long_run).run()
    leave(code)
