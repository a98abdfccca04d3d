"""Which architecture is better across training sets: statistics over repeated development splits (#23).

Pure: per-split, per-seed validation accuracies in, typed numbers out; no files, no Keras. `acc[k, s]` is one
training's validation accuracy on split k with seed s, seeds crossed with splits (the same seeds on every split).

- `corrected_t`: the Nadeau–Bengio corrected resampled t-test on the K per-split mean differences. Written here
  because no maintained package has it for repeated holdout (`baycomp` hard-codes the k-fold factor).
- `p_a_beats_b`: Bouthillier et al.'s P(A > B), with a bootstrap interval over splits and seeds.
- `noise_parts`: where the variance of one training's validation accuracy comes from, by the method of moments
  of a two-way crossed random-effects model (splits × seeds), with the validation rows' own sampling apart.

Nothing here is NaN: what cannot be estimated (one split, one seed) is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from job.stats.metrics import Interval, percentile_interval

SPLITS_RESAMPLES = 2000
DUST = 1e-15  # a variance of accuracies below this is rounding, not spread
SPLITS_SEED = 20_261_203  # fixed: the same accuracies give the same intervals


@dataclass
class CorrectedT:
    mean_diff: float  # mean over splits of A - B (each split's mean over seeds)
    t: float | None  # None where the splits do not vary and the mean is not 0 (an infinite t)
    df: int  # K - 1
    p_value: float | None  # two-sided; None where the splits do not vary and the mean is not 0


def corrected_t(diffs: np.ndarray, test_train_ratio: float) -> CorrectedT | None:
    """Nadeau & Bengio (2003): t = mean(d) / sqrt(var(d) * (1/K + n_val/n_train)), K - 1 degrees of freedom.

    `diffs` holds one A - B difference per split; `test_train_ratio` is n_val / n_train of each split (1/3 for
    the job's 60/20/20 splits). None with fewer than two splits: there is no spread to test with."""
    from scipy import stats as sps  # on first use: the pipeline imports this module before it needs scipy

    d = np.asarray(diffs, dtype=np.float64)
    k = d.size
    if k < 2:
        return None
    mean = float(d.mean())
    var = float(d.var(ddof=1)) * (1.0 / k + test_train_ratio)
    if var < DUST:  # the same difference on every split (to float32 dust): no spread to test it against
        same = abs(mean) < DUST
        return CorrectedT(mean, 0.0 if same else None, k - 1, 1.0 if same else None)
    t = mean / math.sqrt(var)
    return CorrectedT(mean, t, k - 1, float(2.0 * sps.t.sf(abs(t), k - 1)))


def _beats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per split (the leading axes), the share of (seed of A, seed of B) pairs in which A is higher, ties ½: the
    Mann-Whitney U of A over S_a x S_b, from average ranks, so it costs (S_a + S_b) log, never S_a x S_b cells."""
    from scipy import stats as sps

    s_a, s_b = a.shape[-1], b.shape[-1]
    ranks = sps.rankdata(np.concatenate([a, b], axis=-1), method="average", axis=-1)
    u = ranks[..., :s_a].sum(axis=-1) - s_a * (s_a + 1) / 2
    return u / (s_a * s_b)


@dataclass
class Beats:
    p: float | None  # P(A > B); None with one training per model
    interval: Interval | None  # 95% bootstrap over splits and seeds


def p_a_beats_b(acc_a: np.ndarray, acc_b: np.ndarray, seed: int = SPLITS_SEED) -> Beats:
    """P(A > B) as Bouthillier et al. (2021) define it: within each split, over every pair (seed s of A, seed s'
    of B), the share in which A's validation accuracy is higher, ties counting ½; then averaged over the splits.

    The interval resamples splits, then each model's seeds within the drawn split, with replacement
    (`SPLITS_RESAMPLES` times, seeded). `acc_a` and `acc_b` are (splits, seeds)."""
    a, b = np.asarray(acc_a, dtype=np.float64), np.asarray(acc_b, dtype=np.float64)
    k, s_a = a.shape
    s_b = b.shape[1]
    if k * s_a == 1 and k * s_b == 1:
        return Beats(None, None)
    p = float(_beats(a, b).mean())
    rng = np.random.default_rng(seed)
    splits = rng.integers(0, k, size=(SPLITS_RESAMPLES, k))
    pick_a = rng.integers(0, s_a, size=(SPLITS_RESAMPLES, k, s_a))
    pick_b = rng.integers(0, s_b, size=(SPLITS_RESAMPLES, k, s_b))
    drawn_a = np.take_along_axis(a[splits], pick_a, axis=-1)
    drawn_b = np.take_along_axis(b[splits], pick_b, axis=-1)
    samples = _beats(drawn_a, drawn_b).mean(axis=-1)
    return Beats(p, percentile_interval(samples))


@dataclass
class NoiseParts:
    """Variances of one training's validation accuracy (in accuracy², not pp²); None where not estimable."""

    splits: float | None  # the training set, and the validation rows that come with it, less `rows`
    seeds: float | None  # initial weights and batch order: the seed's main effect plus its interaction with the split
    rows: float  # validation-row sampling: binomial, mean accuracy × (1 - it) / validation rows

    def dominant(self) -> str | None:
        """The largest part's name, or None when a part is missing."""
        parts = {"splits": self.splits, "seeds": self.seeds, "rows": self.rows}
        if any(v is None for v in parts.values()):
            return None
        return max(parts, key=lambda n: parts[n] or 0.0)


def noise_parts(acc: np.ndarray, n_val: int) -> NoiseParts:
    """The method of moments for Y[k, s] = mu + split_k + seed_s + e_ks, one observation a cell.

    With K splits and S seeds: MS_split = S var(row means), MS_seed = K var(column means), MS_e the residual
    mean square; var(split) = (MS_split - MS_e) / S, var(seed) = (MS_seed - MS_e) / K, var(e) = MS_e. The
    interaction belongs to the seeds (it is how a seed's luck differs from one training set to the next), so
    `seeds` = var(seed) + var(e). A split's validation rows are drawn with it, so the binomial variance of
    accuracy on `n_val` rows sits inside var(split): `rows` reports it apart and `splits` is what is left.
    Negative moment estimates are read as 0. One split: `splits` None; one seed: `seeds` None, and with one seed
    the split part holds the seeds' noise too, so it is None as well."""
    y = np.asarray(acc, dtype=np.float64)
    k, s = y.shape
    mean = float(y.mean())
    rows = mean * (1.0 - mean) / n_val
    if s < 2:
        return NoiseParts(None, None, rows)
    if k < 2:
        return NoiseParts(None, float(y.var(ddof=1)), rows)
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + mean
    ms_e = float((resid**2).sum() / ((k - 1) * (s - 1)))
    ms_split = s * float(y.mean(axis=1).var(ddof=1))
    ms_seed = k * float(y.mean(axis=0).var(ddof=1))
    var_split = max(0.0, (ms_split - ms_e) / s)
    var_seed = max(0.0, (ms_seed - ms_e) / k)
    return NoiseParts(max(0.0, var_split - rows), var_seed + ms_e, rows)


def corrected_interval(split_means: np.ndarray, test_train_ratio: float, extra_var: float = 0.0) -> Interval | None:
    """95% interval of a mean over K splits: the spread of the per-split means with Nadeau and Bengio's variance,
    var × (1/K + n_val/n_train), at t with K - 1 degrees of freedom, combined with `extra_var` (the test rows' own
    binomial sampling, when every split shares them: known, so at the normal quantile) as
    sqrt((t sd)² + (z sd_rows)²); cut to [0, 1]. None with one split, or when nothing varies."""
    m = np.asarray(split_means, dtype=np.float64)
    k = m.size
    if k < 2:
        return None
    spread = float(m.var(ddof=1)) * (1.0 / k + test_train_ratio)
    spread = 0.0 if spread < DUST else spread  # equal means in float arithmetic: no spread, not 1e-33
    if spread + extra_var <= 0.0:
        return None
    from scipy import stats as sps

    half = math.sqrt(float(sps.t.ppf(0.975, k - 1)) ** 2 * spread + float(sps.norm.ppf(0.975)) ** 2 * extra_var)
    mean = float(m.mean())
    return Interval(max(0.0, mean - half), min(1.0, mean + half))


@dataclass
class PairOverSplits:
    """Two models across training sets, on validation accuracy (never the fixed test split)."""

    a: str  # the first model, in table order
    b: str  # the second
    mean_diff: float  # a - b: mean over splits of each split's mean over seeds
    t: float | None  # Nadeau–Bengio corrected t; None at K = 1 (or infinite)
    df: int | None  # K - 1; None at K = 1
    p_value: float | None  # two-sided; None at K = 1
    p_holm: float | None  # Holm over the pairs; None at K = 1
    p_a_beats_b: float | None  # P(A > B); None with one training per model
    p_a_beats_b_ci: Interval | None  # 95% bootstrap over splits, then seeds


@dataclass
class ModelNoise:
    """Where one model's validation-accuracy variance comes from (accuracy², a training's variance)."""

    model: str  # the model's name
    splits: float | None  # the training set, and the validation rows that come with it, less `rows`
    seeds: float | None  # initial weights and batch order, and their interaction with the split
    rows: float  # validation-row sampling: binomial
    dominant: str | None  # the largest part's name; None when a part is missing


@dataclass
class Architectures:
    """Which architecture is better across training sets: the run's development splits as data."""

    splits: int  # K
    seeds: int  # trainings per model per split
    test_train_ratio: float  # n_val / n_train of every split: the Nadeau–Bengio factor's second term
    pairs: list[PairOverSplits]  # every pair of finished models, in table order
    noise: list[ModelNoise]  # per finished model
    noise_method: str  # how the parts were estimated, in words
    noise_summary: str  # what dominates, in one sentence
    mean_ranks: dict[str, float] | None  # by model: mean rank over splits (1 = best); None below RANKS_FROM
    rank_note: str | None  # what the ranks and the diagram mean; None when not shown
    split_means: dict[str, list[float]] | None = None  # by model: validation accuracy per split, with the ranks


RANKS_FROM = (5, 3)  # mean ranks and a critical-difference diagram from 5 splits and 3 models on
NOISE_METHOD = (
    "method of moments, two-way crossed random effects (splits × seeds, one training a cell); the interaction is "
    "counted in the seeds; validation-row sampling is binomial, taken out of the split part"
)


def compare_architectures(acc: dict[str, np.ndarray], n_val: int, n_train: int) -> Architectures:
    """The pairs, the noise parts and the mean ranks of the finished models. `acc[name]` is (splits, seeds) of
    validation accuracy, the models in table order."""
    from scipy import stats as sps
    from statsmodels.stats.multitest import multipletests

    names = list(acc)
    first = next(iter(acc.values()), np.zeros((1, 1)))
    k, s = first.shape
    ratio = n_val / n_train
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            test = corrected_t(acc[a].mean(axis=1) - acc[b].mean(axis=1), ratio)
            beats = p_a_beats_b(acc[a], acc[b])
            pairs.append(
                PairOverSplits(
                    a,
                    b,
                    float(acc[a].mean() - acc[b].mean()),
                    test.t if test else None,
                    test.df if test else None,
                    test.p_value if test else None,
                    None,
                    beats.p,
                    beats.interval,
                )
            )
    tested = [p for p in pairs if p.p_value is not None]
    if tested:
        adjusted = multipletests([p.p_value for p in tested], method="holm")[1]
        for p, adj in zip(tested, adjusted, strict=True):
            p.p_holm = float(adj)
    noise = []
    for name in names:
        parts = noise_parts(acc[name], n_val)
        noise.append(ModelNoise(name, parts.splits, parts.seeds, parts.rows, parts.dominant()))
    ranks, note, means = None, None, None
    if k >= RANKS_FROM[0] and len(names) >= RANKS_FROM[1]:
        per_split = np.column_stack([acc[n].mean(axis=1) for n in names])  # (splits, models)
        r = sps.rankdata(-per_split, method="average", axis=1).mean(axis=0)
        ranks = {n: float(v) for n, v in zip(names, r, strict=True)}
        means = {n: [float(v) for v in per_split[:, i]] for i, n in enumerate(names)}
        note = (
            f"Descriptive: mean ranks over {k} splits (1 = the highest validation accuracy). The splits share rows, "
            "so they are not independent data sets; the bars join models closer than Nemenyi's critical difference "
            "and carry no p-value."
        )
    summary = noise_summary(noise, k, s)
    return Architectures(k, s, ratio, pairs, noise, NOISE_METHOD, summary, ranks, note, means)


def noise_summary(noise: list[ModelNoise], splits: int, seeds: int) -> str:
    """What dominates the variance, in one sentence."""
    if not noise:
        return "No model finished, so there is no variance to split."
    words = {
        "splits": "the training set (which rows a split trains on)",
        "seeds": "the seed",
        "rows": "the validation rows' own sampling",
    }
    if seeds < 2:
        need = (
            "--repeats of 2 or more (and --splits of 2 or more) show" if splits < 2 else "--repeats of 2 or more shows"
        )
        return f"Only the validation rows' part can be estimated with one seed; {need} the others."
    if splits < 2:
        return "With one split the training set's part cannot be estimated; --splits of 2 or more shows it."
    doms = [n.dominant or "rows" for n in noise]  # every part is estimable here
    counts = {d: doms.count(d) for d in set(doms)}
    top = max(counts, key=lambda d: (counts[d], d))
    if counts[top] == len(noise):
        return f"For every model the largest part is {words[top]}."
    others = "; ".join(f"for {n.model}, {words[d]}" for n, d in zip(noise, doms, strict=True) if d != top)
    return f"For {counts[top]} of {len(noise)} models the largest part is {words[top]}; {others}."
