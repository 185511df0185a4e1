"""The ``forensics`` command line: thin commands over the library.

Heavy libraries (torch, scikit-learn) are imported inside commands so that
``forensics --help`` stays fast. A :class:`ForensicsError` becomes one line on
stderr and exit status 2 (1 for ``detect`` when nothing could be read).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from forensics import __version__
from forensics.errors import ForensicsError

app = typer.Typer(
    name="forensics",
    help="Make fakes with the generative models of the course (AE, VAE, GAN, InfoGAN), "
    "then detect them and report how well.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (recorded with the output).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
DatasetOpt = Annotated[str, typer.Option(
    "--dataset", help="mnist5k (default), digits, folder:PATH, mnist, fashion-mnist, cifar10.")]
DataRootOpt = Annotated[Optional[str], typer.Option(
    "--data-root", help="Where torchvision data sets live (default ~/.cache/forensics).")]
DownloadOpt = Annotated[bool, typer.Option(
    "--download", help="Allow downloading a torchvision data set (needs internet).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"forensics {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Make fakes with the course's generative models, then catch them."""


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(code)


def console():
    from rich.console import Console

    return Console(stderr=True)


def parse_sets(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ForensicsError(f"--set expects KEY=VALUE, got {pair!r}")
        options[key.strip().replace("-", "_")] = value.strip()
    return options


@app.command()
def datasets() -> None:
    """List the named data sets with their sizes and shapes."""
    from rich.table import Table

    from forensics.data import BUILTIN, SPLIT_SEED, load, split_indices

    table = Table(title=f"data sets (split: stratified 80/10/10, seed {SPLIT_SEED})")
    for column in ("name", "images", "shape (C, H, W)", "train/val/test", "about"):
        table.add_column(column)
    for name, about in BUILTIN.items():
        if name in ("mnist5k", "digits"):
            data = load(name)
            parts = split_indices(data.labels)
            sizes = "/".join(str(len(parts[k])) for k in ("train", "val", "test"))
            table.add_row(name, str(len(data)), str(data.shape), sizes, about)
        else:
            table.add_row(name, "-", "-", "-", about)
    from rich.console import Console

    Console().print(table)


@app.command()
def train(
    generator: Annotated[str, typer.Argument(help="ae, vae, gan or infogan.")],
    dataset: DatasetOpt = "mnist5k",
    epochs: Annotated[Optional[int], typer.Option(
        "--epochs", help="Epochs (default per generator: ae 15, vae 50, gan 40, infogan 35).")] = None,
    seed: SeedOpt = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default runs/GENERATOR).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    variant: Annotated[Optional[str], typer.Option(
        "--variant", help="ae: plain, sparse, denoising or contractive.")] = None,
    linear: Annotated[bool, typer.Option("--linear", help="ae: linear encoder and decoder.")] = False,
    loss: Annotated[Optional[str], typer.Option(
        "--loss", help="gan/infogan: minimax or non-saturating.")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="gan/infogan: D steps per G step.")] = None,
    lam: Annotated[Optional[float], typer.Option(
        "--lam", help="ae: λ of the sparse or contractive penalty.")] = None,
    latent_dim: Annotated[Optional[int], typer.Option("--latent-dim", help="vae: size of z.")] = None,
    corruption: Annotated[Optional[str], typer.Option(
        "--corruption", help="ae denoising: gaussian or mask.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")] = None,
    sets: Annotated[list[str], typer.Option(
        "--set", help="Any other model option as KEY=VALUE (repeatable), e.g. --set code_dim=16.")] = [],
    device: DeviceOpt = "auto",
    data_root: DataRootOpt = None,
    download: DownloadOpt = False,
) -> None:
    """Train a generator; the run folder gets weights, metrics and a sample grid every epoch."""
    named = {"variant": variant, "linear": linear or None, "loss": loss, "k": k, "lam": lam,
             "latent_dim": latent_dim, "corruption": corruption, "batch_size": batch_size,
             "lr": lr}
    try:
        options = {key: value for key, value in named.items() if value is not None}
        options.update(parse_sets(sets))
        from forensics.progress import training_progress
        from generators.registry import get
        from generators.training import train as run_training

        get(generator)
        if epochs is not None and epochs < 1:
            raise ForensicsError("--epochs must be positive")
        out = out or Path("runs") / generator
        with training_progress(console(), generator) as callback:
            run = run_training(generator, options, out=out, dataset=dataset, epochs=epochs,
                               seed=seed, device=device, resume=resume, data_root=data_root,
                               download=download, callback=callback)
    except ForensicsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; the last finished epoch is saved (continue with --resume)", 130)
    typer.echo(f"trained {generator} for {run.config['epochs']} epochs → {run.path}")


@app.command()
def generate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `forensics train`.")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 1000,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default RUN_DIR/synthetic).")] = None,
    seed: SeedOpt = 0,
    mode: Annotated[str, typer.Option(
        "--mode", help="sample (from the prior / code distribution) or reconstruct (re-render "
        "held-out real images; ae and vae).")] = "sample",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output folder.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Write N PNG images and a manifest with the provenance of each."""
    try:
        if n < 1:
            raise ForensicsError("--n must be a positive number of images")
        if mode not in ("sample", "reconstruct"):
            raise ForensicsError("--mode must be sample or reconstruct")
        from forensics.progress import count_progress
        from generators.synthesis import generate as make
        from generators.training import load_run

        run = load_run(run_dir, device=device)
        out = out or run_dir / "synthetic"
        with count_progress(console(), f"generating {n} images", n) as advance:
            make(run, n, out, seed=seed, mode=mode, force=force, callback=advance)
    except ForensicsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    typer.echo(f"wrote {n} images and manifest.json → {out}")


@app.command()
def explore(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `forensics train`.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the figures.")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Write the course's pictures: reconstructions, latent space, interpolations, traversals."""
    try:
        from generators.explore import explore as draw
        from generators.training import load_run

        written = draw(load_run(run_dir), out or run_dir / "explore", seed=seed)
    except ForensicsError as error:
        fail(str(error))
    for path in written:
        typer.echo(str(path))


@app.command()
def benchmark(
    suite: Annotated[str, typer.Option("--suite", help="A suite in benchmarks/suites/ (quick, full) "
                                       "or a path to a suite .toml.")] = "quick",
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("reports/quick"),
    seed: SeedOpt = 0,
    cache: Annotated[Optional[Path], typer.Option(
        "--cache", help="Artefact cache (default ~/.cache/forensics/bench or $FORENSICS_CACHE).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Retrain everything the suite names.")] = False,
) -> None:
    """Train the suite's generators and detectors; measure every detector against every generator."""
    try:
        from benchmarks.cache import default_root
        from benchmarks.runner import run_benchmark
        from benchmarks.suite import load_suite
        from forensics.progress import stage_progress

        loaded = load_suite(suite)
        if out == Path("reports/quick") and loaded.name != "quick":
            out = Path("reports") / loaded.name
        with stage_progress(console()) as progress:
            results = run_benchmark(loaded, out, seed=seed, cache=cache or default_root(),
                                    fresh=fresh, progress=progress)
    except ForensicsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; finished artefacts are cached, run again to continue", 130)
    _print_summary(results)
    typer.echo(f"report: {out / 'report.md'}  {out / 'report.html'}  {out / 'results.json'}")


def _print_summary(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    summary = results["summary"]
    table = Table(title=f"benchmark {results['suite_name']}: best detector "
                        f"{summary['best_detector']} ({results['timings_seconds']['total']} s)")
    for column in ("detector", "min AUC", "mean AUC", "cross-gen AUC", "leave-one-out AUC",
                   "AUC JPEG 50", "images/s"):
        table.add_column(column, justify="right")

    def fmt(value) -> str:
        return "—" if value is None else f"{value:.3f}"

    for name, row in summary["per_detector"].items():
        table.add_row(name, fmt(row["min_in_distribution_auc"]), fmt(row["mean_in_distribution_auc"]),
                      fmt(row["mean_cross_generator_auc"]), fmt(row["mean_leave_one_out_auc"]),
                      fmt(row["mean_auc_jpeg50"]), str(results["throughput_images_per_s"][name]))
    Console().print(table)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="forensics")


if __name__ == "__main__":
    sys.exit(main())
