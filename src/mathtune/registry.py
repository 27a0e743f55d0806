"""A small name -> object registry filled by decorators, so users extend mathtune from their own files."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry has no entry of the asked name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry(Generic[T]):
    """A plain dict of named entries with a `register` decorator and a did-you-mean lookup."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add the decorated object under `name` (a later registration of the same name wins)."""

        def deco(obj: T) -> T:
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the entry `name` or raise UnknownNameError naming the close matches and all known names."""
        if name in self._items:
            return self._items[name]
        close = difflib.get_close_matches(name, list(self._items), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        """Sorted names of all entries."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
