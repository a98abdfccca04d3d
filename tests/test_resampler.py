"""The bootstrap's scores without a confusion matrix per resample: equal bit for bit, bounded at many classes."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from job.stats.compare import Resampler
from job.stats.metrics import accuracy_of, macro_f1


def _through_confusions(r: Resampler, y: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The scores as they were computed before: every resample's whole K x K confusion matrix."""
    cells = np.zeros((r.n_rows, k * k), dtype=np.float32)
    cells[np.arange(r.n_rows), y * k + p] = 1.0
    confusion = (r.weights @ cells).reshape(-1, k, k)
    return accuracy_of(confusion), macro_f1(confusion)


@pytest.mark.parametrize(("k", "rows", "noise"), [(10, 1000, 0.1), (2, 57, 0.5), (30, 400, 0.9), (10, 40, 0.3)])
def test_scores_equal_those_of_the_full_confusion_matrices(k, rows, noise):
    rng = np.random.default_rng(k * rows)
    y = rng.integers(0, k, rows)
    p = np.where(rng.random(rows) < noise, rng.integers(0, k, rows), y)
    r = Resampler(rows, resamples=500)
    accuracy, f1 = r.scores(y, p, k)
    want_accuracy, want_f1 = _through_confusions(r, y, p, k)
    assert accuracy.dtype == want_accuracy.dtype and f1.dtype == want_f1.dtype
    assert np.array_equal(accuracy, want_accuracy) and np.array_equal(f1, want_f1)


def test_ten_thousand_classes_stay_small():
    """The confusion way needs rows x K^2 floats here (4 TB); the counts need resamples x K per chunk."""
    k, rows = 10_000, 20_000
    rng = np.random.default_rng(0)
    y = np.arange(rows) % k
    p = np.where(rng.random(rows) < 0.3, rng.integers(0, k, rows), y)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = Resampler(rows)
    accuracy, f1 = r.scores(y, p, k)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert accuracy.shape == f1.shape == (2000,)
    assert 0.6 < accuracy.mean() < 0.8 and 0.0 < f1.mean() < 1.0
    assert grown_mb < 700  # the row counts (160 MB) and 64 MB chunks of class counts
