"""Ensemble: other detectors' fake-logits combined by a logistic regression (stacking).

``fit(real, fake)`` holds out a stratified, seeded share (``holdout``, 20 %)
of the training images, fits every member on the rest (a real-only member,
``needs_fakes = False``, on the reals alone), then fits the combiner, a
logistic regression on the members' logits, log(p / (1 − p)) with p clipped
to [1e-6, 1 − 1e-6], of the held-out images. Members are not refitted on all
the data: the combiner's weights then describe exactly the members it combines.

How the combiner weighs the members (option ``stacking``):

- ``equal`` (default): each member's logit standardised by its mean and standard
  deviation on the held-out *reals*, the mean of these z-scores, and a one-feature
  logistic regression on it (Platt scaling) for a probability. The weights come from
  the reals (a member's scale is at least a tenth of its spread over all held-out images,
  so one nearly constant on the reals cannot take over; one constant on every image
  weighs 0); the fakes set the probability's scale.
- ``holdout``: a logistic regression fitted freely on the held-out logits.

Why ``equal``: free weights are fitted on generators the members saw, and favour the
member that separates those best — a fake-trained one — while what the ensemble meets in
use is often a generator nobody trained on. Measured ad hoc on the fitted members of the
quick suite's leave-one-generator-out ensembles (2026-12-03, members attribution and
surprisal, 500 real test digits against 500 of the left-out generator's fakes): free
weights gave attribution 1.35 against surprisal 0.20 when the VAE was left out, and the
VAE's AUC fell to 0.767 while surprisal alone ranked it at 0.978; on the same members the
equal-weight mean gave 0.960, and over the five left-out generators its worst AUC was
0.932 (the GAN) against 0.767. The committed quick suite (benchmarks/results/quick)
measures the default end to end.

Options: ``members`` (comma-separated detector kinds) and ``member_options``
(a JSON object: kind → that member's options, e.g.
``'{"npr": {"epochs": 8}}'``). ``device`` is passed to torch members that do
not set their own.

Saved state: member i's tensors under ``member.<i>.``, its JSON state and
options in detector.json, and one skops file holding
``{"combiner": LogisticRegression, "members": [each member's sklearn object or None]}``
(``equal`` saves its map of the logits as an ordinary logistic regression).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from detectors.base import Detector, as_batch
from detectors.registry import create, get, register
from forensics.errors import ForensicsError

CLIP = 1e-6
#: what the combiner is fitted on (the ``stacking`` option)
STACKING = ("equal", "holdout")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), CLIP, 1 - CLIP)
    return np.log(p) - np.log1p(-p)


def _prefix(i: int) -> str:
    return f"member.{i}."


def _fit_members(members: list[Detector], parts: dict[str, np.ndarray]) -> None:
    """Fit each member on ``parts`` (source name → images, "real" first): members that tell
    sources apart (attribution) one class per fake source, the others real vs every fake,
    real-only ones on the reals alone."""
    fakes = np.concatenate([images for name, images in parts.items() if name != "real"])
    for member in members:
        if member.multiclass:
            member.fit_sources(parts)
        elif member.needs_fakes:
            member.fit(parts["real"], fakes)
        else:
            member.fit(parts["real"], None)


@register("ensemble")
class EnsembleDetector(Detector):
    """Stacking: the members' fake-logits combined (equal weights per real-image std, or a free
    logistic regression) on held-out training images."""

    #: options added after detectors were saved without them: the value those folders used
    earlier: ClassVar[dict[str, Any]] = {"stacking": "holdout"}

    torch_based = True
    fits_sources = True
    balances = True
    tiny_options = {"members": "cnn,npr,reconstruction",
                    "member_options": '{"cnn": {"epochs": 1, "width": 4}, "npr": {"epochs": 1, "width": 4}, '
                                      '"reconstruction": {"epochs": 1, "width": 4}}'}

    def __init__(self, *, members: str = "cnn,npr,reconstruction", member_options: str = "{}",
                 holdout: float = 0.2, C: float = 1.0, seed: int = 0, device: str = "auto",
                 robust: bool = False, balance: bool = True,
                 stacking: str = "equal", stretch: bool = False) -> None:
        self.balance = balance  # the combiner and every member that has the option
        #: every member that has the option judges images after auto-levels (blind to black
        #: level and contrast; detectors.cnn.stretch_tone), unless member_options says otherwise
        self.stretch = stretch
        self.members = members
        self.member_options = member_options
        self.holdout = holdout
        self.C = C
        self.seed = seed
        self.device = device
        #: the combiner also learns from the held-out images after ordinary processing
        #: (forensics.domain.process, both classes): ``holdout`` then weighs members that
        #: processing fools less, ``equal`` standardises on plain and processed reals
        self.robust = robust
        #: how the combiner weighs the members: ``equal`` (default), the mean of their logits
        #: standardised on the held-out reals, then Platt-scaled on the held-out images;
        #: ``holdout``, a logistic regression fitted freely on the held-out images. Free weights
        #: favour whatever separates the *seen* generators best (a fake-trained member) and
        #: carried badly to an unseen one; see the module doc
        self.stacking = stacking

    # -- options ---------------------------------------------------------------
    def member_kinds(self) -> list[str]:
        kinds = [kind.strip() for kind in self.members.split(",") if kind.strip()]
        if not kinds:
            raise ForensicsError("ensemble needs at least one member kind")
        if "ensemble" in kinds:
            raise ForensicsError("an ensemble cannot contain an ensemble")
        for kind in kinds:
            get(kind)  # one-line error for an unknown kind
        return kinds

    def _options_by_kind(self) -> dict[str, dict[str, Any]]:
        try:
            options = json.loads(self.member_options or "{}")
        except json.JSONDecodeError as error:
            raise ForensicsError(f"member_options is not valid JSON ({error.msg})") from None
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ForensicsError("member_options must be a JSON object of kind → options object")
        return options

    def _new_members(self) -> list[Detector]:
        kinds = self.member_kinds()
        by_kind = self._options_by_kind()
        unknown = sorted(set(by_kind) - set(kinds))
        if unknown:
            raise ForensicsError(f"member_options names kinds not in members: {', '.join(unknown)}")
        built = []
        for kind in kinds:
            options = dict(by_kind.get(kind, {}))
            if get(kind).torch_based:
                options.setdefault("device", self.device)
            if get(kind).balances:
                options.setdefault("balance", self.balance)
            if get(kind).stretches:
                options.setdefault("stretch", self.stretch)
            built.append(create(kind, **options))
        return built

    # -- the contract ----------------------------------------------------------
    def fit(self, real: np.ndarray, fake: np.ndarray) -> EnsembleDetector:
        """Binary use: one fake source."""
        return self.fit_sources({"real": real, "fake": fake})

    def fit_sources(self, images_by_source: dict[str, np.ndarray]) -> EnsembleDetector:
        """Fit the members on a stratified (1 − holdout) share of every source — members that
        tell sources apart (attribution) learn one class per fake source, the others real vs
        fake, real-only ones the reals alone — and the combiner on the held-out rest."""
        from sklearn.model_selection import train_test_split

        if "real" not in images_by_source or len(images_by_source) < 2:
            raise ForensicsError('the ensemble needs a "real" set and at least one fake source')
        if self.stacking not in STACKING:
            raise ForensicsError(f"stacking must be one of {', '.join(STACKING)}")
        names = ["real", *sorted(k for k in images_by_source if k != "real")]
        sets = [as_batch(images_by_source[name], f"{name} images") for name in names]
        real, _ = self._start_fit(sets[0], np.concatenate(sets[1:]))
        members = self._new_members()
        if not 0.0 < self.holdout < 1.0:
            raise ForensicsError("holdout must be between 0 and 1")
        source = np.concatenate([np.full(len(part), k) for k, part in enumerate(sets)])
        try:
            fit_index, held_index = train_test_split(
                np.arange(len(source)), test_size=self.holdout, stratify=source,
                random_state=self.seed)
        except ValueError as error:
            raise ForensicsError(f"ensemble: too few images to hold out {self.holdout:.0%} "
                                 f"of each source ({error})") from None
        images = np.concatenate(sets)
        fit_index, held_index = np.sort(fit_index), np.sort(held_index)
        parts = {name: images[fit_index[source[fit_index] == k]] for k, name in enumerate(names)}
        _fit_members(members, parts)
        self.members_ = members
        held, held_labels = images[held_index], (source[held_index] > 0).astype(np.int64)
        if self.robust:
            from forensics.domain import process

            held = np.concatenate([held, process(held, np.random.default_rng([self.seed, 17]))])
            held_labels = np.r_[held_labels, held_labels]
        features = self._features(held)
        self.combiner_ = self._combiner(features, held_labels)
        self._end_fit(real)
        return self

    def _combiner(self, features: np.ndarray, labels: np.ndarray):
        """The logistic regression on the members' logits: fitted freely (``holdout``), or
        (``equal``) the mean of the logits standardised on the held-out reals, Platt-scaled."""
        from sklearn.linear_model import LogisticRegression

        def fitted(x: np.ndarray) -> LogisticRegression:
            return LogisticRegression(C=self.C, max_iter=1000,
                                      class_weight="balanced" if self.balance else None
                                      ).fit(x, labels)

        if self.stacking == "holdout":
            return fitted(features)
        reals = features[labels == 0]
        # a member (nearly) constant on the reals would weigh without bound per real-image std:
        # its scale is kept at a tenth of its spread over all held-out images at least; one
        # constant on every held-out image says nothing and weighs 0
        if not np.isfinite(features).all():
            raise ForensicsError("ensemble: a member gave held-out images a non-finite score")
        centre = reals.mean(0)
        scale = np.maximum(reals.std(0), 0.1 * features.std(0))
        used = scale > 1e-6 * np.maximum(1.0, np.abs(features).max(0))  # beyond float jitter
        if not used.any():
            raise ForensicsError("ensemble: every member gives every held-out image one score; "
                                 "there is nothing to combine")
        z = ((features[:, used] - centre[used]) / scale[used]).mean(1)
        platt = fitted(z[:, None])
        # one linear map of the logits, so the saved combiner is an ordinary LogisticRegression:
        # Platt's fitted regression, given the members' columns
        a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        coef = np.zeros(features.shape[1])
        coef[used] = a / (used.sum() * scale[used])
        platt.coef_ = coef[None, :]
        platt.intercept_ = np.array([b - a * float(np.mean(centre[used] / scale[used]))])
        platt.n_features_in_ = features.shape[1]
        return platt

    def _features(self, images: np.ndarray) -> np.ndarray:
        return self._member_logits(images)[0]

    def _member_logits(self, images: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        """(N, members) fake-logits, the combiner's input, and the sources the first member
        that tells them apart names (attribution), all in one pass. The ensemble has checked
        the images; members score them directly (a restored member keeps no input shape)."""
        columns, sources = [], None
        for member in self.members_:
            scores, found = member._scores_and_sources(images)
            sources = sources if sources is not None else found
            columns.append(logit(np.clip(scores, 0.0, 1.0)))
        return np.stack(columns, 1), sources

    def member_logits(self, images: np.ndarray) -> np.ndarray:
        """(N, members) the members' fake-logits, the combiner's input."""
        return self._features(self._check_input(images))

    def _scores(self, images: np.ndarray) -> np.ndarray:
        return self._scores_and_sources(images)[0]

    def _scores_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        features, sources = self._member_logits(images)
        return self.combiner_.predict_proba(features)[:, 1], sources

    def _log_odds_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        features, sources = self._member_logits(images)  # the combiner's logit (unsaturated)
        return self.combiner_.decision_function(features), sources

    # -- state -----------------------------------------------------------------
    def _state(self) -> tuple[dict | None, Any, dict[str, Any]]:
        tensors: dict = {}
        member_state, member_sklearn = [], []
        for i, member in enumerate(self.members_):
            weights, sklearn, state = member._state()
            for key, value in (weights or {}).items():
                tensors[_prefix(i) + key] = value
            member_state.append({"kind": member.name, "options": member.get_params(),
                                 "state": state, "tensors": weights is not None})
            member_sklearn.append(sklearn)
        return (tensors or None, {"combiner": self.combiner_, "members": member_sklearn},
                {"members": member_state})

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        if not isinstance(sklearn, dict) or not hasattr(sklearn.get("combiner"), "predict_proba"):
            raise ValueError("no combiner in model.skops")
        records, member_sklearn = state["members"], sklearn["members"]
        if [record["kind"] for record in records] != self.member_kinds() \
                or len(member_sklearn) != len(records):
            raise ValueError("saved members do not match the members option")
        members = []
        for i, record in enumerate(records):
            options = dict(record["options"])
            if self.device != "auto" and get(record["kind"]).torch_based:  # detect --device
                options["device"] = self.device
            member = create(record["kind"], **options)
            prefix = _prefix(i)
            weights = {key[len(prefix):]: value for key, value in (tensors or {}).items()
                       if key.startswith(prefix)}
            member._restore(weights if record["tensors"] else None, member_sklearn[i],
                            record["state"] or {})
            members.append(member)
        self.members_ = members
        self.combiner_ = sklearn["combiner"]
        if getattr(self.combiner_, "n_features_in_", len(members)) != len(members):
            raise ValueError("combiner does not match the members")
