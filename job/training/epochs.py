"""Pure rules over a training's epoch records: early stopping, the best epoch, failure, steady time.

No Keras: the training unit applies them as it trains, and resume and evaluation replay them.
"""

from __future__ import annotations

import math
import statistics

from job.result import EpochRecord, Failure


def stopped(records: list[EpochRecord], patience: int, monitor: str = "loss") -> bool:
    """Keras's EarlyStopping(monitor, patience) replayed over the records: `patience` epochs without
    improvement after the best one. A non-finite training loss stops too (TerminateOnNaN)."""
    sign = -1.0 if "accuracy" in monitor else 1.0  # accuracy improves upwards, loss downwards
    best, wait = None, 0
    for rec in records:
        if rec.loss is None:
            return True
        value = getattr(rec, monitor)
        if value is None:
            wait += 1
        elif best is None or sign * value < sign * best:
            best, wait = value, 0
        else:
            wait += 1
    return wait >= patience


def failure_of(records: list[EpochRecord]) -> Failure | None:
    for rec in records:
        if rec.loss is None:
            return Failure(rec.epoch, "training loss became nan or inf (TerminateOnNaN stopped it)")
    return None


def best_epoch_of(records: list[EpochRecord]) -> int | None:
    """The epoch with the highest validation accuracy; ties keep the earlier one; NaN epochs never count."""
    best, best_epoch = -math.inf, None
    for rec in records:
        if rec.val_accuracy is None or rec.loss is None:
            continue
        if rec.val_accuracy > best:
            best, best_epoch = rec.val_accuracy, rec.epoch
    return best_epoch


def steady_epoch_seconds(records: list[EpochRecord]) -> float | None:
    """Median epoch time without the compile epochs: the cost that scales with epochs."""
    steady = [r.seconds for r in records if not r.compile]
    return statistics.median(steady) if steady else None
