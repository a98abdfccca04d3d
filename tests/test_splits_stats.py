"""Statistics over repeated splits (#23): known answers for the corrected t-test, P(A > B) and the noise parts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from job.stats.splits import corrected_t, noise_parts, p_a_beats_b


def test_the_corrected_t_test_matches_the_papers_formula_by_hand():
    """d = (0.01, 0.02, 0.03), n_val/n_train = 1/3: var 1e-4 x (1/3 + 1/3), t = 0.02 / sqrt(6.667e-5) = sqrt(6);
    with 2 degrees of freedom the t tail is 0.5 (1 - t / sqrt(t^2 + 2)), so p = 1 - sqrt(6/8)."""
    result = corrected_t(np.array([0.01, 0.02, 0.03]), 1 / 3)
    assert result is not None
    assert result.df == 2 and result.mean_diff == pytest.approx(0.02)
    assert result.t == pytest.approx(math.sqrt(6))
    assert result.p_value == pytest.approx(1 - math.sqrt(6 / 8))
    uncorrected = corrected_t(np.array([0.01, 0.02, 0.03]), 0.0)
    assert uncorrected is not None and uncorrected.p_value < result.p_value  # the correction only widens


def test_the_corrected_t_test_has_no_value_at_one_split_and_no_nan_without_spread():
    assert corrected_t(np.array([0.05]), 1 / 3) is None
    same = corrected_t(np.zeros(4), 1 / 3)
    assert same is not None and same.t == 0.0 and same.p_value == 1.0
    constant = corrected_t(np.full(4, 0.01), 1 / 3)
    assert constant is not None and constant.t is None and constant.p_value is None  # no spread: no p, not p = 0
    dust = corrected_t(np.array([0.3, 0.4], dtype=np.float32) - np.array([0.2, 0.3], dtype=np.float32), 1 / 3)
    assert dust is not None and dust.p_value is None  # float32's 0.1 twice: 1e-16 apart, not a t of 1e7


def test_p_a_beats_b_is_one_when_a_always_wins_and_a_half_for_identical_models():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.80, 0.85, size=(3, 4))
    wins = p_a_beats_b(b + 0.10, b)
    assert wins.p == 1.0 and wins.interval is not None and wins.interval.low == 1.0
    tie = p_a_beats_b(b, b)
    assert tie.p == pytest.approx(0.5) and tie.interval is not None
    assert 0.0 <= tie.interval.low <= 0.5 <= tie.interval.high <= 1.0
    assert p_a_beats_b(b, b + 0.10).p == 0.0


def test_p_a_beats_b_counts_every_seed_pair_within_a_split_then_averages_the_splits():
    a = np.array([[0.9, 0.7], [0.5, 0.5]])
    b = np.array([[0.8, 0.8], [0.5, 0.6]])
    # split 1: 0.9 beats both, 0.7 neither -> 2/4; split 2: 0.5 ties 0.5 (1/2), loses to 0.6, twice -> 1/4
    assert p_a_beats_b(a, b).p == pytest.approx((0.5 + 0.25) / 2)


def test_p_a_beats_b_has_no_value_with_one_training_per_model():
    one = p_a_beats_b(np.array([[0.9]]), np.array([[0.8]]))
    assert one.p is None and one.interval is None


def test_the_noise_parts_recover_known_split_and_seed_variances():
    """Synthetic accuracies with known split, seed and interaction variances: the method of moments finds each
    within three of its standard errors (a variance from n draws has a relative standard error of sqrt(2/(n-1)))."""
    rng = np.random.default_rng(1)
    k, s = 400, 60
    v_split, v_seed, v_e = 4e-4, 1e-4, 2.5e-5
    acc = (
        0.85
        + rng.normal(0, math.sqrt(v_split), (k, 1))
        + rng.normal(0, math.sqrt(v_seed), (1, s))
        + rng.normal(0, math.sqrt(v_e), (k, s))
    )
    parts = noise_parts(acc, n_val=10**12)  # no row sampling to take out
    assert parts.rows < 1e-12
    assert parts.splits == pytest.approx(v_split, rel=3 * math.sqrt(2 / (k - 1)))
    assert parts.seeds == pytest.approx(v_seed + v_e, rel=3 * math.sqrt(2 / (s - 1)))
    assert parts.dominant() == "splits"


def test_the_row_part_is_the_binomial_variance_and_is_taken_out_of_the_split_part():
    rng = np.random.default_rng(2)
    acc = 0.9 + rng.normal(0, 0.02, (50, 1)) + rng.normal(0, 0.001, (50, 5))
    wide = noise_parts(acc, n_val=10**12)
    narrow = noise_parts(acc, n_val=100)
    assert narrow.rows == pytest.approx(acc.mean() * (1 - acc.mean()) / 100)
    assert wide.splits is not None and narrow.splits is not None
    assert narrow.splits == pytest.approx(max(0.0, wide.splits - narrow.rows))


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (3, 1), (2, 2)])
def test_no_nan_in_any_degenerate_case(shape):
    """One split, one seed, identical trainings: what cannot be estimated is None, the rest is finite."""
    acc = np.full(shape, 0.8)
    parts = noise_parts(acc, n_val=100)
    values = [parts.splits, parts.seeds, parts.rows]
    assert all(v is None or math.isfinite(v) for v in values)
    assert (parts.splits is None) == (shape[0] < 2 or shape[1] < 2) and (parts.seeds is None) == (shape[1] < 2)
    beats = p_a_beats_b(acc, acc)
    assert beats.p is None if shape == (1, 1) else beats.p == 0.5
    t = corrected_t((acc - acc).mean(axis=1), 1 / 3)
    assert t is None if shape[0] < 2 else (t.t == 0.0 and t.p_value == 1.0)


def test_p_a_beats_b_is_the_pairwise_share_and_scales_to_a_thousand_seeds():
    """The rank form equals counting every pair; 1,000 seeds a model (the repeats limit) costs no S x S cells."""
    from job.stats.splits import _beats

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 5, (4, 7)) / 10, rng.integers(0, 5, (4, 6)) / 10  # many ties
    diff = a[:, :, None] - b[:, None, :]
    np.testing.assert_allclose(_beats(a, b), ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2)))
    big = p_a_beats_b(rng.normal(0.9, 0.01, (1, 1000)), rng.normal(0.9, 0.01, (1, 1000)))
    assert big.p is not None and big.interval is not None and 0.4 < big.p < 0.6
