"""Name → class registries (generators, detectors) and option parsing from the CLI."""

from __future__ import annotations

import fnmatch
import importlib
import typing
from typing import Any

from forensics.errors import ForensicsError


class Registry:
    """Classes recorded under string names by ``@registry.register("name")``.

    ``modules`` are imported on first look-up so every built-in entry is known.
    """

    def __init__(self, kind: str, modules: tuple[str, ...]) -> None:
        self.kind = kind
        self.modules = modules
        self.entries: dict[str, type] = {}

    def register(self, name: str):
        def decorator(cls: type) -> type:
            cls.name = name
            self.entries[name] = cls
            return cls

        return decorator

    def _load_all(self) -> None:
        for module in self.modules:
            importlib.import_module(module)

    def names(self, pattern: str = "*") -> list[str]:
        self._load_all()
        return sorted(name for name in self.entries if fnmatch.fnmatch(name, pattern))

    def get(self, name: str) -> type:
        self._load_all()
        if name not in self.entries:
            raise ForensicsError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self.entries))}")
        return self.entries[name]


def coerce(key: str, value: Any, hint: Any) -> Any:
    """An option given as text (``--set k=v``) → its declared type.

    ``"3"`` → 3 for an int option, ``"false"`` → False, ``"none"`` → None
    where None is allowed; anything else is returned unchanged.
    """
    kinds = typing.get_args(hint) or (hint,)
    if not isinstance(value, str) or str in kinds:
        return value
    text = value.strip().lower()
    if type(None) in kinds and text in ("", "none"):
        return None
    kind = next((k for k in (bool, int, float) if k in kinds), None)
    try:
        if kind is bool:
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is not None:
            return kind(value)
    except ValueError:
        raise ForensicsError(f"option {key}: {value!r} is not a valid {kind.__name__}") from None
    return value
