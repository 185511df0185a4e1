"""Name → detector class, as in :mod:`generators.registry`."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import typing
from typing import Any

from forensics.errors import ForensicsError

_REGISTRY: dict[str, type] = {}
_MODULES = ("detectors.spectral", "detectors.dct", "detectors.cnn", "detectors.attribution",
            "detectors.discriminator", "detectors.pixel")


def register(name: str):
    """Class decorator: record a detector family under ``name``."""

    def decorator(cls: type) -> type:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def list_detectors(pattern: str = "*") -> list[str]:
    _load_all()
    return sorted(name for name in _REGISTRY if fnmatch.fnmatch(name, pattern))


def get(name: str) -> type:
    _load_all()
    if name not in _REGISTRY:
        raise ForensicsError(f"unknown detector {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(name: str, **options: Any):
    """Build an unfitted detector; string values (from the CLI) are coerced to the option type."""
    cls = get(name)
    hints = typing.get_type_hints(cls.__init__)
    known = [key for key, p in inspect.signature(cls.__init__).parameters.items()
             if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ForensicsError(f"unknown option(s) for {name}: {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
    return cls(**{key: _coerce(key, value, hints.get(key, str)) for key, value in options.items()})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``"3"`` → 3 for an int option, ``"false"`` → False, ``"none"`` → None where allowed."""
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
