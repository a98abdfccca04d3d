"""Statistics with known answers, on synthetic predictions (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from job.stats.calibration import calibration
from job.stats.compare import Agreement, ModelPredictions, Resampler, agreement, cochrans_q, compare, mcnemar_p
from job.stats.metrics import clopper_pearson, macro_f1, mean_interval

RNG = np.random.default_rng(0)


def labels(n=1000, k=10):
    return np.arange(n) % k


def with_errors(y, wrong_rows, k=10):
    pred = y.copy()
    pred[wrong_rows] = (y[wrong_rows] + 1) % k
    return pred


def test_identical_models_give_p_1_and_a_zero_interval():
    y = labels()
    pred = with_errors(y, np.arange(0, 1000, 9))
    models = [ModelPredictions("A", 10, [pred], [pred]), ModelPredictions("B", 20, [pred], [pred.copy()])]
    result = compare(y, models, 10, "A", Resampler(y.size, resamples=500))
    (pair,) = result.pairs
    assert pair.p_value == 1.0 and pair.p_holm == 1.0
    assert (pair.accuracy_diff_ci.low, pair.accuracy_diff_ci.high) == (0.0, 0.0)
    assert (pair.macro_f1_diff_ci.low, pair.macro_f1_diff_ci.high) == (0.0, 0.0)
    assert "identical calls" in pair.verdict
    assert result.cochran.statistic is None and "same rows" in result.cochran.note


def test_forty_more_right_and_never_worse_is_highly_significant():
    y = labels()
    worse = with_errors(y, np.arange(0, 120))
    better = with_errors(y, np.arange(40, 120))  # right on 40 more rows, wrong on none that the other gets right
    table = agreement((better == y).astype(float), (worse == y).astype(float))
    assert table == Agreement(both_right=880, only_a=40, only_b=0, both_wrong=80)
    assert mcnemar_p(table) < 1e-9
    models = [ModelPredictions("better", 1, [better], [better]), ModelPredictions("worse", 1, [worse], [worse])]
    pair = compare(y, models, 10, "better", Resampler(y.size, resamples=500)).pairs[0]
    assert pair.accuracy_diff == pytest.approx(0.04) and pair.accuracy_diff_ci.low > 0
    assert "better is better" in pair.verdict


@pytest.mark.parametrize("k, n", [(5, 10), (0, 20), (20, 20), (913, 1000), (1, 3)])
def test_clopper_pearson_matches_the_beta_quantiles(k, n):
    ci = clopper_pearson(k, n)
    low = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    high = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    assert ci.low == pytest.approx(low, abs=1e-12) and ci.high == pytest.approx(high, abs=1e-12)


def test_clopper_pearson_matches_a_published_value():
    ci = clopper_pearson(5, 10)  # the textbook 5 of 10: 0.187 to 0.813
    assert round(ci.low, 3) == 0.187 and round(ci.high, 3) == 0.813


def test_perfectly_calibrated_confidences_give_ece_near_zero():
    n = 40_000
    confidence = RNG.uniform(0.5, 1.0, n)
    y = (RNG.uniform(size=n) > confidence).astype(int)  # class 0 is right with probability `confidence`
    proba = np.stack([confidence, 1 - confidence], axis=1)
    cal = calibration(proba, y)
    assert cal.ece < 0.01 and len(cal.bins) == 15 and sum(b.count for b in cal.bins) == n
    overconfident = calibration(np.stack([np.full(n, 0.99), np.full(n, 0.01)], axis=1), y)
    assert overconfident.ece > 0.2


def test_bootstrap_scores_match_direct_computation_on_the_identity_resample():
    y = labels(200, 4)
    pred = with_errors(y, np.arange(0, 200, 7), 4)
    resampler = Resampler(y.size, resamples=3)
    resampler.weights[:] = 1.0  # every row once: the plain statistic
    acc, f1 = resampler.scores(y, pred, 4)
    confusion = np.bincount(y * 4 + pred, minlength=16).reshape(4, 4)
    assert acc == pytest.approx(np.mean(pred == y)) and f1 == pytest.approx(macro_f1(confusion))
    from sklearn.metrics import f1_score

    assert f1[0] == pytest.approx(f1_score(y, pred, average="macro"))


def test_repeats_use_every_seed_and_the_mean_interval():
    y = labels()
    a = [with_errors(y, np.arange(s, 80 + s)) for s in range(3)]
    b = [with_errors(y, np.arange(s, 100 + s)) for s in range(3)]
    models = [ModelPredictions("a", 1, a, a), ModelPredictions("b", 1, b, b)]
    pair = compare(y, models, 10, "a", Resampler(y.size, resamples=300)).pairs[0]
    assert pair.seed_diffs == pytest.approx([0.02, 0.02, 0.02])
    assert pair.seed_diff_ci is None  # no spread over seeds observed: no interval claimed
    assert mean_interval([0.5]) is None and mean_interval([0.1, 0.9], bounds=(0.0, 1.0)).low == 0.0
    ci = mean_interval([0.01, 0.02, 0.03])
    assert ci.low < 0.02 < ci.high and ci.high - ci.low == pytest.approx(2 * 4.302653 * 0.01 / 3**0.5, rel=1e-5)


def test_cochrans_q_across_models():
    y = labels()
    preds = {n: with_errors(y, np.arange(0, w)) for n, w in (("a", 50), ("b", 90), ("c", 150))}
    q = cochrans_q(y, preds)
    assert q.p_value is not None and q.p_value < 1e-6 and "Cochran's Q" in q.note
    from mlxtend.evaluate import cochrans_q as mlxtend_q  # the 2^models form: the same numbers on 3 models

    assert (q.statistic, q.p_value) == pytest.approx(tuple(map(float, mlxtend_q(y, *preds.values()))), rel=1e-9)


def test_cochrans_q_scales_to_a_hundred_models():
    """Linear in rows x models: 100 models on 10,000 rows (2^100 outcome rows in mlxtend's form)."""
    y = labels(10_000)
    preds = {f"m{i}": with_errors(y, RNG.choice(y.size, 500 + 5 * i, replace=False)) for i in range(100)}
    q = cochrans_q(y, preds)
    assert q.statistic is not None and 0 <= q.p_value <= 1 and "across 100 models" in q.note
