"""Benchmark: the statistics of one run, 4 models x 3 repeats x 10,000 test rows, 2,000 bootstrap resamples.

    python bench/bench_stats.py --repeats 5

Synthetic class probabilities stand in for trained models (the statistics only see arrays). Times
the evaluate stage's statistics end to end, as `job run` calls them: per training the Clopper-Pearson
and bootstrap intervals and calibration, then the choice on validation and every pair on test.
Prints the median of the repeats, and the scipy.stats.bootstrap BCa time for one paired macro-F1
interval on the same rows, for scale.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def synthetic(n_rows: int, n_models: int, seeds: int, k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n_rows)
    probas = {}
    for m in range(n_models):
        for s in range(seeds):
            logits = rng.normal(size=(n_rows, k))
            logits[np.arange(n_rows), y] += 2.5 + 0.2 * m  # better models, noisier seeds
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            probas[m, s] = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    return y, probas


def run_once(y_val, y_test, val, test, n_models, seeds, k=10) -> float:
    from job.evaluate import _test_metrics
    from job.stats.compare import ModelPredictions, Resampler, choose, compare

    t0 = time.perf_counter()
    resampler = Resampler(y_test.size)
    for proba in test.values():
        _test_metrics(proba, y_test, k, resampler)
    models = [
        ModelPredictions(
            f"Model {m}",
            1000 * (m + 1),
            [val[m, s].argmax(1) for s in range(seeds)],
            [test[m, s].argmax(1) for s in range(seeds)],
        )  # fmt: skip
        for m in range(n_models)
    ]
    choice = choose(y_val, models)
    compare(y_test, models, k, choice.chosen, resampler)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rows", type=int, default=10_000)
    args = p.parse_args()
    y_test, test = synthetic(args.rows, 4, 3, seed=1)
    y_val, val = synthetic(args.rows, 4, 3, seed=2)
    times = [run_once(y_val, y_test, val, test, 4, 3) for _ in range(args.repeats)]
    spread = f"min {min(times):.2f}, max {max(times):.2f}"
    print(f"statistics for 4 models x 3 seeds x {args.rows:,} test rows, 2,000 resamples: "
          f"median {statistics.median(times):.2f} s over {args.repeats} runs ({spread})")  # fmt: skip

    from scipy.stats import bootstrap

    from job.stats.metrics import confusion_matrix, macro_f1

    def f1(y, pred):
        return float(macro_f1(confusion_matrix(y, pred, 10)))

    a, b = test[0, 0].argmax(1), test[1, 0].argmax(1)
    t0 = time.perf_counter()
    bootstrap((np.arange(args.rows),), lambda i: f1(y_test[i], a[i]) - f1(y_test[i], b[i]),
              n_resamples=2000, method="BCa", vectorized=False, random_state=0)  # fmt: skip
    print(f"for scale, scipy.stats.bootstrap (BCa) for ONE paired macro-F1 interval: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
