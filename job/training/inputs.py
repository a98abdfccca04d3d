"""What one training reads, as Keras-free data: the split's arrays, the run's settings, and the task.

An executor hands each `TrainingTask` with the arrays of its split (`Inputs.splits.arrays(task.key.split)`) and
the run's settings to `job.training.loop.train`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from job.result import TrainingResult, training_label
from job.rundir.resume import Checkpoint, PackCheckpoint, TrainingKey
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
class DevSplits:
    """The rows of every development split, held once: the pixels and labels of the rows the run uses, and per
    split the positions of its training and validation rows in them. The test rows are the same on every split.
    `arrays(k)` copies split k's rows out for a training (uint8: a fraction of one float copy)."""

    x: np.ndarray  # uint8 pixels of the rows the run uses
    y: np.ndarray  # their labels
    parts: tuple[tuple[np.ndarray, np.ndarray], ...]  # per split, split 1 first: (train, val) positions in x
    test: np.ndarray  # positions in x of the test rows
    n_classes: int

    @property
    def count(self) -> int:
        return len(self.parts)

    def arrays(self, split: int = 1) -> SplitArrays:
        train, val = self.parts[split - 1]
        x, y = self.x, self.y
        return SplitArrays(x[train], y[train], x[val], y[val], x[self.test], y[self.test], self.n_classes)

    def y_val(self, split: int = 1) -> np.ndarray:
        return self.y[self.parts[split - 1][1]]

    @property
    def y_test(self) -> np.ndarray:
        return self.y[self.test]

    @property
    def n_train(self) -> int:
        """Training rows of a split: the same on every split."""
        return int(self.parts[0][0].size)


@dataclass(frozen=True)
class TrainSettings:
    """What the run decides for every training, beside the spec and the seed."""

    policy: str = "float32"
    steps_per_execution: int = 32  # amortises per-step dispatch; epoch logs stay exact
    val_batch_size: int = 2048  # validation is inference only: big batches, same numbers
    # Keras's "auto": XLA on GPU, not on CPU, and always on JAX. Forcing XLA on the CPU was slower over
    # the full benchmark (docs/benchmarks.md), so the job keeps Keras's choice. A pack's training steps on
    # TensorFlow are XLA whatever this says (`compiled.CompiledEpochs`).
    jit_compile: bool | str = "auto"
    epochs_override: int | None = None
    deterministic: bool = True  # op determinism, set again in each Ray worker


@dataclass(frozen=True)
class TrainingTask:
    spec: ModelSpec
    key: TrainingKey
    position: str  # "2/4": for log lines
    pack: str | None = None  # the pack it trains in (`PackTask.name`), None alone

    @property
    def label(self) -> str:
        """For log lines and errors (`result.training_label`)."""
        return training_label(self.spec.name, self.key.seed, self.key.split)


@dataclass(frozen=True)
class PackTask:
    """Two or more trainings of one spec, trained as one packed program (`job.training.packed`): one unit of work
    for an executor, whose `done` still hears of every member."""

    name: str  # `<slug>-pack<i>`: its checkpoint folder, and its name in run.json
    members: tuple[TrainingTask, ...]

    @property
    def spec(self) -> ModelSpec:
        return self.members[0].spec

    @property
    def label(self) -> str:
        return f"{self.spec.name} pack {self.name.rpartition('pack')[2]} ({len(self.members)} trainings)"


Unit = TrainingTask | PackTask
Done = Callable[[TrainingTask, TrainingResult], None]
Spare = Callable[[], None]


@dataclass(frozen=True)
class Inputs:
    """What every task of a run shares: the data, the settings, and where each training checkpoints."""

    splits: DevSplits
    settings: TrainSettings
    checkpoint: Callable[[TrainingKey], Checkpoint]
    pack_checkpoint: Callable[[PackTask], PackCheckpoint] | None = None  # a pack's folder, where the run packs


def expected_cost(task: Unit, inputs: Inputs) -> int:
    """A training's work up to a constant, to hand out the longest first: weights times epochs (every
    training sees as many rows, whatever its split); a pack's is its members'. It leaves out per-step overhead,
    so in a family whose models differ in batch size the order is rougher."""
    epochs = inputs.settings.epochs_override or task.spec.epochs
    members = len(task.members) if isinstance(task, PackTask) else 1
    return task.spec.param_count(inputs.splits.x.shape[1], inputs.splits.n_classes) * epochs * members
