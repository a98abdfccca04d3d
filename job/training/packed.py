"""The packed training unit: K trainings of one spec as one Keras program, each keeping a separate training's semantics.

`train_pack(spec, members, settings, checkpoint)` takes the members' (seed, split rows) and returns one
`TrainingResult` per member, as `loop.train` would for each. How each member stays its own training:
- **Weights and batches:** its initial weights are the ones its seed draws for a separate training, bit for bit
  (`pack.set_packed_initial_weights`); every epoch it sees its own rows in its own seed's order
  (`loop.epoch_permutation`), its scaling is fitted on its own rows.
- **Loss and update:** the loss is the sum of the members' own mean losses, and Adam works element by element,
  so each member's gradient and update are its own.
- **Early stopping, by discarded records:** a member that meets its stopping rule goes on being computed with the
  others, but nothing after its last epoch reaches its records, its best epoch or its saved weights.
- **Failure, by masking:** a member whose training loss turns NaN or inf is marked failed at that epoch; its
  weights and optimizer moments are set to zero and its loss term to zero (label -1), so it computes finite
  numbers, never moves again, and the others go on.
- **Its own outputs:** its records, its best epoch's weights (kept per member), and its predictions and saved model
  from `pack.member_model`: a plain Keras model with a separate training's layers.
- **Timing:** the pack's wall time, divided by K, is each member's (`pack_size` marks it as shared).
- **The epoch:** on TensorFlow in blocks of steps, each block one XLA program (`compiled.CompiledEpochs`); on JAX
  Keras's `fit()`, whose step is compiled already.
- **Dropout:** masks are drawn for the whole pack from the first member's seed, so they differ from a separate
  training's.
- **Loss scaling:** not packed. Keras's `LossScaleOptimizer` checks every gradient at once, so one member's
  overflow would skip every member's step; the run packs only where no loss scaling runs
  (`packing.pack_allowed`).

The pack checkpoints as one unit after every epoch (`PackCheckpoint`): the whole model with its optimizer state,
one line of member records per epoch, and each member's best weights. A pack killed and resumed continues from its
last whole epoch.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from job.result import EpochRecord, TrainingResult
from job.rundir.resume import PackCheckpoint
from job.specs import ModelSpec
from job.training.compiled import CompiledEpochs, EpochRun
from job.training.epochs import best_epoch_of, failure_of, stopped
from job.training.feed import feed
from job.training.inputs import SplitArrays, TrainSettings
from job.training.loop import (
    EpochTimer,
    epoch_permutation,
    finite,
    fit_one_epoch,
    restore_backup,
    save_backup,
    steps_per_execution,
)
from job.training.model import fresh_backend_state, logits_model, scaler_from
from job.training.optim import make_optimizer
from job.training.pack import (
    build_packed_model,
    dense_names,
    member_model,
    member_sum_loss,
    member_weights,
    set_packed_initial_weights,
)
from job.training.packing import pack_allowed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """One training of the pack: its seed, the split whose rows it trains on, and those rows."""

    seed: int
    split: int
    arrays: SplitArrays
    position: str = "1/1"


class MemberMetrics(keras.metrics.Metric):
    """Each member's mean loss and accuracy over the rows seen, as one vector: `[loss_1..loss_K, acc_1..acc_K]`.
    The loss is Keras's own per-batch mean weighted by the batch's rows, as its `loss` log is for one model."""

    def __init__(self, members: int, name: str = "members", **kwargs):
        super().__init__(name=name, **kwargs)
        self.members = members
        self.loss_sum = self.add_variable(shape=(members,), initializer="zeros", name="loss_sum")
        self.correct = self.add_variable(shape=(members,), initializer="zeros", name="correct")
        self.rows = self.add_variable(shape=(), initializer="zeros", name="rows")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y = keras.ops.maximum(keras.ops.cast(y_true, "int32"), 0)
        logits = keras.ops.cast(y_pred, "float32")
        per_row = keras.ops.sparse_categorical_crossentropy(y, logits, from_logits=True)  # (batch, K)
        hits = keras.ops.cast(keras.ops.equal(keras.ops.argmax(logits, axis=-1), y), "float32")
        self.loss_sum.assign_add(keras.ops.sum(per_row, axis=0))
        self.correct.assign_add(keras.ops.sum(hits, axis=0))
        self.rows.assign_add(keras.ops.cast(keras.ops.shape(y)[0], "float32"))

    def result(self):
        rows = keras.ops.maximum(self.rows, 1.0)
        return keras.ops.concatenate([self.loss_sum / rows, self.correct / rows])

    def reset_state(self):
        for v in (self.loss_sum, self.correct, self.rows):
            v.assign(keras.ops.zeros(v.shape))


def _compiled(spec: ModelSpec, members: list[Member], settings: TrainSettings):
    fresh_backend_state()
    keras.mixed_precision.set_dtype_policy(settings.policy)
    keras.utils.set_random_seed(members[0].seed)  # dropout masks: the pack's own stream
    scalers = [scaler_from(m.arrays.x_train) for m in members]
    lows, ranges = np.stack([s[0] for s in scalers]), np.stack([s[1] for s in scalers])
    first = members[0].arrays
    model = build_packed_model(spec, first.x_train.shape[1], first.n_classes, lows, ranges)
    set_packed_initial_weights(model, spec, [m.seed for m in members])
    trainer = logits_model(model)
    trainer.compile(
        optimizer=make_optimizer(spec),
        loss=member_sum_loss,
        metrics=[MemberMetrics(len(members))],
        steps_per_execution=steps_per_execution(spec, first, settings),
        jit_compile=settings.jit_compile,
    )
    return model, trainer, scalers


def _mask_out(trainer: keras.Model, spec: ModelSpec, k: int) -> None:
    """Member k's weights and optimizer moments to zero: it computes finite numbers and, with its loss term
    masked, its gradient and Adam's moments stay zero, so it never moves again."""
    variables = [v for name in dense_names(spec) for v in trainer.get_layer(name).weights]
    ids = {id(v) for v in variables}
    slots = [
        v
        for v in trainer.optimizer.variables
        if len(v.shape) and any(tuple(v.shape) == tuple(w.shape) for w in variables) and id(v) not in ids
    ]
    for v in variables + slots:
        value = keras.ops.convert_to_numpy(v.value).copy()
        value[k] = 0
        v.assign(value)


def _epoch_data(members: list[Member], epoch: int, active: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Every member's rows in its own seed's order for `epoch`, side by side: `(rows, K, pixels)` uint8 and
    `(rows, K)` labels, -1 for a member masked out. Members of one split are gathered in one pass."""
    orders = np.stack([epoch_permutation(m.seed, epoch, m.arrays.x_train.shape[0]) for m in members], axis=1)
    first = members[0].arrays
    if all(m.arrays is first for m in members):
        x, y = first.x_train[orders], first.y_train[orders]
    else:
        x = np.stack([m.arrays.x_train[orders[:, i]] for i, m in enumerate(members)], axis=1)
        y = np.stack([m.arrays.y_train[orders[:, i]] for i, m in enumerate(members)], axis=1)
    y = np.where(np.asarray(active)[None, :], y, -1)
    return x, y.astype(np.int32)


@dataclass
class _Progress:
    """Each member's records so far, whether it failed or ended (stopped or failed), and its best val accuracy."""

    records: list[list[EpochRecord]]
    failed: list[bool]
    ended: list[bool]
    best: list[float | None]

    @classmethod
    def of(cls, spec: ModelSpec, lines: list[list[EpochRecord | None]], k: int) -> _Progress:
        records = [[r for line in lines if (r := line[i]) is not None] for i in range(k)]
        failed = [failure_of(r) is not None for r in records]
        ended = [f or stopped(r, spec.patience, spec.monitor) for f, r in zip(failed, records, strict=True)]
        best = [
            max((v for r in rs if r.loss is not None and (v := r.val_accuracy) is not None), default=None)
            for rs in records
        ]
        return cls(records, failed, ended, best)


def train_pack(
    spec: ModelSpec, members: list[Member], settings: TrainSettings, checkpoint: PackCheckpoint
) -> list[TrainingResult]:
    """Fit K trainings of `spec` as one program; continues from `checkpoint` if an earlier attempt was
    interrupted. One `TrainingResult` per member, in the members' order."""
    k = len(members)
    if not pack_allowed(settings.policy):
        raise ValueError(f"{spec.name}: a pack cannot train under {settings.policy}: one loss scale for every member")
    checkpoint.dir.mkdir(parents=True, exist_ok=True)
    model, trainer, scalers = _compiled(spec, members, settings)
    epochs = settings.epochs_override or spec.epochs
    lines = checkpoint.prior(k)  # one list of member records (None after a member ended) per whole epoch
    if lines:
        log.info("%s pack of %d: resuming after epoch %d", spec.name, k, len(lines))
        restore_backup(trainer, checkpoint.unit)
    progress = _Progress.of(spec, lines, k)
    x_val = np.stack([m.arrays.x_val for m in members], axis=1)
    y_val = np.stack([m.arrays.y_val for m in members], axis=1).astype(np.int32)
    fit_epoch = _epoch_runner(trainer, spec, members, settings, (x_val, y_val))
    t0, compile_epoch, epoch = time.perf_counter(), True, len(lines)
    while epoch < epochs and not all(progress.ended):
        epoch += 1
        x, y = _epoch_data(members, epoch, [not f for f in progress.failed])
        run = fit_epoch(x, y)
        line = _line(epoch, run, progress.ended, compile_epoch)
        compile_epoch = False
        for i, record in enumerate(line):
            if record is not None:
                _take(progress, i, record, (model, trainer), spec, checkpoint)
        checkpoint.append(epoch, line)  # before the backup: a line may exist without its backup, never the reverse
        save_backup(trainer, checkpoint.unit, epoch)
        _log_epoch(spec, members, epochs, epoch, line, run.seconds)
    fit_seconds = (time.perf_counter() - t0 + sum(_pack_seconds(lines))) / k
    results = []
    for i, member in enumerate(members):
        result = _result_of(spec, member, progress.records[i], epochs, fit_seconds, k)
        weights = checkpoint.best(i)
        if result.failure is None and result.best_epoch is not None and weights is not None:
            model_i = member_model(spec, weights, member.arrays.n_classes, scalers[i])
            _attach(result, model_i, spec, member, settings, checkpoint)
        results.append(result)
    return results


def _epoch_runner(
    trainer: keras.Model,
    spec: ModelSpec,
    members: list[Member],
    settings: TrainSettings,
    val: tuple[np.ndarray, np.ndarray],
) -> Callable[[np.ndarray, np.ndarray], EpochRun]:
    """How the pack runs an epoch: on TensorFlow, blocks of `steps_per_execution` steps, each one XLA program
    (`compiled.CompiledEpochs`: Keras's own loop costs about as much as a small pack's arithmetic there); on
    other backends Keras's `fit()`, whose step JAX compiles already. A member's NaN is its own: no
    TerminateOnNaN either way."""
    if keras.backend.backend() == "tensorflow":
        block = steps_per_execution(spec, members[0].arrays, settings)
        return CompiledEpochs(trainer, spec.batch_size, block, val, settings.val_batch_size).fit_epoch
    validation = feed(settings.val_batch_size, *val)  # built once, read every epoch

    def fit_epoch(x: np.ndarray, y: np.ndarray) -> EpochRun:
        timer = EpochTimer()
        fit_one_epoch(trainer, feed(spec.batch_size, x, y), validation, [timer])
        return EpochRun(timer.logs, timer.seconds, timer.val_seconds)

    return fit_epoch


def _line(epoch: int, timer: EpochRun, ended: list[bool], compile_epoch: bool) -> list[EpochRecord | None]:
    """The epoch's record of every member still training (None for one that ended): its own loss and accuracy
    from the pack's `MemberMetrics`, and the pack's seconds shared out."""
    k = len(ended)
    values, val_values = np.asarray(timer.logs["members"]), np.asarray(timer.logs["val_members"])
    return [
        None
        if ended[i]
        else EpochRecord(
            epoch=epoch,
            loss=finite(values[i]),
            accuracy=finite(values[k + i]),
            val_loss=finite(val_values[i]),
            val_accuracy=finite(val_values[k + i]),
            seconds=timer.seconds / k,
            train_seconds=(timer.seconds - timer.val_seconds) / k,
            val_seconds=timer.val_seconds / k,
            compile=compile_epoch,
        )
        for i in range(k)
    ]


def _take(
    progress: _Progress,
    i: int,
    record: EpochRecord,
    models: tuple[keras.Model, keras.Model],
    spec: ModelSpec,
    checkpoint: PackCheckpoint,
) -> None:
    """Member i's epoch: kept in its records; a non-finite loss masks it out; a better validation accuracy saves
    its weights; its stopping rule may end it (later epochs never reach its records)."""
    model, trainer = models
    progress.records[i].append(record)
    if record.loss is None:
        progress.failed[i] = progress.ended[i] = True
        log.warning("%s member %d: loss became nan or inf in epoch %d; masked out", spec.name, i + 1, record.epoch)
        _mask_out(trainer, spec, i)
        return
    so_far = progress.best[i]
    if record.val_accuracy is not None and (so_far is None or record.val_accuracy > so_far):
        progress.best[i] = record.val_accuracy  # ties keep the earlier epoch, as a separate training's
        checkpoint.save_best(i, member_weights(model, spec, i))
    progress.ended[i] = stopped(progress.records[i], spec.patience, spec.monitor)


def _pack_seconds(lines: list[list[EpochRecord | None]]) -> list[float]:
    return [next((r.seconds for r in line if r is not None), 0.0) * len(line) for line in lines]


def _result_of(
    spec: ModelSpec, member: Member, records: list[EpochRecord], epochs: int, fit_seconds: float, k: int
) -> TrainingResult:
    failure = failure_of(records)
    return TrainingResult(
        name=spec.name,
        seed=member.seed,
        split=member.split,
        records=records,
        epochs_planned=epochs,
        best_epoch=best_epoch_of(records),
        fit_seconds=fit_seconds,
        stopped_early=len(records) < epochs and failure is None,
        failure=failure,
        params=spec.param_count(member.arrays.x_train.shape[1], member.arrays.n_classes),
        pack_size=k,
    )


def _attach(
    result: TrainingResult,
    model: keras.Model,
    spec: ModelSpec,
    member: Member,
    settings: TrainSettings,
    checkpoint: PackCheckpoint,
) -> None:
    """The member's probabilities on its validation and test rows, and its saved model (a fresh optimizer, built:
    an unbuilt one is saved without its slots, and every load then warns that it skipped the file's variables)."""
    result.val_proba = _predict(model, member.arrays.x_val, settings)
    result.test_proba = _predict(model, member.arrays.x_test, settings)
    optimizer = make_optimizer(spec)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    optimizer.build(model.trainable_variables)
    with tempfile.TemporaryDirectory(dir=checkpoint.dir) as tmp:
        path = Path(tmp) / f"{spec.slug}.keras"
        model.save(path)
        result.model_bytes = path.read_bytes()


def _predict(model: keras.Model, x: np.ndarray, settings: TrainSettings) -> np.ndarray:
    """Probabilities, called batch by batch: a pack's K member models would each trace a predict function."""
    step = settings.val_batch_size
    parts = [keras.ops.convert_to_numpy(model(x[i : i + step], training=False)) for i in range(0, len(x), step)]
    return np.concatenate(parts).astype(np.float32)


def _log_epoch(
    spec: ModelSpec, members: list[Member], epochs: int, epoch: int, line: list[EpochRecord | None], seconds: float
) -> None:
    accs = " ".join("-" if r is None or r.val_accuracy is None else f"{r.val_accuracy:.4f}" for r in line)
    log.info(
        "pack of %d (%s, %s) epoch %d/%d  val_acc %s  %.2fs",
        len(members),
        spec.name,
        ", ".join(m.position for m in members),
        epoch,
        epochs,
        accs,
        seconds,
    )
