"""The course's 1-D GAN figure (Goodfellow et al. 2014, figure 1), measured.

p* = N(2, 0.5²); G is an MLP fed z ~ U[0, 1]; D an MLP with a sigmoid output.
Both are trained with the package's losses (``generators.dcgan.discriminator_loss``
and ``generator_loss``, non-saturating). Four stages, as in the figure:

(a) initial: G regressed to roughly N(0, 0.7²) (a visible mismatch), D untrained;
(b) D trained to convergence for this fixed G: compared with the optimal
    D*(x) = p*(x) / (p*(x) + p_g(x)), p_g estimated by a Gaussian KDE of 20,000
    samples of G;
(c) after a few alternating G / D updates: G has moved towards the data;
(d) at the end: p_g ≈ p* and D ≈ 1/2.

Errors are averaged over the support, the grid points where (p* + p_g)/2 is at
least 1 % of its maximum.
"""

from __future__ import annotations

import numpy as np

from benchmarks.course.context import Context, plt

TITLE = "The 1-D GAN: D → D*, then p_g → p* and D → 1/2"
CLAIM = ("For a fixed G the optimal discriminator is D*(x) = p*(x)/(p*(x) + p_g(x)); at the "
         "optimum of the minimax game p_g = p* and D = 1/2 everywhere.")
MU, SIGMA = 2.0, 0.5
GRID = np.linspace(-2.0, 5.0, 701)


def _mlp(width: int = 32):
    from torch import nn

    return nn.Sequential(nn.Linear(1, width), nn.LeakyReLU(0.2), nn.Linear(width, width),
                         nn.LeakyReLU(0.2), nn.Linear(width, 1))


def run(ctx: Context) -> dict:
    import torch
    from scipy import stats

    from generators.dcgan import discriminator_loss, generator_loss

    ctx.seed_torch(1)
    G, D = _mlp(), _mlp()
    m = 256
    rng = ctx.rng(2)

    def real(n):
        return MU + SIGMA * torch.randn(n, 1, generator=rng)

    def noise(n):
        return torch.rand(n, 1, generator=rng)

    # (a) an initial G visibly off the data: regress G(z) onto N(0, 0.7²) quantiles
    opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    z_fit = torch.linspace(0.001, 0.999, 512)[:, None]
    target = torch.as_tensor(stats.norm.ppf(z_fit.numpy(), 0.0, 0.7), dtype=torch.float32)
    for _ in range(ctx.pick(300, 30)):
        opt.zero_grad()
        (G(z_fit) - target).pow(2).mean().backward()
        opt.step()
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=5e-4, betas=(0.5, 0.999))

    def d_step():
        loss = discriminator_loss(D(real(m)), D(G(noise(m)).detach()))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()

    def g_step():
        loss = generator_loss(D(G(noise(m))), "non-saturating")
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()

    stages = [_snapshot("(a) initial", G, D)]
    for _ in range(ctx.pick(3000, 50)):  # (b) D to convergence, G fixed
        d_step()
    stages.append(_snapshot("(b) D trained, G fixed", G, D))
    for _ in range(ctx.pick(150, 10)):  # (c) a few G updates (with D kept near D*)
        for _ in range(5):
            d_step()
        g_step()
    stages.append(_snapshot("(c) after G updates", G, D))
    iterations = ctx.pick(6000, 50)
    for it in range(iterations):  # (d) training to the end, lr decayed for the last third
        if it == 2 * iterations // 3:
            for o in (opt_d, opt_g):
                for group in o.param_groups:
                    group["lr"] *= 0.2
        for _ in range(2):
            d_step()
        g_step()
    stages.append(_snapshot("(d) end", G, D))
    b, d = stages[1], stages[3]
    numbers = {
        "p_star": f"N({MU}, {SIGMA}²)", "z": "U[0, 1]",
        "stage_b_mean_abs_D_minus_Dstar": b["err_dstar"],
        "stage_b_weighted_abs_D_minus_Dstar": b["err_dstar_weighted"],
        "end_mean_abs_D_minus_half": d["err_half"],
        "end_weighted_abs_D_minus_half": d["err_half_weighted"],
        "end_wasserstein_pg_pstar": d["w1"], "end_ks_pg_pstar": d["ks"],
        "initial_wasserstein_pg_pstar": stages[0]["w1"],
        "end_pg_mean_std": [d["mean"], d["std"]],
        "stages": [{k: v for k, v in s.items() if not k.startswith("_")} for s in stages],
    }
    holds_dstar = b["err_dstar"] < 0.05
    holds_end = d["err_half"] < 0.05 and d["w1"] < 0.05
    holds = True if (holds_dstar and holds_end) else (None if (holds_dstar or holds_end) else False)
    _figure(ctx, stages)
    summary = (
        f"(b) With G fixed, the trained D is within mean |D − D*| = {b['err_dstar']:.3f} of "
        f"D* = p*/(p* + p_g) over the support ({b['err_dstar_weighted']:.3f} weighted by the "
        f"densities; p_g by KDE). (d) At the end p_g has mean {d['mean']:.3f} and sd "
        f"{d['std']:.3f} (p*: {MU}, {SIGMA}); Wasserstein-1(p_g, p*) = {d['w1']:.3f} (initially "
        f"{stages[0]['w1']:.3f}), KS = {d['ks']:.3f}, and mean |D − 1/2| = {d['err_half']:.3f} "
        f"({d['err_half_weighted']:.3f} weighted). Targets: 0.05 for |D − D*|, |D − 1/2| and W1.")
    return {"holds": holds, "summary": summary, "numbers": numbers}


def _snapshot(label: str, G, D) -> dict:
    import torch
    from scipy import stats

    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        samples = G(torch.rand(20000, 1, generator=gen)).numpy().ravel().astype(np.float64)
        d = torch.sigmoid(D(torch.as_tensor(GRID, dtype=torch.float32)[:, None])).numpy().ravel()
    p_star = stats.norm.pdf(GRID, MU, SIGMA)
    p_g = stats.gaussian_kde(samples)(GRID)
    d_star = p_star / np.maximum(p_star + p_g, 1e-300)
    mix = (p_star + p_g) / 2
    support = mix >= 0.01 * mix.max()
    w = mix[support] / mix[support].sum()
    real = stats.norm.ppf((np.arange(20000) + 0.5) / 20000, MU, SIGMA)
    return {
        "label": label, "err_dstar": float(np.abs(d - d_star)[support].mean()),
        "err_dstar_weighted": float((np.abs(d - d_star)[support] * w).sum()),
        "err_half": float(np.abs(d - 0.5)[support].mean()),
        "err_half_weighted": float((np.abs(d - 0.5)[support] * w).sum()),
        "w1": float(stats.wasserstein_distance(samples, real)),
        "ks": float(stats.kstest(samples, "norm", (MU, SIGMA)).statistic),
        "mean": float(samples.mean()), "std": float(samples.std()),
        "_p_star": p_star, "_p_g": p_g, "_d": d, "_d_star": d_star, "_samples": samples,
    }


def _figure(ctx: Context, stages) -> None:
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 4, figsize=(16, 3.6), sharey=True)
    for ax, s in zip(axes, stages, strict=True):
        ax.plot(GRID, s["_p_star"], "k:", label="p* (data)")
        ax.plot(GRID, s["_p_g"], "g-", label="p_g (generator, KDE)")
        ax.plot(GRID, s["_d"], "b--", label="D(x)")
        ax.plot(GRID, s["_d_star"], color="orange", lw=0.8, label="D* = p*/(p*+p_g)")
        ax.axhline(0.5, color="0.8", lw=0.6)
        ax.set(title=s["label"], xlabel="x", xlim=(GRID[0], GRID[-1]), ylim=(0, 1.3))
    axes[0].legend(fontsize=7, loc="upper left")
    ctx.save(fig)
