"""The margin rule with known answers, on synthetic predictions (no training), and recomputed from a real run."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from job.config import DEFAULT_MARGIN_PP, RunConfig
from job.stats.choice import ALPHA, CHUNK, SEEDS_RESAMPLED_FROM, choose, resampled_accuracies, resamples_for
from job.stats.compare import ModelPredictions


def predictions(n: int, right: np.ndarray, k: int = 10) -> np.ndarray:
    """Labels 0..k-1 in turn; wrong (the next label) wherever `right` is False."""
    y = np.arange(n) % k
    return np.where(right, y, (y + 1) % k)


def right_on(n: int, start: int, count: int) -> np.ndarray:
    """Right on `count` rows from `start` on (wrapping): two such models disagree on about |shift| rows."""
    right = np.zeros(n, dtype=bool)
    right[(start + np.arange(count)) % n] = True
    return right


def model(name: str, params: int, *rights: np.ndarray) -> ModelPredictions:
    preds = [predictions(r.size, r) for r in rights]
    return ModelPredictions(name, params, preds, preds)


def labels(n: int) -> np.ndarray:
    return np.arange(n) % 10


def test_two_identical_models_choose_the_smaller_with_a_lower_bound_of_zero():
    right = right_on(1000, 0, 900)
    choice = choose(labels(1000), [model("big", 100, right), model("small", 10, right)], 1.0)
    small = next(t for t in choice.tests if t.model == "small")
    assert choice.best == "big" and choice.chosen == "small" and small.within
    assert small.lower_bound == 0.0 and small.p_value == pytest.approx(1 / (choice.resamples + 1))
    assert "within 1 pp of the best (big)" in choice.reason and "10× fewer parameters" in choice.reason
    assert choice.cost is not None and choice.cost.val_diff == 0.0 and choice.cost.params_ratio == 10.0
    assert choice.p_best == {"big": 0.5, "small": 0.5}  # every resample a tie, split equally


def test_a_3pp_gap_on_10000_rows_keeps_the_best():
    n = 10_000
    choice = choose(labels(n), [model("big", 100, right_on(n, 0, 9300)), model("small", 10, right_on(n, 0, 9000))],
                    1.0)  # fmt: skip
    small = next(t for t in choice.tests if t.model == "small")
    assert choice.chosen == "big" and not small.within and small.lower_bound < -0.01
    assert small.diff == pytest.approx(-0.03) and small.settle is None  # outside the margin: nothing would show it
    assert "no smaller model is shown within 1 pp (small: −3.0 pp, lower bound" in choice.reason
    assert choice.cost is None and choice.p_best["big"] == 1.0


def test_a_02pp_gap_on_100000_rows_with_2pct_disagreement_chooses_the_smaller():
    n = 100_000
    big = right_on(n, 0, 95_000)
    small = big.copy()
    small[np.flatnonzero(big)[:1100]] = False  # 1.1% only big right
    small[np.flatnonzero(~big)[:900]] = True  # 0.9% only small right: 2% disagree, gap 0.2 pp
    choice = choose(labels(n), [model("big", 100, big), model("small", 10, small)], 1.0)
    test = next(t for t in choice.tests if t.model == "small")
    assert test.diff == pytest.approx(-0.002) and choice.chosen == "small" and test.within
    assert -0.01 < test.lower_bound < test.diff and test.p_value < ALPHA


def test_margin_zero_always_keeps_the_best():
    right = right_on(1000, 0, 900)
    for other in (right, right_on(1000, 0, 899)):
        choice = choose(labels(1000), [model("big", 100, right), model("small", 10, other)], 0.0)
        assert choice.chosen == "big" and "with a margin of 0 pp the best wins" in choice.reason
        small = next(t for t in choice.tests if t.model == "small")
        assert small.p_value is None and not small.within
        assert choice.at_margins[0].margin_pp == 0.0 and choice.at_margins[0].chosen == "big"


def test_one_model_is_chosen_with_no_test_and_no_nan():
    choice = choose(labels(200), [model("only", 5, right_on(200, 0, 150))], 1.0)
    assert choice.chosen == choice.best == "only" and choice.p_best == {"only": 1.0}
    (test,) = choice.tests
    assert test.role == "best" and test.p_value is None and test.lower_bound is None
    assert "the only model to choose from (75.00% validation accuracy)" in choice.reason
    assert not any(isinstance(v, float) and math.isnan(v) for v in vars(test).values())


def _seeds(n: int, base: int, gaps_pp: list[float]) -> list[np.ndarray]:
    """One correctness vector per seed, each `gap` pp off `base` right rows, shifted so they disagree."""
    return [right_on(n, 500 * i, base + round(g / 100 * n)) for i, g in enumerate(gaps_pp)]


def test_three_seeds_with_gaps_of_15_minus_25_minus_25_pp_are_not_within_1pp():
    n = 100_000
    best = _seeds(n, 90_000, [0.0, 0.0, 0.0])
    small = _seeds(n, 90_000, [1.5, -2.5, -2.5])
    choice = choose(labels(n), [model("big", 100, *best), model("small", 10, *small)], 1.0)
    assert choice.chosen == "big" and not next(t for t in choice.tests if t.model == "small").within
    assert "3 seeds drawn with replacement" in choice.resampling


def test_with_three_seeds_the_seeds_spread_is_in_the_test():
    """Seed gaps +1, -2, 0 pp (mean -0.33 pp) on 100,000 rows: two seeds' rows alone would show it within
    1 pp, but the seeds drawn again reach -1 pp in about a quarter of resamples, so it is not shown."""
    n = 100_000
    gaps = [1.0, -2.0, 0.0]
    three = choose(labels(n), [model("big", 100, *_seeds(n, 90_000, [0, 0, 0])),
                               model("small", 10, *_seeds(n, 90_000, gaps))], 1.0)  # fmt: skip
    small = next(t for t in three.tests if t.model == "small")
    assert three.chosen == "big" and 0.15 < small.p_value < 0.4
    assert small.settle is not None and "seeds" in small.settle
    two = choose(labels(n), [model("big", 100, *_seeds(n, 90_000, [0, 0])),
                             model("small", 10, *_seeds(n, 90_000, [0.5, -0.5]))], 1.0)  # fmt: skip
    assert two.chosen == "small"


def test_a_gap_inside_the_margin_that_is_not_shown_says_how_many_rows_would_show_it():
    n = 800
    big = right_on(n, 0, 760)
    small = right_on(n, 20, 757)  # -0.4 pp, disagreeing on about 40 rows
    choice = choose(labels(n), [model("big", 100, big), model("small", 10, small)], 1.0)
    test = next(t for t in choice.tests if t.model == "small")
    assert choice.chosen == "big" and test.rows_needed is not None and test.rows_needed > n / 0.2
    assert test.settle.startswith("small is −0.4 pp; about ") and "rows would settle a 1 pp margin" in test.settle
    # at that many rows (same gap and disagreement, scaled), it is shown
    scale = math.ceil(test.rows_needed * 0.2 / n) + 1
    big_n, small_n = np.tile(big, scale), np.tile(small, scale)
    bigger = choose(labels(big_n.size), [model("big", 100, big_n), model("small", 10, small_n)], 1.0)
    assert bigger.chosen == "small"


def test_the_verdict_and_the_bound_never_disagree_and_match_holm():
    """Random families: 'within' is exactly 'Holm p <= alpha' and exactly 'lower bound > -margin'."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for trial in range(6):
        n = int(rng.integers(200, 1000))
        m = int(rng.integers(2, 6))
        rights = [rng.random(n) < rng.uniform(0.85, 0.95) for _ in range(m)]
        models = [model(f"m{i}", 10 * (i + 1), r) for i, r in enumerate(rights)]
        margin = float(rng.choice([0.5, 1.0, 2.0, 5.0]))
        choice = choose(labels(n), models, margin)
        tested = [t for t in choice.tests if t.role == "smaller"]
        if not tested:
            continue
        holm = multipletests([t.p_value for t in tested], alpha=ALPHA, method="holm")[1]
        for t, adjusted in zip(tested, holm, strict=True):
            assert t.within == (adjusted <= ALPHA) == (t.lower_bound > -margin / 100), (trial, t)
            assert t.p_holm == pytest.approx(adjusted)
        assert sum(choice.p_best.values()) == pytest.approx(1.0)


def test_enough_resamples_for_holm_at_the_familys_size():
    assert resamples_for(1) == 2000 and resamples_for(99) == 39_600
    for m in (1, 5, 50, 99):
        b = resamples_for(m)
        assert 1 / (b + 1) <= ALPHA / m / 20 * 1.01 and b % 100 == 0


def test_the_margin_comes_from_the_command_line_then_the_family_file_then_the_default():
    assert RunConfig().margin_pp(None) == DEFAULT_MARGIN_PP == 1.0
    assert RunConfig().margin_pp(2.5) == 2.5
    assert RunConfig(margin=0.5).margin_pp(2.5) == 0.5
    assert RunConfig(margin=0.0).margin_pp(2.5) == 0.0


@pytest.mark.parametrize("value", ["nan", "-1", "101", "one"])
def test_a_bad_margin_is_one_line_and_exit_2(value, tmp_path):
    from click.testing import CliRunner

    from job.cli import main

    result = CliRunner().invoke(main, ["run", "--margin", value, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--margin" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_resampling_patterns_equal_resampling_rows_in_distribution():
    """The multinomial over correctness patterns has the mean and spread of the row bootstrap."""
    n = 500
    rng = np.random.default_rng(0)
    a, b = rng.random(n) < 0.9, rng.random(n) < 0.85
    models = [model("a", 1, a), model("b", 1, b)]
    sampled = resampled_accuracies(labels(n), models, 4000)
    d = sampled[:, 0] - sampled[:, 1]
    rows = rng.integers(0, n, size=(4000, n))
    direct = a[rows].mean(axis=1) - b[rows].mean(axis=1)
    assert d.mean() == pytest.approx(direct.mean(), abs=0.002)
    assert d.std() == pytest.approx(direct.std(), rel=0.06)


def independent_choice_tests(run_dir, margin_pp: float) -> dict[str, tuple[float, float]]:
    """p and lower bound of every smaller model, from val_predictions.csv and run.json's recorded stream
    (written out here from the documented procedure, not with the job's own functions)."""
    run = json.loads((run_dir / "run.json").read_text())
    frame = pd.read_csv(run_dir / "val_predictions.csv")
    y = frame["true_label"].to_numpy()
    first = run["seed"]
    columns, names, params = [], [], {}
    for m in run["models"]:
        names.append(m["name"])
        params[m["name"]] = m["params"]
        for t in m["trainings"]:
            tag = "" if t["seed"] == first else f"_seed{t['seed']}"
            columns.append(frame[f"{m['slug']}{tag}_pred"].to_numpy() == y)
    seeds = len(run["models"][0]["trainings"])
    correct = np.column_stack(columns).astype(np.int8)
    patterns, counts = np.unique(correct, axis=0, return_counts=True)
    choice = run["choice"]
    b, rng, n = choice["resamples"], np.random.default_rng(choice["resampling_seed"]), y.size
    acc = np.zeros((b, len(names)))
    done = 0
    while done < b:
        size = min(CHUNK, b - done)
        rows = rng.multinomial(n, counts / n, size=size)
        for i in range(len(names)):
            per_seed = rows @ patterns[:, i * seeds : (i + 1) * seeds] / n
            if seeds >= SEEDS_RESAMPLED_FROM:
                picks = rng.multinomial(seeds, [1 / seeds] * seeds, size=size)
                acc[done : done + size, i] = (picks * per_seed).sum(axis=1) / seeds
            else:
                acc[done : done + size, i] = per_seed.mean(axis=1)
        done += size
    best = choice["best"]
    diffs = {name: acc[:, i] - acc[:, names.index(best)] for i, name in enumerate(names)}
    smaller = [name for name in names if params[name] < params[best]]
    p = {s: (1 + int((diffs[s] <= -margin_pp / 100 + 1e-12).sum())) / (b + 1) for s in smaller}
    out, failed, m = {}, None, len(smaller)
    for rank, s in enumerate(sorted(smaller, key=lambda s: (p[s], smaller.index(s))), start=1):
        step = rank if failed is None else failed
        allowed = math.floor(Fraction(1, 20) / (m - step + 1) * (b + 1)) - 1
        bound = np.sort(diffs[s])[allowed]
        out[s] = (p[s], float(bound))
        if bound <= -margin_pp / 100 + 1e-12 and failed is None:
            failed = rank
    return out
