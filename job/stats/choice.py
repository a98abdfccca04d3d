"""Which model to use: the fewest parameters among the best and the models shown within a margin of it.

Pure: validation labels and predicted labels in, a typed `Choice` out. The test split never enters.

    best      the highest validation accuracy (mean over seeds); among equals, the first in table order
    margin    the accuracy a user gives up for a smaller model (`--margin`, percentage points)
    within    a model with fewer parameters than the best is within the margin only if a one-sided
              resampling test rejects H0: its accuracy - the best's <= -margin, Holm-adjusted over
              every model with fewer parameters than the best, at ALPHA family-wise
    chosen    the fewest parameters among the best and the models within; equal counts: higher accuracy

"We could not tell them apart" is never read as "they are equal": a model is only chosen over the best
when the data show it is at most `margin` worse.

The resampling, drawn once and shared by every model (so every difference is paired by row):
- rows: each resample is a multinomial draw of row counts over the distinct patterns of who got a row
  right. That is the same distribution as drawing rows with replacement, and costs the number of
  patterns instead of the number of rows (four cells for two models with one seed);
- seeds, with SEEDS_RESAMPLED_FROM or more: each model's seeds are also drawn with replacement,
  independently for every model (seed 3 of A and seed 3 of B share only a number), so the training
  spread is in the test as well as the rows. With fewer seeds the spread of two values says little, and
  a row counts by the share of a model's seeds that got it right.

Over K development splits (`choose_over_splits`) the splits are the unit instead: the draws are those of Nadeau
and Bengio's corrected resampled t on the per-split mean accuracies (`split_draws`), and the same tests run on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from job.data.split import SPLIT_FRACTIONS
from job.stats.compare import Comparison, ModelPredictions
from job.stats.metrics import Interval, percentile_interval, signed_pp

RULE = "margin"  # choice.rule of runs chosen by this module
LEGACY_RULE = "not-significantly-below"  # schema 1 and 2: fewest parameters among models not significantly below
MARGINS_SHOWN = (0.0, 0.5, 1.0, 2.0)  # the report's "at other margins" table, plus the run's own
ALPHA = 0.05  # family-wise: the chance of calling a model within the margin when it is not
MIN_RESAMPLES = 2000
RESAMPLES_PER_TEST = 20  # B >= 20 m / alpha: the smallest attainable p passes Holm's first step 20 times over
RESAMPLING_SEED = 20_261_201  # fixed: the same predictions give the same choice
SEEDS_RESAMPLED_FROM = 3
CHUNK = 250  # resamples drawn at a time: bounds memory at CHUNK x patterns
TIE = 1e-12  # accuracies are sums of 1/n: a difference within float dust is a tie
VAL_SHARE = SPLIT_FRACTIONS[1]  # the validation share of the data, for "rows that would settle it"


@dataclass
class MarginTest:
    """One model against the best, on the validation split."""

    model: str  # the model's name
    params: int  # trainable parameters
    val_accuracy: float  # mean over seeds
    diff: float  # this model - the best, mean over seeds (0 for the best)
    diff_ci: Interval | None  # 95% percentile interval of the resampled difference; None for the best
    role: str  # "best", "smaller" (fewer parameters: tested), or "larger" (never chosen over the best)
    p_value: float | None  # one-sided, H0: diff <= -margin; None unless role is "smaller"
    p_holm: float | None  # Holm-adjusted over the smaller models
    level: float | None  # the one-sided level of the Holm step that decided it
    lower_bound: float | None  # diff's lower bound at `level`: within exactly when it is above -margin
    within: bool  # shown within the margin
    p_best: float  # share of resamples in which this model has the highest validation accuracy
    rows_needed: int | None = None  # data rows (validation share kept) that would show it, at this gap
    settle: str | None = None  # what would show it, in words; None when it is shown, or cannot be


@dataclass
class MarginChoice:
    margin_pp: float  # a margin, in pp
    chosen: str | None  # the model the rule picks at it


@dataclass
class ChoiceCost:
    """What the choice gives up: the chosen model minus the best, with 95% intervals."""

    val_diff: float  # chosen - best on validation, mean over seeds
    val_diff_ci: Interval | None  # from the choice's own resamples of validation rows (and seeds)
    test_diff: float | None  # from the comparison on the test split: reported, never used to choose
    test_diff_ci: Interval | None  # its 95% interval
    params_ratio: float  # the best's parameters / the chosen model's


@dataclass
class LegacyChoiceTest:
    """Schema 1 and 2: one model against the best by exact McNemar (kept to render old runs)."""

    model: str  # the model's name
    val_accuracy: float | None  # validation accuracy
    gap: float | None  # best minus this model
    p_value: float | None  # exact McNemar against the best
    p_holm: float | None  # Holm-adjusted
    below_best: bool  # significantly below the best


@dataclass
class Choice:
    rule: str  # RULE, or LEGACY_RULE for a run written before the margin rule
    margin_pp: float | None  # None: a legacy run
    alpha: float  # family-wise error of a wrong "within"
    best: str | None  # highest validation accuracy (mean over seeds)
    chosen: str | None  # the model to use
    reason: str  # the choice in one sentence
    val_rows: int  # validation rows it was made on
    resamples: int  # paired resamples drawn
    resampling_seed: int | None  # NumPy seed of the resamples
    resampling: str  # how the resamples were drawn, in words
    p_best: dict[str, float]  # by model name; sums to 1
    tests: list[MarginTest]  # the best first, then table order
    at_margins: list[MarginChoice]  # what would be chosen at other margins
    cost: ChoiceCost | None  # None when the best is chosen, or nothing finished
    legacy_tests: list[LegacyChoiceTest] = field(default_factory=list)  # schema 1 and 2 runs only
    detectable_gap: float | None = None  # legacy runs only


def resamples_for(candidates: int) -> int:
    """B >= RESAMPLES_PER_TEST * m / ALPHA, at least MIN_RESAMPLES, in hundreds (so B + 1 is never a
    multiple of 1/ALPHA, and a p-value never sits exactly on a Holm threshold)."""
    need = max(MIN_RESAMPLES, math.ceil(RESAMPLES_PER_TEST * candidates / ALPHA))
    return -(-need // 100) * 100


def resampled_accuracies(
    y: np.ndarray, models: list[ModelPredictions], resamples: int, seed: int = RESAMPLING_SEED
) -> np.ndarray:
    """(resamples, models): each model's validation accuracy (mean over its seeds) in every resample.

    The stream, so that a reader can redraw it: `rng = default_rng(seed)`; per chunk of CHUNK resamples,
    first the row counts `rng.multinomial(n, counts / n, size=chunk)` over the patterns `np.unique(...,
    axis=0, return_counts=True)` of the (rows, model-seeds) correctness matrix, then, with
    SEEDS_RESAMPLED_FROM or more seeds, each model's seed counts `rng.multinomial(R, [1/R] * R,
    size=chunk)` in table order."""
    n = int(y.size)
    correct = np.column_stack([p == y for m in models for p in m.val]).astype(np.int8)
    patterns, counts = np.unique(correct, axis=0, return_counts=True)
    patterns = patterns.astype(np.float64)
    columns = np.cumsum([0] + [len(m.val) for m in models])
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(models)))
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        rows = rng.multinomial(n, counts / n, size=size).astype(np.float64)
        per_seed = rows @ patterns / n  # (size, model-seeds): every seed's accuracy in every resample
        for i, m in enumerate(models):
            r = len(m.val)
            block = per_seed[:, columns[i] : columns[i + 1]]
            if r >= SEEDS_RESAMPLED_FROM:
                weights = rng.multinomial(r, [1 / r] * r, size=size) / r
                out[start : start + size, i] = (weights * block).sum(axis=1)
            else:
                out[start : start + size, i] = block.mean(axis=1)
    return out


def resampling_words(n_seeds: int, resamples: int) -> str:
    return f"{resamples:,} paired resamples of validation rows, {_seed_words(n_seeds)} (NumPy)"


def _seed_words(n_seeds: int) -> str:
    return (
        f"and each model's {n_seeds} seeds drawn with replacement, independently per model"
        if n_seeds >= SEEDS_RESAMPLED_FROM
        else "a row counting by the share of a model's seeds that got it right"
        if n_seeds > 1
        else "one seed per model"
    )


@dataclass
class _Decision:
    """Per tested model; empty when nothing is tested (no smaller model, or margin 0)."""

    p: dict[str, float] = field(default_factory=dict)
    p_holm: dict[str, float] = field(default_factory=dict)
    level: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    within: dict[str, bool] = field(default_factory=dict)


def _decide(diffs: np.ndarray, names: list[str], margin: float) -> _Decision:
    """One-sided resampling tests of H0: diff <= -margin for the columns of `diffs`, Holm step-down.

    The bound beside each decision is the (K+1)-th smallest resampled difference, K the most resamples
    at or below -margin that the model's Holm level allows, so `bound > -margin` exactly when rejected."""
    from statsmodels.stats.multitest import multipletests

    b = diffs.shape[0]
    at_or_below = (diffs <= -margin + TIE).sum(axis=0)
    p = {name: (1 + int(c)) / (b + 1) for name, c in zip(names, at_or_below, strict=True)}
    if not names:
        return _Decision()
    adjusted = multipletests(list(p.values()), alpha=ALPHA, method="holm")[1]
    order = sorted(range(len(names)), key=lambda i: (p[names[i]], i))
    m, alpha = len(names), Fraction(str(ALPHA))
    level, bound, within = {}, {}, {}
    failed_at: int | None = None  # Holm stops at its first failure: later ranks are judged at that level
    for rank, i in enumerate(order, start=1):
        name, step = names[i], rank if failed_at is None else failed_at
        level_exact = alpha / (m - step + 1)
        allowed = math.floor(level_exact * (b + 1)) - 1  # p <= level  <=>  at_or_below <= allowed
        column = np.sort(diffs[:, i])
        bound[name] = float(column[allowed]) if allowed >= 0 else -math.inf
        within[name] = bound[name] > -margin + TIE
        level[name] = float(level_exact)
        if not within[name] and failed_at is None:
            failed_at = rank
    return _Decision(p, dict(zip(names, map(float, adjusted), strict=True)), level, bound, within)


def _p_best(acc: np.ndarray, names: list[str]) -> dict[str, float]:
    top = acc >= acc.max(axis=1, keepdims=True) - TIE
    shares = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
    return {name: float(s) for name, s in zip(names, shares, strict=True)}


def _pick(
    models: list[ModelPredictions], acc: dict[str, float], best: str, within: dict[str, bool]
) -> ModelPredictions:
    eligible = [m for m in models if m.name == best or within.get(m.name, False)]
    return min(eligible, key=lambda m: (m.params, -acc[m.name]))  # min() keeps the first of equals


def choose(y_val: np.ndarray, models: list[ModelPredictions], margin_pp: float, seed: int = RESAMPLING_SEED) -> Choice:
    """The margin rule (see the module docstring) on the validation split."""
    acc = {m.name: float(np.mean([np.mean(p == y_val) for p in m.val])) for m in models}
    draw = lambda b: resampled_accuracies(y_val, models, b, seed)  # noqa: E731
    return _choose(models, acc, draw, margin_pp, seed, _Over(y_val, 1, min((len(m.val) for m in models), default=0)))


def choose_over_splits(
    per_split: list[tuple[np.ndarray, list[ModelPredictions]]],
    margin_pp: float,
    test_train_ratio: float,
    seed: int = RESAMPLING_SEED,
) -> Choice:
    """The margin rule over K development splits: `per_split[k - 1]` is split k's validation labels and the
    finished models' predictions on them, in the same order on every split. One split is `choose` itself.

    The splits are the unit of resampling: each model's accuracy on a split (the mean over its seeds) already
    holds that split's rows and seeds, so the K per-split means are the data, and their differences are paired
    by split. The resamples are draws of the Nadeau–Bengio corrected resampled t: around the mean over splits,
    a multivariate t with K - 1 degrees of freedom whose scale is the per-split means' covariance times
    (1/K + n_val/n_train) (`split_draws`). The rule's one-sided tests and Holm steps then run on them as on
    `choose`'s, so a smaller model is "within the margin" across training sets only when the corrected t-test
    would say so, at the Holm level."""
    if len(per_split) == 1:
        return choose(*per_split[0], margin_pp, seed)
    models = per_split[0][1]
    observed = np.array([[np.mean([np.mean(p == y) for p in m.val]) for m in ms] for y, ms in per_split])
    acc = {m.name: float(v) for m, v in zip(models, observed.mean(axis=0), strict=True)}
    n_seeds = min((len(m.val) for _, ms in per_split for m in ms), default=0)
    over = _Over(per_split[0][0], len(per_split), n_seeds, test_train_ratio)
    return _choose(models, acc, lambda b: split_draws(observed, test_train_ratio, b, seed), margin_pp, seed, over)


def split_draws(split_means: np.ndarray, test_train_ratio: float, resamples: int, seed: int) -> np.ndarray:
    """(resamples, models) draws of the models' mean accuracy over K splits from `split_means` (splits, models):
    mean + sqrt(1/K + ratio) · (z D / sqrt(K - 1)) · sqrt((K - 1) / chi²(K - 1)), D the deviations of the
    per-split means from their mean and z standard normal over the splits. z D / sqrt(K - 1) has the per-split
    means' sample covariance, so every difference between two models is a t with K - 1 degrees of freedom and
    Nadeau and Bengio's variance, var(d) · (1/K + n_val/n_train); one z and one chi² per draw serve every model,
    so the differences stay paired by split."""
    m = np.asarray(split_means, dtype=np.float64)
    k = m.shape[0]
    rng = np.random.default_rng([seed, k])
    z = rng.standard_normal((resamples, k))
    chi = rng.chisquare(k - 1, size=(resamples, 1))
    deviations = m - m.mean(axis=0)
    spread = z @ deviations / math.sqrt(k - 1) * np.sqrt((k - 1) / chi)
    return m.mean(axis=0) + math.sqrt(1.0 / k + test_train_ratio) * spread


@dataclass(frozen=True)
class _Over:
    """What the choice was made over: split 1's validation labels, the splits and the seeds."""

    y_val: np.ndarray
    splits: int
    seeds: int
    test_train_ratio: float = 0.0

    def words(self, resamples: int) -> str:
        if self.splits == 1:
            return resampling_words(self.seeds, resamples)
        return (
            f"{resamples:,} draws of the Nadeau–Bengio corrected resampled t over {self.splits} splits (a "
            f"multivariate t with {self.splits - 1} degrees of freedom around the mean of the per-split means, "
            f"scale their covariance × (1/{self.splits} + {self.test_train_ratio:.3g})), paired by split (NumPy)"
        )

    def over(self) -> str:
        """ ", mean of 3 seeds", ", mean of 3 splits × 2 seeds", or nothing."""
        if self.splits > 1:
            return f", mean of {self.splits} splits × {self.seeds} seed{'s' if self.seeds != 1 else ''}"
        return f", mean of {self.seeds} seeds" if self.seeds > 1 else ""


def _choose(
    models: list[ModelPredictions],
    acc: dict[str, float],
    draw: Any,
    margin_pp: float,
    seed: int,
    over: _Over,
) -> Choice:
    """The rule, once the validation accuracies `acc` and a way to `draw(b)` b paired resamples are known."""
    margin = margin_pp / 100
    base: dict[str, Any] = dict(rule=RULE, margin_pp=margin_pp, alpha=ALPHA, val_rows=int(over.y_val.size))
    if not models:
        return _nothing_to_choose(base)
    names = [m.name for m in models]
    # among equals the first in table order, as before: a smaller model tied with it still has to be shown
    # within the margin (two identical models: it is, with a bound of 0)
    best = max(models, key=lambda m: acc[m.name])
    smaller = [m for m in models if m.params < best.params]
    b = resamples_for(len(smaller))
    sampled = draw(b)
    diffs = {name: sampled[:, i] - sampled[:, names.index(best.name)] for i, name in enumerate(names)}
    tested = [m.name for m in smaller]
    matrix = np.column_stack([diffs[n] for n in tested]) if tested else np.empty((b, 0))
    # margin 0: "the best wins", with no test (none could show a smaller model at least as good)
    decision = _decide(matrix, tested, margin) if margin > 0 else _Decision()
    chosen = _pick(models, acc, best.name, decision.within)
    p_best = _p_best(sampled, names)
    y_settle = over.y_val if over.splits == 1 else None  # rows that would settle it: one split's arithmetic
    against = _Against(best, acc, diffs, decision, p_best, y_settle, margin)
    tests = [_test(m, against) for m in [best] + [m for m in models if m is not best]]
    at_margins = [
        MarginChoice(pp, _pick(models, acc, best.name, other.within).name)
        for pp, other in _at_margins(matrix, tested, margin_pp, decision)
    ]
    cost = None
    if chosen is not best:
        d = diffs[chosen.name]
        cost = ChoiceCost(
            acc[chosen.name] - acc[best.name], percentile_interval(d), None, None, best.params / max(chosen.params, 1)
        )
    reason = _reason(best, chosen, tests, margin_pp, over.over())
    return Choice(
        **base,
        best=best.name,
        chosen=chosen.name,
        reason=reason,
        resamples=b,
        resampling_seed=seed,
        resampling=over.words(b),
        p_best=p_best,
        tests=tests,
        at_margins=at_margins,
        cost=cost,
    )


def _nothing_to_choose(base: dict[str, Any]) -> Choice:
    return Choice(
        **base,
        best=None,
        chosen=None,
        reason="no model finished training",
        resamples=0,
        resampling_seed=None,
        resampling="nothing to resample",
        p_best={},
        tests=[],
        at_margins=[],
        cost=None,
    )


def _at_margins(
    matrix: np.ndarray, tested: list[str], margin_pp: float, decision: _Decision
) -> list[tuple[float, _Decision]]:
    """The decision at each margin the report shows, the run's own one reused."""
    out = []
    for pp in sorted(set(MARGINS_SHOWN) | {margin_pp}):
        other = decision if pp == margin_pp else _decide(matrix, tested, pp / 100) if pp > 0 else _Decision()
        out.append((pp, other))
    return out


@dataclass(frozen=True)
class _Against:
    """What every model's test against the best reads."""

    best: ModelPredictions
    acc: dict[str, float]  # validation accuracy, mean over seeds, by model
    diffs: dict[str, np.ndarray]  # resampled differences to the best, by model
    decision: _Decision
    p_best: dict[str, float]
    y_val: np.ndarray | None  # None over several splits: no "rows that would settle it"
    margin: float  # a proportion, not pp


def _test(m: ModelPredictions, against: _Against) -> MarginTest:
    best, acc, diffs, decision, margin = against.best, against.acc, against.diffs, against.decision, against.margin
    role = "best" if m is best else "smaller" if m.params < best.params else "larger"
    test = MarginTest(
        model=m.name,
        params=m.params,
        val_accuracy=acc[m.name],
        diff=acc[m.name] - acc[best.name],
        diff_ci=None if m is best else percentile_interval(diffs[m.name]),
        role=role,
        p_value=decision.p.get(m.name),
        p_holm=decision.p_holm.get(m.name),
        level=decision.level.get(m.name),
        lower_bound=_finite(decision.bound.get(m.name)),
        within=decision.within.get(m.name, False),
        p_best=against.p_best[m.name],
    )
    settle = against.y_val is not None and margin > 0 and test.level is not None
    if settle and role == "smaller" and not test.within and test.diff > -margin and against.y_val is not None:
        test.rows_needed, test.settle = what_would_settle(m, best, against.y_val, diffs[m.name], test, margin)
    return test


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


def what_would_settle(
    m: ModelPredictions,
    best: ModelPredictions,
    y: np.ndarray,
    resampled: np.ndarray,
    test: MarginTest,
    margin: float,
) -> tuple[int | None, str]:
    """How many data rows (the validation share kept) would put the bound inside the margin at this gap
    and this disagreement, and whether more seeds would help.

    From the resamples themselves: their variance is the rows' part plus, when the test draws seeds, the
    seeds' part (each model's variance over seeds / seeds). Only the rows' part shrinks with rows. The bound
    sits z spreads below the gap, z read off the resamples (diff - bound) / sd, so skew is kept."""
    from scipy.stats import norm

    bound, level = test.lower_bound, test.level or ALPHA

    n, n_seeds = int(y.size), min(len(m.val), len(best.val))
    diff = float(np.mean([np.mean(p == y) for p in m.val]) - np.mean([np.mean(p == y) for p in best.val]))
    total = float(np.var(resampled))
    seed_var = 0.0
    if n_seeds >= 2:
        seed_var = sum(float(np.var([np.mean(p == y) for p in c.val], ddof=1)) / len(c.val) for c in (m, best))
    in_test = seed_var if n_seeds >= SEEDS_RESAMPLED_FROM else 0.0
    rows_part = max(total - in_test, 1e-12)
    sd = math.sqrt(total)
    z = (diff - bound) / sd if bound is not None and sd > 0 and diff > bound else float(norm.ppf(1 - level))
    room = ((diff + margin) / z) ** 2  # the variance the bound can afford at this gap
    gap = f"{m.name} is {_pp(diff)}"
    words = f"{margin * 100:g} pp margin"
    if in_test >= room:
        seeds = math.ceil(n_seeds * seed_var / (room - rows_part)) if room > rows_part else None
        more = f"about {seeds:,} seeds" if seeds else "more seeds and more rows"
        return None, f"{gap}; its seeds' spread alone is wider than a {words} allows: {more} would settle it"
    needed = n * rows_part / (room - in_test) / VAL_SHARE
    rows = _round2(max(needed, (n + 1) / VAL_SHARE))  # never fewer than the run has: it did not settle it
    text = f"{gap}; about {rows:,} rows would settle a {words}"
    if n_seeds >= SEEDS_RESAMPLED_FROM:
        if rows_part >= room:
            text += f" (more seeds alone would not: the {n:,} validation rows dominate)"
        else:
            text += " (more seeds would also help: the seeds' spread is part of it)"
    elif n_seeds == 2:
        text += f" (from {SEEDS_RESAMPLED_FROM} seeds on, the test also takes in the seeds' spread)"
    return rows, text


def _round2(x: float) -> int:
    """Two significant figures: an estimate, not a count."""
    if x <= 0 or not math.isfinite(x):
        return 0
    digits = max(0, int(math.floor(math.log10(x))) - 1)
    return int(math.ceil(x / 10**digits) * 10**digits)


def _pp(v: float) -> str:
    return f"{signed_pp(v)} pp".replace("-", "−")  # the minus sign, as the report prints differences


def _level_words(level: float | None) -> str:
    confidence = (1 - (level or ALPHA)) * 100
    return f"{confidence:.3g}%"


def _reason(
    best: ModelPredictions, chosen: ModelPredictions, tests: list[MarginTest], margin_pp: float, over: str
) -> str:
    """The choice in one sentence that names its numbers."""
    by = {t.model: t for t in tests}
    top = by[best.name]
    margin = f"{margin_pp:g} pp"
    if len(tests) == 1:
        return f"{best.name}: the only model to choose from ({top.val_accuracy * 100:.2f}% validation accuracy{over})"
    if chosen is not best:
        t = by[chosen.name]
        ratio = best.params / max(chosen.params, 1)
        return (
            f"{chosen.name}: within {margin} of the best ({best.name}): {_pp(t.diff)}{over}, "
            f"{_level_words(t.level)} lower bound {_pp(t.lower_bound or 0.0)}; {_ratio(ratio)} fewer parameters"
        )
    head = f"{best.name}: the highest validation accuracy ({top.val_accuracy * 100:.2f}%{over})"
    smaller = [t for t in tests if t.role == "smaller"]
    if not smaller:
        return f"{head}, and no model has fewer parameters"
    if margin_pp <= 0:
        return f"{head}; with a margin of 0 pp the best wins"
    closest = sorted(smaller, key=lambda t: -t.diff)[:3]
    shown = ", ".join(
        f"{t.model}: {_pp(t.diff)}, lower bound {_pp(t.lower_bound)}"
        if t.lower_bound is not None
        else f"{t.model}: {_pp(t.diff)}"
        for t in closest
    )
    return f"{head}; no smaller model is shown within {margin} ({shown})"


def _ratio(r: float) -> str:
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


def with_test_cost(choice: Choice, comparison: Comparison) -> Choice:
    """The chosen model minus the best on the test split, from the comparison's paired bootstrap: reported
    beside the choice, never used to make it."""
    if choice.cost is None:
        return choice
    for pair in comparison.pairs:
        if {pair.a, pair.b} == {choice.chosen, choice.best}:
            sign = 1.0 if pair.a == choice.chosen else -1.0
            ci = pair.accuracy_diff_ci
            choice.cost.test_diff = sign * pair.accuracy_diff
            choice.cost.test_diff_ci = Interval(ci.low, ci.high) if sign > 0 else Interval(-ci.high, -ci.low)
    return choice
