"""Name → generator class."""

from __future__ import annotations

from forensics.registry import Registry

REGISTRY = Registry("generator", "generators")
register = REGISTRY.register
get = REGISTRY.get
list_generators = REGISTRY.names


def create(name: str, *, image_shape: tuple[int, int, int], **options):
    """Build a generator from its name, the image shape and model options."""
    cls = get(name)
    return cls(cls.Options.from_dict(options), image_shape)
