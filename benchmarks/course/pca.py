"""A linear autoencoder with the quadratic loss is a PCA.

For k in (2, 8, 16): train ``ae`` with ``linear=True, code_dim=k`` by its own
``train_step`` (minibatch Adam, 120 epochs: lr 1e-2, decayed to 1e-4 over the
second half so that the optimum is actually reached), then compare the decoder's
column space with the top-k principal subspace of the training images
(principal angles, ``scipy.linalg.subspace_angles``) and the held-out test
reconstruction errors Σ(x − r)² of both.
"""

from __future__ import annotations

import numpy as np

from benchmarks.course.context import Context, fit, plt, quadratic_error

TITLE = "Linear autoencoder = PCA"
CLAIM = ("When the encoder and decoder are linear and L is the quadratic loss, the autoencoder "
         "is equivalent to a PCA.")
TARGET = 0.05  # rad, largest principal angle allowed


def run(ctx: Context) -> dict:
    import torch
    from scipy.linalg import subspace_angles
    from sklearn.decomposition import PCA

    import generators

    x_train, _ = ctx.tensors("train")
    x_test, _ = ctx.tensors("test")
    flat_train = x_train.flatten(1).double().numpy()
    flat_test = x_test.flatten(1)
    ks = ctx.pick((2, 8, 16), (2, 4))
    epochs = ctx.pick(120, 2)
    # Adam at 1e-2 for half the epochs, then decayed geometrically to 1e-4: a constant rate
    # leaves minibatch noise of ~0.1 rad in the subspace, the decay removes it
    schedule = np.r_[np.full(epochs // 2, 1e-2), np.geomspace(1e-2, 1e-4, epochs - epochs // 2)]
    rows = []
    for k in ks:
        ctx.seed_torch(k)
        model = generators.create("ae", image_shape=tuple(x_train.shape[1:]), linear=True,
                                  code_dim=k, lr=1e-2, batch_size=64)
        for epoch, lr in enumerate(schedule):
            for group in model.optimizers["ae"].param_groups:
                group["lr"] = float(lr)
            fit(model, x_train, epochs=1, seed=ctx.seed, stream=1000 * k + epoch)
        model.nets.eval()
        decoder = model.nets["decoder"][0].weight.detach().double().numpy()  # (784, k)
        pca = PCA(k, svd_solver="full").fit(flat_train)
        angles = subspace_angles(decoder, pca.components_.T)
        with torch.no_grad():
            r_ae = model.decode(model.encode(x_test)).flatten(1)
            r_ae_train = model.decode(model.encode(x_train)).flatten(1)
        r_pca = torch.as_tensor(pca.inverse_transform(pca.transform(flat_test.double().numpy())))
        r_pca_train = torch.as_tensor(pca.inverse_transform(pca.transform(flat_train)))
        rows.append({
            "k": k, "max_angle_rad": float(angles.max()), "angles_rad": sorted(angles.tolist()),
            "test_error_ae": quadratic_error(flat_test, r_ae),
            "test_error_pca": quadratic_error(flat_test.double(), r_pca),
            "train_error_ae": quadratic_error(x_train.flatten(1), r_ae_train),
            "train_error_pca": quadratic_error(torch.as_tensor(flat_train), r_pca_train),
            "explained_variance_gap": float(pca.explained_variance_[-1]
                                            - PCA(k + 1).fit(flat_train).explained_variance_[-1]),
        })
    holds = all(r["max_angle_rad"] < TARGET for r in rows)
    _figure(ctx, rows)
    parts = [f"k={r['k']}: largest angle {r['max_angle_rad']:.4f} rad, test error AE "
             f"{r['test_error_ae']:.3f} vs PCA {r['test_error_pca']:.3f}" for r in rows]
    summary = (f"Largest principal angle between the linear AE's decoder subspace and the top-k "
               f"PCA subspace (target < {TARGET} rad): " + "; ".join(parts) + ".")
    return {"holds": holds, "summary": summary,
            "numbers": {"target_rad": TARGET, "epochs": epochs,
                        "lr_schedule": "1e-2, then 1e-2 → 1e-4 geometric over the second half",
                        "per_k": rows}}


def _figure(ctx: Context, rows: list[dict]) -> None:
    pyplot = plt()
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.8))
    for r in rows:
        left.semilogy(range(1, len(r["angles_rad"]) + 1), np.maximum(r["angles_rad"], 1e-8),
                      "o-", label=f"k={r['k']}")
    left.axhline(TARGET, color="gray", ls="--", label=f"target {TARGET} rad")
    left.set(xlabel="principal angle index", ylabel="angle (rad)",
             title="Decoder subspace vs top-k PCA subspace")
    left.legend(fontsize=8)
    ks = np.arange(len(rows))
    right.bar(ks - 0.2, [r["test_error_ae"] for r in rows], 0.4, label="linear AE")
    right.bar(ks + 0.2, [r["test_error_pca"] for r in rows], 0.4, label="PCA")
    right.set(xticks=ks, xticklabels=[f"k={r['k']}" for r in rows],
              ylabel="test Σ(x − r)² per image", title="Held-out reconstruction error")
    right.legend(fontsize=8)
    ctx.save(fig)
