"""TensorBoard scalars for every (model, seed, split) training, written as each epoch ends; no TensorFlow needed.

Events go to `OUT/tensorboard/<run-id>/<model-slug>/seed-<n>/` (`seed-<n>-split<k>/` from split 2 on) while
the run is in progress, so
`tensorboard --logdir OUT/tensorboard` shows a live run under one name across the final `.partial`
rename; when the run completes they are copied into `RUN_DIR/tensorboard/<model-slug>/seed-<n>/`, so
the run directory is whole on its own. Written with tensorboardX (`pip install -e '.[tensorboard]'`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from job.errors import JobError
from job.result import EpochRecord, TrainingResult
from job.rundir.layout import split_suffix
from job.rundir.resume import TrainingKey

TAGS = ("loss", "accuracy", "val_loss", "val_accuracy")
EVENTS_DIR = "tensorboard"


class TensorBoardError(JobError):
    """--tensorboard without its writer installed: one line, exit 2."""


def require_writer() -> None:
    """--tensorboard needs tensorboardX: say so before the run writes anything."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise TensorBoardError(
            "--tensorboard needs tensorboardX, which is not installed; pip install 'keras-batch-job[tensorboard]'"
        ) from None


class EpochEvents:
    """One event writer per training; a scalar per metric per epoch, flushed at once."""

    def __init__(self, out: Path, run_id: str, learning_rates: dict[str, float]):
        require_writer()
        from tensorboardX import SummaryWriter

        self._writer_class = SummaryWriter
        self.root = out / EVENTS_DIR / run_id
        self.learning_rates = learning_rates  # by model slug
        self.writers: dict[TrainingKey, Any] = {}  # tensorboardX SummaryWriters

    def listener(self, key: TrainingKey):
        return lambda record: self.write(key, record)

    def write(self, key: TrainingKey, record: EpochRecord) -> None:
        writer = self.writers.get(key)
        if writer is None:
            logdir = self.root / key.slug / f"seed-{key.seed}{split_suffix(key.split)}"
            writer = self._writer_class(logdir=str(logdir), flush_secs=1)
            self.writers[key] = writer
        for tag in TAGS:
            value = getattr(record, tag)
            if value is not None:
                writer.add_scalar(tag, value, record.epoch)
        writer.add_scalar("epoch_seconds", record.seconds, record.epoch)
        writer.add_scalar("learning_rate", self.learning_rates.get(key.slug, float("nan")), record.epoch)
        writer.flush()

    def write_all(self, key: TrainingKey, result: TrainingResult) -> None:
        """A training that ran elsewhere (Ray): its epochs, written when it returns."""
        for record in result.records:
            self.write(key, record)

    def finish(self, run_dir: Path) -> None:
        """Close the writers and copy the events into the finished run directory."""
        for writer in self.writers.values():
            writer.close()
        if self.root.exists():
            shutil.copytree(self.root, run_dir / EVENTS_DIR, dirs_exist_ok=True)
