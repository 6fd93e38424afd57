"""Registries: a decorator and a dict, with a did-you-mean on unknown names."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from edgekd.errors import EdgekdError

T = TypeVar("T")


def closest(name: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    """The candidate most similar to `name`, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_message(kind: str, name: str, candidates: list[str]) -> str:
    hint = closest(name, candidates)
    suggestion = f"did you mean '{hint}'?" if hint else f"known: {', '.join(sorted(candidates))}"
    return f"unknown {kind} '{name}' ({suggestion})"


class Registry(Generic[T]):
    """`@registry.register("name")` stores an object; `registry.get("name")` returns it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            key = name or getattr(obj, "__name__")
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            raise EdgekdError(unknown_name_message(self.kind, name, self.names()))
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
