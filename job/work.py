"""The unit of work and who runs it: "train this spec with this seed" as data, and the executor interface.

Nothing here imports Keras: an executor hands each task to `job.train.train`, in this process
(`LocalExecutor`) or, later, in a worker elsewhere, and reports each result as it finishes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from job.environment import DeviceInfo
from job.result import Placement, TrainingResult
from job.resume import Checkpoint, TrainingKey
from job.specs import ModelSpec

log = logging.getLogger(__name__)


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
    # Keras's "auto": XLA on GPU, not on CPU, and always on JAX. Forcing XLA on the 2-core CPU
    # looked ~17% faster over 3 epochs of Model 4 but was slower over the full benchmark
    # (1.51x against 1.73x without it), so the job keeps Keras's choice.
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


@dataclass(frozen=True)
class Runtime:
    """What the machine that trains decided for this run: backend, device, precision, determinism, versions."""

    backend: str
    device: DeviceInfo
    policy: str
    deterministic: bool
    loss_scaling: bool
    versions: dict[str, str | None]


def runtime_here(backend: str, precision: str, deterministic: bool) -> Runtime:
    """Keras in this process: the device it sees, the precision chosen for it, and Keras configured so."""
    from job import train as training
    from job.environment import choose_policy, detect_device, versions

    device = detect_device(backend)
    policy = choose_policy(precision, device)
    determinism, loss_scaling = training.configure(policy, deterministic)
    return Runtime(backend, device, policy, determinism, loss_scaling, versions(backend))


class Executor(Protocol):
    def start(self, backend: str, precision: str, deterministic: bool, tasks: int) -> None:
        """Begin getting ready to train up to `tasks` trainings; may return before it is ready."""

    def runtime(self) -> Runtime:
        """Where the trainings run: its device and versions, and the precision chosen for that device."""

    def run(self, tasks: Iterable[TrainingTask], inputs: Inputs, done: Done, spare: Spare | None = None) -> None:
        """Run every task; call `done` for each as soon as it finishes, so the caller can record it. An executor
        that trains elsewhere calls `spare` once when it has capacity left over: the caller may use it then."""

    def close(self, wait: bool = True) -> None:
        """Release what `start` took; `wait=False` may leave it finishing in the background until the next
        close(). Safe to call more than once, and without `start`."""


class LocalExecutor:
    """Trainings one after another in this process: the default."""

    def __init__(self) -> None:
        self._plan = ("tensorflow", "auto", True)

    def start(self, backend: str, precision: str, deterministic: bool, tasks: int) -> None:
        self._plan = (backend, precision, deterministic)

    def runtime(self) -> Runtime:
        return runtime_here(*self._plan)  # Keras is imported only now: check-data and report never pay for it

    def run(self, tasks: Iterable[TrainingTask], inputs: Inputs, done: Done, spare: Spare | None = None) -> None:
        from job.train import train  # every core trains here: `spare` is never called

        for task in tasks:
            started = time.time()
            result = train(task.spec, task.key.seed, inputs.arrays, inputs.settings, inputs.checkpoint(task.key),
                           task.position)  # fmt: skip
            result.placement = Placement("local", socket.gethostname(), visible_device(), started, time.time())
            done(task, result)

    def close(self, wait: bool = True) -> None:
        pass


def visible_device() -> str:
    """The accelerator this process was given, as the scheduler set it; "CPU" when none."""
    return os.environ.get("CUDA_VISIBLE_DEVICES") or "CPU"


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that cap TensorFlow's, XLA's and the BLAS libraries' thread pools. TensorFlow's
    CPU results change with the thread count even under op determinism, so runs compare like for like."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={n}",
    }
