"""Contractive autoencoder: λΣ‖∇ₓh_i‖² makes the code robust to small input changes.

Train a plain ``ae`` and a contractive one (``variant=contractive``; the
penalty is the package's ``contractive_penalty``, exact Jacobian) with the same
architecture, initial weights and epochs, then on held-out test images:

- the mean Frobenius norm ‖∂h/∂x‖_F of the exact Jacobian (``torch.func``);
- the code's sensitivity ‖h(x + ε) − h(x)‖ / ‖ε‖ for small Gaussian ε (σ = 0.01);
- the same sensitivity divided by the code's spread (RMS distance of test codes
  to their mean), since a network could shrink every code and enlarge the decoder:
  the relative figure says whether codes move less *compared with how far apart
  different digits are*.
"""

from __future__ import annotations

import numpy as np

from benchmarks.course.context import Context, fit, plt, quadratic_error

TITLE = "Contractive autoencoder"
CLAIM = ("The penalty λΣ_i‖∇ₓh_i‖² forces the encoder to be robust to small variations of x: "
         "smaller Jacobian, codes that move less under small perturbations.")
EPS_SIGMA = 0.01


def jacobian_norms(encoder, x) -> np.ndarray:
    """‖∂h/∂x‖_F of the exact Jacobian, per image."""
    import torch
    from torch.func import jacrev, vmap

    flat = x.flatten(1)
    with torch.no_grad():
        jac = torch.cat([vmap(jacrev(lambda v: encoder(v[None])[0]))(chunk)
                         for chunk in flat.split(100)])
    return jac.pow(2).sum((1, 2)).sqrt().double().numpy()


def run(ctx: Context) -> dict:
    import torch

    import generators

    x_train, _ = ctx.tensors("train")
    x_test, _ = ctx.tensors("test")
    epochs = ctx.pick(10, 1)
    size = ctx.pick({}, {"hidden": 32, "code_dim": 8})
    found = {}
    for i, variant in enumerate(("plain", "contractive")):
        ctx.seed_torch(1)
        model = generators.create("ae", image_shape=tuple(x_train.shape[1:]), variant=variant,
                                  **size)
        fit(model, x_train, epochs=epochs, seed=ctx.seed, stream=i)
        encoder = model.nets["encoder"]
        norms = jacobian_norms(encoder, x_test)
        ctx.seed_torch(7)
        eps = EPS_SIGMA * torch.randn_like(x_test)
        with torch.no_grad():
            h = model.encode(x_test)
            moved = (model.encode(x_test + eps) - h).norm(dim=1) / eps.flatten(1).norm(dim=1)
            spread = float((h - h.mean(0)).pow(2).sum(1).mean().sqrt())
            error = quadratic_error(x_test, model.decode(h))
        found[variant] = {"penalty_lambda": model.options.penalty,
                          "jacobian_frobenius_mean": float(norms.mean()),
                          "jacobian_frobenius_median": float(np.median(norms)),
                          "sensitivity_mean": float(moved.mean()),
                          "code_spread_rms": spread,
                          "relative_sensitivity_mean": float(moved.mean()) / spread,
                          "test_error": error, "_norms": norms, "_moved": moved.numpy()}
    plain, cae = found["plain"], found["contractive"]
    lower_jac = cae["jacobian_frobenius_mean"] < plain["jacobian_frobenius_mean"]
    lower_move = cae["sensitivity_mean"] < plain["sensitivity_mean"]
    lower_rel = cae["relative_sensitivity_mean"] < plain["relative_sensitivity_mean"]
    holds = True if (lower_jac and lower_move and lower_rel) else (
        None if (lower_jac and lower_move) else False)
    _figure(ctx, found)
    summary = (
        f"Mean ‖∂h/∂x‖_F on test images: contractive {cae['jacobian_frobenius_mean']:.3f} vs plain "
        f"{plain['jacobian_frobenius_mean']:.3f} (λ = {cae['penalty_lambda']:g}); code sensitivity "
        f"‖h(x+ε)−h(x)‖/‖ε‖ (σ_ε = {EPS_SIGMA}): {cae['sensitivity_mean']:.3f} vs "
        f"{plain['sensitivity_mean']:.3f}; relative to the code spread: "
        f"{cae['relative_sensitivity_mean']:.4f} vs {plain['relative_sensitivity_mean']:.4f}; "
        f"test reconstruction error {cae['test_error']:.1f} vs {plain['test_error']:.1f}.")
    numbers = {"epochs": epochs, "eps_sigma": EPS_SIGMA,
               **{v: {k: x for k, x in d.items() if not k.startswith("_")}
                  for v, d in found.items()}}
    return {"holds": holds, "summary": summary, "numbers": numbers}


def _figure(ctx: Context, found) -> None:
    pyplot = plt()
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.6))
    for variant, d in found.items():
        left.hist(d["_norms"], bins=40, alpha=0.6, label=variant)
        right.hist(d["_moved"], bins=40, alpha=0.6, label=variant)
    left.set(xlabel="‖∂h/∂x‖_F per test image", ylabel="count", title="Exact Jacobian norm")
    right.set(xlabel="‖h(x+ε) − h(x)‖ / ‖ε‖", ylabel="count",
              title=f"Code sensitivity, ε ~ N(0, {EPS_SIGMA}²)")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    ctx.save(fig)
