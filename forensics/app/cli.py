"""The ``forensics`` command line: thin commands over the library.

Heavy libraries (torch, scikit-learn) are imported inside commands so that
``forensics --help`` stays fast. A :class:`ForensicsError` becomes one line on
stderr and exit status 2 (1 for ``detect`` when nothing could be read).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from itertools import chain
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from forensics import __version__
from forensics.app.options import (
    FLAG,
    AsCsv,
    AsJson,
    BatchSize,
    Compile,
    DataRoot,
    Dataset,
    Device,
    Download,
    Epochs,
    Force,
    Precision,
    RecordsOut,
    Sampler,
    Seed,
    Steps,
    Temperature,
)
from forensics.errors import ForensicsError
from forensics.paths import check_writable, os_error_line
from forensics.registry import parse_sets


class Commands(TyperGroup):
    """The commands, with every file-system failure (a full disk, a read-only folder, an
    over-long name) as one line naming the output, and exit status 2: nothing is
    half-written (the writers remove their temporaries), so the line is all there is to say."""

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None and not getattr(command, "one_line_os_errors", False):
            invoke = command.invoke

            def guarded(sub_ctx):
                try:
                    return invoke(sub_ctx)
                except OSError as error:
                    where = sub_ctx.params.get("out") or sub_ctx.params.get("digest") or ""
                    fail(os_error_line(error, str(where)))

            command.invoke = guarded
            command.one_line_os_errors = True
        return command


app = typer.Typer(
    cls=Commands,
    name="forensics",
    help="Make fakes with the generative models of the course (AE, VAE, GAN, InfoGAN, diffusion), "
    "then detect them and report how well.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def sampling_changes(sampler: str | None, steps: int | None, temperature: float | None = None) -> dict:
    """The sampling options a command was given (``--sampler``, ``--steps``, ``--temperature``)."""
    given = {"sampler": sampler, "steps": steps, "temperature": temperature}
    return {k: v for k, v in given.items() if v is not None}


def _known(package: str) -> dict[str, dict]:
    """The registered models of ``package`` (and plug-ins) as their sources declare them,
    for help texts (read without importing torch: ``forensics --help`` stays fast)."""
    from forensics.registry import declared, with_plugins

    return declared(*with_plugins(package))


GENERATORS = _known("generators")
DETECTORS = _known("detectors")


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


def fail(message: str, code: int = 2, quiet: bool = False) -> None:
    """One line on stderr and exit ``code`` (``quiet``: torchrun's rank 0 already says it)."""
    if not quiet:
        from forensics.text import printable

        # a message may list problems one per line; within a line, no control codes
        shown = "\n".join(map(printable, str(message).split("\n")))
        typer.secho(f"error: {shown}", err=True, fg="red")
    raise typer.Exit(code)


def _session(device: str):
    """torchrun's process group for a command's duration (nothing without torchrun)."""
    from forensics.distributed import session
    from forensics.runtime import pick_device

    return session(pick_device(device))


def fail_error(error: ForensicsError) -> None:
    """``fail`` with the error's line; under torchrun an error all ranks agreed on prints once."""
    fail(str(error), quiet=getattr(error, "reported_by_rank0", False) and launch_rank() > 0)


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun): who prints results."""
    import os

    return int(os.environ.get("RANK", "0") or 0)


def console():
    from forensics.app.progress import console as progress_console

    return progress_console()


def opened_on_first_call(stack: ExitStack, open_display: Callable) -> Callable:
    """A callback that enters its progress display (on ``stack``) when first called.

    Checks that fail before any progress (a bad option, an existing output folder)
    then print one line of error instead of an empty progress bar above it.
    """
    display: list[Callable] = []

    def callback(*args) -> None:
        if not display:
            display.append(stack.enter_context(open_display()))
        display[0](*args)

    return callback


datasets_app = typer.Typer(
    help="List the named data sets (no command), or export one part of one as PNG files.",
    rich_markup_mode="rich", context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False, pretty_exceptions_enable=False)
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback(invoke_without_command=True)
def datasets(ctx: typer.Context) -> None:
    """List the named data sets with their sizes, image shapes and the one split every command uses.

    `forensics datasets export NAME --split test --out DIR` writes a part as PNG files.
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from forensics.data import BUILTIN, SPLIT_SEED, load, split_indices

    table = Table(title=f"data sets (split: stratified 80/10/10 train/val/test, seed {SPLIT_SEED})")
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


@datasets_app.command("export")
def datasets_export(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A data set `forensics datasets` lists "
                                             "(mnist5k, digits, folder:PATH, mnist, …).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write (must not exist, "
                                                    "unless --force).")],
    split: Annotated[str, typer.Option(
        "--split", help="train, val, test (the held-out images every command scores on) "
        "or all.")] = "test",
    force: Force = False,
    data_root: DataRoot = None,
    download: Download = False,
) -> None:
    """Write one part of a data set as PNG files, labels.csv and manifest.json.

    The images are exactly those the toolkit trains on (train), calibrates on (val) or
    holds out (test), so other tools can be run on the same ones; `forensics verify DIR`
    checks the folder against its manifest, and `forensics detect DIR` reads it.
    """
    try:
        from forensics.app.progress import count_progress
        from forensics.data import SPLITS
        from forensics.export import export_split

        if split not in SPLITS:
            raise ForensicsError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
        with ExitStack() as stack:
            bar: list = []

            def counted(k: int, total: int) -> None:
                if not bar:  # opened once the data set has loaded (its errors come bare)
                    bar.append(stack.enter_context(
                        count_progress(console(), f"exporting {name} {split}", total)))
                bar[0](k)

            manifest = export_split(name, split, out, force=force, root=data_root,
                                    download=download, callback=counted)
    except ForensicsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    typer.echo(f"wrote {manifest['header']['n']} images of {name} ({split}), labels.csv and "
               f"manifest.json → {out}")


def _epochs_by_generator() -> str:
    return ", ".join(f"{name} {info.get('default_epochs', 20)}" for name, info in GENERATORS.items())


@app.command(epilog=f"Default epochs: {_epochs_by_generator()}.")
def train(
    generator: Annotated[str, typer.Argument(metavar="GENERATOR", help=f"{', '.join(GENERATORS)}.")],
    dataset: Dataset = "mnist5k",
    epochs: Epochs = None,
    seed: Seed = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/GENERATOR).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", metavar="", help="Continue the run in --out with its recorded "
        "options.")] = False,
    variant: Annotated[str | None, typer.Option(
        "--variant", help="ae: plain (default), sparse, denoising or contractive.")] = None,
    linear: Annotated[bool, typer.Option(
        "--linear/--no-linear", metavar="", help="ae: linear encoder and decoder.")] = False,
    loss: Annotated[str | None, typer.Option(
        "--loss", help="gan/infogan: minimax or non-saturating (default).")] = None,
    k: Annotated[int | None, typer.Option(
        "--k", help="gan/infogan: D steps per G step (default 1).")] = None,
    lam: Annotated[float | None, typer.Option(
        "--lam", help="ae sparse/contractive: λ of the penalty (default 1e-3 sparse, 1e-2 "
        "contractive; 0: no penalty).")] = None,
    latent_dim: Annotated[int | None, typer.Option(
        "--latent-dim", help="vae: size of z (default 8).")] = None,
    corruption: Annotated[str | None, typer.Option(
        "--corruption", help="ae denoising: gaussian (default) or mask.")] = None,
    batch_size: BatchSize = None,
    lr: Annotated[float | None, typer.Option(
        "--lr", help="Learning rate (default: the model's own).")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Any other model option (repeatable), e.g. "
        "--set code_dim=16; README lists them.")] = None,
    device: Device = "auto",
    data_root: DataRoot = None,
    download: Download = False,
    precision: Precision = None,
    compile: Compile = None,
) -> None:
    """Train a generator; the run folder gets weights, metrics and a sample grid every epoch.

    Options a variant does not use (--lam with plain, --corruption with sparse) are refused.
    Runs unchanged under `torchrun --nproc-per-node N` (DistributedDataParallel; --batch-size
    stays the global batch; rank 0 writes the run folder); see the README.
    """
    named = {"variant": variant, "linear": linear or None, "loss": loss, "k": k, "lam": lam,
             "latent_dim": latent_dim, "corruption": corruption, "batch_size": batch_size,
             "lr": lr}
    out = out or Path("runs") / generator
    try:
        options = {key: value for key, value in named.items() if value is not None}
        options.update(parse_sets(sets or []))
        from forensics.app.progress import training_progress
        from generators.registry import get
        from generators.training import train as run_training

        get(generator)
        if epochs is not None and epochs < 1:
            raise ForensicsError("--epochs must be positive")
        if not resume:
            check_writable(out)
        with ExitStack() as stack:
            callback = opened_on_first_call(stack, lambda: training_progress(console(), generator))
            run = run_training(generator, options, out=out, dataset=dataset, epochs=epochs,
                               seed=seed, device=device, resume=resume, data_root=data_root,
                               download=download, precision=precision,
                               compile=compile, callback=callback)
    except ForensicsError as error:
        fail_error(error)
    except KeyboardInterrupt:
        fail(_interrupted(out), 130)
    if launch_rank() == 0:
        if run.config["data"].get("note"):
            typer.echo(run.config["data"]["note"], err=True)
        processes = run.config["processes"]
        typer.echo(f"trained {generator} for {run.config['epochs']} epochs → {run.path}"
                   + (f" ({processes} processes)" if processes > 1 else ""))


def _interrupted(out: Path) -> str:
    """What an interrupted ``train`` left: the last saved epoch, or that none is saved."""
    from generators.runs import CONFIG, saved_epoch

    epoch = saved_epoch(out)
    if epoch:
        return f"interrupted; epoch {epoch} is saved in {out} (continue with --resume)"
    if (out / CONFIG).is_file():
        return (f"interrupted before the first epoch finished; no epoch is saved ({out} holds "
                "only the config: start over with --resume)")
    return "interrupted before training started; nothing was written"


@app.command()
def generate(
    run_dir: Annotated[Path, typer.Argument(
        metavar="RUN_DIR", help="A run folder written by `forensics train`.")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 1000,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default RUN_DIR/synthetic).")] = None,
    seed: Seed = 0,
    mode: Annotated[str, typer.Option(
        "--mode", help="sample (from the prior / code distribution) or reconstruct (re-render "
        "held-out real images; ae and vae).")] = "sample",
    force: Force = False,
    device: Device = "auto",
    sampler: Sampler = None,
    steps: Steps = None,
    temperature: Temperature = None,
) -> None:
    """Write N PNG images and a manifest with the provenance of each (and how they were sampled)."""
    try:
        if n < 1:
            raise ForensicsError("--n must be a positive number of images")
        if mode not in ("sample", "reconstruct"):
            raise ForensicsError("--mode must be sample or reconstruct")
        from forensics.app.progress import count_progress
        from generators.synthesis import generate as make
        from generators.training import load_run

        out = out or run_dir / "synthetic"
        check_writable(out)
        run = load_run(run_dir, device=device)
        with ExitStack() as stack:
            advance = opened_on_first_call(
                stack, lambda: count_progress(console(), f"generating {n} images", n))
            make(run, n, out, seed=seed, mode=mode, force=force,
                 sampling=sampling_changes(sampler, steps, temperature), callback=advance)
    except ForensicsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    typer.echo(f"wrote {n} images and manifest.json → {out}")


@app.command()
def explore(
    run_dir: Annotated[Path, typer.Argument(
        metavar="RUN_DIR", help="A run folder written by `forensics train`.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the figures (default RUN_DIR/explore).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    sampler: Sampler = None,
    steps: Steps = None,
    temperature: Temperature = None,
) -> None:
    """Write the course's pictures: samples, reconstructions, latent space, interpolations,
    code traversals, a diffusion model's denoising trajectory (what the run's generator has),
    each titled and labelled."""
    try:
        from generators.explore import explore as draw
        from generators.training import load_run

        check_writable(out or run_dir / "explore")
        written = draw(load_run(run_dir, device=device), out or run_dir / "explore", seed=seed,
                       sampling=sampling_changes(sampler, steps, temperature))
    except ForensicsError as error:
        fail(str(error))
    for path in written:
        typer.echo(str(path))


def _epochs_by_detector() -> str:
    return ", ".join(f"{name} {info['init_defaults']['epochs']}" for name, info in DETECTORS.items()
                     if "epochs" in info.get("init_defaults", {}))


@app.command("train-detector", epilog=f"Default epochs (the detectors that train in epochs): "
                                      f"{_epochs_by_detector()}.")
def train_detector(
    kind: Annotated[str, typer.Argument(help=f"{', '.join(DETECTORS)}.")],
    out: Annotated[Path, typer.Option("--out", help="Detector folder to write.")],
    fake: Annotated[list[Path] | None, typer.Option(
        "--fake", metavar="FOLDER", help="A folder of fakes (a `forensics generate` output, any "
        "image folder, or 0_real/ + 1_fake/, whose 0_real/ is then the real data); repeatable, "
        "each a source named by its manifest's generator (a second set of one generator: by its "
        "folder). Not needed by real-only detectors.")] = None,
    real: Annotated[str | None, typer.Option(
        "--real", help="Real data set (its seeded split); default mnist5k, or the 0_real/ of a "
        "--fake folder (giving both is refused).")] = None,
    seed: Seed = 0,
    epochs: Epochs = None,
    device: Device = "auto",
    balance: Annotated[bool, typer.Option(
        "--balance/--no-balance", metavar="", help="Weigh real and fake (each source, for "
        "attribution) equally in the training loss, whatever their counts; recorded in "
        "detector.json.")] = True,
    run: Annotated[Path | None, typer.Option(
        "--run", help="discriminator: the gan/infogan run folder whose D is used (default: none; "
        "the discriminator family needs it).")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Detector option as KEY=VALUE (repeatable), e.g. --set epochs=8.")] = None,
    force: Force = False,
    data_root: DataRoot = None,
    precision: Precision = None,
    compile: Compile = None,
    threshold_rule: Annotated[str, typer.Option(
        "--threshold-rule", help="fpr (default): the lowest threshold that keeps the share of real "
        "images called fake at most --target-fpr with --fpr-confidence, judged on the real validation "
        "images plain and under each ordinary processing (JPEG, WebP, blur, "
        "resize, noise, PNG re-save, sharpening, a tone change, fewer gray levels, two in a row) alone, "
        "and at fixed strengths one by one (JPEG quality 30…90, blur σ 0.3…2, resize 0.5…0.9×, noise "
        "σ 2…16/255, black lifted 4…24/255, 2…16 gray levels); "
        "youden: max TPR − FPR (needs fakes). "
        "Both are saved.")] = "fpr",
    target_fpr: Annotated[float, typer.Option(
        "--target-fpr", help="The false-positive rate of the fpr rule (default 0.01).")] = 0.01,
    fpr_confidence: Annotated[float, typer.Option(
        "--fpr-confidence", help="How sure the fpr rule is that --target-fpr holds on new real "
        "images, not only on the validation ones (default 0.95: of 500 real validation images at "
        "0.01, at most one may score above the threshold; reading the 99th percentile itself "
        "holds 0.01 about half the time). Too few validation images for it: the threshold lies "
        "above all of them and the report says how sure it is.")] = 0.95,
) -> None:
    """Train a real-vs-fake detector; calibrate its threshold on validation; report on test.

    Prints, on held-out test images, the balanced accuracy, the TPR
    (fakes called fake) and the FPR (reals called fake) at the saved
    threshold, each fake source's TPR, and for attribution each class's
    recall; names the processing of real validation images that set the
    fpr rule's threshold, with the threshold plain real images alone would
    allow and the TPR there (metrics.threshold_sets); warns when one class
    outnumbers another more than 3:1 in training (classes are balanced in
    the loss unless --no-balance).
    With fakes, the raw score is also calibrated (Platt's rule on
    validation images plain and under each ordinary processing, equal
    priors) into the P(fake) `forensics detect` shows; verdicts compare
    the raw score with the threshold.

    The detector also records its domain (the real data's shape and
    typicality), so `forensics detect` abstains on images of another
    domain. Real-only detectors train with --real alone. The torch
    detectors (cnn, attribution, discriminator) also train under
    `torchrun --nproc-per-node N` (DistributedDataParallel; rank 0 saves
    and reports).
    """
    if sets is None:
        sets = []
    if fake is None:
        fake = []
    try:
        from rich.markup import escape

        from detectors.inputs import gather
        from detectors.registry import get, option_names
        from detectors.training import save_detector
        from detectors.training import train_detector as fit
        from forensics.app.progress import status
        from forensics.text import printable

        family = get(kind)
        if not fake and family.needs_fakes:
            raise ForensicsError(f"{kind} learns from fakes: give --fake FOLDER (repeatable)")
        if threshold_rule not in ("fpr", "youden"):
            raise ForensicsError(f"--threshold-rule must be fpr or youden, not {threshold_rule!r}")
        if threshold_rule == "youden" and not fake:
            raise ForensicsError("--threshold-rule youden needs --fake; without fakes the rule is fpr")
        if not 0.0 < target_fpr < 1.0:
            raise ForensicsError(f"--target-fpr must lie strictly between 0 and 1, not {target_fpr}")
        if not 0.0 < fpr_confidence < 1.0:
            raise ForensicsError(f"--fpr-confidence must lie strictly between 0 and 1, not {fpr_confidence}")
        if out.exists() and not force:
            raise ForensicsError(f"{out} already exists (use --force to overwrite)")
        check_writable(out)  # before training, not after
        options = parse_sets(sets or [])
        if run is not None:
            options["run"] = str(run)
        if "seed" in option_names(kind):
            options.setdefault("seed", str(seed))
        if epochs is not None:
            if "epochs" not in option_names(kind):
                trained = [k for k, i in DETECTORS.items() if "epochs" in i.get("init_defaults", {})]
                raise ForensicsError(f"--epochs is for the detectors that train in epochs "
                                     f"({', '.join(trained)}), not {kind}")
            if epochs < 1:
                raise ForensicsError("--epochs must be positive")
            options["epochs"] = str(epochs)
        if "device" in option_names(kind):
            options.setdefault("device", device)
        if family.balances:
            options.setdefault("balance", str(balance))
        for name, value in (("precision", precision), ("compile", compile or None)):
            if value is not None:
                if not get(kind).torch_based:
                    torch_kinds = [k for k, info in DETECTORS.items() if info.get("torch_based")]
                    raise ForensicsError(f"--{name} is for the torch detectors "
                                         f"({', '.join(torch_kinds)}), not {kind}")
                options[name] = str(value)
        main = launch_rank() == 0
        data = gather(real, fake, seed=seed, data_root=data_root)
        for line in data.problems.lines if main else ():
            typer.echo(f"skipped: {printable(line)}", err=True)
        with _session(options.get("device", "auto")), \
                status(console(), escape(printable(
                    f"training {kind} on {', '.join(data.fakes) or 'real images only'}"))) \
                if main else nullcontext():
            detector, report = fit(kind, data.real["train"], data.real["val"], data.real["test"],
                                   data.fakes, options, seed=seed, rule=threshold_rule,
                                   target_fpr=target_fpr, confidence=fpr_confidence)
        if not main:
            return
        save_detector(detector, out, extra={"data": data.provenance, "seed": seed,
                                            "command": ["forensics", *sys.argv[1:]]}, force=force)
    except ForensicsError as error:
        fail_error(error)
    _print_training_report(report, detector.calibration_.get("probability"))
    typer.echo(f"saved → {out}")


def _print_training_report(report: dict, probability: dict | None) -> None:
    """The test numbers at the saved threshold, one fact a line (the same as detector.json's metrics)."""
    from detectors.training import images_needed
    from forensics.text import printable

    balance = report["class_balance"]
    if balance["ratio"] > 3.0:
        counts = " : ".join(f"{printable(k)} {v}" for k, v in balance["counts"].items())
        done = ("balanced by class weights (--no-balance turns it off)" if balance["balanced"]
                else "not balanced" if balance["balanced"] is False else "this detector does not balance")
        typer.echo(f"warning: imbalanced training classes ({counts}, {balance['ratio']:.1f}:1); {done}",
                   err=True)
    limits = report["thresholds"]
    sure = limits.get("achieved_confidence")
    rules = {"fpr": f"fpr rule: at most {limits['target_fpr']:g} of real images called fake, plain and "
                    "under each processing" + (f", with {sure:.0%} confidence" if sure is not None else ""),
             "youden": "youden rule: max TPR − FPR on validation"}
    if report["threshold_rule"] == "fpr" and sure is not None and sure < limits["confidence"]:
        needed = images_needed(limits["target_fpr"], limits["confidence"])
        typer.echo(f"warning: {report['n']['val']['real']} real validation images hold the fpr rule's "
                   f"{limits['target_fpr']:g} with {sure:.0%} confidence, not {limits['confidence']:.0%} "
                   f"({needed} would): the threshold lies above all of them", err=True)
    rule = rules.get(report["threshold_rule"], report["threshold_rule"])
    never = " — above every score: nothing is called fake" if report["threshold"] > 1.0 else ""
    typer.echo(f"threshold {report['threshold']:.6g}{never} ({rule})"
               + ("; score calibrated to P(fake) (Platt, equal priors)" if probability
                  else "; the score is not a probability (no fakes to calibrate it on)"))
    sets = report.get("threshold_sets")
    if report["threshold_rule"] == "fpr" and sets and sets["set_by"] != "plain":
        caught = f", TPR {sets['tpr_at_plain']:.4f} there" if "tpr_at_plain" in sets else ""
        typer.echo(f"the fpr threshold is set by real images under {sets['set_by']}; plain real images "
                   f"alone would allow {sets['plain']:.6g}{caught} (metrics.threshold_sets)")
    fpr = report["real_fpr"]
    if "auc" in report:
        n = report["n"]["test"]
        fakes = sum(v for k, v in n.items() if k != "real")
        typer.echo(f"test at the threshold: balanced accuracy {report['balanced_accuracy']:.4f}, "
                   f"TPR {report['tpr']:.4f} ({fakes} fakes), FPR {report['fpr']:.4f} ({n['real']} reals; "
                   f"{fpr['processed']:.4f} after processing, {fpr['processed_worst']:.4f} after "
                   f"{fpr['worst_processing']}, the worst); AUC {report['auc']:.4f}")
        per = ", ".join(f"{printable(k)} {v:.3f}" for k, v in report["per_source_tpr"].items())
        auc = ", ".join(f"{printable(k)} {v:.3f}" for k, v in report["per_source_auc"].items())
        typer.echo(f"per source: TPR {per}; AUC {auc}")
    else:
        typer.echo(f"test reals called fake at the threshold: {fpr['plain']:.4f} plain, "
                   f"{fpr['processed']:.4f} processed, {fpr['processed_worst']:.4f} after "
                   f"{fpr['worst_processing']}, the worst (no fakes: no TPR)")
    if "confusion_matrix" in report:
        confusion = report["confusion_matrix"]
        recall = ", ".join(f"{printable(k)} {v:.3f}" for k, v in confusion["recall"].items())
        typer.echo(f"attribution recall per class: {recall} "
                   f"(balanced accuracy {confusion['balanced_accuracy']:.4f})")
        _print_confusion(confusion)


def _print_confusion(confusion: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"attribution on held-out test images (balanced accuracy "
                        f"{confusion['balanced_accuracy']:.3f}); rows: true source, columns: predicted")
    table.add_column("")
    for name in confusion["labels"]:
        table.add_column(name, justify="right")
    for name, row in zip(confusion["labels"], confusion["rows_true_columns_predicted"], strict=True):
        table.add_row(name, *map(str, row))
    Console().print(table)


#: Reading processes of ``detect``. 0: on 2 cores, reading 10,000 28×28 PNGs is 0.6 s of a 2.3 s
#: scan and scoring already uses both cores, so 2 workers gained nothing (4.14 s vs 3.98 s).
DETECT_WORKERS = 0


@app.command()
def detect(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH", help="Image files (read whatever their suffix) and folders (searched recursively "
        "for image suffixes; a note names the files passed over).")],
    detector: Annotated[list[Path] | None, typer.Option(
        "--detector", metavar="DIR",
        help="A detector folder (repeatable); default: the one shipped with forensics.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    explain: Annotated[Path | None, typer.Option(
        "--explain", metavar="DIR", help="Write a PNG per image into DIR: the image, its spectrum "
        "vs real data, saliency (default: none written).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes reading the files (0: read them in this process).")] = DETECT_WORKERS,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Files per batch; memory grows with batch size × (workers + 1).")] = 512,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="I/N", help="Scan only shard I of N (1 ≤ I ≤ N) into the part file "
        "--out; `forensics merge` joins the N parts (default: scan everything).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="Write the records to FILE (atomically; JSON Lines, or CSV "
        "with --csv) instead of stdout (the default); temporaries of FILE a killed run left (over "
        "an hour old) are removed.")] = None,
    threshold: Annotated[str | None, typer.Option(
        "--threshold", metavar="VALUE|fpr:RATE", help="Override the saved thresholds: a raw-score "
        "VALUE in [0, 1] for every detector, or fpr:RATE (each detector's threshold at that "
        "false-positive rate with 95% confidence, from its recorded real validation scores; where "
        "they are too few for that, above all of them, the rule shown saying how sure it is). "
        "Default: each detector's "
        "saved threshold. Shown in every output.")] = None,
    combine: Annotated[str, typer.Option(
        "--combine", help="How several detectors' verdicts combine: any (fake when one says fake), "
        "majority (more than half; a tie is real), mean (mean of logit(score) − logit(threshold) "
        "≥ 0).")] = "any",
    device: Device = "auto",
    force: Annotated[bool, typer.Option(
        "--force", metavar=FLAG, help="Score images outside the detectors' domain too (the record "
        "still says in_domain: false). Default: they are not judged.")] = False,
) -> None:
    """Score images: raw score, calibrated P(fake), verdict at each detector's threshold, source.

    Each detector says fake when its raw score reaches its threshold (shown in every
    output); the calibrated P(fake) is shown for detectors that store one. With several
    detectors, --combine decides (default any) and `disagree` marks split verdicts.
    A `real` verdict means "not shown to be fake": the shipped detector's threshold keeps
    false alarms on real digits, plain or processed, under 1 %, and many fakes score
    below it (sort by score to triage).

    An image unlike the detector's real training data (another size or channel count, or
    atypical content: a photograph for a digit detector) is not judged: its verdict is
    out-of-domain, with the reason, and no score (--force scores it anyway).

    Exit status: 0 when every readable image was scored or found out of domain
    (out-of-domain images are not errors; unreadable files are reported, in --json and
    --csv as records with an error, and skipped); 1 when no image could be read (an
    empty folder: "no images found"); 2 for usage errors (a path that does not exist,
    --json with --csv, a bad option). Under torchrun, each process scans its share and
    the first prints the merged output.
    """
    if detector is None:
        detector = []
    try:
        from detectors import shards
        from detectors.scan import COMBINE_RULES, DEFAULT_DETECTOR, resolve_threshold, scan
        from forensics import distributed
        from forensics.app import detect as detect_app
        from forensics.app.progress import count_progress
        from forensics.shard import Shard

        part = Shard.parse(shard) if shard is not None else None
        if as_json and as_csv:
            raise ForensicsError("--json and --csv exclude each other: choose one")
        if combine not in COMBINE_RULES:
            raise ForensicsError(f"--combine must be one of {', '.join(COMBINE_RULES)}, not {combine!r}")
        detect_app.check_inputs(paths)
        from forensics.runtime import pick_device

        pick_device(device)  # an unknown device is a usage error before anything is loaded
        if workers < 0:
            raise ForensicsError("--workers must be 0 or more")
        if batch_size < 1:
            raise ForensicsError("--batch-size must be positive")
        if part is not None and (out is None or as_json or as_csv):
            raise ForensicsError("--shard writes a part file for `forensics merge`: give --out PART, "
                                 "and --json or --csv to merge")
        if part is not None and distributed.launched():
            raise ForensicsError("--shard is not for torchrun: each process scans its share already")
        if explain is not None and (part is not None or distributed.launched()):
            raise ForensicsError("--explain needs one unsharded process (not --shard, not torchrun)")
        folders = detector or [DEFAULT_DETECTOR]
        if not detector and not (DEFAULT_DETECTOR / "detector.json").is_file():
            raise ForensicsError("no default detector is installed; pass --detector DIR")
        with ExitStack() as stack:
            if distributed.launched():
                stack.enter_context(distributed.session("cpu"))
            named = distributed.checked(
                lambda: detect_app.load_detectors(folders, DEFAULT_DETECTOR, device=device))
            loaded = {name: d for name, (d, _) in named.items()}
            rule = resolve_threshold(loaded, threshold)
            mine = Shard(distributed.rank(), distributed.size()) if distributed.launched() else part
            batches = scan(paths, loaded, workers=workers, shard=mine or Shard(),
                           batch_size=batch_size, force=force, threshold=rule, rule=combine)
            if distributed.size() > 1:
                entries = shards.gathered(batches)  # every rank takes part; rank 0 gets them all
                if not distributed.is_main():
                    for _ in entries:
                        pass
                    return
            else:
                entries = chain.from_iterable(batches)
            walk = shards.listing(paths, part or Shard())
            if part is not None:
                head = shards.header(paths, {n: f for n, (_, f) in named.items()},
                                     {n: d.input_shape_ for n, d in loaded.items()}, part, walk,
                                     options={"force": force, "threshold": list(rule),
                                              "combine": combine})
                writer = shards.PartWriter(detect_app.open_out(stack, out), head)
            else:
                writer = detect_app.records_writer(stack, out, as_json, as_csv, list(loaded))
            writers = [writer]
            if explain is not None:
                writers.append(detect_app.explanations(loaded, folders[0], explain))
            with count_progress(console(), "scoring", walk.images) as advance:
                counts = detect_app.write_entries(entries, writers, advance)
            for each in writers:
                each.close()
    except ForensicsError as error:
        fail_error(error)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as error:  # a full disk or read-only folder while writing --out or --explain
        fail(os_error_line(error, str(out or "")))
    detect_app.warn_resized(counts, next(iter(loaded.values())).input_shape_)
    detect_app.note_out_of_domain(counts, force)
    detect_app.note_passed_over(walk.passed_over)
    if explain is not None and writers[-1].count:
        typer.echo(f"explanations: {writers[-1].count} PNGs → {explain}", err=True)
    if part is not None:
        typer.echo(f"part {part} → {out}", err=True)
    detect_app.finish(counts, empty_fails=part is None)


@app.command()
def merge(
    parts: Annotated[list[Path], typer.Argument(
        metavar="PART...",
        help="The N part files of `forensics detect --shard I/N --out PART`, in any order.")],
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: RecordsOut = None,
) -> None:
    """Join the parts of a sharded `forensics detect`: the output of one unsharded run, exactly.

    Exit status as for detect: 0, 1 when no image could be read, 2 for usage errors
    (parts that do not belong together, a part missing or given twice).
    """
    try:
        from detectors import shards
        from forensics.app import detect as detect_app
        from forensics.images import PassedOver

        head, entries = shards.merge_parts(parts)
        names = [d["name"] for d in head["detectors"]]
        with ExitStack() as stack:
            writer = detect_app.records_writer(stack, out, as_json, as_csv, names)
            counts = detect_app.write_entries(entries, [writer], lambda k=1: None)
            writer.close()
    except ForensicsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as error:
        fail(os_error_line(error, str(out or "")))
    detect_app.warn_resized(counts, head["detectors"][0]["input_shape"])
    detect_app.note_out_of_domain(counts, bool((head.get("options") or {}).get("force")))
    detect_app.note_passed_over(PassedOver.from_dict(head.get("passed_over")))
    detect_app.finish(counts)


@app.command()
def benchmark(
    suite: Annotated[str, typer.Option("--suite", help="A suite in benchmarks/suites/ (quick, full) "
                                       "or a path to a suite .toml.")] = "quick",
    out: Annotated[Path, typer.Option(
        "--out", help="Report folder (reports/SUITE for another suite).")] = Path("reports/quick"),
    seed: Seed = 0,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="Artefact cache (default ~/.cache/forensics/bench or $FORENSICS_CACHE).")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh/--no-fresh", metavar="", help="Retrain everything the suite names.")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes reading the synthetic sets (0: read them in this process).")] = 0,
    device: Device = "auto",
) -> None:
    """Train the suite's generators and detectors; measure every detector against every generator."""
    try:
        from benchmarks.cache import default_root
        from benchmarks.runner import run_benchmark
        from benchmarks.suite import load_suite
        from forensics.app.progress import stage_progress
        from forensics.runtime import pick_device

        if workers < 0:
            raise ForensicsError("--workers must be 0 or more")
        loaded = load_suite(suite)
        if out == Path("reports/quick") and loaded.name != "quick":
            out = Path("reports") / loaded.name
        check_writable(out)
        with stage_progress(console()) as progress:
            results = run_benchmark(loaded, out, seed=seed, cache=cache or default_root(),
                                    fresh=fresh, progress=progress, workers=workers,
                                    device=str(pick_device(device)))
    except ForensicsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; finished artefacts are cached, run again to continue", 130)
    _print_summary(results)
    typer.echo(f"report: {out / 'report.md'}  {out / 'report.html'}  {out / 'results.json'}")


def _print_summary(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from benchmarks.report import summary_row

    summary = results["summary"]
    table = Table(title=f"benchmark {results['suite_name']}: best detector "
                        f"{summary['best_detector']} ({results['timing']['seconds']['total']} s)",
                  caption=f"best: {summary['best_detector_rule']}")
    # AUC (FPR at the calibrated threshold); the columns of report.md's summary, shorter
    for column in ("detector", "worst LOGO", "LOGO TPR", "mean LOGO", "cross-gen", "min in-dist",
                   "FPR processed", "FPR plain", "OOD fake", "images/s"):
        table.add_column(column, justify="right", no_wrap=column == "detector")
    for name, row in summary["per_detector"].items():
        table.add_row(*summary_row(name, row, results["timing"]["throughput_images_per_s"][name]))
    Console().print(table)


@app.command()
def audit(
    folder: Annotated[Path, typer.Argument(
        metavar="FOLDER", help="A folder of generated images (any source).")],
    real: Annotated[str, typer.Option("--real", help="The real data set to compare with.")] = "mnist5k",
    out: Annotated[Path | None, typer.Option("--out", help="Report folder, outside FOLDER "
                                             "(default audits/NAME, NAME: FOLDER's name).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
) -> None:
    """Judge generated images: quality (FD, KID), diversity, memorisation, modes, codes, spectra."""
    try:
        from forensics.app.audit import output_folder, run_audit
        from forensics.app.progress import stage_progress
        from forensics.classifier import load_digit_classifier
        from forensics.runtime import pick_device

        # the audit's features come from this (cached) classifier: it runs on --device
        load_digit_classifier().to(pick_device(device))

        out = output_folder(folder, out)  # checked before the progress display opens
        with stage_progress(console()) as progress:
            result = run_audit(folder, real=real, out=out, seed=seed,
                               callback=lambda e: progress(e["stage"], e["done"], e["total"]))
    except ForensicsError as error:
        fail(str(error))
    from forensics.text import printable

    for line in result["audit"]["skipped"]:  # as detect reports them: the audit went on
        typer.secho(f"skipped: {printable(line)}", err=True, fg="yellow")
    from forensics.app.detect import note_passed_over
    from forensics.images import PassedOver

    note_passed_over(PassedOver.from_dict(result["audit"].get("passed_over")))
    for flag in result.get("flags", []):
        typer.secho(f"flag: {printable(flag)}", err=True, fg="yellow")
    target = Path(result["audit"]["out"])
    typer.echo(f"audit: {target / 'audit.md'}  {target / 'audit.html'}  {target / 'audit.json'}")


@app.command()
def verify(
    folder: Annotated[Path, typer.Argument(help="A synthetic data set, detector or run folder.")],
    digest: Annotated[Path | None, typer.Option(
        "--digest", help="Once verified, keep the folder's digest (every file's sha256) in FILE, "
        "outside the folder; check against it later with --expect. Default: none kept.")] = None,
    expect: Annotated[Path | None, typer.Option(
        "--expect", help="Also check against a digest FILE written by --digest: shows a folder "
        "whose own records were rewritten along with its files. Default: none.")] = None,
) -> None:
    """Check every file of a folder against its records; list missing, extra or altered files.

    Covers every file at any depth (contents.json records them all when the folder is
    written; links and special files are refused) and what the folder's manifest, header
    or config promises. Prints the folder's digest.
    """
    try:
        from forensics.app.verify import verify as check
        from forensics.digest import write_detached
        from forensics.paths import refuse_inside

        if digest is not None:
            refuse_inside(digest, folder, "--digest")
            check_writable(digest, "--digest")
        report = check(folder, expect=expect)
    except ForensicsError as error:
        fail(str(error))
    from forensics.text import printable

    for line in report.notes:
        typer.echo(f"note: {printable(line)}")
    for line in report.problems:  # names from the manifest or the folder: shown, never run as codes
        typer.echo(printable(line))
    if report.problems:
        fail(f"{folder}: {report.kind} does NOT match its manifest ({len(report.problems)} problem(s))", 1)
    typer.echo(f"digest: sha256:{report.digest} (every file, sub-folders included)")
    if digest is not None:
        write_detached(digest, report.kind, report.files)
        typer.echo(f"digest kept → {digest} (check later with --expect {digest})")
    typer.echo(f"{folder}: {report.kind} verified" + (f" (matches {expect})" if expect else ""))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="forensics")


if __name__ == "__main__":
    sys.exit(main())
