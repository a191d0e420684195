"""A live, read-only view of names held elsewhere (the activation registry, the initializer
names): a tuple-like sequence that reads its source on every use, so names registered later
show up in views made before."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


class LiveNames(Sequence):
    """A tuple-like view of ``source()`` (called on every use)."""

    def __init__(self, source: Callable[[], tuple[str, ...]], doc: str | None = None) -> None:
        self._source = source
        if doc is not None:
            self.__doc__ = doc

    def _names(self) -> tuple[str, ...]:
        return tuple(self._source())

    def __getitem__(self, i: Any) -> Any:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, list, LiveNames)):
            return self._names() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Any) -> tuple[str, ...]:
        return self._names() + tuple(other)

    def __radd__(self, other: Any) -> tuple[str, ...]:
        return tuple(other) + self._names()

    def __repr__(self) -> str:
        return repr(self._names())
