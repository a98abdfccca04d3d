"""Who runs the trainings: the `Executor` protocol, and what an executor reports of the machine it trains on.

Nothing here imports Keras at import time: `runtime_here` configures it only when called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from job.environment import DeviceInfo
from job.training.inputs import Done, Inputs, Spare, Unit


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
    from job.environment import choose_policy, detect_device, versions
    from job.training import model as training

    device = detect_device(backend)
    policy = choose_policy(precision, device)
    determinism, loss_scaling = training.configure(policy, deterministic)
    return Runtime(backend, device, policy, determinism, loss_scaling, versions(backend))


class Executor(Protocol):
    def start(self, backend: str, precision: str, deterministic: bool, tasks: int) -> None:
        """Begin getting ready to train up to `tasks` trainings; may return before it is ready."""

    def runtime(self) -> Runtime:
        """Where the trainings run: its device and versions, and the precision chosen for that device."""

    def run(self, tasks: Iterable[Unit], inputs: Inputs, done: Done, spare: Spare | None = None) -> None:
        """Run every task (a training, or a pack of them); call `done` for each training as soon as it finishes,
        so the caller can record it. An executor
        that trains elsewhere calls `spare` once when it has capacity left over: the caller may use it then."""

    def close(self, wait: bool = True) -> None:
        """Release what `start` took; `wait=False` may leave it finishing in the background until the next
        close(). Safe to call more than once, and without `start`."""


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
