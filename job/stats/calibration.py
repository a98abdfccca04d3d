"""How far a model's confidence can be trusted: top-label reliability bins, ECE, Brier score and NLL."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RELIABILITY_BINS = 15


@dataclass
class ReliabilityBin:
    low: float  # confidence from
    high: float  # confidence to
    count: int  # test rows in the bin
    confidence: float | None  # mean top-label confidence in the bin; None when empty
    accuracy: float | None  # their accuracy; null when empty


@dataclass
class Calibration:
    ece: float  # expected calibration error over RELIABILITY_BINS equal-width bins
    brier: float  # mean squared distance between the probability vector and the one-hot label
    nll: float  # mean negative log-likelihood of the true class
    bins: list[ReliabilityBin]  # the reliability diagram


def calibration(proba: np.ndarray, y_true: np.ndarray) -> Calibration:
    """Top-label reliability over equal-width confidence bins, ECE, Brier score and NLL."""
    confidence = proba.max(axis=1).astype(np.float64)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, RELIABILITY_BINS - 1)
    bins, ece = [], 0.0
    for b in range(RELIABILITY_BINS):
        inside = which == b
        count = int(inside.sum())
        conf = float(confidence[inside].mean()) if count else None
        acc = float(correct[inside].mean()) if count else None
        if acc is not None and conf is not None:
            ece += count / y_true.size * abs(acc - conf)
        bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count, conf, acc))
    onehot = np.eye(proba.shape[1])[y_true]
    brier = float(np.mean(np.sum((proba.astype(np.float64) - onehot) ** 2, axis=1)))
    p_true = np.clip(proba[np.arange(y_true.size), y_true].astype(np.float64), 1e-7, 1.0)
    return Calibration(float(ece), brier, float(-np.log(p_true).mean()), bins)
