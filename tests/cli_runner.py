"""One way for the tests to build click's ``CliRunner``, on every click the package supports.

click 8.2 and later always keep stderr apart from stdout (``result.stderr``); click 8.1
mixes them unless asked not to, and then ``result.stderr`` raises ``ValueError``.
"""

from __future__ import annotations

import inspect
from typing import Any

from click.testing import CliRunner

#: click 8.1 takes ``mix_stderr`` (default True); 8.2 removed it and never mixes
_MIXES_BY_DEFAULT = "mix_stderr" in inspect.signature(CliRunner.__init__).parameters


def cli_runner(**kwargs: Any) -> CliRunner:
    """A ``CliRunner`` whose result has ``stdout`` and ``stderr`` apart, on click 8.1 and 8.2+."""
    if _MIXES_BY_DEFAULT:
        kwargs.setdefault("mix_stderr", False)
    return CliRunner(**kwargs)
