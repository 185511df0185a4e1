"""Name → generator class."""

from __future__ import annotations

import fnmatch
import importlib

from forensics.errors import ForensicsError

_REGISTRY: dict[str, type] = {}
_MODULES = ("generators.autoencoder", "generators.vae", "generators.gan", "generators.infogan")


def register(name: str):
    def decorator(cls: type) -> type:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def list_generators(pattern: str = "*") -> list[str]:
    _load_all()
    return sorted(name for name in _REGISTRY if fnmatch.fnmatch(name, pattern))


def get(name: str) -> type:
    _load_all()
    if name not in _REGISTRY:
        raise ForensicsError(
            f"unknown generator {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def create(name: str, *, image_shape: tuple[int, int, int], **options):
    """Build a generator from its name, the image shape and model options."""
    cls = get(name)
    return cls(cls.Options.from_dict(options), image_shape)
