"""A pack's epoch on TensorFlow as a few XLA programs: blocks of training steps, each block one compiled loop.

Keras's `fit()` on TensorFlow runs `steps_per_execution` steps in a graph `while_loop` that pulls every batch from
an iterator and, with `jit_compile`, launches one XLA program per step; on this CPU that loop costs about as much as
a small pack's arithmetic (docs/benchmarks.md, "Packed trainings"). `CompiledEpochs` runs the same `train_step`
(the model's loss, optimizer and metrics, as `fit()` would) over a block of batches inside one XLA program, a
`while_loop` over a `(steps, batch, ...)` array: one launch per block instead of one per step.

The steps are the ones `fit()` would take, in the same order, batch by batch (the last batch shorter); only the
rounding differs, as XLA fuses the arithmetic differently from TensorFlow's own kernels. The last block of an
epoch is padded with zero batches that the loop never reaches, so every block compiles once: one program for whole
batches, and one more for a short last batch. Validation runs the model's `test_step` the same way, so the epoch's
numbers are XLA's alone and do not depend on the process that computes them (a resumed pack, a Ray worker).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np


@dataclass(frozen=True)
class EpochRun:
    """What one epoch gave: the logs `fit()` would give (training and `val_` metrics) and its seconds."""

    logs: dict[str, Any]
    seconds: float
    val_seconds: float


class CompiledEpochs:
    """Epochs of `trainer` (compiled with its loss, optimizer and metrics) in blocks of `block` steps of
    `batch_size` rows, each block one XLA program. TensorFlow only."""

    def __init__(
        self,
        trainer: keras.Model,
        batch_size: int,
        block: int,
        validation: tuple[np.ndarray, np.ndarray],
        val_batch_size: int,
    ):
        import tensorflow as tf

        self.trainer, self.batch_size, self.block = trainer, batch_size, max(1, block)
        whole, short = _batches(*validation, val_batch_size)
        self._validation = [(tf.constant(bx), tf.constant(by)) for bx, by in (whole, short) if len(bx)]  # built once

        def loop(step, xs, ys, count):
            def body(i):
                step((xs[i], ys[i]))
                return (i + 1,)

            tf.while_loop(lambda i: i < count, body, (tf.constant(0),))
            return count

        def steps(xs, ys, count):
            return loop(trainer.train_step, xs, ys, count)

        def tests(xs, ys, count):
            return loop(trainer.test_step, xs, ys, count)

        self._steps = tf.function(steps, jit_compile=True, reduce_retracing=False)
        self._tests = tf.function(tests, jit_compile=True, reduce_retracing=False)

    def fit_epoch(self, x: np.ndarray, y: np.ndarray) -> EpochRun:
        """One epoch over the rows in their order, then validation as `fit()` validates: the model's `test_step`
        over the validation batches, compiled too, so a pack's whole epoch is XLA's arithmetic."""
        import tensorflow as tf

        trainer, size = self.trainer, self.batch_size
        trainer._symbolic_build(data_batch=(x[:size], y[:size]))  # what fit() builds first; nothing once built
        t0 = time.perf_counter()
        trainer.reset_metrics()
        (xs, ys), short = _batches(x, y, size)
        for start in range(0, len(xs), self.block):
            count = min(self.block, len(xs) - start)
            bx, by = _padded(xs[start : start + count], self.block), _padded(ys[start : start + count], self.block)
            self._steps(tf.constant(bx), tf.constant(by), tf.constant(count))
        if len(short[0]):
            self._steps(tf.constant(short[0]), tf.constant(short[1]), tf.constant(1))
        logs = {name: _numbers(value) for name, value in trainer.get_metrics_result().items()}
        v0 = time.perf_counter()
        trainer.reset_metrics()
        for bx, by in self._validation:
            self._tests(bx, by, tf.constant(len(bx)))
        logs |= {f"val_{name}": _numbers(value) for name, value in trainer.get_metrics_result().items()}
        end = time.perf_counter()
        return EpochRun(logs, end - t0, end - v0)


def _padded(blocks: np.ndarray, n: int) -> np.ndarray:
    """`blocks` with zero batches after it up to `n`: every block has one shape, so it compiles once."""
    if len(blocks) == n:
        return blocks
    return np.concatenate([blocks, np.zeros((n - len(blocks), *blocks.shape[1:]), dtype=blocks.dtype)])


Batches = tuple[np.ndarray, np.ndarray]


def _batches(x: np.ndarray, y: np.ndarray, size: int) -> tuple[Batches, Batches]:
    """The rows as their whole batches, `(batches, size, ...)`, and the short last batch as a block of one (of
    none where the rows divide into batches), in their order."""
    full, cut = len(x) // size, len(x) // size * size
    whole = x[:cut].reshape(full, size, *x.shape[1:]), y[:cut].reshape(full, size, *y.shape[1:])
    return whole, (x[None, cut:] if cut < len(x) else x[:0, None], y[None, cut:] if cut < len(y) else y[:0, None])


def _numbers(value) -> Any:
    array = np.asarray(keras.ops.convert_to_numpy(value))
    return array if array.ndim else float(array)
