"""The lowest versions setup.cfg declares, as pip constraints (``NAME==FLOOR``), or a check
that they are the versions installed.

    python .ci/lowest_pins.py > constraints.txt     # runtime and test requirements
    python .ci/lowest_pins.py --check               # exit 1 unless each floor is installed

Every requirement must have a ``>=`` floor: one without could not be tested at its lowest.
Standard library only, so that it runs before anything is installed.
"""

from __future__ import annotations

import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"
FLOOR = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9.]*)\s*(?:,.*)?")


def floors() -> list[tuple[str, str]]:
    """(name, lowest version) of every runtime and test requirement of setup.cfg."""
    config = configparser.ConfigParser()
    config.read(SETUP_CFG, encoding="utf-8")
    lines = config["options"]["install_requires"].splitlines()
    lines += config["options.extras_require"]["test"].splitlines()
    found = []
    for line in lines:
        requirement = line.split("#")[0].strip()
        if not requirement:
            continue
        match = FLOOR.fullmatch(requirement)
        if match is None:
            sys.exit(f"setup.cfg: {requirement!r} has no '>=' floor to test")
        found.append((match.group(1), match.group(2)))
    return found


def release(version: str) -> tuple[int, ...]:
    """``2.28`` and ``2.28.0`` alike, as numbers without trailing zeros."""
    numbers = [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4]]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        wrong = []
        for name, floor in floors():
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                installed = "(none)"
            print(f"  {name}=={installed}")
            if release(installed) != release(floor):
                wrong.append(f"{name} {installed} installed, {floor} declared")
        for problem in wrong:
            print(f"not the declared lowest version: {problem}", file=sys.stderr)
        return 1 if wrong else 0
    for name, floor in floors():
        print(f"{name}=={floor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
