"""A detector folder on disk: ``detector.json`` + ``model.safetensors`` + ``model.skops``.

Torch weights go to safetensors and scikit-learn objects to skops; nothing is
ever unpickled. A skops file is loaded only when every type it needs beyond
skops' own defaults is on :data:`ALLOWED_TYPES`. The JSON records a SHA-256
of each model file, so a replaced or damaged file is refused before parsing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from forensics import atomic
from forensics.checkpoint import load_weights, read_json, save_weights
from forensics.errors import ForensicsError
from forensics.provenance import sha256_file

HEADER = "detector.json"
TORCH_FILE = "model.safetensors"
SKLEARN_FILE = "model.skops"

#: Types (beyond skops' defaults) a detector's scikit-learn part may contain.
ALLOWED_TYPES = frozenset({
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.svm._classes.LinearSVC",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
})


def dump_sklearn(path: str | Path, obj: Any) -> None:
    import skops.io

    atomic.write_bytes(path, skops.io.dumps(obj))


def load_sklearn(path: str | Path) -> Any:
    """Load a skops file whose extra types are all on :data:`ALLOWED_TYPES`."""
    import skops.io

    path = Path(path)
    if not path.is_file():
        raise ForensicsError(f"{path}: missing model file")
    data = path.read_bytes()
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as error:  # not a zip / no schema: damaged or foreign file
        raise ForensicsError(f"{path}: not a valid skops file ({type(error).__name__})") from None
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise ForensicsError(f"{path}: refuses to load untrusted type(s) {', '.join(refused)}")
    try:
        return skops.io.loads(data, trusted=list(untrusted))
    except Exception as error:
        raise ForensicsError(f"{path}: damaged skops file ({type(error).__name__})") from None


def write_folder(folder: str | Path, header: dict[str, Any], tensors: dict | None,
                 sklearn: Any | None) -> None:
    """Write the model files, then ``detector.json`` with their hashes (written last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    if tensors is not None:
        save_weights(folder / TORCH_FILE, tensors)
        files[TORCH_FILE] = sha256_file(folder / TORCH_FILE)
    if sklearn is not None:
        dump_sklearn(folder / SKLEARN_FILE, sklearn)
        files[SKLEARN_FILE] = sha256_file(folder / SKLEARN_FILE)
    atomic.write_json(folder / HEADER, {**header, "files": files})


def read_header(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ForensicsError(f"{folder}: no such detector folder")
    header = read_json(folder / HEADER)
    for key in ("kind", "options", "input_shape", "files"):
        if key not in header:
            raise ForensicsError(f"{folder / HEADER}: not a detector file (no {key!r})")
    # another version (or a hand) may have left fields of the wrong type: refuse in one line
    files, shape = header["files"], header["input_shape"]
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ForensicsError(f"{folder / HEADER}: 'files' must map file names to sha256 hashes")
    if not (isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ForensicsError(f"{folder / HEADER}: 'input_shape' must be [C, H, W] with C 1 or 3, "
                             f"not {shape!r:.40}")
    threshold = header.get("threshold", 0.5)  # may sit just above 1.0 ("nothing is fake")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) \
            or not math.isfinite(threshold):
        raise ForensicsError(f"{folder / HEADER}: 'threshold' must be a finite number, "
                             f"not {threshold!r:.40}")
    return header


def read_folder(folder: str | Path, header: dict[str, Any]) -> tuple[dict | None, Any | None]:
    """Check the recorded hashes and load ``(tensors, sklearn_object)`` (None where absent)."""
    folder = Path(folder)
    for name, digest in header["files"].items():
        path = folder / name
        if name not in (TORCH_FILE, SKLEARN_FILE):
            raise ForensicsError(f"{folder / HEADER}: unexpected model file {name!r}")
        if not path.is_file():
            raise ForensicsError(f"{path}: missing model file")
        if sha256_file(path) != digest:
            raise ForensicsError(f"{path}: does not match the hash in {HEADER} "
                                 "(file replaced or damaged)")
    files = header["files"]
    tensors = load_weights(folder / TORCH_FILE) if TORCH_FILE in files else None
    sklearn = load_sklearn(folder / SKLEARN_FILE) if SKLEARN_FILE in files else None
    return tensors, sklearn
