"""Generative models of the course, found by name.

``create("gan", image_shape=(1, 28, 28), loss="minimax")`` builds one;
``list_generators()`` names them. A new model is one module with a
``@register("name")`` class; the contract tests then cover it.
"""

from generators.registry import create, get, list_generators, register

__all__ = ["create", "get", "list_generators", "register"]
