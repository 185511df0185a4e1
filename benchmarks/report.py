"""Writing a benchmark's results: results.json, report.md, report.html and plots."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensics import atomic

METRICS = [("auc", "ROC-AUC"), ("average_precision", "AP"), ("eer", "EER"),
           ("accuracy_calibrated", "acc@cal"), ("accuracy_best", "acc@best"),
           ("tpr_at_1pct_fpr", "TPR@1%FPR")]


def _reference_line(timing: dict) -> str:
    """The fixed reference workload timed in the same run, and the total in its units."""
    reference = timing.get("reference")
    if not reference:
        return ""
    units = timing["seconds"]["total"] / reference["seconds"]
    return (f" Reference workload ({reference['workload']}): {reference['seconds']} s at load "
            f"{reference['load_average_1m_before']:.2f}, so the wall time is {units:.0f} reference "
            "units (compare units, not seconds, across machines and days).")


def write_report(results: dict[str, Any], bench, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(results, bench, out)
    atomic.write_json(out / "results.json", results)
    document = _document(results, figures)
    atomic.write_text(out / "report.md", to_markdown(document))
    atomic.write_text(out / "report.html", to_html(document, out))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figures(results: dict[str, Any], bench, out: Path) -> list[tuple[str, str]]:
    from forensics.images import save_grid
    from forensics.measures import radial_spectrum
    from forensics.plots import save_figure

    plt = _pyplot()
    gens, dets = results["generators"], results["detectors"]
    figures = []

    fig, axes = plt.subplots(1, len(dets), figsize=(4 * len(dets), 3.8), squeeze=False)
    for ax, d in zip(axes[0], dets, strict=True):
        for g in gens:
            roc = results["roc"][d][g]
            ax.plot(roc["fpr"], roc["tpr"], label=f"{g} (AUC {results['in_distribution'][d][g]['auc']:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="gray")
        ax.set(title=d, xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, out / "roc.png")
    figures.append(("ROC curves, in-distribution (held-out real vs held-out fakes)", "roc.png"))

    fig, axes = plt.subplots(1, len(dets), figsize=(4.2 * len(dets), 3.4), squeeze=False)
    for ax, d in zip(axes[0], dets, strict=True):
        matrix = np.array([[results["cross_generator"][d][g][h] for h in gens] for g in gens])
        # one fixed scale on every panel: AUC 0 to 1, chance (0.5) marked on each colour bar
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, ticks=[0, 0.25, 0.5, 0.75, 1])
        bar.ax.axhline(0.5, color="red", linewidth=1.5)
        bar.ax.set_yticklabels(["0", "0.25", "0.5 chance", "0.75", "1"], fontsize=7)
        bar.set_label("ROC-AUC", fontsize=7)
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 else "black")
        ax.set(title=d, xticks=range(len(gens)), yticks=range(len(gens)), xlabel="tested on",
               ylabel="trained on")
        ax.set_xticklabels(gens, rotation=45, fontsize=7)
        ax.set_yticklabels(gens, fontsize=7)
    save_figure(fig, out / "cross_generator_auc.png")
    figures.append(("Cross-generator ROC-AUC (rows: trained on; columns: tested on; colour scale "
                    "0 to 1 on every panel, 0.5 = chance marked in red)", "cross_generator_auc.png"))

    perturbations = list(bench.suite.perturbations)
    if perturbations:
        fig, axes = plt.subplots(1, len(perturbations), figsize=(3.2 * len(perturbations), 3),
                                 squeeze=False, sharey=True)
        for ax, name in zip(axes[0], perturbations, strict=True):
            for d in dets:
                cells = results["robustness"][d][name]
                strengths = sorted(cells, key=float)
                ax.plot([float(s) for s in strengths],
                        [np.mean([v["auc"] for v in cells[s].values()]) for s in strengths],
                        "o-", label=d)
            ax.set(title=name, xlabel="strength", ylim=(0.4, 1.02))
        axes[0][0].set_ylabel("mean ROC-AUC over generators")
        axes[0][-1].legend(fontsize=7)
        save_figure(fig, out / "robustness.png")
        figures.append(("Robustness: AUC under test-time perturbations (units in perturbations.jsonl)",
                        "robustness.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    sources = {"real": bench.real["test"], **{g: bench.fakes[g]["test"] for g in gens}}
    for name, images in sources.items():
        ax.plot(radial_spectrum(images).mean(0), label=name)
    ax.set(xlabel="spatial frequency (radial bin)", ylabel="mean log power",
           title="Mean 1-D power spectrum of each source")
    ax.legend()
    save_figure(fig, out / "spectra.png")
    figures.append(("Mean 1-D spectrum per source", "spectra.png"))

    for g in gens:
        save_grid(bench.fakes[g]["test"][:64], out / f"samples_{g}.png", nrow=8, title=g)
        figures.append((f"Samples: {g}", f"samples_{g}.png"))
    return figures


def _fmt(entry: dict[str, Any], key: str) -> str:
    value = entry[key]
    ci = entry.get(f"{key}_ci")
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    title: str
    path: str


#: a report: text lines ("# heading", a paragraph, "" between blocks), tables and figures,
#: rendered once to markdown and once to HTML (no renderer reads the other's output)
Document = list[str | Table | Figure]


def _table(rows: list[list[str]], header: list[str]) -> list[Table]:
    return [Table(header, rows)]


def _document(results: dict[str, Any], figures: list[tuple[str, str]]) -> Document:
    gens, dets = results["generators"], results["detectors"]
    summary = results["summary"]
    machine, timings = results["machine"], results["timing"]["seconds"]
    lines: Document = [
        f"# forensics benchmark — suite `{results['suite_name']}`", "",
        f"Data: {results['data']['name']} (sha256 {results['data']['sha256']}); real images: "
        f"{results['data']['real_train']} train / {results['data']['real_val']} val / "
        f"{results['data']['real_test']} held-out test. Seed {results['seed']}. "
        f"Machine: {machine['processor']}, {machine['cpu_count']} cores, {machine['platform']}; "
        f"torch {results['versions'].get('torch')}. Wall time {timings['total']} s "
        f"({', '.join(f'{k} {v} s' for k, v in timings.items() if k != 'total')}; cached "
        f"artefacts take ~0 s) at load average {results['timing'].get('load_average_1m')}."
        + _reference_line(results["timing"]), "",
        "Every number is on held-out images; intervals are bootstrap 95 % "
        "(stratified, real and fake resampled separately). EER is the error rate where the "
        "false-positive and false-negative rates are equal (ROC interpolated). acc@cal uses the "
        "threshold calibrated on the validation split and saved with the detector; acc@best is "
        "the best threshold on the test set itself (an optimistic reference).", "",
        f"**Best detector: `{summary['best_detector']}`** ({summary['best_detector_rule']}).", "",
        "## Summary", "",
        "Each AUC has beside it (in brackets) the false-positive rate on the held-out real "
        "images at the calibrated threshold of the detectors it comes from. Worst-case LOGO: "
        "the lowest AUC of a detector trained on all generators but one, on that one. Min LOGO "
        "TPR at threshold: the lowest share of the left-out generator's fakes called fake at "
        "the detector's saved threshold (a high AUC with a TPR near 0 ranks well but, at a "
        "threshold that keeps false accusations rare, catches nothing new). "
        "Processed-real FPR: the highest FPR over JPEG 75, a 0.75× resize, blur σ 0.5 and a "
        "PNG re-save of held-out real images (detector trained on all generators); OOD: the "
        "share of out-of-domain images called fake.", "",
    ]
    lines += _table([summary_row(d, summary["per_detector"][d],
                                  results["timing"]["throughput_images_per_s"][d]) for d in dets],
                    SUMMARY_HEADER)
    lines += ["", "## 1. In-distribution", ""]
    for d in dets:
        lines += [f"### {d}", ""]
        lines += _table([[g, *(_fmt(results["in_distribution"][d][g], k) for k, _ in METRICS)]
                         for g in gens], ["generator", *(label for _, label in METRICS)])
        lines.append("")
    lines += ["## 2. Cross-generator (ROC-AUC; rows trained on, columns tested on)", ""]
    for d in dets:
        lines += [f"### {d}", ""]
        lines += _table([[g, *(f"{results['cross_generator'][d][g][h]:.3f}" for h in gens)]
                         for g in gens], ["trained on \\ tested on", *gens])
        lines.append("")
    if any(results["leave_one_out"][d] for d in dets):
        lines += ["### Leave one generator out (trained on all others, tested on it)", ""]
        lines += _table([[d, *(f"{_fmt(results['leave_one_out'][d][g], 'auc')} "
                                f"(FPR {results['leave_one_out'][d][g]['fpr_calibrated']:.3f}, "
                                f"TPR {results['leave_one_out'][d][g]['tpr_calibrated']:.3f})"
                                for g in gens)] for d in dets], ["detector", *gens])
        lines.append("")
    lines += ["## 3. Robustness (mean ROC-AUC over generators; in-distribution detectors)", ""]
    columns = [(name, s) for name, cells in results["robustness"].get(dets[0], {}).items()
               for s in cells]
    if not columns:  # a suite without perturbations
        lines.append("The suite names no perturbations.")
    else:
        lines += _table([[d, *(f"{np.mean([v['auc'] for v in results['robustness'][d][n][s].values()]):.3f}"
                               for n, s in columns)] for d in dets],
                        ["detector", *(f"{n} {float(s):g}" for n, s in columns)])
    lines += ["", "## 4. False positives on processed real images (detector trained on all)", ""]
    labels = list(next(iter(results["processed_real"].values()))["fpr"])
    lines += _table([[d, f"{results['processed_real'][d]['threshold']:.3f}",
                      *(f"{results['processed_real'][d]['fpr'][k]:.3f}" for k in labels)]
                     for d in dets], ["detector", "threshold", *labels])
    lines += ["", _worst_fpr_interval(results["processed_real"], labels)]
    lines += ["", "## 5. Out of domain (share abstained / share called fake)", ""]
    ood_sets = list(next(iter(results["out_of_domain"].values()))["sets"])
    lines += _table([[d, "yes" if results["out_of_domain"][d]["domain_record"] else
                      "no (every image judged)",
                      *(f"{results['out_of_domain'][d]['sets'][k]['abstained']:.3f} / "
                        f"{results['out_of_domain'][d]['sets'][k]['called_fake']:.3f}"
                        for k in ood_sets)] for d in dets],
                    ["detector", "domain record", *ood_sets])
    for d, matrix in results.get("attribution", {}).items():
        if matrix:
            lines += ["", f"### Attribution: `{d}` (rows true source, columns predicted; "
                      f"accuracy {matrix['accuracy']:.3f})", ""]
            lines += _table([[name, *map(str, row)] for name, row in
                             zip(matrix["labels"], matrix["rows_true_columns_predicted"], strict=True)],
                            ["true \\ predicted", *matrix["labels"]])
    lines += ["", "## Figures", ""]
    lines += [Figure(title, path) for title, path in figures]
    return lines


def _opt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


SUMMARY_HEADER = ["detector", "worst LOGO AUC (FPR)", "min LOGO TPR at threshold", "mean LOGO AUC (FPR)",
                  "mean cross-gen. AUC (FPR)", "min in-dist. AUC (FPR)", "processed-real FPR",
                  "plain FPR", "OOD called fake", "images/s"]


def _worst_fpr_interval(processed: dict[str, Any], labels: list[str]) -> str:
    """The highest rate of the processed-real table with its exact 95 % interval: each cell
    counts a few hundred real test images, so 1 % measured may be 0.3–2.3 % in truth."""
    from scipy.stats import binomtest

    d, label = max(((d, k) for d in processed for k in labels), key=lambda dk: processed[dk[0]]["fpr"][dk[1]])
    n = int(processed[d]["n"])
    k = round(processed[d]["fpr"][label] * n)
    low, high = binomtest(k, n).proportion_ci(0.95, method="exact")
    return (f"Each rate counts {n} real test images. The highest, {d} on {label}: {k} of {n} "
            f"({k / n:.3f}; exact 95 % interval {low:.3f}–{high:.3f}).")


def _with_fpr(auc: float | None, fpr: float | None) -> str:
    return "—" if auc is None else f"{auc:.3f} ({_opt(fpr)})"


def summary_row(name: str, s: dict[str, Any], throughput: int) -> list[str]:
    """One detector's summary cells (the report's table and ``forensics benchmark``'s)."""
    worst = _with_fpr(s["worst_leave_one_out_auc"], s["worst_leave_one_out_fpr"])
    if s["worst_leave_one_out_generator"]:
        worst += f" on {s['worst_leave_one_out_generator']}"
    return [name, worst, _opt(s.get("min_leave_one_out_tpr")),
            _with_fpr(s["mean_leave_one_out_auc"], s["mean_leave_one_out_fpr"]),
            _with_fpr(s["mean_cross_generator_auc"], s["mean_cross_generator_fpr"]),
            _with_fpr(s["min_in_distribution_auc"], s["min_in_distribution_fpr"]),
            _opt(s["processed_real_fpr"]), _opt(s["plain_fpr"]), _opt(s["ood_fake_call_rate"]),
            str(throughput)]


def to_markdown(document: Document) -> str:
    lines: list[str] = []
    for block in document:
        if isinstance(block, Table):
            lines += ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header),
                      *["| " + " | ".join(row) + " |" for row in block.rows]]
        elif isinstance(block, Figure):
            lines.append(f"**{block.title}**\n\n![{block.title}]({block.path})\n")
        else:
            lines.append(block)
    return "\n".join(lines) + "\n"


def to_html(document: Document, out: Path) -> str:
    """A self-contained page of the same document: tables, text, images embedded."""
    body = []
    for block in document:
        if isinstance(block, Table):
            cells = lambda row, tag: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row)  # noqa: E731
            body.append("<table><tr>" + cells(block.header, "th") + "</tr>"
                        + "".join(f"<tr>{cells(row, 'td')}</tr>" for row in block.rows) + "</table>")
        elif isinstance(block, Figure):
            data = base64.b64encode((out / block.path).read_bytes()).decode()
            body.append(f"<p>{html.escape(block.title)}</p>"
                        f'<img alt="{html.escape(block.path)}" src="data:image/png;base64,{data}">')
        elif block.startswith("#"):
            level = len(block) - len(block.lstrip("#"))
            body.append(f"<h{level}>{html.escape(block.lstrip('#').strip())}</h{level}>")
        elif block.strip():
            body.append(f"<p>{html.escape(block).replace('**', '')}</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>forensics benchmark</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
