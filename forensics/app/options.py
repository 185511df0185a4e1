"""The options several commands share, each declared once: the same name, default and help
on every command that takes it (``forensics train --seed`` and ``forensics audit --seed`` are
one option).

A command declares ``seed: Seed = 0``; the default value sits in the signature (Typer's
rule), and each option's help says what an unset (``None``) default means, so ``--help``
shows every default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: flags show as ``--flag/--no-flag`` with no ``<bool>`` metavar
FLAG = ""

Seed = Annotated[int, typer.Option(
    "--seed", help="Random seed (recorded with the output).")]
Device = Annotated[str, typer.Option(
    "--device", help="Where torch runs: auto (CUDA when present), cpu or cuda.")]
Epochs = Annotated[int | None, typer.Option(
    "--epochs", help="Training epochs (default: the model's own).")]
BatchSize = Annotated[int | None, typer.Option(
    "--batch-size", help="Images per training batch (default: the model's own).")]
Precision = Annotated[str | None, typer.Option(
    "--precision", help="fp32, bf16 or auto: bf16 autocasts the networks' forward passes; auto "
    "is bf16 where the device computes it natively (CUDA GPUs with bf16, CPUs with AVX512-BF16 "
    "or AMX), fp32 elsewhere. Default: auto for train (config.json records what ran), fp32 for "
    "train-detector; a resumed run keeps its own.")]
Compile = Annotated[bool | None, typer.Option(
    "--compile/--no-compile", metavar=FLAG,
    help="torch.compile the networks (pays off on a GPU for long runs). Default: no; a resumed "
    "run keeps its own.")]
Dataset = Annotated[str, typer.Option(
    "--dataset", help="mnist5k, digits, folder:PATH, mnist, fashion-mnist or cifar10 "
    "(`forensics datasets` lists them).")]
DataRoot = Annotated[str | None, typer.Option(
    "--data-root", help="Where the torchvision data sets live (default ~/.cache/forensics, "
    "or $FORENSICS_DATA).")]
Download = Annotated[bool, typer.Option(
    "--download/--no-download", metavar=FLAG,
    help="Allow downloading a torchvision data set (needs internet).")]
Force = Annotated[bool, typer.Option(
    "--force/--no-force", metavar=FLAG, help="Replace an existing output folder.")]
Sampler = Annotated[str | None, typer.Option(
    "--sampler", help="How samples are drawn (default: the run's own). diffusion: dpm-sde "
    "(new runs' default: DPM-Solver++ SDE, few steps, fresh noise each step), ddim "
    "(deterministic, few steps; runs trained before 2026-12-03) or ddpm (ancestral); "
    "vae: gmm (default: a mixture fitted to the training codes) or "
    "prior (N(0, I), the course's).")]
Steps = Annotated[int | None, typer.Option(
    "--steps", help="diffusion: denoising steps (default: dpm-sde 18, ddim 25, ddpm all T).")]
Temperature = Annotated[float | None, typer.Option(
    "--temperature", help="ae, vae: the spread of sampled codes, a share of the fitted one "
    "(default: the run's own; new ae runs 0.8, vae 1). Below 1: samples nearer the codes' "
    "modes, more often recognised, less varied.")]

# -- the records of ``detect`` and ``merge`` (one format, so one spelling)
AsJson = Annotated[bool, typer.Option(
    "--json", metavar=FLAG, help="One JSON record per input on stdout (a skipped file: a record "
    "with its error); not with --csv. Default: a table.")]
AsCsv = Annotated[bool, typer.Option(
    "--csv", metavar=FLAG, help="CSV, one row per input, on stdout (a skipped file: its error "
    "column); not with --json. Default: a table.")]
RecordsOut = Annotated[Path | None, typer.Option(
    "--out", metavar="FILE", help="Write the records to FILE (atomically; JSON Lines, or CSV with "
    "--csv) instead of stdout (the default).")]
