"""Sphinx configuration of the ess-callback manual.

Build it (warnings are errors, as in CI)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The pages are MyST Markdown, readable on GitHub as they are: cross-links are plain relative
Markdown links, which MyST resolves to the built pages.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # autodoc and sphinx-click import the package from the tree

import ess_callback  # noqa: E402

project = "ess-callback"
author = "the ess-callback authors"
copyright = "the ess-callback authors"
release = ess_callback.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_click",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# MyST: "#a-heading" links as GitHub writes them, ::: fences for directives.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# A block without an info string is not highlighted (the example harness asks for one).
highlight_language = "none"

# autodoc: members in source order, type hints in the description, not the signature (the
# annotations name private modules that the reference does not document).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "show-inheritance": True}

# Every cross-reference must resolve (-n), but for the classes of other projects (no
# intersphinx: CI builds without a network) and the private bases some public classes have.
nitpicky = True
nitpick_ignore = [
    ("py:class", "collections.abc.Sequence"),
    ("py:class", "enum.Enum"),
    ("py:class", "pathlib.Path"),
    ("py:class", "requests.Session"),
    ("py:class", "ess_callback._frozen.Frozen"),
    ("py:class", "ess_callback.testing._faults.FaultInjection"),
    ("py:class", "ess_callback.watch._http.HttpReader"),
]

# No intersphinx: CI builds without a network.
html_theme = "alabaster"
html_title = f"ess-callback {release}"
html_static_path: list[str] = []


# Command lines are quoted as typed: "--" stays two hyphens, quotes stay straight.
smartquotes = False

#: what reStructuredText would read as markup in the commands' help texts, which are plain
#: text (``ESS_*``, ``***``, ``'export ESS_...'``): a star, a backquote, a bar, a backslash,
#: and an underscore that ends a word (a reference)
_RST_MARKUP = re.compile(r"[\\*`|]|(?<=\w)_(?=\W|$)")


def _plain(line: str) -> str:
    return _RST_MARKUP.sub(lambda match: "\\" + match.group(0), line)


def _plain_description(app: object, ctx: object, lines: list[str]) -> None:
    """sphinx-click reads a command's help as reStructuredText; ours is plain text (but for
    click's ``\\b`` paragraphs, which sphinx-click turns into line blocks)."""
    for i, line in enumerate(lines):
        lines[i] = "| " + _plain(line[2:]) if line.startswith("| ") else _plain(line)


def _plain_options(app: object, ctx: object, lines: list[str]) -> None:
    """The help of each option (the indented lines under ``.. option::``), as plain text."""
    for i, line in enumerate(lines):
        text = line.lstrip()
        if line.startswith("    ") and not text.startswith((":", "..")):
            lines[i] = line[: len(line) - len(text)] + _plain(text)


def setup(app: object) -> None:
    """Highlight ``crontab`` blocks (an info string the examples use) as shell lines; show
    the commands' help texts as the plain text they are."""
    from pygments.lexers.shell import BashLexer

    app.add_lexer("crontab", BashLexer)  # type: ignore[attr-defined]
    app.connect("sphinx-click-process-description", _plain_description)  # type: ignore[attr-defined]
    app.connect("sphinx-click-process-epilog", _plain_description)  # type: ignore[attr-defined]
    app.connect("sphinx-click-process-options", _plain_options)  # type: ignore[attr-defined]
