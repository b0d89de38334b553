"""The ``ess-callback`` command line: ``main``, the click group (``_cli_group.py``).

The console script imports ``main`` from here. Started as that script with ``run``'s
common form, ``ess-callback run [OPTIONS] -- COMMAND``, the command is started before
click is even imported (``_launch.py``); anything else goes to the click group.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    from typing import Any

    from ._cli_group import COMMANDS as COMMANDS
    from ._cli_group import LazyGroup as LazyGroup
    from ._cli_group import main as main

#: the console script's name (``sys.argv[0]`` until it strips a suffix)
SCRIPT = "ess-callback"


def _asked_by_the_console_script() -> bool:
    """True when ``main`` is being imported by the ``ess-callback`` script itself: the
    importer is the ``__main__`` module, at its top level, run as that script."""
    try:
        frame = sys._getframe(2)  # past __getattr__: the frame running the import
    except ValueError:
        return False
    return (
        frame.f_globals.get("__name__") == "__main__"
        and frame.f_code.co_name == "<module>"
        and os.path.basename(sys.argv[0] if sys.argv else "") == SCRIPT
    )


#: what ``_cli_group.py`` defines, loaded on first use (PEP 562)
GROUP_NAMES = frozenset({"COMMANDS", "LazyGroup", "main"})


def __getattr__(name: str) -> Any:
    if name not in GROUP_NAMES:  # e.g. the import system asking for __path__
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "main" and _asked_by_the_console_script():
        from ._launch import launch

        launch()  # returns only when the command line is not run's common form
    import importlib

    value = getattr(importlib.import_module("._cli_group", __package__), name)
    globals()[name] = value  # later look-ups skip this function
    return value
