"""The default executor: every training one after another in this process."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from job.environment import DEFAULT_BACKEND
from job.executors.base import Runtime, runtime_here, visible_device
from job.result import Placement, TrainingResult
from job.training.inputs import Done, Inputs, PackTask, Spare, SplitArrays, Unit


class LocalExecutor:
    """Trainings one after another in this process: the default."""

    def __init__(self) -> None:
        self._plan = (DEFAULT_BACKEND, "auto", True)

    def start(self, backend: str, precision: str, deterministic: bool, tasks: int) -> None:
        self._plan = (backend, precision, deterministic)

    def runtime(self) -> Runtime:
        return runtime_here(*self._plan)  # Keras is imported only now: check-data and report never pay for it

    def run(self, tasks: Iterable[Unit], inputs: Inputs, done: Done, spare: Spare | None = None) -> None:
        from job.training.loop import train  # every core trains here: `spare` is never called

        arrays = SplitRows(inputs)
        for task in tasks:
            started = time.time()
            if isinstance(task, PackTask):
                results = train_pack_task(task, inputs, arrays)
                members = list(task.members)
            else:
                checkpoint = inputs.checkpoint(task.key)
                rows = arrays(task.key.split)
                results = [train(task.spec, task.key.seed, rows, inputs.settings, checkpoint, task.position)]
                members = [task]
            placement = Placement("local", socket.gethostname(), visible_device(), started, time.time())
            for member, result in zip(members, results, strict=True):
                result.placement = placement  # a pack's members share its window
                done(member, result)

    def close(self, wait: bool = True) -> None:
        pass


class SplitRows:
    """Each split's rows, copied out once and kept while the tasks of that split come: they come split by split, so
    the last two splits are kept (a pack's members may span several; each member holds its own)."""

    def __init__(self, inputs: Inputs) -> None:
        self.splits = inputs.splits
        self._held: dict[int, SplitArrays] = {}

    def __call__(self, split: int) -> SplitArrays:
        if split not in self._held:
            if len(self._held) >= 2:
                self._held.pop(next(iter(self._held)))
            self._held[split] = self.splits.arrays(split)
        return self._held[split]


def train_pack_task(task: PackTask, inputs: Inputs, arrays: SplitRows) -> list[TrainingResult]:
    """A pack's members through `job.training.packed.train_pack`, in its own checkpoint folder."""
    from job.training.packed import Member, train_pack

    if inputs.pack_checkpoint is None:
        raise ValueError(f"{task.label}: this run has no pack checkpoints")
    members = [Member(m.key.seed, m.key.split, arrays(m.key.split), m.position) for m in task.members]
    return train_pack(task.spec, members, inputs.settings, inputs.pack_checkpoint(task))
