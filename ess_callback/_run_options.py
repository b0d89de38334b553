"""``RunOptions``: what ``ess-callback run`` was asked to do (validated by the command line).

A frozen value without attrs (``_frozen.py``): it is built before the command starts.
"""

from __future__ import annotations

from ._frozen import Frozen


class RunOptions(Frozen):
    """What ``ess-callback run`` was asked to do (validated by the command line)."""

    __slots__ = _fields = (
        "command",
        "warning_codes",
        "business_codes",
        "timeout",
        "kill_after",
        "tail_bytes",
        "capture",
        "redact",
        "update_interval",
        "secrets",
    )
    command: tuple[str, ...]
    warning_codes: frozenset[int]
    business_codes: frozenset[int]
    timeout: float | None
    kill_after: float
    tail_bytes: int
    capture: str
    redact: tuple[str, ...]
    update_interval: float
    #: literal values to hide besides the credentials (see ``_settings.environment_secrets``)
    secrets: tuple[str, ...]

    def __init__(
        self,
        command: tuple[str, ...],
        warning_codes: frozenset[int] = frozenset(),
        business_codes: frozenset[int] = frozenset(),
        timeout: float | None = None,
        kill_after: float = 10.0,
        tail_bytes: int = 2000,
        capture: str = "stderr",
        redact: tuple[str, ...] = (),
        update_interval: float = 10.0,
        secrets: tuple[str, ...] = (),
    ) -> None:
        values = locals()
        for name in self._fields:
            object.__setattr__(self, name, values[name])

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields if n != "secrets")
        return f"RunOptions({shown})"
