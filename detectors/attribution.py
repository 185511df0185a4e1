"""Attribution (Yu et al. 2019): which source made an image — real or one of the named generators.

The CNN of :mod:`detectors.cnn` with one output per class, trained with
cross-entropy. Class 0 is always ``"real"``; the others are the fake sources in
sorted order. As a binary detector, P(fake) = 1 − P(real).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from detectors.base import as_batch, class_weights
from detectors.cnn import NetDetector, net_outputs
from detectors.registry import register
from forensics.errors import ForensicsError

REAL = "real"
PSEUDO = "pseudo"


@register("attribution")
class AttributionDetector(NetDetector):
    """Multi-class source attribution; ``classes_[0] == "real"``.

    With ``pseudo_fakes > 0`` the re-rendered reals are one extra class ``"pseudo"``.
    """

    multiclass = True
    fits_sources = True

    def fit(self, real: np.ndarray, fake: np.ndarray) -> AttributionDetector:
        """Binary use: the two classes ``real`` and ``fake``."""
        return self.fit_sources({REAL: real, "fake": fake})

    def fit_sources(self, images_by_source: dict[str, np.ndarray]) -> AttributionDetector:
        """Learn to tell the sources apart; ``"real"`` must be one of them."""
        if REAL not in images_by_source or len(images_by_source) < 2:
            raise ForensicsError('attribution needs a "real" set and at least one fake source')
        extra = self._pseudo(as_batch(images_by_source[REAL], "real images"))
        if extra is not None:  # re-rendered reals join as one more fake class
            if PSEUDO in images_by_source:
                raise ForensicsError(f'"{PSEUDO}" names the pseudo-fake class; rename that source')
            images_by_source = {**images_by_source, PSEUDO: extra}
        classes = [REAL, *sorted(key for key in images_by_source if key != REAL)]
        sets = [as_batch(images_by_source[name], f"{name} images") for name in classes]
        shapes = {tuple(part.shape[1:]) for part in sets}
        if len(shapes) > 1:
            raise ForensicsError(f"sources have different image shapes {sorted(shapes)}; "
                                 "conform them to one shape")
        self._start_fit(sets[0], sets[1])
        targets = np.concatenate([np.full(len(part), k, np.int64) for k, part in enumerate(sets)])
        weights = torch.as_tensor(class_weights([len(part) for part in sets], self.balance),
                                  dtype=torch.float32)
        self._train(np.concatenate(sets), targets, len(classes),
                    lambda out, y: F.cross_entropy(out, y, weight=weights.to(out.device)))
        self.classes_ = classes
        self._end_fit(sets[0])
        return self

    def predict_source_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, K) probabilities over ``classes_``."""
        return self._source_proba(self._check_input(images))

    def _source_proba(self, images: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy(net_outputs(self.net_, images,
                                              next(self.net_.parameters()).device))
        return torch.softmax(logits.double(), 1).numpy()

    def _scores_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
        # one forward pass: P(fake) and the likeliest generator (non-real class) per image
        proba = self._source_proba(images)
        return self.fake_probability(proba), [self.classes_[1 + k] for k in proba[:, 1:].argmax(1)]

    def predict_source(self, images: np.ndarray) -> list[str]:
        return [self.classes_[k] for k in self.predict_source_proba(images).argmax(1)]

    @staticmethod
    def fake_probability(source_proba: np.ndarray) -> np.ndarray:
        """P(fake) = 1 − P(real) from ``predict_source_proba``'s output (what ``predict_proba`` gives)."""
        return np.clip(1.0 - source_proba[:, 0], 0.0, 1.0)

    def _scores(self, images: np.ndarray) -> np.ndarray:
        return self.fake_probability(self._source_proba(images))

    def fake_logit(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(outputs[:, 1:], 1) - outputs[:, 0]

    def confusion_matrix(self, images_by_source: dict[str, np.ndarray]
                         ) -> tuple[np.ndarray, list[str]]:
        """(matrix, labels): rows = true source, columns = predicted, in ``classes_`` order."""
        from sklearn.metrics import confusion_matrix

        self._check_fitted()
        unknown = sorted(set(images_by_source) - set(self.classes_))
        if unknown:
            raise ForensicsError(f"unknown source(s) {', '.join(unknown)}; "
                                 f"this detector knows {', '.join(self.classes_)}")
        truth, predicted = [], []
        for name, images in images_by_source.items():
            probs = self.predict_source_proba(images)
            truth.append(np.full(len(probs), self.classes_.index(name)))
            predicted.append(probs.argmax(1))
        labels = list(range(len(self.classes_)))
        matrix = confusion_matrix(np.concatenate(truth), np.concatenate(predicted), labels=labels)
        return matrix, list(self.classes_)

    def _state(self) -> tuple[dict, None, dict[str, Any]]:
        tensors, _, state = super()._state()
        return tensors, None, {**state, "classes": list(self.classes_)}

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        super()._restore(tensors, sklearn, state)
        classes = [str(name) for name in state["classes"]]
        if len(classes) != self.net_.head.out_features or classes[0] != REAL:
            raise ValueError("classes do not match the network")
        self.classes_ = classes
