"""Rows in batches, as fit() and predict() take them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np


@dataclass(frozen=True)
class Feed:
    """Rows in a fixed order, in batches, as fit() and predict() take them (`feed` makes one)."""

    x: Any  # a tf.data.Dataset of whole batches on TensorFlow; the rows themselves elsewhere
    y: np.ndarray | None = None
    batch_size: int | None = None

    def as_validation(self) -> dict:
        data = self.x if self.y is None else (self.x, self.y)
        return {"validation_data": data, "validation_batch_size": self.batch_size}


def feed(batch_size: int, x: np.ndarray, y: np.ndarray | None = None) -> Feed:
    """These rows in this order, in batches of `batch_size` (the last one shorter).

    On TensorFlow, a `tf.data` feed of batches cut in NumPy: Keras's own feed for arrays traces a new gather
    function at every call, twice per epoch with one fit() per epoch (docs/benchmarks.md has the cost), and this
    one traces nothing. The batches, and so the numbers, are the same (tested). On other
    backends Keras's NumPy feed costs nothing to build, and the arrays go as they are."""
    if keras.backend.backend() != "tensorflow":
        return Feed(x, y, batch_size)
    import tensorflow as tf

    full = len(x) // batch_size * batch_size
    parts = [a for a in (x, y) if a is not None]
    data = tf.data.Dataset.from_tensor_slices(tuple(a[:full].reshape(-1, batch_size, *a.shape[1:]) for a in parts))
    if full < len(x):
        data = data.concatenate(tf.data.Dataset.from_tensors(tuple(a[full:] for a in parts)))
    return Feed(data)
