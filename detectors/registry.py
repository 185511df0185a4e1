"""Name → detector class, as in :mod:`generators.registry`."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from forensics.errors import ForensicsError
from forensics.registry import Registry, coerce

REGISTRY = Registry("detector", ("detectors.spectral", "detectors.dct", "detectors.cnn",
                                 "detectors.attribution", "detectors.discriminator",
                                 "detectors.pixel", "detectors.npr",
                                 "detectors.reconstruction", "detectors.surprisal",
                                 "detectors.ensemble"))
register = REGISTRY.register
get = REGISTRY.get
list_detectors = REGISTRY.names


def option_names(name: str) -> list[str]:
    """The keyword options a detector family takes (its ``__init__`` signature)."""
    return [key for key, p in inspect.signature(get(name).__init__).parameters.items()
            if p.kind is p.KEYWORD_ONLY]


def create(name: str, **options: Any):
    """Build an unfitted detector; string values (from the CLI) are coerced to the option type."""
    cls = get(name)
    hints = typing.get_type_hints(cls.__init__)
    known = option_names(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ForensicsError(f"unknown option(s) for {name}: {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
    return cls(**{key: coerce(key, value, hints.get(key, str)) for key, value in options.items()})
