"""Scores of one set of predictions, and the intervals every table uses: counts and arrays in, numbers out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass
class Interval:
    low: float  # lower end
    high: float  # upper end


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes, in counts."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: right, true and predicted counts, the confusion's diagonal and margins without its K x K cells."""
    right = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    return right, np.bincount(y_true, minlength=n_classes), np.bincount(y_pred, minlength=n_classes)


def top_confusions(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n: int) -> list[tuple[int, int, int]]:
    """The n largest off-diagonal confusion cells as (true, predicted, count), most rows first, then by class;
    from the wrong rows alone, so it costs rows, not classes squared."""
    wrong = y_true != y_pred
    codes, counts = np.unique(y_true[wrong].astype(np.int64) * n_classes + y_pred[wrong], return_counts=True)
    order = np.lexsort((codes, -counts))[:n]
    return [(int(codes[i] // n_classes), int(codes[i] % n_classes), int(counts[i])) for i in order]


def accuracy_of(confusion: np.ndarray) -> np.ndarray:
    return np.trace(confusion, axis1=-2, axis2=-1) / confusion.sum(axis=(-2, -1))


def macro_f1(confusion: np.ndarray) -> np.ndarray:
    """Mean F1 over the classes present (in truth or prediction); works on one matrix or a stack."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    return macro_f1_of_counts(tp, confusion.sum(axis=-1), confusion.sum(axis=-2))


def macro_f1_of_counts(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Macro-F1 from per-class right, true and predicted counts (the last axis is the class)."""
    denominator = support + predicted
    present = denominator > 0
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=present)
    return f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


PROBA_FLOOR = 1e-7  # Keras's epsilon: the loss of a probability clipped here, as model.evaluate reports it


def top_two(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class, its probability, runner-up class, its probability."""
    rows = np.arange(proba.shape[0])
    first = proba.argmax(axis=1)  # the first of equal maxima, as a stable sort of -proba would give
    if proba.shape[1] == 1:
        return first, proba[rows, first], first, proba[rows, first]
    rest = proba.copy()  # one copy, not a rows x classes sort order: the classes may be 10,000
    rest[rows, first] = -np.inf
    second = rest.argmax(axis=1)
    return first, proba[rows, first], second, proba[rows, second]


def cross_entropy(proba: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-probability of the true class (sparse categorical cross-entropy)."""
    p = np.clip(proba[np.arange(y_true.size), y_true].astype(np.float64), PROBA_FLOOR, 1.0)
    return float(-np.log(p).mean())


def percentile_interval(samples: np.ndarray) -> Interval:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(low), float(high))


def clopper_pearson(correct: int, total: int) -> Interval:
    from scipy.stats import binomtest

    ci = binomtest(correct, total).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return Interval(float(ci.low), float(ci.high))


def mean_interval(values: list[float], bounds: tuple[float, float] = (-1.0, 1.0)) -> Interval | None:
    """t-interval of the mean over seeds, cut to what the quantity can be (a proportion stays in [0, 1],
    a difference of proportions in [-1, 1]); None with fewer than two seeds."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    if sd == 0:
        return None  # every seed the same: the spread over seeds is not observed, so no interval is honest
    low, high = t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=sd / math.sqrt(len(values)))
    return Interval(max(float(low), bounds[0]), min(float(high), bounds[1]))


def signed_pp(value: float, digits: int = 1) -> str:
    """value x 100 with its sign; what rounds to zero is '+0.0', never '-0.0'."""
    text = f"{value * 100:+.{digits}f}"
    return "+" + text[1:] if float(text) == 0 else text


def fmt_p(value: float | None) -> str:
    """A p-value as people read them: '< 0.001', '0.012', '0.41'; '—' when there is none."""
    if value is None or not math.isfinite(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}" if value < 0.1 else f"{value:.2f}"
