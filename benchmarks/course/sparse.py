"""Sparse autoencoder: the L1 penalty λΣ|h_i| makes the code sparse, and Laplace-shaped.

Train ``ae`` (``variant=sparse``, ``lam=λ``; λ = 0 is the plain AE) over a grid
of λ and measure on held-out codes:

- **Hoyer sparsity** per code vector, (√k − ‖h‖₁/‖h‖₂) / (√k − 1): 0 when all
  |h_i| are equal, 1 when one unit carries everything; scale-free, so a network
  cannot fake it by shrinking h and growing the decoder;
- **near-zero share**: the share of units with |h_i| < 0.01 · max_j |h_j| (same
  code vector).

The course reads the penalty as the negative log of a Laplace prior p(h_i) =
λ/2 e^{−λ|h_i|}: the pooled code values of the sparse AE are fitted by
``scipy.stats.laplace`` and ``norm`` (maximum likelihood) and compared by mean
log-likelihood and Kolmogorov–Smirnov statistic.
"""

from __future__ import annotations

import numpy as np

from benchmarks.course.context import Context, fit, plt, quadratic_error

TITLE = "Sparse autoencoder and the Laplace prior"
CLAIM = ("The penalty Ω(h) = λΣ|h_i| (a Laplace prior on h) makes the code sparse: sparsity "
         "rises with λ and the code distribution is Laplace-like.")


def hoyer(codes: np.ndarray) -> np.ndarray:
    """Hoyer (2004) sparsity of each row, in [0, 1]."""
    k = codes.shape[1]
    l1 = np.abs(codes).sum(1)
    l2 = np.sqrt((codes ** 2).sum(1)) + 1e-12
    return (np.sqrt(k) - l1 / l2) / (np.sqrt(k) - 1)


def near_zero_share(codes: np.ndarray, rel: float = 0.01) -> float:
    """Share of units with |h_i| < rel · max_j |h_j| within the same code vector."""
    top = np.abs(codes).max(1, keepdims=True)
    return float((np.abs(codes) < rel * top).mean())


def run(ctx: Context) -> dict:
    import torch
    from scipy import stats

    import generators

    x_train, _ = ctx.tensors("train")
    x_test, _ = ctx.tensors("test")
    lams = ctx.pick((0.0, 0.01, 0.03, 0.1, 0.3, 1.0), (0.0, 0.1))
    epochs = ctx.pick(12, 1)
    size = ctx.pick({}, {"hidden": 32, "code_dim": 8})
    rows, codes_by_lam = [], {}
    for i, lam in enumerate(lams):
        ctx.seed_torch(1)  # the same initial weights for every λ
        variant = {"variant": "sparse", "lam": lam} if lam > 0 else {"variant": "plain"}
        model = generators.create("ae", image_shape=tuple(x_train.shape[1:]), **variant, **size)
        fit(model, x_train, epochs=epochs, seed=ctx.seed, stream=i)
        with torch.no_grad():
            h = model.encode(x_test)
            r = model.decode(h)
        codes = h.double().numpy()
        codes_by_lam[lam] = codes
        rows.append({"lam": lam, "hoyer": float(hoyer(codes).mean()),
                     "near_zero_share": near_zero_share(codes),
                     "mean_abs_code": float(np.abs(codes).mean()),
                     "test_error": quadratic_error(x_test, r)})
    # the Laplace-vs-Gaussian fit on the pooled codes of the sparsest model and of λ = 0
    fits = {}
    for lam in (lams[0], lams[-1]):
        values = codes_by_lam[lam].ravel()
        lap, gau = stats.laplace.fit(values), stats.norm.fit(values)
        fits[str(lam)] = {
            "laplace_loc_scale": list(lap), "norm_loc_scale": list(gau),
            "laplace_mean_loglik": float(stats.laplace.logpdf(values, *lap).mean()),
            "norm_mean_loglik": float(stats.norm.logpdf(values, *gau).mean()),
            "laplace_ks": float(stats.kstest(values, "laplace", lap).statistic),
            "norm_ks": float(stats.kstest(values, "norm", gau).statistic),
        }
    hoyers = [r["hoyer"] for r in rows]
    rank = float(stats.spearmanr(lams, hoyers).statistic) if len(lams) > 2 else float(
        np.sign(hoyers[-1] - hoyers[0]))
    sparse_fit = fits[str(lams[-1])]
    laplace_wins = (sparse_fit["laplace_mean_loglik"] > sparse_fit["norm_mean_loglik"]
                    and sparse_fit["laplace_ks"] < sparse_fit["norm_ks"])
    rises = hoyers[-1] > hoyers[0] and rank > 0.8
    holds = True if (rises and laplace_wins) else (False if not (rises or laplace_wins) else None)
    _figure(ctx, rows, codes_by_lam[lams[-1]], sparse_fit, lams[-1])
    summary = (
        f"Mean Hoyer sparsity of held-out codes goes from {hoyers[0]:.3f} (λ=0) to "
        f"{hoyers[-1]:.3f} (λ={lams[-1]:g}) (Spearman ρ(λ, Hoyer) = {rank:.2f}); the near-zero "
        f"share from {rows[0]['near_zero_share']:.3f} to {rows[-1]['near_zero_share']:.3f}, "
        f"at a test error of {rows[0]['test_error']:.1f} → {rows[-1]['test_error']:.1f}. "
        f"Pooled codes at λ={lams[-1]:g}: Laplace fit mean log-likelihood "
        f"{sparse_fit['laplace_mean_loglik']:.3f} vs Gaussian {sparse_fit['norm_mean_loglik']:.3f}, "
        f"KS {sparse_fit['laplace_ks']:.3f} vs {sparse_fit['norm_ks']:.3f} (λ=0: Laplace "
        f"{fits[str(lams[0])]['laplace_mean_loglik']:.3f} vs Gaussian "
        f"{fits[str(lams[0])]['norm_mean_loglik']:.3f}).")
    return {"holds": holds, "summary": summary,
            "numbers": {"epochs": epochs, "per_lambda": rows, "fits": fits,
                        "spearman_lambda_hoyer": rank,
                        "sparsity_measures": {
                            "hoyer": "(sqrt(k) - L1/L2) / (sqrt(k) - 1), mean over test codes",
                            "near_zero_share": "share of |h_i| < 0.01 max_j |h_j| per code"}}}


def _figure(ctx: Context, rows, codes, fit_, lam) -> None:
    from scipy import stats

    pyplot = plt()
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.8))
    lams = [r["lam"] for r in rows]
    xs = np.arange(len(lams))
    left.plot(xs, [r["hoyer"] for r in rows], "o-", label="Hoyer sparsity")
    left.plot(xs, [r["near_zero_share"] for r in rows], "s-", label="share |h_i| < 0.01 max")
    left.set(xticks=xs, xticklabels=[f"{v:g}" for v in lams], xlabel="λ",
             ylabel="sparsity (test codes)", title="Code sparsity vs λ")
    left.legend(fontsize=8)
    values = codes.ravel()
    lo, hi = np.quantile(values, [0.005, 0.995])
    right.hist(values, bins=120, range=(lo, hi), density=True, color="0.7", label="codes")
    grid = np.linspace(lo, hi, 400)
    right.plot(grid, stats.laplace.pdf(grid, *fit_["laplace_loc_scale"]), label="Laplace fit")
    right.plot(grid, stats.norm.pdf(grid, *fit_["norm_loc_scale"]), "--", label="Gaussian fit")
    right.set(xlabel="h_i", ylabel="density", title=f"Pooled test codes, λ={lam:g}")
    right.legend(fontsize=8)
    ctx.save(fig)
