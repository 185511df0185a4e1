"""Benchmark suites: small TOML files naming data, generators, detectors, perturbations."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.errors import ForensicsError

SUITES = Path(__file__).parent / "suites"


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: str
    generators: dict[str, dict[str, Any]]
    detectors: dict[str, dict[str, Any]]
    perturbations: dict[str, list[float]]
    fakes_per_generator: int = 1500
    real_train: int = 1500
    bootstrap: int = 200
    source: dict[str, Any] = field(default_factory=dict)


def resolve(name_or_path: str) -> Path:
    """A suite name in benchmarks/suites/ (no path parts allowed) or a path to a TOML file."""
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path)
    else:
        if "/" in name_or_path or "\\" in name_or_path or name_or_path.startswith("."):
            raise ForensicsError(f"suite name {name_or_path!r} must be a plain name")
        path = SUITES / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SUITES.glob("*.toml")))
        raise ForensicsError(f"no suite {name_or_path!r} (known: {known}, or a path to a .toml)")
    return path


def load_suite(name_or_path: str) -> Suite:
    path = resolve(name_or_path)
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ForensicsError(f"{path}: not valid TOML ({error})") from None
    from benchmarks.perturb import DEFAULT

    perturbations = raw.get("perturbations", {})
    if not isinstance(perturbations, dict):
        raise ForensicsError(f"{path}: [perturbations] must be a table of name = [strengths]")
    unknown = set(perturbations) - set(DEFAULT)
    if unknown:
        raise ForensicsError(f"{path}: unknown perturbation(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(DEFAULT)}")
    for key, strengths in perturbations.items():
        # a string would otherwise be read one character at a time ("50" → 5.0, 0.0)
        if not isinstance(strengths, list) or not strengths or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in strengths):
            raise ForensicsError(f"{path}: perturbation {key} needs a list of numbers, "
                                 f"not {strengths!r}")
    from detectors.registry import get as detector_kind
    from generators.registry import get as generator_kind

    for section, known in (("generators", generator_kind), ("detectors", detector_kind)):
        entries = raw.get(section, {})
        if not entries:
            raise ForensicsError(f"{path}: the suite names no {section}")
        for key, entry in entries.items():
            if not isinstance(entry, dict) or "kind" not in entry:
                raise ForensicsError(f"{path}: [{section}.{key}] has no kind")
            known(str(entry["kind"]))  # an unknown kind fails now, not after an hour of training
    try:
        return Suite(
            name=str(raw.get("name", path.stem)), dataset=str(raw.get("dataset", "mnist5k")),
            generators=raw["generators"], detectors=raw["detectors"],
            perturbations={k: [float(s) for s in v] for k, v in raw.get("perturbations", {}).items()},
            fakes_per_generator=int(raw.get("fakes_per_generator", 1500)),
            real_train=int(raw.get("real_train", 1500)), bootstrap=int(raw.get("bootstrap", 200)),
            source=raw,
        )
    except (TypeError, ValueError) as error:
        raise ForensicsError(f"{path}: {error}") from None
