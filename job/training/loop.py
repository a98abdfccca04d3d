"""The training unit: build a Keras model from a spec and train it with one seed, resumably.

`train(spec, seed, arrays, settings, checkpoint)` returns a `TrainingResult`: epoch records,
timing, the best epoch, any failure, class probabilities on the validation and test rows, and
the saved model as bytes. It knows nothing of the loop around it: it reads and writes only
the `Checkpoint` folder it is handed.

With `model`, `optim` and `feed` beside it, the only modules besides `environment` that import Keras.
It is backend-neutral: it runs on TensorFlow (default) and on JAX.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from job.result import EpochRecord, TrainingResult
from job.rundir.atomic import writing
from job.rundir.resume import Checkpoint, ResumeError
from job.specs import ModelSpec
from job.training.epochs import best_epoch_of, failure_of, stopped
from job.training.feed import Feed, feed
from job.training.inputs import SplitArrays, TrainSettings
from job.training.model import (
    build_model,
    dense_params,
    fresh_backend_state,
    logits_model,
    scaler_from,
    set_initial_weights,
)
from job.training.optim import make_optimizer

log = logging.getLogger(__name__)


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the training rows in `epoch` (1-based), from the seed alone: the same on every
    backend and Keras version, and the same after a resume as in an uninterrupted run."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of one epoch, training and validation apart, and its logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.val_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._v0 = time.perf_counter()

    def on_test_end(self, logs=None):
        self.val_seconds += time.perf_counter() - self._v0

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.t0
        self.logs = dict(logs or {})


def finite(value) -> float | None:
    """A logged metric as a float; None where it is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _compiled_model(
    spec: ModelSpec, seed: int, arrays: SplitArrays, settings: TrainSettings
) -> tuple[keras.Model, keras.Model]:
    """A fresh model whose initial weights depend on the seed alone, not on the backend or what ran before
    it; and its logits view, compiled with the loss computed from logits the same way on every backend."""
    fresh_backend_state()  # outside any timed region: fresh graph state per training, earlier ones released
    keras.mixed_precision.set_dtype_policy(settings.policy)  # clear_session resets it to float32
    keras.utils.set_random_seed(seed)  # what NumPy does not draw (dropout masks) comes from the backend
    lo, rng = scaler_from(arrays.x_train)
    model = build_model(spec, arrays.x_train.shape[1], arrays.n_classes, lo, rng)
    set_initial_weights(model, spec, seed)
    trainer = logits_model(model)
    trainer.compile(
        optimizer=make_optimizer(spec),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution(spec, arrays, settings),
        jit_compile=settings.jit_compile,
    )
    return model, trainer


def steps_per_execution(spec: ModelSpec, arrays: SplitArrays, settings: TrainSettings) -> int:
    """At most the steps in one epoch: more would only ask Keras for batches that do not exist."""
    steps = max(1, math.ceil(arrays.x_train.shape[0] / spec.batch_size))
    if settings.steps_per_execution > steps:
        log.info(
            "%s: steps per execution %d capped at the %d steps of an epoch",
            spec.name,
            settings.steps_per_execution,
            steps,
        )
        return steps
    return settings.steps_per_execution


def _fit_epoch(
    model: keras.Model, spec: ModelSpec, seed: int, epoch: int, arrays: SplitArrays, validation: Feed
) -> EpochRecord:
    """One epoch in the seed's own row order: one fit() call on the permuted rows (uint8 copies, never floats)."""
    order = epoch_permutation(seed, epoch, arrays.x_train.shape[0])
    rows = feed(spec.batch_size, arrays.x_train[order], arrays.y_train[order])
    timer = EpochTimer()
    fit_one_epoch(model, rows, validation, [keras.callbacks.TerminateOnNaN(), timer])
    logs = timer.logs
    return EpochRecord(
        epoch=epoch,
        loss=finite(logs.get("loss")),
        accuracy=finite(logs.get("accuracy")),
        val_loss=finite(logs.get("val_loss")),
        val_accuracy=finite(logs.get("val_accuracy")),
        seconds=timer.seconds,
        train_seconds=timer.seconds - timer.val_seconds,
        val_seconds=timer.val_seconds,
        compile=False,
    )


def fit_one_epoch(model: keras.Model, rows: Feed, validation: Feed, callbacks: list) -> None:
    """One fit() call over `rows` in their order (the caller's order is the shuffle), validated on `validation`."""
    model.fit(
        rows.x,
        rows.y,
        batch_size=rows.batch_size,
        epochs=1,
        shuffle=False,  # the rows' order is the shuffle
        **validation.as_validation(),
        callbacks=callbacks,
        verbose=0,  # one log line per epoch instead of a progress bar
    )


def save_backup(model: keras.Model, checkpoint: Checkpoint, epochs_done: int) -> None:
    """Weights and optimizer state after an epoch, in a new file; then the metadata points at it. A kill
    before that leaves the previous backup whole and named, so the epoch is redone from its start."""
    checkpoint.backup_dir.mkdir(exist_ok=True)
    weights = checkpoint.backup_weights_path(epochs_done)
    with writing(weights):
        model.save_weights(weights)  # a Keras 3 weights file holds the optimizer's variables too
    states = [keras.ops.convert_to_numpy(v).ravel().tolist() for v in _seed_states(model)]
    checkpoint.commit_backup(epochs_done, states)  # but not the dropout layers' random streams


def _save_best(model: keras.Model, checkpoint: Checkpoint) -> None:
    with writing(checkpoint.best_weights_path):
        model.save_weights(checkpoint.best_weights_path)


def restore_backup(model: keras.Model, checkpoint: Checkpoint) -> None:
    _, weights = checkpoint.backup()
    model.optimizer.build(model.trainable_variables)  # so that load_weights restores the moments and the step
    model.load_weights(weights)
    seeds, states = checkpoint.backup_seeds(), _seed_states(model)
    if seeds is None:
        return  # no dropout, or a backup from before the streams were kept: they restart, as they did then
    if len(seeds) != len(states) or any(len(s) != int(np.prod(v.shape)) for s, v in zip(seeds, states, strict=True)):
        raise ResumeError(f"{checkpoint.dir}: its backup does not fit this model; delete it to retrain that model")
    for state, values in zip(states, seeds, strict=True):
        state.assign(np.asarray(values, dtype=state.dtype).reshape(state.shape))


def _seed_states(model: keras.Model) -> list:
    """The dropout layers' random-stream states (each a SeedGenerator's), in the model's order: a resumed training
    continues their masks instead of drawing the first epoch's again."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def train(
    spec: ModelSpec,
    seed: int,
    arrays: SplitArrays,
    settings: TrainSettings,
    checkpoint: Checkpoint,
    position: str = "1/1",
) -> TrainingResult:
    """Fit one spec with one seed; continues from `checkpoint` if an earlier attempt was interrupted."""
    model, trainer = _compiled_model(spec, seed, arrays, settings)
    epochs = settings.epochs_override or spec.epochs
    records = checkpoint.prior_records()
    if records:
        log.info("%s: resuming after epoch %d", spec.name, len(records))
        restore_backup(trainer, checkpoint)
    best = max((r.val_accuracy for r in records if r.loss is not None and r.val_accuracy is not None), default=None)
    prior_seconds = sum(r.seconds for r in records)
    t0 = time.perf_counter()
    first = True  # the first epoch of each call includes tracing and compiling
    validation = feed(settings.val_batch_size, arrays.x_val, arrays.y_val)  # built once, read every epoch
    while len(records) < epochs and not stopped(records, spec.patience, spec.monitor):
        record = _fit_epoch(trainer, spec, seed, len(records) + 1, arrays, validation)
        record.compile, first = first, False
        checkpoint.append(record)  # before the backup: a record may exist without its backup, never the reverse
        records.append(record)
        _log_epoch(spec, position, epochs, record)
        if record.loss is None:
            break  # TerminateOnNaN stopped it; the failure is read from the records
        if record.val_accuracy is not None and (best is None or record.val_accuracy > best):
            best = record.val_accuracy  # ties keep the earlier epoch (fewer updates)
            _save_best(trainer, checkpoint)
        save_backup(trainer, checkpoint, len(records))
    fit_seconds = time.perf_counter() - t0 + prior_seconds
    result = _result_of(spec, seed, records, epochs, fit_seconds, dense_params(model))
    result.loss_scale, result.skipped_steps = loss_scale_report(trainer, len(records), arrays.x_train.shape[0], spec)
    if result.failure is not None:  # TerminateOnNaN stopped it mid-epoch: the steps it took are not known
        result.skipped_steps = None
    return _finish((model, trainer), spec, arrays, settings, checkpoint, result)


def loss_scale_report(
    trainer: keras.Model, epochs_run: int, rows: int, spec: ModelSpec
) -> tuple[float | None, int | None]:
    """Under mixed_float16 (Keras wraps the optimizer in a `LossScaleOptimizer`): the final dynamic loss scale,
    and the steps it skipped for overflow: the steps taken less the inner optimizer's updates, which a skipped step
    does not count. (None, None) without loss scaling."""
    optimizer = trainer.optimizer
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None, None
    taken = epochs_run * max(1, math.ceil(rows / spec.batch_size))
    updates = int(keras.ops.convert_to_numpy(optimizer.inner_optimizer.iterations))
    return float(keras.ops.convert_to_numpy(optimizer.dynamic_scale)), max(0, taken - updates)


def _result_of(
    spec: ModelSpec, seed: int, records: list[EpochRecord], epochs: int, fit_seconds: float, params: int
) -> TrainingResult:
    failure = failure_of(records)
    best_epoch = best_epoch_of(records)
    result = TrainingResult(
        name=spec.name,
        seed=seed,
        records=records,
        epochs_planned=epochs,
        best_epoch=best_epoch,
        fit_seconds=fit_seconds,
        stopped_early=len(records) < epochs and failure is None,
        failure=failure,
        params=params,
    )
    return result


def _finish(
    models: tuple[keras.Model, keras.Model],
    spec: ModelSpec,
    arrays: SplitArrays,
    settings: TrainSettings,
    checkpoint: Checkpoint,
    result: TrainingResult,
) -> TrainingResult:
    """The best epoch's weights, its probabilities on validation and test rows, and the saved model
    (probabilities out, compiled with the trained optimizer so the file holds its state too)."""
    model, trainer = models  # the model and its logits view, which share their layers
    if result.failure is not None or result.best_epoch is None or not checkpoint.best_weights_path.exists():
        return result
    trainer.load_weights(checkpoint.best_weights_path)  # the layers are the model's too
    result.val_proba = _predict(model, arrays.x_val, settings)
    result.test_proba = _predict(model, arrays.x_test, settings)
    model.compile(optimizer=trainer.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with tempfile.TemporaryDirectory(dir=checkpoint.dir) as tmp:
        path = Path(tmp) / f"{spec.slug}.keras"
        with writing(checkpoint.dir / f"{spec.slug}.keras"):
            model.save(path)
        result.model_bytes = path.read_bytes()
    return result


def _predict(model: keras.Model, x: np.ndarray, settings: TrainSettings) -> np.ndarray:
    rows = feed(settings.val_batch_size, x)
    return np.asarray(model.predict(rows.x, batch_size=rows.batch_size, verbose=0), dtype=np.float32)


def _log_epoch(spec: ModelSpec, position: str, epochs: int, record: EpochRecord) -> None:
    log.info(
        "model %s (%s) epoch %d/%d  loss %.4f  val_acc %.4f  %.2fs%s",
        position,
        spec.name,
        record.epoch,
        epochs,
        math.nan if record.loss is None else record.loss,
        math.nan if record.val_accuracy is None else record.val_accuracy,
        record.seconds,
        "  (includes compile)" if record.compile else "",
    )
