"""Is the difference real? Paired intervals and tests between models, from predictions alone.

Pure: label arrays and predicted labels in, typed results out. The tests come from the libraries made for
them: exact McNemar from mlxtend.evaluate, Cochran's Q and Holm's correction from statsmodels. Resampling is
the exception: one seeded matrix of bootstrap row counts is drawn once per split and shared by every model,
so every interval on a difference is paired, and each training costs one matrix product. Which model to use
is `job.stats.choice`'s question, on the validation split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from job.stats.metrics import (
    Interval,
    class_counts,
    fmt_p,
    macro_f1_of_counts,
    mean_interval,
    percentile_interval,
    signed_pp,
)

BOOTSTRAP_RESAMPLES = 2000


BOOTSTRAP_SEED = 20_260_101  # fixed: the same run directory gives the same intervals


ALPHA = 0.05


@dataclass
class Agreement:
    both_right: int  # test rows both models got right
    only_a: int  # rows only model A gets right
    only_b: int  # rows only B got right
    both_wrong: int  # rows both got wrong


@dataclass
class PairComparison:
    a: str  # the first model, in table order
    b: str  # the second
    agreement: Agreement  # on the test split; with repeats, of seed-averaged correctness (see docs/statistics.md)
    p_value: float  # exact McNemar
    p_holm: float  # Holm-adjusted over every pair
    accuracy_diff: float  # a - b, mean over seeds
    accuracy_diff_ci: Interval  # paired bootstrap over test rows
    macro_f1_diff: float  # a - b, mean over seeds
    macro_f1_diff_ci: Interval  # paired bootstrap over test rows
    seed_diffs: list[float]  # per seed: a - b test accuracy
    seed_diff_ci: Interval | None  # t-interval of the mean over seeds; None with one seed
    verdict: str  # the pair in one line of words


@dataclass
class CochranQ:
    statistic: float | None  # None when every model agrees on every row
    p_value: float | None  # null when undefined
    note: str  # in words


@dataclass
class Overlap:
    """Who misses which test digits (each model's first seed)."""

    all_missed: int  # test rows every model got wrong
    all_missed_positions: list[int]  # positions in the test split, for the gallery (the first 40)
    only_missed: dict[str, int]  # model -> digits that model alone misses
    only_chosen_positions: list[int]  # the chosen model's lone misses (first 40)


@dataclass
class Comparison:
    """Is the difference real? Everything `job report` shows in that section, computed by `job run`."""

    test_rows: int  # rows in the test split
    resamples: int  # bootstrap resamples
    bootstrap: str  # how the intervals were resampled
    pairs: list[PairComparison]  # every pair, Holm over all
    cochran: CochranQ  # do the models differ at all
    overlap: Overlap | None  # who misses what; null with no finished model


class Resampler:
    """Bootstrap row counts for one split: (resamples, rows), drawn once, shared by every model."""

    def __init__(self, n_rows: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED):
        rng = np.random.default_rng(seed)
        self.weights = np.empty((resamples, n_rows), dtype=np.float32)  # row counts per resample
        chunk = 200  # resamples per draw: bounds the index array at 200 x rows
        for start in range(0, resamples, chunk):
            stop = min(start + chunk, resamples)
            picks = rng.integers(0, n_rows, size=(stop - start, n_rows))
            picks += (np.arange(stop - start) * n_rows)[:, None]
            counts = np.bincount(picks.ravel(), minlength=(stop - start) * n_rows)
            self.weights[start:stop] = counts.reshape(stop - start, n_rows)
        self.n_rows = n_rows
        self._scores: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # by predictions: evaluate and compare share

    def scores(self, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and macro-F1 in every resample: one product of the counts with one-hot cells, once per
        set of predictions (a training's intervals and every pair it is in use the same resamples)."""
        codes = np.asarray(y_true * n_classes + y_pred, dtype=np.int64)
        key = hashlib.blake2b(codes.tobytes() + str(n_classes).encode(), digest_size=16).digest()
        if key not in self._scores:
            self._scores[key] = self._score(np.asarray(y_true), np.asarray(y_pred), n_classes)
        return self._scores[key]

    def _score(self, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Per resample, the counts macro-F1 needs (right, true and predicted per class) as products of the
        row counts with sparse one-hot columns, a chunk of resamples at a time: resamples x classes at most,
        never a classes x classes confusion per resample. The counts are whole numbers, exact in float32, so
        the scores equal those of the full confusion matrices bit for bit."""
        from scipy import sparse

        rows = np.arange(self.n_rows)
        ones = np.ones(self.n_rows, dtype=np.float32)
        shape = (self.n_rows, n_classes)
        truth = sparse.csr_matrix((ones, (rows, y_true)), shape=shape)
        predicted = sparse.csr_matrix((ones, (rows, y_pred)), shape=shape)
        right = sparse.csr_matrix(((y_true == y_pred).astype(np.float32), (rows, y_true)), shape=shape)
        truth_t, predicted_t, right_t = truth.T.tocsr(), predicted.T.tocsr(), right.T.tocsr()
        accuracy = np.empty(self.weights.shape[0], dtype=np.float32)
        f1 = np.empty(self.weights.shape[0], dtype=np.float64)
        chunk = max(1, min(self.weights.shape[0], 2**24 // max(n_classes, 1)))  # 64 MB of counts per product
        for start in range(0, self.weights.shape[0], chunk):
            w = self.weights[start : start + chunk]
            tp = np.asarray((right_t @ w.T).T, dtype=np.float32)
            support = np.asarray((truth_t @ w.T).T, dtype=np.float32)
            guessed = np.asarray((predicted_t @ w.T).T, dtype=np.float32)
            accuracy[start : start + chunk] = tp.sum(axis=-1) / support.sum(axis=-1)
            f1[start : start + chunk] = macro_f1_of_counts(tp, support, guessed)
        return accuracy, f1


def p_is(p: float) -> str:
    """'p = 0.41' or 'p < 0.001', for sentences."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def agreement(correct_a: np.ndarray, correct_b: np.ndarray) -> Agreement:
    """Rows by who got them right; with repeats, `correct_*` are seed-averaged and a row counts for the
    model whose average is higher (ties where both are equal count as both right or both wrong)."""
    a_better, b_better = correct_a > correct_b, correct_b > correct_a
    tied = ~(a_better | b_better)
    right = tied & (correct_a >= 0.5)
    return Agreement(int(right.sum()), int(a_better.sum()), int(b_better.sum()), int((tied & ~right).sum()))


def mcnemar_p(table: Agreement) -> float:
    """Exact McNemar (the sign test on the rows where the two differ); identical predictions give 1."""
    from mlxtend.evaluate import mcnemar

    if table.only_a + table.only_b == 0:
        return 1.0  # mlxtend says the same; spelled out because it is the documented degenerate answer
    matrix = np.array([[table.both_right, table.only_a], [table.only_b, table.both_wrong]])
    return float(mcnemar(matrix, exact=True)[1])


def holm(p_values: list[float]) -> list[float]:
    if not p_values:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(p_values, alpha=ALPHA, method="holm")[1]]


def cochrans_q(y_true: np.ndarray, predictions: dict[str, np.ndarray]) -> CochranQ:
    """Do the models differ at all? Undefined (and said in words) when every model agrees on every row."""
    if len(predictions) < 2:
        return CochranQ(None, None, "one model: nothing to compare")
    correct = np.stack([p == y_true for p in predictions.values()])
    if (correct.all(axis=0) | (~correct).all(axis=0)).all():
        return CochranQ(None, None, "every model is right or wrong on the same rows: no difference to test")
    # statsmodels' closed form is linear in rows x models; mlxtend's builds all 2^models outcome rows
    # (docs/benchmarks.md has what that cost)
    from statsmodels.stats.contingency_tables import cochrans_q as q_test

    result = q_test(correct.T.astype(np.int64))
    q, p = float(result.statistic), float(result.pvalue)
    note = f"Cochran's Q = {q:.2f}, {p_is(float(p))} across {len(predictions)} models"
    return CochranQ(float(q), float(p), note)


@dataclass
class ModelPredictions:
    """One model's predicted labels, one array per seed (the first seed first), on each split."""

    name: str
    params: int
    val: list[np.ndarray]
    test: list[np.ndarray]


def seed_averaged_correctness(preds: list[np.ndarray], y_true: np.ndarray) -> np.ndarray:
    """Per row, the share of seeds that got it right (0 or 1 with one seed)."""
    return np.mean([p == y_true for p in preds], axis=0)


def compare(
    y_test: np.ndarray, models: list[ModelPredictions], n_classes: int, chosen: str | None, resampler: Resampler
) -> Comparison:
    """Every pair (Holm over all of them), Cochran's Q, and who misses what, on the test split."""
    scores = {m.name: [resampler.scores(y_test, p, n_classes) for p in m.test] for m in models}
    f1 = {m.name: [float(macro_f1_of_counts(*class_counts(y_test, p, n_classes))) for p in m.test] for m in models}
    pairs = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            pairs.append(_pair(y_test, a, b, scores, f1))
    for pair, p_holm in zip(pairs, holm([p.p_value for p in pairs]), strict=True):
        pair.p_holm = p_holm
        pair.verdict = verdict(pair, y_test.size)
    return Comparison(
        test_rows=int(y_test.size),
        resamples=int(resampler.weights.shape[0]),
        bootstrap=f"paired percentile bootstrap over test rows, {resampler.weights.shape[0]:,} resamples (NumPy)",
        pairs=pairs,
        cochran=cochrans_q(y_test, {m.name: m.test[0] for m in models}),
        overlap=overlap(y_test, models, chosen) if models else None,
    )


def _pair(y, a: ModelPredictions, b: ModelPredictions, scores: dict, f1: dict) -> PairComparison:
    table = agreement(seed_averaged_correctness(a.test, y), seed_averaged_correctness(b.test, y))
    acc_a, f1_a = (np.mean([s[k] for s in scores[a.name]], axis=0) for k in (0, 1))  # seed-mean per resample
    acc_b, f1_b = (np.mean([s[k] for s in scores[b.name]], axis=0) for k in (0, 1))
    seed_diffs = [float(np.mean(pa == y) - np.mean(pb == y)) for pa, pb in zip(a.test, b.test, strict=False)]
    f1_diff = np.mean(f1[a.name]) - np.mean(f1[b.name])
    return PairComparison(
        a=a.name,
        b=b.name,
        agreement=table,
        p_value=mcnemar_p(table),
        p_holm=1.0,  # set once every pair's p is known
        accuracy_diff=float(np.mean(seed_diffs)),
        accuracy_diff_ci=_zero_or(percentile_interval(acc_a - acc_b), table),
        macro_f1_diff=float(f1_diff),
        macro_f1_diff_ci=_zero_or(percentile_interval(f1_a - f1_b), table),
        seed_diffs=seed_diffs,
        seed_diff_ci=mean_interval(seed_diffs),
        verdict="",
    )


def _zero_or(interval: Interval, table: Agreement) -> Interval:
    """Identical predictions differ by exactly 0 in every resample: say [0, 0], not float dust."""
    return Interval(0.0, 0.0) if table.only_a + table.only_b == 0 else interval


def verdict(pair: PairComparison, n_rows: int) -> str:
    """One plain-words line: the gap with its interval and p, and what that means."""
    ci = pair.accuracy_diff_ci
    gap = f"{signed_pp(pair.accuracy_diff)} pp [{signed_pp(ci.low)}, {signed_pp(ci.high)}]"
    stats = f"{p_is(pair.p_value)} (Holm {fmt_p(pair.p_holm)})"
    if pair.p_holm < ALPHA:
        better = pair.a if pair.accuracy_diff > 0 else pair.b
        meaning = f"{better} is better on {n_rows:,} test digits"
    elif pair.agreement.only_a + pair.agreement.only_b == 0:
        meaning = f"identical calls on all {n_rows:,} test digits"
    else:
        meaning = f"not distinguishable on {n_rows:,} test digits"
    return f"{pair.a} − {pair.b}: {gap}, {stats}: {meaning}"


def overlap(y: np.ndarray, models: list[ModelPredictions], chosen: str | None, shown: int = 40) -> Overlap:
    wrong = {m.name: m.test[0] != y for m in models}
    every = np.logical_and.reduce(list(wrong.values()))
    only = {}
    for name, missed in wrong.items():
        others = [w for n, w in wrong.items() if n != name]
        only[name] = missed & ~np.logical_or.reduce(others) if others else missed
    only_chosen = np.flatnonzero(only[chosen])[:shown].tolist() if chosen in only else []
    return Overlap(
        all_missed=int(every.sum()),
        all_missed_positions=np.flatnonzero(every)[:shown].tolist(),
        only_missed={name: int(v.sum()) for name, v in only.items()},
        only_chosen_positions=only_chosen,
    )
