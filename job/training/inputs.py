"""What one training reads, as Keras-free data: the split's arrays, the run's settings, and the task.

An executor hands each `TrainingTask` with the run's `Inputs` to `job.training.loop.train`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from job.result import TrainingResult
from job.rundir.resume import Checkpoint, TrainingKey
from job.specs import ModelSpec


@dataclass(frozen=True)
class SplitArrays:
    """uint8 pixels and int labels of each split: what every training reads, never writes."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


@dataclass(frozen=True)
class TrainSettings:
    """What the run decides for every training, beside the spec and the seed."""

    policy: str = "float32"
    steps_per_execution: int = 32  # amortises per-step dispatch; epoch logs stay exact
    val_batch_size: int = 2048  # validation is inference only: big batches, same numbers
    # Keras's "auto": XLA on GPU, not on CPU, and always on JAX. Forcing XLA on the CPU was slower over
    # the full benchmark (docs/benchmarks.md), so the job keeps Keras's choice.
    jit_compile: bool | str = "auto"
    epochs_override: int | None = None
    deterministic: bool = True  # op determinism, set again in each Ray worker


@dataclass(frozen=True)
class TrainingTask:
    spec: ModelSpec
    key: TrainingKey
    position: str  # "2/4": for log lines


Done = Callable[[TrainingTask, TrainingResult], None]
Spare = Callable[[], None]


@dataclass(frozen=True)
class Inputs:
    """What every task of a run shares: the data, the settings, and where each training checkpoints."""

    arrays: SplitArrays
    settings: TrainSettings
    checkpoint: Callable[[TrainingKey], Checkpoint]


def expected_cost(task: TrainingTask, inputs: Inputs) -> int:
    """A training's work up to a constant, to hand out the longest first: weights times epochs (every
    training sees the same rows). It leaves out per-step overhead, so in a family whose models differ in
    batch size the order is rougher."""
    epochs = inputs.settings.epochs_override or task.spec.epochs
    return task.spec.param_count(inputs.arrays.x_train.shape[1], inputs.arrays.n_classes) * epochs
