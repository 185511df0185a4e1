"""Benchmark: training throughput of 1 process against 2 torchrun processes.

Run: ``python -m benchmarks.distributed [--epochs 2] [--out benchmarks/results/distributed]``.

Each configuration trains through the command line on mnist5k (4,000 training
images, default options, the same global batch), in a fresh folder:

- ``1 process × 2 threads``: plain ``forensics train`` (torch's intra-op threads);
- ``1 process × 1 thread``: the same with OMP_NUM_THREADS=1;
- ``2 processes × 1 thread``: ``torchrun --nproc-per-node 2`` (DDP over gloo).

Throughput is training images per second of the steady-state epochs (the
``seconds`` metrics.jsonl records per epoch, first epoch dropped when there are
several), beside the wall time of the whole command (start-up included). The
last epoch's loss of each configuration is recorded too: DDP computes the same
gradient (BatchNorm aside, see tests/test_distributed.py), so it should match.
The same comparison is made for ``forensics train-detector cnn``. The fixed reference
workload (:mod:`benchmarks.reference`) is measured before and after, and every wall time
is also given as a ratio to it: compare ratios across runs, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {"1 process × 2 threads": (1, "2"), "1 process × 1 thread": (1, "1"),
           "2 processes × 1 thread": (2, "1")}


def command(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "forensics"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(processes), "-m", "forensics"]


def timed(args: list[str], processes: int, threads: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONWARNINGS": "ignore"}
    began = time.perf_counter()
    done = subprocess.run([*command(processes), *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - began


def train_generator(name: str, epochs: int, processes: int, threads: str, tmp: Path) -> dict:
    out = tmp / f"{name}-{processes}-{threads}"
    wall = timed(["train", name, "--epochs", str(epochs), "--device", "cpu", "--out", str(out)],
                 processes, threads)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    size = json.loads((out / "config.json").read_text())["data"]["size"]
    steady = records[1:] or records
    seconds = sum(r["seconds"] for r in steady)
    loss_key = next(k for k in ("loss", "D_loss") if k in records[-1])
    return {"images_per_second": round(size * len(steady) / seconds, 1), "wall_seconds": round(wall, 1),
            f"last_epoch_{loss_key}": round(records[-1][loss_key], 4)}


def train_detector(fakes: Path, processes: int, threads: str, tmp: Path) -> dict:
    out = tmp / f"cnn-{processes}-{threads}"
    wall = timed(["train-detector", "cnn", "--fake", str(fakes), "--out", str(out),
                  "--set", "epochs=3", "--set", "device=cpu"], processes, threads)
    metrics = json.loads((out / "detector.json").read_text())["metrics"]
    return {"wall_seconds": round(wall, 1), "test_auc": round(metrics["auc"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--generators", nargs="+", default=None,
                        help="generator families (default: every one of the registry)")
    args = parser.parse_args()
    if args.generators is None:
        from generators.registry import list_generators

        args.generators = list_generators()

    from benchmarks.reference import measure
    from forensics import atomic, provenance

    results: dict = {"machine": provenance.machine(), "versions": provenance.versions(),
                     "created": provenance.now(), "epochs": args.epochs, "reference": measure(),
                     "generators": {}, "train_detector_cnn": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.generators:
            for label, (processes, threads) in CONFIGS.items():
                print(f"{name}: {label}", flush=True)
                results["generators"].setdefault(name, {})[label] = train_generator(
                    name, args.epochs, processes, threads, tmp)
        fakes = tmp / "fakes"
        timed(["generate", str(tmp / f"{args.generators[0]}-1-2"), "--n", "2000", "--out", str(fakes)],
              1, "2")
        for label, (processes, threads) in CONFIGS.items():
            print(f"train-detector cnn: {label}", flush=True)
            results["train_detector_cnn"][label] = train_detector(fakes, processes, threads, tmp)
    results["reference_after"] = measure()
    atomic.write_json(args.out / "results.json", results)
    atomic.write_text(args.out / "README.md", report(results, args.generators[0]))
    print(report(results, args.generators[0]))


def report(results: dict, first: str) -> str:
    from benchmarks.reference import ratio, sentence

    machine, before = results["machine"], results["reference"]
    lines = ["# Training throughput: 1 process vs 2 torchrun processes", "",
             f"Machine: {machine['processor']}, {machine['cpu_count']} cores, load average "
             f"{machine.get('load_average_1m')} at the start; torch {results['versions'].get('torch')}; "
             f"{results['created']}. Reproduce: `python -m benchmarks.distributed`.", "",
             f"Generators: {results['epochs']} epochs on mnist5k (4,000 images), default options, "
             "the same global batch. Images/s over the steady-state epochs; wall time includes "
             "start-up (torchrun's rendezvous too).", "",
             sentence(before, results["reference_after"]), "",
             "| generator | configuration | images/s | wall s | wall ratio | last-epoch loss |",
             "|---|---|---|---|---|---|"]
    for name, rows in results["generators"].items():
        for label, row in rows.items():
            loss = next(v for k, v in row.items() if k.startswith("last_epoch_"))
            lines.append(f"| {name} | {label} | {row['images_per_second']:,} | {row['wall_seconds']} "
                         f"| {ratio(row['wall_seconds'], before)} | {loss} |")
    lines += ["", f"`train-detector cnn` (3 epochs on 2,000 {first} fakes + mnist5k):", "",
              "| configuration | wall s | wall ratio | test AUC |", "|---|---|---|---|"]
    lines += [f"| {label} | {row['wall_seconds']} | {ratio(row['wall_seconds'], before)} | "
              f"{row['test_auc']} |"
              for label, row in results["train_detector_cnn"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
