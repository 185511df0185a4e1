"""Variational autoencoder: the two terms of the loss, the latent space, and smoothness.

Train ``vae`` with ``latent_dim=2`` (loss −log p(x|z) + KL(q(z|x) ‖ N(0, I)), the
package's ``reconstruction_nll`` and ``kl_divergence``) recording both terms per
epoch; plot the held-out posterior means coloured by digit, an interpolation
grid, decoded prior samples and the decoded latent grid.

Smoothness ("close values in the latent space give quite similar
reconstructions") is measured against the same network trained without the KL
term (``vae`` with β = 0: a deterministic autoencoder in all but name, so the KL
term is the only difference; the verdict's control) and, for reference, a plain
``ae`` (the MLP autoencoder) with the same 2-D code: for each test image, a
random latent step δ of length 0.1 × the code spread (the RMS distance of test
codes to their mean, so every model is on its own scale) and the image change
‖dec(z + δ) − dec(z)‖. The distribution (median, 95th percentile, max) is
compared, scale-free.
"""

from __future__ import annotations

import numpy as np

from benchmarks.course.context import Context, fit, plt, show_grid

TITLE = "Variational autoencoder"
CLAIM = ("The VAE is trained on −log p(x|z) + KL(q(z|x), p(z)); close values in the latent "
         "space give quite similar reconstructions (smooth latent space), so it can interpolate "
         "and generate.")
STEP = 0.1  # latent step, in units of the code spread


def _step_changes(decode, codes, seed: int):
    """‖dec(z + δ) − dec(z)‖ for random δ of length STEP × spread, per code."""
    import torch

    spread = float((codes - codes.mean(0)).pow(2).sum(1).mean().sqrt())
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(codes.shape, generator=gen)
    delta = direction / direction.norm(dim=1, keepdim=True) * STEP * spread
    with torch.no_grad():
        change = (decode(codes + delta) - decode(codes)).flatten(1).norm(dim=1)
    return change.double().numpy(), spread


def run(ctx: Context) -> dict:
    import torch

    import generators
    from forensics.classifier import load_digit_classifier

    x_train, _ = ctx.tensors("train")
    x_test, y_test = ctx.tensors("test")
    epochs = ctx.pick(30, 2)
    size = ctx.pick({}, {"hidden": 32})
    shape = tuple(x_train.shape[1:])
    ctx.seed_torch(1)
    vae = generators.create("vae", image_shape=shape, latent_dim=2, **size)
    history = fit(vae, x_train, epochs=epochs, seed=ctx.seed, stream=0, record=True)
    ctx.seed_torch(1)
    no_kl = generators.create("vae", image_shape=shape, latent_dim=2, beta=0.0, **size)
    fit(no_kl, x_train, epochs=epochs, seed=ctx.seed, stream=2)
    ctx.seed_torch(1)
    ae = generators.create("ae", image_shape=shape, code_dim=2, **size)
    fit(ae, x_train, epochs=epochs, seed=ctx.seed, stream=1)
    with torch.no_grad():
        mu, logvar = vae.encode(x_test)
        mu_no_kl, _ = no_kl.encode(x_test)
        h = ae.encode(x_test)
    stats = {}
    for name, decode, codes in (("vae", vae.decode, mu), ("no_kl", no_kl.decode, mu_no_kl),
                                ("ae", ae.decode, h)):
        change, spread = _step_changes(decode, codes, ctx.seed)
        stats[name] = {"median": float(np.median(change)),
                       "p95": float(np.quantile(change, 0.95)), "max": float(change.max()),
                       "mean": float(change.mean()), "code_spread": spread}
    # generation: decoded prior samples (VAE) vs a Gaussian fitted to the AE's codes
    rng = ctx.rng(5)
    n = ctx.pick(1000, 100)
    with torch.no_grad():
        samples_vae = vae.decode(torch.randn(n, 2, generator=rng))
        cov = torch.cov(h.T) + 1e-6 * torch.eye(2)
        z_ae = h.mean(0) + torch.randn(n, 2, generator=rng) @ torch.linalg.cholesky(cov).T
        samples_ae = ae.decode(z_ae)
    classifier = load_digit_classifier()
    confident = {name: float((classifier.predict_proba(s.numpy()).max(1) >= 0.9).mean())
                 for name, s in (("vae", samples_vae), ("ae", samples_ae))}
    control = stats["no_kl"]  # the same network and training, without the KL term
    smoother = stats["vae"]["p95"] < control["p95"] and stats["vae"]["max"] < control["max"]
    smoother_median = stats["vae"]["median"] < control["median"]
    holds = True if (smoother and smoother_median) else (None if smoother else False)
    _figure(ctx, vae, history, mu.numpy(), y_test.numpy(), x_test, samples_vae, ae, h)
    last = history[-1]
    summary = (
        f"After {epochs} epochs (latent_dim=2): reconstruction term {history[0]['reconstruction']:.1f}"
        f" → {last['reconstruction']:.1f}, KL term {history[0]['kl']:.2f} → {last['kl']:.2f} "
        f"nats per image. Image change for a latent step of {STEP} × the code spread, VAE vs "
        f"the same network without the KL term (β = 0) vs the plain MLP AE (2-D code each): "
        + "; ".join(f"{label} " + " vs ".join(f"{stats[m][key]:.3f}" for m in ("vae", "no_kl", "ae"))
                    for label, key in (("median", "median"), ("95th percentile", "p95"),
                                       ("max", "max")))
        + f". Decoded samples classified with "
        f"confidence ≥ 0.9: VAE prior {confident['vae']:.1%}, AE with a Gaussian fitted to its "
        f"codes {confident['ae']:.1%}.")
    return {"holds": holds, "summary": summary,
            "numbers": {"epochs": epochs, "latent_dim": 2, "history": history,
                        "step_in_spread_units": STEP, "image_change": stats,
                        "confident_share_of_samples": confident}}


def _figure(ctx, vae, history, mu, labels, x_test, samples, ae, h) -> None:
    import torch

    pyplot = plt()
    fig, axes = pyplot.subplots(2, 3, figsize=(14, 9))
    epochs = [r["epoch"] for r in history]
    ax = axes[0, 0]
    ax.plot(epochs, [r["reconstruction"] for r in history], label="−log p(x|z) (BCE)")
    ax2 = ax.twinx()
    ax2.plot(epochs, [r["kl"] for r in history], color="C1", label="KL(q(z|x) ‖ N(0, I))")
    ax.set(xlabel="epoch", ylabel="reconstruction (nats)", title="The two loss terms (train)")
    ax2.set_ylabel("KL (nats)")
    ax.legend(loc="upper center", fontsize=8)
    ax2.legend(loc="center right", fontsize=8)
    ax = axes[0, 1]
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=6)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set(xlabel="μ₁", ylabel="μ₂", title="Latent space of held-out digits")
    side = 15
    grid = torch.linspace(-2.5, 2.5, side)
    zz = torch.stack(torch.meshgrid(grid, -grid, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        manifold = vae.decode(zz)
    show_grid(axes[0, 2], manifold, nrow=side, title="Decoded latent grid z ∈ [−2.5, 2.5]²")
    picks = [int(np.flatnonzero(labels == d)[0]) for d in np.unique(labels)][:10]
    lines = []
    with torch.no_grad():
        for a, b in zip(picks[0::2], picks[1::2], strict=False):
            m, _ = vae.encode(x_test[[a, b]])
            t = torch.linspace(0, 1, 10)[:, None]
            lines.append(vae.decode((1 - t) * m[0] + t * m[1]))
    show_grid(axes[1, 0], torch.cat(lines), nrow=10, title="Interpolation between test digits")
    show_grid(axes[1, 1], samples[:100], nrow=10, title="Samples z ~ N(0, I)")
    centre, scale = h.mean(0), h.std(0)
    with torch.no_grad():
        ae_grid = ae.decode(centre + zz / 2.5 * 2 * scale)
    show_grid(axes[1, 2], ae_grid, nrow=side,
              title="Plain AE (2-D code): decoded grid, mean ± 2 sd of its codes")
    ctx.save(fig)
