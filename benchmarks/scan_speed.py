"""Benchmark: ``forensics detect`` on large folders — throughput and peak memory.

Run (on a quiet machine: other jobs ruin the timings)::

    python -m benchmarks.scan_speed [--sizes 10000 100000] [--workers 0 2] \\
        [--out benchmarks/results/scan_speed]

28×28 PNGs (mnist5k digits, every other one with Gaussian noise) are written once
into a temporary folder, 1,000 per sub-folder; each size scans the first ones.
Each run is a fresh ``forensics detect --json --out FILE`` process with the
default detector, timed wall to wall (start-up included). Memory: the peak RSS of
the detect process (``wait4``), and the peak PSS of it and its reading workers
together, sampled every 0.2 s (PSS shares pages that processes share, so the sum
is not inflated by what the workers inherit from the main process). For the first
size it also runs two ``--shard`` processes side by side and ``forensics merge``
(checked byte for byte against the unsharded output), and ``torchrun`` with two
processes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PER_FOLDER = 1000
FORENSICS = [sys.executable, "-m", "forensics"]


def write_pngs(root: Path, sizes: list[int]) -> list[list[Path]]:
    """Write max(sizes) PNGs; the inputs (folders) that hold the first n, for each n."""
    from forensics.data import load_split
    from forensics.images import png_bytes, to_uint8

    digits = load_split("mnist5k", "train").images
    rng = np.random.default_rng(0)
    inputs, made, part = [], 0, 0
    for size in sorted(sizes):
        while made < size:
            folder = root / f"part{part}"
            count = min(size - made, PER_FOLDER * 10)
            images = digits[rng.integers(0, len(digits), count)]
            images[1::2] = np.clip(images[1::2] + rng.normal(0, 0.1, images[1::2].shape), 0, 1)
            for i, image in enumerate(to_uint8(images)):
                sub = folder / f"{(made + i) // PER_FOLDER:04d}"
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"{made + i:06d}.png").write_bytes(png_bytes(image))
            made, part = made + count, part + 1
        inputs.append(sorted(root.glob("part*"), key=lambda p: int(p.name[4:])))
    return inputs


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def timed(command: list[str], stdout=subprocess.DEVNULL) -> dict:
    """Run ``command``: wall seconds, exit status, peak RSS (MiB) and peak PSS of its tree (MiB)."""
    peak_pss, done = [0], threading.Event()
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE)

    def sample() -> None:
        while not done.wait(0.2):
            peak_pss[0] = max(peak_pss[0], sum(_pss_kib(p) for p in _tree(process.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr.decode()[-2000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "peak_pss_tree_mib": round(peak_pss[0] / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scan_speed"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--detector", type=Path, default=None,
                        help="A detector folder (default: the shipped default detector).")
    args = parser.parse_args()

    from benchmarks import reference
    from forensics import atomic, provenance

    detector = ["--detector", str(args.detector)] if args.detector else []
    results: dict = {"machine": provenance.machine(), "versions": provenance.versions(),
                     "created": provenance.now(), "detector": str(args.detector or "default"),
                     "images": "28x28 gray PNGs, mnist5k digits (every other one noisy), "
                               f"{PER_FOLDER} per sub-folder", "runs": [],
                     "reference_before": reference.measure()}
    with tempfile.TemporaryDirectory(prefix="scan_speed_") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        inputs = write_pngs(root / "pngs", args.sizes)
        results["writing_pngs_seconds"] = round(time.perf_counter() - began, 1)
        out = root / "out.jsonl"
        one = next((root / "pngs").rglob("*.png"))
        run = timed([*FORENSICS, "detect", str(one), *detector, "--json", "--out", str(out)])
        results["runs"].append({"what": "detect, one PNG (start-up: imports, detector)", "images": 1,
                                "load_average_1m_before": round(os.getloadavg()[0], 2), **run,
                                "images_per_second": round(1 / run["seconds"], 2)})
        for size, paths in zip(sorted(args.sizes), inputs, strict=True):
            files = [str(p) for p in paths]
            for workers in args.workers:
                load = round(os.getloadavg()[0], 2)
                run = timed([*FORENSICS, "detect", *files, *detector, "--json", "--out", str(out),
                             "--workers", str(workers)])
                records = sum(1 for _ in out.open())
                assert records == size, (records, size)
                results["runs"].append({"what": f"detect --workers {workers}", "images": size,
                                        "load_average_1m_before": load, **run,
                                        "images_per_second": round(size / run["seconds"])})
                print(results["runs"][-1], flush=True)
            if size != min(args.sizes):
                continue
            results["runs"] += sharded(files, detector, root, size, whole=out.read_bytes())
            print(*results["runs"][-2:], sep="\n", flush=True)
    results["reference_after"] = reference.measure()
    atomic.write_json(args.out / "results.json", results)
    atomic.write_text(args.out / "README.md", markdown(results))
    print(markdown(results))


def sharded(files: list[str], detector: list[str], root: Path, size: int, whole: bytes) -> list[dict]:
    """Two ``--shard`` processes side by side then ``merge``; and ``torchrun`` with two processes."""
    load = round(os.getloadavg()[0], 2)
    began = time.perf_counter()
    parts = [root / f"part{i}.jsonl" for i in (1, 2)]
    shard_runs: list[dict] = [{}, {}]

    def shard(i: int) -> None:
        shard_runs[i] = timed([*FORENSICS, "detect", *files, *detector, "--shard", f"{i + 1}/2",
                               "--out", str(parts[i]), "--workers", "0"])

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = root / "merged.jsonl"
    merge = timed([*FORENSICS, "merge", *map(str, parts), "--json", "--out", str(merged)])
    seconds = round(time.perf_counter() - began, 2)
    assert merged.read_bytes() == whole, "merged shards differ from the unsharded output"
    runs = [{"what": "2 × detect --shard I/2 side by side, then merge", "images": size,
             "load_average_1m_before": load, "seconds": seconds,
             "images_per_second": round(size / seconds), "merge_seconds": merge["seconds"],
             "peak_rss_mib": max(r["peak_rss_mib"] for r in shard_runs),
             "peak_pss_tree_mib": round(sum(r["peak_pss_tree_mib"] for r in shard_runs), 1),
             "identical_to_unsharded": True}]
    load = round(os.getloadavg()[0], 2)
    with open(merged, "wb") as handle:
        run = timed([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                     "-m", "forensics", "detect", *files, *detector, "--json"], stdout=handle)
    assert merged.read_bytes() == whole, "torchrun output differs from the unsharded output"
    runs.append({"what": "torchrun --nproc-per-node 2 -m forensics detect", "images": size,
                 "load_average_1m_before": load, **run, "images_per_second": round(size / run["seconds"]),
                 "identical_to_unsharded": True})
    return runs


def markdown(results: dict) -> str:
    from benchmarks import reference

    machine = results["machine"]
    before = results.get("reference_before")  # absent from results older than 2026-12-03
    lines = ["# Scanning large folders: `forensics detect` throughput and memory", "",
             f"Machine: {machine['processor']}, {machine['cpu_count']} cores, load average "
             f"{machine.get('load_average_1m')} at the start (each run's own is in the table); "
             f"torch {results['versions'].get('torch')}; {results['created']}. "
             f"Detector: {results['detector']}. Images: {results['images']}; writing them took "
             f"{results['writing_pngs_seconds']} s. Reproduce: `python -m benchmarks.scan_speed`.", "",
             "Each row is one fresh process (start-up included). Peak RSS: the detect process "
             "(or the largest shard / rank); peak PSS: it and its reading workers together "
             "(for side-by-side shards, the sum of both). The one-PNG row is the start-up cost and "
             "memory every other row includes.", "",
             reference.sentence(before, results.get("reference_after")) if before else
             "Reference workload: not measured (an older run).", "",
             "| run | images | seconds | ratio | images/s | peak RSS (MiB) | peak PSS, all processes "
             "(MiB) | load before |", "|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        lines.append(f"| {run['what']} | {run['images']:,} | {run['seconds']} "
                     f"| {reference.ratio(run['seconds'], before) if before else '–'} "
                     f"| {run['images_per_second']:,} "
                     f"| {run['peak_rss_mib']} | {run['peak_pss_tree_mib']} "
                     f"| {run['load_average_1m_before']} |")
    sharded = [r for r in results["runs"] if "merge_seconds" in r]
    if sharded:
        lines += ["", f"The merge itself took {sharded[0]['merge_seconds']} s; the merged shards and the "
                  "torchrun output were byte-identical to the unsharded run."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
