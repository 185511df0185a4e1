"""Benchmark suites: small TOML files naming data, generators, detectors, perturbations.

:func:`load_suite` checks the whole file before anything trains: every
top-level key, every entry's keys, every generator's kind and options (against
its ``Options`` dataclass), every detector's kind and options (against its
signature), the counts and the perturbations' strengths. Each problem is one
line naming the file and the key; a misspelt key is an error, not a default.
Everything a suite may set is covered by the cache keys of
:mod:`benchmarks.runner` (``name`` and ``bootstrap`` change no artefact).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.errors import ForensicsError

SUITES = Path(__file__).parent / "suites"

#: top-level keys of a suite file and their defaults (None: required table)
TOP_LEVEL = {"name": None, "dataset": "mnist5k", "fakes_per_generator": 1500, "real_train": 1500,
             "bootstrap": 200, "reference_steps": 60, "generators": None, "detectors": None,
             "perturbations": None}
COUNTS = ("fakes_per_generator", "real_train", "bootstrap")
GENERATOR_KEYS = ("kind", "epochs", "options")
DETECTOR_KEYS = ("kind", "options")
#: options the benchmark sets itself (the run of the suite's GAN for ``needs_run`` families)
RESERVED_OPTIONS = ("run",)


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
    #: steps of the fixed reference workload timed beside the run (0: not measured)
    reference_steps: int = 60
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


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _generator_errors(key: str, entry: dict[str, Any]) -> list[str]:
    from generators.registry import get

    where = f"[generators.{key}]"
    errors = [f"{where}: unknown key {k!r} (allowed: {', '.join(GENERATOR_KEYS)})"
              for k in entry if k not in GENERATOR_KEYS]
    if "epochs" in entry and not _positive_int(entry["epochs"]):
        errors.append(f"{where}: epochs must be a positive integer, not {entry['epochs']!r}")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        return [*errors, f"{where}: options must be a table, not {options!r}"]
    try:
        model_options = get(str(entry["kind"])).Options
        model_options.from_dict(dict(options))
        model_options.refuse_inapplicable(dict(options))
    except ForensicsError as error:
        errors.append(f"{where}: {error}")
    except (TypeError, ValueError) as error:
        errors.append(f"{where}: bad options ({error})")
    return errors


def _detector_errors(key: str, entry: dict[str, Any]) -> list[str]:
    from detectors.registry import create

    where = f"[detectors.{key}]"
    errors = [f"{where}: unknown key {k!r} (allowed: {', '.join(DETECTOR_KEYS)})"
              for k in entry if k not in DETECTOR_KEYS]
    options = entry.get("options", {})
    if not isinstance(options, dict):
        return [*errors, f"{where}: options must be a table, not {options!r}"]
    reserved = sorted(set(options) & set(RESERVED_OPTIONS))
    if reserved:
        errors.append(f"{where}: the benchmark sets {', '.join(reserved)} itself")
    try:  # unknown options raise; building is cheap (nothing is fitted)
        create(str(entry["kind"]), **{k: v for k, v in options.items() if k not in reserved})
    except ForensicsError as error:
        errors.append(f"{where}: {error}")
    except (TypeError, ValueError) as error:
        errors.append(f"{where}: bad options ({error})")
    return errors


def _entries(raw: dict[str, Any], section: str, known) -> tuple[dict[str, Any], list[str]]:
    entries = raw.get(section, {})
    if not isinstance(entries, dict) or not entries:
        return {}, [f"the suite names no {section}"]
    errors, good = [], {}
    for key, entry in entries.items():
        if not isinstance(entry, dict) or "kind" not in entry:
            errors.append(f"[{section}.{key}] has no kind")
            continue
        try:
            known(str(entry["kind"]))
        except ForensicsError as error:
            errors.append(f"[{section}.{key}]: {error}")
            continue
        good[key] = entry
    return good, errors


def validate(raw: dict[str, Any]) -> list[str]:
    """Every problem of a parsed suite file, one line each (empty: the suite is sound)."""
    from benchmarks.perturb import check_strengths
    from detectors.registry import get as detector_kind
    from forensics.data import BUILTIN
    from generators.registry import get as generator_kind

    errors = [f"unknown top-level key {k!r} (allowed: {', '.join(TOP_LEVEL)})"
              for k in raw if k not in TOP_LEVEL]
    if "name" in raw and not isinstance(raw["name"], str):
        errors.append(f"name must be a string, not {raw['name']!r}")
    dataset = raw.get("dataset", TOP_LEVEL["dataset"])
    if not isinstance(dataset, str) or not (dataset in BUILTIN or dataset.startswith("folder:")):
        errors.append(f"unknown dataset {dataset!r}; known: "
                      f"{', '.join(k for k in BUILTIN if k != 'folder:PATH')}, folder:PATH")
    for key in COUNTS:
        if key in raw and not _positive_int(raw[key]):
            errors.append(f"{key} must be a positive integer, not {raw[key]!r}")
    steps = raw.get("reference_steps", 60)
    if not (_positive_int(steps) or steps == 0) or isinstance(steps, bool):
        errors.append(f"reference_steps must be 0 (not measured) or a positive integer, not {steps!r}")
    if _positive_int(raw.get("fakes_per_generator")) and raw["fakes_per_generator"] < 10:
        errors.append("fakes_per_generator must be at least 10 (they are split 80/10/10)")
    generators, problems = _entries(raw, "generators", generator_kind)
    errors += problems
    for key, entry in generators.items():
        errors += _generator_errors(key, entry)
    detectors, problems = _entries(raw, "detectors", detector_kind)
    errors += problems
    for key, entry in detectors.items():
        errors += _detector_errors(key, entry)
    perturbations = raw.get("perturbations", {})
    if not isinstance(perturbations, dict):
        errors.append("[perturbations] must be a table of name = [strengths]")
    else:
        errors += check_strengths(perturbations)
    if not errors:
        from benchmarks.runner import discriminator_source, needs_run

        if any(needs_run(e["kind"]) for e in detectors.values()) and \
                discriminator_source(generators) is None:
            errors.append("a detector needs a GAN run (discriminator) but the suite names "
                          "no gan or infogan generator")
    return errors


def load_suite(name_or_path: str) -> Suite:
    """Read and check a suite; a ForensicsError lists every problem, one line each."""
    path = resolve(name_or_path)
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ForensicsError(f"{path}: not valid TOML ({str(error)[:200]})") from None
    except RecursionError:  # "x = [[[[…": nested past anything a suite holds
        raise ForensicsError(f"{path}: TOML nested too deeply; refused") from None
    errors = validate(raw)
    if errors:  # the CLI prefixes the first line with "error: "; the others get it here
        raise ForensicsError("\nerror: ".join(f"{path}: {line}" for line in errors))
    return Suite(
        name=str(raw.get("name", path.stem)), dataset=str(raw.get("dataset", "mnist5k")),
        generators=raw["generators"], detectors=raw["detectors"],
        perturbations={k: [float(s) for s in v] for k, v in raw.get("perturbations", {}).items()},
        fakes_per_generator=int(raw.get("fakes_per_generator", 1500)),
        real_train=int(raw.get("real_train", 1500)), bootstrap=int(raw.get("bootstrap", 200)),
        reference_steps=int(raw.get("reference_steps", 60)), source=raw,
    )
