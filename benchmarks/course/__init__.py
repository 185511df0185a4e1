"""The course's claims, each reproduced as a measured experiment.

Run one: ``python -m benchmarks.course NAME [--seed S] [--tiny] [--out DIR]``;
run all: ``python -m benchmarks.course all``. Each experiment is a module with
``TITLE``, ``CLAIM`` and ``run(ctx) -> dict``; the dict holds ``numbers``
(JSON-able), ``holds`` (True / False / None when partly) and ``summary`` (the
measured sentence of the results page). The runner adds seed, versions, wall
time and the fixed reference workload (:mod:`benchmarks.reference`, measured just
before the experiment; not in ``--tiny`` runs) to compare times across machines,
writes ``NAME.json`` beside the figure ``NAME.png`` and regenerates the results
page ``README.md`` from every ``*.json`` in the folder.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

from forensics.atomic import jsonable

#: experiment name → module (in the course's order)
EXPERIMENTS: dict[str, str] = {
    "pca": "benchmarks.course.pca",
    "sparse": "benchmarks.course.sparse",
    "denoising": "benchmarks.course.denoising",
    "contractive": "benchmarks.course.contractive",
    "vae": "benchmarks.course.vae",
    "gan1d": "benchmarks.course.gan1d",
    "gan-losses": "benchmarks.course.gan_losses",
    "infogan": "benchmarks.course.infogan",
    "semi-supervised": "benchmarks.course.semi_supervised",
}
DEFAULT_OUT = Path("benchmarks/results/course")


def run_experiment(name: str, *, seed: int = 0, tiny: bool = False,
                   out: str | Path = DEFAULT_OUT, page: bool = True) -> dict[str, Any]:
    """Run one experiment, write ``NAME.json`` (+ ``NAME.png``), refresh the page."""
    from benchmarks.course.context import Context
    from forensics import atomic, provenance
    from forensics.errors import ForensicsError

    if name not in EXPERIMENTS:
        raise ForensicsError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}, all")
    module = importlib.import_module(EXPERIMENTS[name])
    ctx = Context(name=name, seed=seed, tiny=tiny, out=Path(out))
    if tiny:
        reference = None
    else:
        from benchmarks import reference as workload

        reference = workload.measure()
    began = time.perf_counter()
    found = module.run(ctx)
    result = {
        "experiment": name, "title": module.TITLE, "claim": module.CLAIM,
        "holds": found["holds"], "summary": found["summary"], "notes": found.get("notes", []),
        "numbers": jsonable(found["numbers"]),
        "figure": f"{name}.png", "seed": seed, "tiny": tiny,
        "wall_seconds": round(time.perf_counter() - began, 2), "reference": reference,
        "versions": provenance.versions(), "machine": provenance.machine(),
        "created": provenance.now(),
    }
    atomic.write_json(ctx.out / f"{name}.json", result)
    if page:
        write_page(ctx.out)
    return result


def write_page(out: str | Path) -> Path:
    """Regenerate ``README.md`` from the experiments' JSON files in ``out``."""
    from benchmarks.reference import QUIET_SECONDS
    from forensics import atomic

    out = Path(out)
    results = [json.loads((out / f"{name}.json").read_text())
               for name in EXPERIMENTS if (out / f"{name}.json").is_file()]
    verdict = {True: "holds", False: "does not hold", None: "partly"}
    lines = [
        "# The course, measured",
        "",
        "Every claim of the course *Autoencoders and Generative Adversarial Networks* (INSA "
        "Toulouse) that can be measured, reproduced with this toolkit's generators on mnist5k "
        "(train split for training, held-out test split for evaluation). Regenerate with "
        "`python -m benchmarks.course all` (one experiment: `python -m benchmarks.course NAME`). "
        "Verdicts are computed from the numbers by each experiment's stated criterion; \"partly\" "
        "means one part of the claim holds and another does not. Machines differ up to 3× in "
        "speed and other jobs may share the cores, so each wall time stands beside the fixed "
        f"reference workload (`benchmarks/reference.py`, ≈ {QUIET_SECONDS} s on the quiet "
        "reference machine) "
        "measured just before that experiment, with the load average then: compare the ratio "
        "(wall time / reference), not the seconds.",
        "",
        "| experiment | claim | verdict | wall time (s) | reference (s; load) | ratio | seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tiny = " (tiny)" if r["tiny"] else ""
        claim = r["claim"].replace("|", "\\|")
        lines.append(f"| [{r['experiment']}](#{r['experiment']}) | {claim} | "
                     f"**{verdict[r['holds']]}**{tiny} | {r['wall_seconds']:.0f} | "
                     f"{_reference_cells(r)} | {r['seed']} |")
    lines.append("")
    for r in results:
        lines += [
            f"## {r['experiment']}", "",
            f"**{r['title']}.** Claim: {r['claim']}", "",
            f"{r['summary']} **Verdict: {verdict[r['holds']]}.**", "",
            *[f"- {note}" for note in r.get("notes", [])], *([""] if r.get("notes") else []),
            f"`python -m benchmarks.course {r['experiment']} --seed {r['seed']}"
            f"{' --tiny' if r['tiny'] else ''}` — {r['wall_seconds']:.0f} s on "
            f"{r['machine'].get('cpu_count')} CPU cores (torch {r['versions'].get('torch')}); "
            f"numbers in [{r['experiment']}.json]({r['experiment']}.json).", "",
            f"![{r['experiment']}]({r['figure']})", "",
        ]
    path = out / "README.md"
    atomic.write_text(path, "\n".join(lines))
    return path


def _reference_cells(result: dict[str, Any]) -> str:
    """The reference's seconds (and load) and the ratio, or "not measured" for older results."""
    from benchmarks.reference import ratio

    ref = result.get("reference")
    if not ref:
        return "not measured | –"
    load = ref.get("load_average_1m_before")
    load = f"; {load:.2f}" if load is not None else ""
    return f"{ref['seconds']:.2f}{load} | {ratio(result['wall_seconds'], ref):.1f}"
