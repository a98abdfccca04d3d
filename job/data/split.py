"""Split row indices into train/val/test, stratified by class and fixed by a seed.

The split is recorded as indices (and the fractions it was cut with), not just its sizes, so a run
can be resumed and audited. The RNG call order is part of the contract: the same seed must give
the same rows in every version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train/val/test: enough validation rows to pick a model, and as many to test it
MIN_ROWS_PER_CLASS = 5  # a stratified 60/20/20 split needs one row per split, with room


@dataclass
class Split:
    """Row indices into the dataset: the split is recorded, not just its sizes."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}


def stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified subsample of about `n` rows (every class keeps some)."""
    if n >= y.size:
        return np.arange(y.size)
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    quota = _largest_remainder(counts * n / y.size, n)
    quota = np.maximum(quota, np.minimum(counts, MIN_ROWS_PER_CLASS))
    picked = [rng.permutation(np.flatnonzero(y == k))[: quota[k]] for k in range(counts.size)]
    return np.sort(np.concatenate(picked))


def stratified_split(y: np.ndarray, seed: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> Split:
    """Per class: shuffle with `seed`, then cut 60/20/20 with at least one row in each part."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for k in range(int(y.max()) + 1):
        idx = rng.permutation(np.flatnonzero(y == k))
        n = idx.size
        n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
        n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
        n_train = n - n_val - n_test
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    # Shuffle within each split so batches mix classes; sort-free order is part of the seed.
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return Split(train=train, val=val, test=test, fractions=(fractions[0], fractions[1], fractions[2]))


def resplit(y: np.ndarray, first: Split, seed: int, k: int) -> Split:
    """Development split `k` (2, 3, ...) of a run with repeated splits: split 1's test rows, the same for every
    split (so no choice ever sees them), and split 1's other rows re-partitioned per class with
    `default_rng([seed, k])`, keeping each class's training and validation counts, so every split trains on as
    many rows. Per class in class order: the class's non-test rows in row order, permuted, the first ones to
    train; then the training and the validation rows are each shuffled, as in `stratified_split`."""
    if k < 2:
        raise ValueError(f"split {k}: split 1 is stratified_split's own; resplit makes 2 and after")
    rng = np.random.default_rng([seed, k])
    classes = int(y.max()) + 1
    n_train = np.bincount(y[first.train], minlength=classes)
    pool = np.sort(np.concatenate([first.train, first.val]))
    train, val = [], []
    for c in range(classes):
        idx = rng.permutation(pool[y[pool] == c])
        train.append(idx[: n_train[c]])
        val.append(idx[n_train[c] :])
    return Split(
        train=rng.permutation(np.concatenate(train)),
        val=rng.permutation(np.concatenate(val)),
        test=first.test.copy(),
        fractions=first.fractions,
    )


def duplicates_across(x: np.ndarray, split: Split) -> int:
    """How many val and test rows have a byte-identical copy among the training rows.

    Such rows are not unseen data, so a test score over them flatters the model. Rows are compared
    as whole byte strings (a void view), which numpy sorts and searches without hashing per row.
    """
    rows = np.ascontiguousarray(x.reshape(x.shape[0], -1))
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    seen = np.unique(keys[split.train])
    held_out = keys[np.concatenate([split.val, split.test])]
    pos = np.searchsorted(seen, held_out).clip(max=max(seen.size - 1, 0))
    return int(np.count_nonzero(seen[pos] == held_out)) if seen.size else 0


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    floors = np.floor(shares).astype(int)
    rest = total - floors.sum()
    order = np.argsort(-(shares - floors), kind="stable")
    floors[order[:rest]] += 1
    return floors
