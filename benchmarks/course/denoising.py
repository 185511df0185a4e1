"""Denoising autoencoder: trained on L(x, g(f(x̃))), it reconstructs the clean x from x̃.

Train a plain ``ae`` and a denoising one (``variant=denoising``, Gaussian
corruption of σ = 0.5, the default) with the same architecture, initial
weights and epochs; corrupt the held-out test images with Gaussian noise of
several σ (the same noise for both models) and measure the error to the CLEAN
image, Σ(x − g(f(x̃)))².
"""

from __future__ import annotations

from benchmarks.course.context import Context, fit, plt, quadratic_error, show_grid

TITLE = "Denoising autoencoder"
CLAIM = ("A denoising autoencoder, trained to minimise L(x, g(f(x̃))), removes the noise: on "
         "corrupted inputs it reconstructs the clean image better than a plain autoencoder.")
SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def run(ctx: Context) -> dict:
    import torch

    import generators
    from generators.autoencoder import corrupt

    x_train, _ = ctx.tensors("train")
    x_test, _ = ctx.tensors("test")
    epochs = ctx.pick(15, 1)
    size = ctx.pick({}, {"hidden": 32, "code_dim": 8})
    models = {}
    for i, variant in enumerate(("plain", "denoising")):
        ctx.seed_torch(1)
        model = generators.create("ae", image_shape=tuple(x_train.shape[1:]), variant=variant,
                                  corruption="gaussian", noise=0.5, **size)
        fit(model, x_train, epochs=epochs, seed=ctx.seed, stream=i)
        models[variant] = model
    errors = {variant: [] for variant in models}
    noisy_error = []
    examples = {}
    for j, sigma in enumerate(SIGMAS):
        ctx.seed_torch(100 + j)
        noisy = corrupt(x_test, "gaussian", sigma)
        noisy_error.append(quadratic_error(x_test, noisy))
        for variant, model in models.items():
            with torch.no_grad():
                r = model.decode(model.encode(noisy))
            errors[variant].append(quadratic_error(x_test, r))
            if sigma == 0.5:
                examples[variant] = r[:8]
        if sigma == 0.5:
            examples["noisy"] = noisy[:8]
    better = [d < p for d, p in zip(errors["denoising"], errors["plain"], strict=True)]
    noisy_levels = [s for s in SIGMAS if s > 0]
    holds_noisy = all(b for s, b in zip(SIGMAS, better, strict=True) if s > 0)
    holds_heavy = all(b for s, b in zip(SIGMAS, better, strict=True) if s >= 0.5)
    holds = True if holds_noisy else (None if holds_heavy else False)
    _figure(ctx, errors, noisy_error, x_test[:8], examples)
    wins = [f"σ={s:g}: {d:.1f} vs {p:.1f}" for s, d, p in
            zip(SIGMAS, errors["denoising"], errors["plain"], strict=True)]
    summary = ("Error to the clean test image, denoising vs plain AE: " + "; ".join(wins)
               + f". The denoising AE is better at {sum(better[1:])} of {len(noisy_levels)} "
               f"noise levels σ > 0" + ("" if better[0] else
                                        " (on clean inputs, σ = 0, the plain AE is better)") + ".")
    return {"holds": holds, "summary": summary,
            "numbers": {"epochs": epochs, "train_noise_sigma": 0.5, "sigmas": list(SIGMAS),
                        "error_plain": errors["plain"], "error_denoising": errors["denoising"],
                        "error_noisy_input": noisy_error, "denoising_better": better}}


def _figure(ctx: Context, errors, noisy_error, clean, examples) -> None:
    import torch

    pyplot = plt()
    fig = pyplot.figure(figsize=(11, 4))
    left = fig.add_subplot(1, 2, 1)
    left.plot(SIGMAS, errors["plain"], "o-", label="plain AE")
    left.plot(SIGMAS, errors["denoising"], "s-", label="denoising AE (trained at σ=0.5)")
    left.plot(SIGMAS, noisy_error, ":", color="gray", label="noisy input itself")
    left.set(xlabel="test noise σ", ylabel="Σ(x_clean − r)² per image",
             title="Reconstruction error to the clean image", yscale="log")
    left.legend(fontsize=8)
    right = fig.add_subplot(1, 2, 2)
    rows = torch.cat([clean, examples["noisy"].clamp(0, 1), examples["plain"],
                      examples["denoising"]])
    show_grid(right, rows, nrow=len(clean),
              title="σ=0.5 rows: clean, noisy, plain AE, denoising AE")
    ctx.save(fig)
