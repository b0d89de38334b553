"""Frozen value classes without attrs.

The settings ``run`` checks before it starts its command (and the credentials they hold)
are built from these: importing attrs costs more than everything else ``run`` does before
the command starts. Changing a field raises attrs' ``FrozenInstanceError``, as for the
attrs classes elsewhere (attrs is imported only then).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import Any


class Frozen:
    """Fields (``_fields``, also the ``__slots__`` of a subclass) set once in ``__init__``
    with ``object.__setattr__``; compared and hashed by value, copied and pickled."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: Any) -> None:
        import attrs  # only on this mistake

        raise attrs.exceptions.FrozenInstanceError()

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __getstate__(self) -> tuple[Any, ...]:
        return self._values()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self._fields, state, strict=True):
            object.__setattr__(self, name, value)
