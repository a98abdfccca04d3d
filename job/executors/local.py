"""The default executor: every training one after another in this process."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from job.environment import DEFAULT_BACKEND
from job.executors.base import Runtime, runtime_here, visible_device
from job.result import Placement
from job.training.inputs import Done, Inputs, Spare, SplitArrays, TrainingTask


class LocalExecutor:
    """Trainings one after another in this process: the default."""

    def __init__(self) -> None:
        self._plan = (DEFAULT_BACKEND, "auto", True)

    def start(self, backend: str, precision: str, deterministic: bool, tasks: int) -> None:
        self._plan = (backend, precision, deterministic)

    def runtime(self) -> Runtime:
        return runtime_here(*self._plan)  # Keras is imported only now: check-data and report never pay for it

    def run(self, tasks: Iterable[TrainingTask], inputs: Inputs, done: Done, spare: Spare | None = None) -> None:
        from job.training.loop import train  # every core trains here: `spare` is never called

        arrays: tuple[int, SplitArrays] | None = None  # the last split's rows: the tasks come split by split
        for task in tasks:
            started = time.time()
            if arrays is None or arrays[0] != task.key.split:
                arrays = (task.key.split, inputs.splits.arrays(task.key.split))
            result = train(
                task.spec, task.key.seed, arrays[1], inputs.settings, inputs.checkpoint(task.key), task.position
            )
            result.placement = Placement("local", socket.gethostname(), visible_device(), started, time.time())
            done(task, result)

    def close(self, wait: bool = True) -> None:
        pass
