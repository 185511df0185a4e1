"""The contract every detector family follows (scikit-learn style).

``__init__`` only stores keyword options; ``fit(real, fake)`` learns and
returns ``self``; ``predict_proba(images)`` gives P(fake) per image;
``save(folder)`` / ``load(folder)`` round-trip through :mod:`detectors.storage`.
Learned attributes end in ``_``; ``input_shape_`` is the ``(C, H, W)`` the
detector was trained on, ``threshold_`` the P(fake) at or above which
:meth:`predict` says "fake" (0.5 until calibrated by :func:`train_detector`).
``domain_`` (a :class:`forensics.domain.Domain`, set by :func:`train_detector`) records
what the real training data looked like, so ``forensics detect`` can abstain on images
of another domain; ``calibration_`` the thresholds of each rule, the real validation
scores' quantiles and, for a detector trained with fakes, the Platt rule that turns the
raw score into a calibrated probability (:meth:`Detector.probability`). All are saved in
``detector.json`` (``"domain"``, ``"thresholds"``, ``"threshold_rule"``,
``"real_val_scores"``, ``"probability"``).

The raw score lies in [0, 1] but is not a probability (a threshold of 0.0008 is common).
Verdicts, thresholds and the validation quantiles work in the score's log-odds
(:meth:`Detector.log_odds`; ``threshold_log_odds_``, saved as ``"threshold_log_odds"``): a
detector whose score is a sigmoid gives its logit, which keeps ranking where the score
saturates to 0 or 1 in float; ``threshold_`` = sigmoid(``threshold_log_odds_``) is for display.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from detectors import storage
from forensics.domain import Domain
from forensics.errors import ForensicsError
from forensics.measures import as_batch

#: The calibration fields of detector.json (see :func:`detectors.training.calibrate`).
CALIBRATION_KEYS = ("thresholds", "threshold_rule", "real_val_scores", "probability")
#: Scores are clipped to [CLIP, 1 − CLIP] before their log-odds are taken.
SCORE_CLIP = 1e-12


def score_logit(scores: np.ndarray) -> np.ndarray:
    """log(s / (1 − s)) of detector scores, clipped so that 0 and 1 stay finite."""
    s = np.clip(np.asarray(scores, dtype=np.float64), SCORE_CLIP, 1.0 - SCORE_CLIP)
    return np.log(s) - np.log1p(-s)


def sigmoid(log_odds: np.ndarray) -> np.ndarray:
    """The probability of log-odds (scikit-learn's own ``expit``: a logistic regression's
    ``predict_proba`` exactly)."""
    from scipy.special import expit

    return expit(np.asarray(log_odds, dtype=np.float64))


def platt(scores: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """Calibrated P(fake) = sigmoid(a · logit(score) + b), Platt's rule with detector.json's
    ``probability`` record (:func:`detectors.training.fit_platt`)."""
    z = record["a"] * score_logit(scores) + record["b"]
    return 1.0 / (1.0 + np.exp(-z))


def class_weights(counts: list[int], balance: bool = True) -> np.ndarray:
    """Per-class loss weights ``N / (K · n_k)`` (every class weighs the same in total; the mean
    weight per image stays 1), or all ones when ``balance`` is off."""
    counts = np.asarray(counts, dtype=np.float64)
    if not balance or np.any(counts == 0):
        return np.ones(len(counts))
    return counts.sum() / (len(counts) * counts)


class Detector:
    """Base class; subclasses implement ``fit``, ``_scores`` and the state hooks."""

    name: ClassVar[str]
    # -- what the family is (scikit-learn's tags): callers read these, never probe with hasattr
    #: trained on fakes too (False: a real-only detector, ``fit(real, None)``)
    needs_fakes: ClassVar[bool] = True
    #: tells the sources apart (``fit_sources``, ``predict_source_proba``, ``confusion_matrix``)
    multiclass: ClassVar[bool] = False
    #: learns from the fakes by source (``fit_sources({"real": …, name: …})``, which
    #: ``train_detector`` calls instead of ``fit``): attribution, and the ensemble for its members
    fits_sources: ClassVar[bool] = False
    #: built from a trained generator run (option ``run``)
    needs_run: ClassVar[bool] = False
    #: a torch network: takes ``device``, ``precision`` and ``compile`` options
    torch_based: ClassVar[bool] = False
    #: gives input-gradient saliency maps (``saliency``) for ``detect --explain``
    has_saliency: ClassVar[bool] = False
    #: learns from several classes and has the ``balance`` option (class-weighted loss, on by
    #: default): train-detector's --no-balance turns it off
    balances: ClassVar[bool] = False
    #: has the ``stretch`` option: judges each image after auto-levels
    #: (:func:`detectors.cnn.stretch_tone`), blind to black level and contrast
    stretches: ClassVar[bool] = False
    #: the smallest options for contract tests and tiny suites
    tiny_options: ClassVar[dict[str, Any]] = {}
    #: options added after folders were saved without them: ``{option: the value those
    #: detectors were fitted with}``, so an older folder loads (and reports) as it was trained
    earlier: ClassVar[dict[str, Any]] = {}

    def get_params(self) -> dict[str, Any]:
        """The keyword options this detector was built with (enough to rebuild it)."""
        names = [key for key, p in inspect.signature(type(self).__init__).parameters.items()
                 if p.kind is p.KEYWORD_ONLY]
        return {key: getattr(self, key) for key in names}

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({options})"

    # -- the contract -------------------------------------------------------
    def fit(self, real: np.ndarray, fake: np.ndarray) -> Detector:
        raise NotImplementedError

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """P(fake) in [0, 1] for each image, shape (N,)."""
        images = self._check_input(images)
        return np.clip(np.asarray(self._scores(images), dtype=np.float64), 0.0, 1.0)

    def scores_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        """P(fake) per image and, from a detector that tells sources apart, the likeliest fake
        source of each (in the same pass; None from the others)."""
        scores, sources = self._scores_and_sources(self._check_input(images))
        return np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0), sources

    def _scores_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        return self._scores(images), None

    def log_odds_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        """The score's log-odds per image (what thresholds, quantiles and verdicts compare) and,
        like :meth:`scores_and_sources`, the likeliest fake source. A detector whose score is a
        sigmoid gives its logit before the sigmoid, so a score that saturates to 1.0 in float
        still ranks (sigmoid(log_odds) is the score); the others give logit(score)."""
        log_odds, sources = self._log_odds_and_sources(self._check_input(images))
        return np.asarray(log_odds, dtype=np.float64), sources

    def log_odds(self, images: np.ndarray) -> np.ndarray:
        """The score's log-odds per image (see :meth:`log_odds_and_sources`)."""
        return self.log_odds_and_sources(images)[0]

    def _log_odds_and_sources(self, images: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        scores, sources = self._scores_and_sources(images)
        return score_logit(np.clip(scores, 0.0, 1.0)), sources

    def probability(self, scores: np.ndarray) -> np.ndarray | None:
        """Calibrated P(fake) of raw ``scores`` (equal priors; Platt on validation), or None
        for a detector trained before calibration or without fakes: its score is no probability."""
        record = self.calibration_.get("probability") if hasattr(self, "calibration_") else None
        return platt(scores, record) if record else None

    def predict(self, images: np.ndarray) -> np.ndarray:
        """True where the score reaches the calibrated threshold (compared in log-odds)."""
        return self.log_odds(images) >= self.threshold_log_odds_

    def _scores(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def domain(self) -> Domain:
        """The recorded domain, or a shape-only one for a detector that records none."""
        self._check_fitted()
        return self.domain_ or Domain(self.input_shape_)

    # -- helpers for subclasses --------------------------------------------
    def _training_precision(self) -> str:
        """What a torch detector trains in: its ``precision`` option, ``auto`` resolved for
        the device, kept as ``precision_`` so that detector.json records what ran."""
        from forensics.runtime import resolve_precision

        self.precision_ = resolve_precision(self.precision, self._device())
        return self.precision_

    def _device(self):
        """The torch device of a detector with a ``device`` option (auto, cpu, cuda)."""
        from forensics.distributed import local_device
        from forensics.runtime import pick_device

        return local_device(pick_device(self.device))

    def _check_fitted(self) -> None:
        if not hasattr(self, "input_shape_"):
            raise ForensicsError(f"{self.name} detector is not fitted; call fit first")

    def _check_input(self, images: Any) -> np.ndarray:
        self._check_fitted()
        images = as_batch(images)
        if tuple(images.shape[1:]) != tuple(self.input_shape_):
            raise ForensicsError(
                f"images are {tuple(images.shape[1:])} but the detector was trained on "
                f"{tuple(self.input_shape_)}; conform them first (forensics.images.conform)")
        return images

    def _start_fit(self, real: Any, fake: Any) -> tuple[np.ndarray, np.ndarray]:
        """Check both sets and mark the detector unfitted until :meth:`_end_fit`."""
        real, fake = as_batch(real, "real images"), as_batch(fake, "fake images")
        if real.shape[1:] != fake.shape[1:]:
            raise ForensicsError(f"real images are {real.shape[1:]} but fake images are "
                                 f"{fake.shape[1:]}; conform them to one shape")
        self.__dict__.pop("input_shape_", None)
        return real, fake

    def _end_fit(self, images: np.ndarray) -> None:
        """Record the training shape; threshold 0.5 until calibrated."""
        self.input_shape_ = tuple(int(v) for v in images.shape[1:])
        self.threshold_ = 0.5
        self.threshold_log_odds_ = 0.0
        self.metrics_: dict[str, Any] = {}
        #: the real data's domain (set by train_detector) and the calibration fields of detector.json
        self.domain_: Domain | None = None
        self.calibration_: dict[str, Any] = {}

    # -- state hooks ----------------------------------------------------------
    def _state(self) -> tuple[dict | None, Any | None, dict[str, Any]]:
        """``(torch tensors, scikit-learn object, JSON-able extra state)`` to save."""
        raise NotImplementedError

    def _restore(self, tensors: dict | None, sklearn: Any | None, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- persistence --------------------------------------------------------
    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write the detector into ``folder`` (see :func:`detectors.save_detector` for atomic)."""
        from forensics.provenance import now, versions

        self._check_fitted()
        tensors, sklearn, state = self._state()
        header = {"kind": self.name, "options": self.get_params(),
                  "input_shape": list(self.input_shape_), "threshold": float(self.threshold_),
                  "threshold_log_odds": float(self.threshold_log_odds_), "metrics": self.metrics_,
                  "state": state, "versions": versions(), "created": now()}
        if self.domain_ is not None:
            header["domain"] = self.domain_.to_dict()
        if getattr(self, "precision_", None):  # a torch detector: the precision training ran in
            header["trained_precision"] = self.precision_
        header.update({key: value for key, value in self.calibration_.items() if key in CALIBRATION_KEYS})
        clash = sorted(set(extra or {}) & (set(header) | {"files"}))
        if clash:
            raise ValueError(f"extra keys clash with detector.json fields: {clash}")
        storage.write_folder(folder, {**header, **(extra or {})}, tensors, sklearn)

    @classmethod
    def load(cls, folder: str | Path) -> Detector:
        """Rebuild a saved detector of this family; one-line ForensicsError if damaged."""
        header = storage.read_header(folder)
        if header["kind"] != cls.name:
            raise ForensicsError(f"{folder}: holds a {header['kind']!r} detector, "
                                 f"not {cls.name!r}")
        return _from_header(cls, folder, header)


def _from_header(cls: type[Detector], folder: str | Path, header: dict[str, Any]) -> Detector:
    from detectors.registry import create

    options = header["options"]
    if not isinstance(options, dict):
        raise ForensicsError(f"{folder}: detector options must be a JSON object")
    shape = _input_shape(folder, header.get("input_shape"))
    threshold = header.get("threshold", 0.5)
    if not _in_unit(threshold):
        raise ForensicsError(f"{folder}: detector.json: 'threshold' must be a P(fake) in [0, 1], "
                             f"not {str(threshold)[:40]}")
    detector = create(cls.name, **{**cls.earlier, **options})
    tensors, sklearn = storage.read_folder(folder, header)
    bad = _non_finite(tensors, "") or _non_finite_sklearn(sklearn)
    if bad:
        raise ForensicsError(f"{folder}: model weights hold NaN or infinite values ({bad}); "
                             "refusing a detector that cannot score")
    try:
        detector._restore(tensors, sklearn, header.get("state") or {})
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise ForensicsError(f"{folder}: model files do not fit a {cls.name} detector "
                             f"({first})") from None
    detector.input_shape_ = shape
    detector.threshold_ = float(threshold)
    if header.get("trained_precision") in ("fp32", "bf16"):  # kept when saved again
        detector.precision_ = header["trained_precision"]
    # what verdicts compare: the saved log-odds (finer than a threshold that rounds to 1.0)
    # where they are the saved threshold's; else (an older detector, or a threshold edited
    # by hand) logit(threshold): the same verdicts, as the log-odds rise with the score
    log_odds = header.get("threshold_log_odds")
    if log_odds is not None and not _number(log_odds):
        raise ForensicsError(f"{folder}: detector.json: 'threshold_log_odds' must be a number, "
                             f"not {str(log_odds)[:40]}")
    if log_odds is None or not np.isclose(float(sigmoid(log_odds)), threshold, rtol=0, atol=1e-12):
        log_odds = float(score_logit(threshold))
    detector.threshold_log_odds_ = float(log_odds)
    detector.metrics_ = header.get("metrics") or {}
    detector.domain_ = None
    if "domain" in header:
        try:
            domain = Domain.from_dict(header["domain"])
        except ForensicsError as error:
            raise ForensicsError(f"{folder}: detector.json: {error}") from None
        if domain.shape != detector.input_shape_:
            raise ForensicsError(f"{folder}: detector.json: domain shape {list(domain.shape)} is not "
                                 f"the input shape {list(detector.input_shape_)}")
        detector.domain_ = domain
    detector.calibration_ = _calibration(folder, header)
    _probe(folder, detector)
    return detector


#: The largest height and width a detector.json may declare (a claim of 100000 would allocate GBs).
MAX_SIDE = 4096


def _input_shape(folder: str | Path, shape: Any) -> tuple[int, int, int]:
    """detector.json's ``input_shape``, checked: [C, H, W], C in {1, 3}, 1 <= H, W <= MAX_SIDE."""
    ok = (isinstance(shape, list) and len(shape) == 3
          and all(isinstance(v, int) and not isinstance(v, bool) for v in shape))
    if not ok or shape[0] not in (1, 3) or not all(1 <= v <= MAX_SIDE for v in shape[1:]):
        raise ForensicsError(f"{folder}: detector.json: 'input_shape' must be [C, H, W] with C 1 or 3 "
                             f"and 1 <= H, W <= {MAX_SIDE}, not {str(shape)[:60]}")
    return tuple(shape)


def _non_finite(tensors: Any, where: str) -> str | None:
    """The name of the first floating tensor holding NaN or an infinity (None: all finite)."""
    if isinstance(tensors, dict):
        for key, value in tensors.items():
            found = _non_finite(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(tensors, list | tuple):
        for i, value in enumerate(tensors):
            found = _non_finite(value, f"{where}[{i}]")
            if found:
                return found
    elif tensors is not None and hasattr(tensors, "is_floating_point"):
        import torch

        if tensors.is_floating_point() and not bool(torch.isfinite(tensors).all()):
            return where or "tensor"
    return None


def _non_finite_sklearn(obj: Any, depth: int = 0) -> str | None:
    """The first float array attribute of a scikit-learn object (or its steps) that is not finite."""
    if obj is None or depth > 4:
        return None
    if isinstance(obj, np.ndarray):
        return "array" if obj.dtype.kind == "f" and not np.isfinite(obj).all() else None
    if isinstance(obj, list | tuple):
        return next(filter(None, (_non_finite_sklearn(v, depth + 1) for v in obj)), None)
    if isinstance(obj, float):
        return None if np.isfinite(obj) else "value"
    for key, value in getattr(obj, "__dict__", {}).items():
        if key.endswith("_") or isinstance(value, list | tuple) or hasattr(value, "get_params"):
            found = _non_finite_sklearn(value, depth + 1)
            if found:
                return f"{key}" if found in ("array", "value") else f"{key}.{found}"
    return None


def _probe(folder: str | Path, detector: Detector) -> None:
    """Score one blank image of the declared shape: a shape the model does not fit is one error
    line now, not a traceback at scoring time."""
    blank = np.zeros((1, *detector.input_shape_), dtype=np.float32)
    try:
        detector.predict_proba(blank)
    except ForensicsError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise ForensicsError(f"{folder}: detector.json: input_shape {list(detector.input_shape_)} does "
                             f"not fit the {detector.name} model ({first})") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _in_unit(value: Any) -> bool:
    """A number in [0, 1]; just above 1 too (a threshold one ulp above the top score calls
    nothing fake, as calibration may choose)."""
    return _number(value) and 0.0 <= value <= 1.0 + 1e-9


def _calibration(folder: str | Path, header: dict[str, Any]) -> dict[str, Any]:
    """The calibration fields of detector.json, checked (one-line error when malformed)."""
    found = {key: header[key] for key in CALIBRATION_KEYS if key in header}
    where = f"{folder}: detector.json"
    thresholds = found.get("thresholds", {})
    if not isinstance(thresholds, dict) or not all(
            isinstance(k, str) and (v is None or _in_unit(v)) for k, v in thresholds.items()):
        raise ForensicsError(f"{where}: 'thresholds' must map rules to numbers in [0, 1]")
    rule = found.get("threshold_rule", "saved")
    if not isinstance(rule, str) or not rule.isprintable() or len(rule) > 40:
        raise ForensicsError(f"{where}: 'threshold_rule' must be a short name, not {rule!r:.40}")
    scores = found.get("real_val_scores")
    if scores is not None:
        levels, values, n = (scores.get(k) if isinstance(scores, dict) else None
                             for k in ("levels", "quantiles", "n"))
        ok = (isinstance(levels, list) and isinstance(values, list) and 2 <= len(levels) == len(values)
              <= 10_000 and all(map(_number, levels + values)) and isinstance(n, int)
              and not isinstance(n, bool) and n > 0)
        if ok:
            lv, qv = np.asarray(levels, float), np.asarray(values, float)
            ok = bool(np.all(np.diff(lv) > 0) and np.all(np.diff(qv) >= 0) and lv[0] >= 0 and lv[-1] <= 1)
        top = scores.get("top", []) if ok else []
        if ok and not (isinstance(top, list) and len(top) <= min(n, 10_000) and all(map(_number, top))
                       and np.all(np.diff(np.asarray(top, float)) <= 0)):
            ok = False
        if not ok:
            raise ForensicsError(f"{where}: 'real_val_scores' must hold n, increasing levels in "
                                 "[0, 1] with non-decreasing quantiles, and at most n non-increasing "
                                 "highest scores")
    probability = found.get("probability")
    if probability is not None and not (isinstance(probability, dict) and _number(probability.get("a"))
                                        and _number(probability.get("b"))):
        raise ForensicsError(f"{where}: 'probability' must hold the Platt numbers a and b")
    found.setdefault("threshold_rule", rule)
    return found


def load_detector(folder: str | Path, device: str | None = None) -> Detector:
    """Open any saved detector folder: read ``detector.json`` and dispatch on its kind.

    ``device`` (auto, cpu, cuda): where a torch detector runs, instead of its saved option.
    """
    from detectors.registry import get, option_names

    header = storage.read_header(folder)
    cls = get(str(header["kind"]))
    if device is not None and "device" in option_names(cls.name) and isinstance(header.get("options"), dict):
        header = {**header, "options": {**header["options"], "device": device}}
    return _from_header(cls, folder, header)
