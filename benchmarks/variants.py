"""Benchmark: option variants of one generator, scored as the generator benchmark scores.

Run::

    python -m benchmarks.variants GENERATOR --tag NAME [--set KEY=VALUE ...] [--epochs N]
        [--precision bf16] [--seeds 0,1,2] [--sampling KEY=VALUE[,KEY=VALUE] ...]
        [--out benchmarks/results/variants]

Each seed is trained by the real CLI (``forensics train GENERATOR --set ...``), timed
beside the reference workload (:mod:`benchmarks.reference`) measured just before it,
and scored as :mod:`benchmarks.generators` scores a default training (1,000 samples
drawn with the training seed; the shipped digit classifier's confident share and digit
shares, the domain FD, c1's agreement), once with the trained sampling and once per
``--sampling``. One JSON line per (seed, sampling) is appended to ``OUT/results.jsonl``
and ``OUT/README.md`` is rewritten from every line: the record of what was tried, kept
as a default or not (the README's figures about tried options cite it).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchmarks.generators import sample_quality, scoring_reference, train_by_cli, trained_as
from benchmarks.reference import QUIET_SECONDS, measure
from forensics.errors import ForensicsError
from forensics.registry import parse_sets


def _pairs(text: str) -> dict[str, str]:
    """``a=1,b=2`` → ``{"a": "1", "b": "2"}`` (parsed as the CLI parses ``--set``)."""
    try:
        return parse_sets([item for item in text.split(",") if item])
    except ForensicsError:
        raise SystemExit(f"--sampling wants KEY=VALUE[,KEY=VALUE], not {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generator")
    parser.add_argument("--tag", required=True, help="the variant's name in the table")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=0, help="0: the generator's default")
    parser.add_argument("--precision", default="", help="fp32 | bf16 | auto (train's --precision; "
                        "default: train's own)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE[,…]")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/variants"))
    args = parser.parse_args()
    samplings = [{}, *map(_pairs, args.sampling)]  # refused before any training

    from forensics import atomic, provenance
    reference = scoring_reference()
    extra = tuple(arg for kv in args.sets for arg in ("--set", kv))
    extra += ("--epochs", str(args.epochs)) if args.epochs else ()
    extra += ("--precision", args.precision) if args.precision else ()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = args.out / "results.jsonl"
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            workload = measure()
            trained = train_by_cli(args.generator, run, seed, extra)
            epochs, precision = trained_as(run)
            for sampling in samplings:
                quality = sample_quality(run, args.n, seed, reference, sampling)[0]
                record = {"generator": args.generator, "tag": args.tag, "options": args.sets,
                          "precision": precision, "epochs": epochs, "seed": seed, "sampling": sampling,
                          "train_seconds": trained["train_seconds"], "reference": workload,
                          "ratio": round(trained["train_seconds"] / workload["seconds"], 1),
                          "load_after": round(os.getloadavg()[0], 2), **quality,
                          "rarest_digit_share": min(quality["digit_shares"]),
                          "versions": provenance.versions(), "created": provenance.now()}
                print(json.dumps(record), flush=True)
                with lines.open("a") as f:  # one line per result, so a stopped run keeps the others
                    f.write(json.dumps(record) + "\n")
    records = [json.loads(line) for line in lines.read_text().splitlines() if line.strip()]
    atomic.write_text(args.out / "README.md", _markdown(records))


def _markdown(records: list[dict]) -> str:
    rows = []
    for r in records:
        sampling = ", ".join(f"{k}={v}" for k, v in r["sampling"].items()) or "trained"
        fd = r.get("domain_fd")
        c1, q = r.get("c1_accuracy"), r.get("q_real_accuracy")
        rows.append(f"| {r['generator']} | {r['tag']} | {' '.join(r['options']) or 'defaults'} | "
                    f"{r.get('precision', 'fp32')} | {r['epochs']} | {r['seed']} | {sampling} | "
                    f"{r['train_seconds']} | "
                    f"{r.get('ratio') or '–'} | "
                    f"{r['confident_share']:.1%} | {r['rarest_digit_share']:.1%} | "
                    f"{'–' if fd is None else fd} | {'–' if c1 is None else f'{c1:.1%}'} | "
                    f"{'–' if q is None else f'{q:.1%}'} | "
                    f"{r['created'][:10]} |")
    return "\n".join([
        "# Option variants, scored as the generator benchmark scores",
        "",
        "Each row: one training by `forensics train` on mnist5k (seed as given) and 1,000 samples "
        "drawn with that seed, scored by the shipped digit classifier (confident share ≥ 0.9, the "
        "rarest digit's share of all samples), the audit's domain FD and c1's Hungarian agreement "
        "with the digit the classifier names (InfoGAN; 'Q, real': Q's c1 on the 500 held-out real "
        "digits against their labels, Chen et al.'s own measurement; – where not measured). "
        "'ratio' = training seconds / the reference workload measured just before it "
        f"(≈ {QUIET_SECONDS} s on the quiet reference machine): compare ratios, not seconds. "
        "'precision': what trained (rows from before `--precision auto` ran float32). "
        "Rows whose FD reads – were measured by this script's first form (same training command, "
        "sampling seed and scoring, without the FD; the InfoGAN rows without the reference). "
        "Reproduce a row: "
        "`python -m benchmarks.variants GENERATOR --tag T --set KEY=VALUE --precision P --seeds S "
        "--sampling …`.",
        "",
        "| generator | tag | options | precision | epochs | seed | sampling | train (s) | ratio | "
        "confident | rarest digit | domain FD | c1 | c1 (Q, real) | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows, ""])


if __name__ == "__main__":
    main()
