"""Latent codes for semi-supervised classification: 100 labels, codes vs pixels.

The course: autoencoders "may be used for semi-supervised learning for
simultaneous learning of the latent code on a large unlabeled dataset and then
the classifier on a smaller labeled dataset". Here: a plain ``ae`` (code_dim
32) and a ``vae`` (latent_dim 16, posterior means) learn their codes on all
4,000 training images without labels; then, for each seed, 10 labelled images
per class are drawn from the training split and a logistic regression is fitted
on (standardised) codes, or on raw pixels; accuracy on the held-out test split.
"""

from __future__ import annotations

import numpy as np

from benchmarks.course.context import Context, fit, plt

TITLE = "Semi-supervised learning with latent codes"
CLAIM = ("Autoencoders can be used for semi-supervised learning: the code, learned on a large "
         "unlabelled set, feeds a classifier trained on a small labelled set.")
PER_CLASS = 10


def _accuracy(train_x, train_y, test_x, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    model.fit(train_x, train_y)
    return float((model.predict(test_x) == test_y).mean())


def run(ctx: Context) -> dict:
    import torch

    import generators

    x_train, y_train = ctx.tensors("train")
    x_test, y_test = ctx.tensors("test")
    shape = tuple(x_train.shape[1:])
    epochs = ctx.pick(20, 1)
    size = ctx.pick({}, {"hidden": 32})
    ctx.seed_torch(1)
    ae = generators.create("ae", image_shape=shape, code_dim=32, **size)
    fit(ae, x_train, epochs=epochs, seed=ctx.seed, stream=0)
    ctx.seed_torch(1)
    vae = generators.create("vae", image_shape=shape, latent_dim=16, **size)
    fit(vae, x_train, epochs=epochs, seed=ctx.seed, stream=1)
    with torch.no_grad():
        features = {
            "raw pixels": (x_train.flatten(1).numpy(), x_test.flatten(1).numpy()),
            "AE code (32)": (ae.encode(x_train).numpy(), ae.encode(x_test).numpy()),
            "VAE μ (16)": (vae.encode(x_train)[0].numpy(), vae.encode(x_test)[0].numpy()),
        }
    labels_train, labels_test = y_train.numpy(), y_test.numpy()
    seeds = list(range(ctx.pick(10, 2)))
    per_class = ctx.pick(PER_CLASS, 3)
    scores = {name: [] for name in features}
    for s in seeds:
        rng = np.random.default_rng([ctx.seed, s])
        pick = np.concatenate([rng.choice(np.flatnonzero(labels_train == d), per_class,
                                          replace=False) for d in np.unique(labels_train)])
        for name, (f_train, f_test) in features.items():
            scores[name].append(_accuracy(f_train[pick], labels_train[pick], f_test, labels_test))
    table = {name: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)), "runs": v}
             for name, v in scores.items()}
    paired = {name: {"mean": float(np.mean(np.subtract(scores[name], scores["raw pixels"]))),
                     "sd": float(np.std(np.subtract(scores[name], scores["raw pixels"]), ddof=1)),
                     "wins": int(np.sum(np.greater(scores[name], scores["raw pixels"])))}
              for name in ("AE code (32)", "VAE μ (16)")}
    raw = table["raw pixels"]["mean"]
    best_code = max(("AE code (32)", "VAE μ (16)"), key=lambda n: table[n]["mean"])
    both_better = all(table[n]["mean"] > raw for n in ("AE code (32)", "VAE μ (16)"))
    holds = True if both_better else (None if table[best_code]["mean"] > raw else False)
    _figure(ctx, table, per_class)
    text = "; ".join(f"{n}: {t['mean']:.1%} ± {t['sd']:.1%}" for n, t in table.items())
    gains = "; ".join(f"{n} {100 * p['mean']:+.1f} ± {100 * p['sd']:.1f} points "
                      f"(better on {p['wins']} of {len(seeds)} draws)" for n, p in paired.items())
    summary = (f"Test accuracy of a logistic regression trained on {per_class} labels per class "
               f"({per_class * 10} labels; mean ± sd over {len(seeds)} label draws): {text}. "
               f"Paired gain over raw pixels (same labelled images): {gains}.")
    return {"holds": holds, "summary": summary,
            "numbers": {"epochs": epochs, "labels_per_class": per_class, "seeds": seeds,
                        "accuracy": table, "paired_gain_over_pixels": paired}}


def _figure(ctx: Context, table, per_class) -> None:
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 3.6))
    names = list(table)
    means = [table[n]["mean"] for n in names]
    ax.bar(names, means, yerr=[table[n]["sd"] for n in names], capsize=4,
           color=["0.6", "C0", "C1"])
    for i, n in enumerate(names):
        ax.plot(np.full(len(table[n]["runs"]), i), table[n]["runs"], "k.", ms=3)
    ax.set(ylabel="held-out test accuracy", ylim=(0, 1),
           title=f"Logistic regression on {per_class * 10} labels")
    ctx.save(fig)
