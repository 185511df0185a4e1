"""Deepfake detectors, found by name, all with one contract.

``create("spectral-fft").fit(real, fake).predict_proba(images)`` gives P(fake);
``save_detector`` writes a folder and ``load_detector`` reads any of them back.
A new family is one module with a ``@register("name")`` class; the contract
tests then cover it.
"""

from detectors.base import Detector, load_detector
from detectors.registry import create, get, list_detectors, register
from detectors.training import save_detector, train_detector

__all__ = ["Detector", "create", "get", "list_detectors", "load_detector", "register",
           "save_detector", "train_detector"]
