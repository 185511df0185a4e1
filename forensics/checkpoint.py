"""Model and training state as safetensors + JSON; nothing is ever unpickled.

A nested state (module ``state_dict``, optimizer ``state_dict``, counters) is
split into a flat dict of tensors, stored in ``.safetensors``, and a JSON
skeleton that points at them. :func:`load_tree` rebuilds it. Loading a file
that is not valid safetensors raises a one-line :class:`ForensicsError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forensics.errors import ForensicsError

_TENSOR = "__tensor__"


def _split(tree: Any, prefix: str, tensors: dict) -> Any:
    import torch

    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous()
        return {_TENSOR: prefix}
    if isinstance(tree, dict):
        return {"__items__": [[key, _split(value, f"{prefix}.{key}", tensors)]
                              for key, value in tree.items()]}
    if isinstance(tree, (list, tuple)):
        return [_split(value, f"{prefix}.{i}", tensors) for i, value in enumerate(tree)]
    return tree


def _join(skeleton: Any, tensors: dict) -> Any:
    if isinstance(skeleton, dict) and _TENSOR in skeleton:
        return tensors[skeleton[_TENSOR]]
    if isinstance(skeleton, dict) and "__items__" in skeleton:
        return {key: _join(value, tensors) for key, value in skeleton["__items__"]}
    if isinstance(skeleton, list):
        return [_join(value, tensors) for value in skeleton]
    return skeleton


def save_tree(path: str | Path, tree: dict) -> None:
    """Write a nested state to ``path`` (safetensors, skeleton in its metadata)."""
    from safetensors.torch import save

    from forensics.atomic import write_bytes

    tensors: dict = {}
    skeleton = _split(tree, "s", tensors)
    write_bytes(path, save(tensors, metadata={"skeleton": json.dumps(skeleton)}))


def load_tree(path: str | Path) -> dict:
    """Read a state written by :func:`save_tree`."""
    from safetensors import safe_open
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise ForensicsError(f"{path}: missing checkpoint file")
    data = path.read_bytes()
    try:
        tensors = load(data)
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        skeleton = json.loads(meta["skeleton"])
    except Exception as error:  # any parse failure means a damaged or foreign file
        raise ForensicsError(
            f"{path}: not a valid safetensors checkpoint ({type(error).__name__})"
        ) from None
    return _join(skeleton, tensors)


def save_weights(path: str | Path, state_dict: dict) -> None:
    """Plain module weights (flat name → tensor), the format other tools read."""
    from safetensors.torch import save

    from forensics.atomic import write_bytes

    flat = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    write_bytes(path, save(flat))


def load_weights(path: str | Path) -> dict:
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise ForensicsError(f"{path}: missing weights file")
    try:
        return load(path.read_bytes())
    except Exception as error:
        raise ForensicsError(
            f"{path}: not a valid safetensors file ({type(error).__name__})"
        ) from None


def read_json(path: str | Path) -> dict:
    """The one reader of the JSON-object files (run config, detector header, manifest)."""
    path = Path(path)
    if not path.is_file():
        raise ForensicsError(f"{path}: missing")
    try:
        value = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ForensicsError(f"{path}: not valid JSON ({str(error)[:200]})") from None
    except RecursionError:  # "[" * 100000: nested past what any file of ours holds
        raise ForensicsError(f"{path}: JSON nested too deeply; refused") from None
    except OSError as error:
        raise ForensicsError(f"{path}: unreadable ({error.strerror or error})") from None
    if not isinstance(value, dict):
        raise ForensicsError(f"{path}: expected a JSON object")
    return value
