"""Name → class registries (generators, detectors) and option parsing from the CLI."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import os
import pkgutil
import typing
from pathlib import Path
from typing import Any

from forensics.errors import ForensicsError

#: environment variable naming extra packages of models to discover
PLUGINS = "FORENSICS_PLUGINS"


class Registry:
    """Classes recorded under string names by ``@registry.register("name")``.

    The registry finds its entries itself: on first look-up it imports every public
    module of ``package``, of the plug-in packages named in ``$FORENSICS_PLUGINS``
    (comma-separated importable packages, e.g. a lab's own models) and of any package
    added with :meth:`extend`; so a new model is one file with one decorator and no
    list to edit.
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.packages = [package]
        self.entries: dict[str, type] = {}
        self._loaded: set[str] = set()

    def register(self, name: str):
        def decorator(cls: type) -> type:
            cls.name = name
            self.entries[name] = cls
            return cls

        return decorator

    def extend(self, package: str) -> None:
        """Also discover the modules of ``package`` (a plug-in package of models)."""
        if package not in self.packages:
            self.packages.append(package)

    def _packages(self) -> list[str]:
        return with_plugins(*self.packages)

    def _load_all(self) -> None:
        for package in self._packages():
            try:
                root = importlib.import_module(package)
            except ImportError as error:
                raise ForensicsError(f"${PLUGINS}: cannot import {package!r} ({error})") from None
            for info in pkgutil.iter_modules(getattr(root, "__path__", [])):
                module = f"{package}.{info.name}"
                if not info.name.startswith("_") and module not in self._loaded:
                    self._loaded.add(module)
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

    def declared(self) -> dict[str, dict[str, Any]]:
        """See :func:`declared`."""
        return declared(*self._packages())

    def classes(self) -> dict[str, type]:
        """``{name: class}`` of every entry, sorted by name."""
        return {name: self.get(name) for name in self.names()}


def with_plugins(*packages: str) -> list[str]:
    """``packages`` and the plug-in packages named in ``$FORENSICS_PLUGINS``."""
    plugins = [name.strip() for name in os.environ.get(PLUGINS, "").split(",") if name.strip()]
    return [*packages, *(name for name in plugins if name not in packages)]


def declared(*packages: str) -> dict[str, dict[str, Any]]:
    """``{name: {attribute: value}}`` of the registered classes as their sources declare them,
    read without importing anything (``ast``): for help texts, so that ``forensics --help``
    does not import torch. Attributes are the class-level literals (``default_epochs = 15``),
    inherited from base classes of the same packages (by class name) when not set."""
    classes: dict[str, tuple[list[str], dict[str, Any]]] = {}
    registered: dict[str, str] = {}
    for package in packages:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(folder).glob("[!_]*.py")):
                try:
                    tree = ast.parse(path.read_text("utf-8"))
                except (OSError, SyntaxError, UnicodeDecodeError):
                    continue
                for node in tree.body:
                    if isinstance(node, ast.ClassDef):
                        classes[node.name] = _class_literals(node)
                        registered.update(dict.fromkeys(_registered_names(node), node.name))

    def resolve(name: str, seen: frozenset = frozenset()) -> dict[str, Any]:
        if name not in classes or name in seen:
            return {}
        bases, own = classes[name]
        values: dict[str, Any] = {}
        for base in bases:
            values.update(resolve(base, seen | {name}))
        return {**values, **own}

    return {name: resolve(cls) for name, cls in sorted(registered.items())}


def _class_literals(node: ast.ClassDef) -> tuple[list[str], dict[str, Any]]:
    """A class's base names, its class-level ``NAME = literal`` assignments and, as
    ``init_defaults``, the literal defaults of its ``__init__``'s keyword-only options."""
    values: dict[str, Any] = {}
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            defaults = {}
            for arg, default in zip(item.args.kwonlyargs, item.args.kw_defaults, strict=True):
                try:
                    defaults[arg.arg] = ast.literal_eval(default) if default is not None else None
                except ValueError:
                    pass
            values["init_defaults"] = defaults
        target = (item.targets[0] if isinstance(item, ast.Assign) and len(item.targets) == 1
                  else item.target if isinstance(item, ast.AnnAssign) and item.value is not None
                  else None)
        if isinstance(target, ast.Name):
            try:
                values[target.id] = ast.literal_eval(item.value)
            except ValueError:
                pass
    return [base.id for base in node.bases if isinstance(base, ast.Name)], values


def _registered_names(node: ast.ClassDef) -> list[str]:
    """The names of a class's ``@register("name")`` decorators."""
    return [str(d.args[0].value) for d in node.decorator_list
            if isinstance(d, ast.Call) and d.args and isinstance(d.args[0], ast.Constant)
            and getattr(d.func, "id", getattr(d.func, "attr", None)) == "register"]


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b-c=2"]`` → ``{"a": "1", "b_c": "2"}``: the CLI's ``--set KEY=VALUE`` options."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ForensicsError(f"--set expects KEY=VALUE, got {pair!r}")
        options[key.strip().replace("-", "_")] = value.strip()
    return options


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
