"""The training unit: build a Keras model from a spec and train it with one seed, resumably.

`train(spec, seed, arrays, settings, checkpoint)` returns a `TrainingResult`: epoch records,
timing, the best epoch, any failure, class probabilities on the validation and test rows, and
the saved model as bytes. It knows nothing of the loop around it: it reads and writes only
the `Checkpoint` folder it is handed.

This is the only module besides `environment` that imports Keras. It is backend-neutral:
it runs on TensorFlow (default) and on JAX.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from job.epochs import best_epoch_of, failure_of, stopped
from job.init import dense_stack
from job.result import EpochRecord, TrainingResult
from job.resume import Checkpoint
from job.rundir import writing
from job.specs import ModelSpec
from job.work import SplitArrays, TrainSettings

log = logging.getLogger(__name__)


def adam(learning_rate: float = 0.001, **args) -> keras.optimizers.Optimizer:
    """The seed's optimizer: Keras's Adam (default learning rate 0.001 unless a spec sets one).

    On TensorFlow its per-variable update runs as one fused kernel (`ResourceApplyAdam`, the
    formula Keras's Adam.update_step spells out as about a dozen separate ops, each a full
    pass over the weights). On CPU that cuts a Model 4 epoch by about a third. It stays a
    plain `keras.optimizers.Adam` for saving, so a saved model loads without this package.
    On JAX, XLA fuses the same ops by itself, so nothing changes there.
    """
    optimizer = keras.optimizers.Adam(learning_rate, **args)
    if keras.backend.backend() == "tensorflow":
        optimizer.update_step = _fused_adam_step.__get__(optimizer)
    return optimizer


def make_optimizer(spec: ModelSpec) -> keras.optimizers.Optimizer:
    """The spec's optimizer with its arguments. Only Adam has a fused path (see `adam`); the others are
    Keras's own, so no optimizer is handled by code it was not measured with."""
    args = dict(spec.optimizer_args)
    if spec.optimizer == "adam":
        return adam(spec.learning_rate, **args)
    stock = {"adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
    return stock[spec.optimizer](learning_rate=spec.learning_rate, **args)


def _fused_adam_step(self: keras.optimizers.Adam, gradient, variable, learning_rate) -> None:
    """Adam.update_step for TensorFlow: the same formula in one kernel.

    m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
    """
    import tensorflow as tf

    if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
        return keras.optimizers.Adam.update_step(self, gradient, variable, learning_rate)
    var = variable.value if isinstance(variable, keras.Variable) else variable
    index = self._get_variable_index(variable)
    m, v = self._momentums[index].value, self._velocities[index].value
    dtype = var.dtype
    step = tf.cast(self.iterations + 1, dtype)  # the base optimizer increments after the update
    tf.raw_ops.ResourceApplyAdam(
        var=var.handle,
        m=m.handle,
        v=v.handle,
        beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
        beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
        lr=tf.cast(learning_rate, dtype),
        beta1=tf.cast(self.beta_1, dtype),
        beta2=tf.cast(self.beta_2, dtype),
        epsilon=tf.cast(self.epsilon, dtype),
        grad=tf.cast(gradient, dtype),
        use_locking=False,
        use_nesterov=False,
    )
    return None


def configure(policy: str, deterministic: bool = True) -> tuple[bool, bool]:
    """Global Keras state for one run: dtype policy and op determinism (each training seeds itself).

    Returns (deterministic, loss_scaling)."""
    keras.mixed_precision.set_dtype_policy(policy)
    determinism = False
    backend = keras.backend.backend()
    if deterministic and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        determinism = True
    elif backend == "jax":
        import os

        determinism = "xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", "") or _jax_on_cpu()
    return determinism, policy == "mixed_float16"


def _jax_on_cpu() -> bool:
    import jax

    return jax.devices()[0].platform == "cpu"


def build_model(
    spec: ModelSpec,
    n_features: int,
    n_classes: int,
    feature_min: np.ndarray,
    feature_range: np.ndarray,
) -> keras.Model:
    """Raw 0..255 uint8 pixels in, class probabilities out.

    Min-max scaling (fitted on the training split, clipped to [0, 1]) is the model's first layer, so
    the saved model needs no scaler beside it. Normalization computes
    (x - mean) / sqrt(variance), so mean=min and variance=range**2 is MinMaxScaler.
    """
    inputs = keras.Input(shape=(n_features,), dtype="uint8", name="pixels")
    x = keras.layers.Normalization(
        mean=feature_min.astype("float32"),
        variance=np.square(feature_range.astype("float32")),
        dtype="float32",  # exact for 0..255 even under a float16 policy
        name="minmax_scale",
    )(inputs)
    # MinMaxScaler(clip=True): a test pixel brighter than any training pixel in its place
    # (common at the borders of a small training split) stays at 1 instead of exploding.
    x = keras.layers.ReLU(max_value=1.0, dtype="float32", name="clip_0_1")(x)
    for i, units in enumerate(spec.hidden, start=1):
        x = keras.layers.Dense(
            units, activation=spec.activation, kernel_initializer=spec.initializer, name=f"hidden_{i}"
        )(x)
        if spec.dropout > 0:  # masks come from the backend's stream, seeded per training
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    # Logits and softmax stay float32 under mixed precision: float16 probabilities underflow.
    logits = keras.layers.Dense(n_classes, dtype="float32", name="logits")(x)
    outputs = keras.layers.Softmax(dtype="float32", name="output")(logits)
    model = keras.Model(inputs, outputs, name=spec.slug)
    return model


def logits_model(model: keras.Model) -> keras.Model:
    """The same layers up to the logits: what training fits, with the loss computed from logits."""
    return keras.Model(model.inputs, model.get_layer("logits").output, name=f"{model.name}_logits")


def set_initial_weights(model: keras.Model, spec: ModelSpec, seed: int) -> None:
    """The seed's NumPy-drawn kernels and zero biases: the same start on every backend."""
    widths = [model.inputs[0].shape[-1], *spec.hidden, model.get_layer("logits").units]
    values = iter(dense_stack(spec.initializer, widths, seed))
    for name in [f"hidden_{i}" for i in range(1, len(spec.hidden) + 1)] + ["logits"]:
        layer = model.get_layer(name)
        layer.set_weights([next(values), next(values)])


def scaler_from(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel min and range on the training split; constant pixels get range 1, as sklearn does."""
    lo = x_train.min(axis=0).astype(np.float32)
    rng = x_train.max(axis=0).astype(np.float32) - lo
    rng[rng == 0] = 1.0
    return lo, rng


def dense_params(model: keras.Model) -> int:
    """Trainable parameters: the number the seed's table reports."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))



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


def _num(value) -> float | None:
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
    keras.backend.clear_session()  # outside any timed region: fresh graph state per training
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
        steps_per_execution=_steps_per_execution(spec, arrays, settings),
        jit_compile=settings.jit_compile,
    )
    return model, trainer


def _steps_per_execution(spec: ModelSpec, arrays: SplitArrays, settings: TrainSettings) -> int:
    """At most the steps in one epoch: more would only ask Keras for batches that do not exist."""
    steps = max(1, math.ceil(arrays.x_train.shape[0] / spec.batch_size))
    if settings.steps_per_execution > steps:
        log.info("%s: steps per execution %d capped at the %d steps of an epoch", spec.name,
                 settings.steps_per_execution, steps)  # fmt: skip
        return steps
    return settings.steps_per_execution


@dataclass(frozen=True)
class Feed:
    """Rows in a fixed order, in batches, as fit() and predict() take them (`feed` makes one)."""

    x: Any  # a tf.data.Dataset of whole batches on TensorFlow; the rows themselves elsewhere
    y: np.ndarray | None = None
    batch_size: int | None = None

    def as_validation(self) -> dict:
        data = self.x if self.y is None else (self.x, self.y)
        return {"validation_data": data, "validation_batch_size": self.batch_size}


def feed(batch_size: int, x: np.ndarray, y: np.ndarray | None = None) -> Feed:
    """These rows in this order, in batches of `batch_size` (the last one shorter).

    On TensorFlow, a `tf.data` feed of batches cut in NumPy: Keras's own feed for arrays traces a new gather
    function at every call (about 0.04 s, twice per epoch with one fit() per epoch: a tenth of Model 1's
    training), and this one traces nothing. The batches, and so the numbers, are the same (tested). On other
    backends Keras's NumPy feed costs nothing to build, and the arrays go as they are."""
    if keras.backend.backend() != "tensorflow":
        return Feed(x, y, batch_size)
    import tensorflow as tf

    full = len(x) // batch_size * batch_size
    parts = [a for a in (x, y) if a is not None]
    data = tf.data.Dataset.from_tensor_slices(tuple(a[:full].reshape(-1, batch_size, *a.shape[1:]) for a in parts))
    if full < len(x):
        data = data.concatenate(tf.data.Dataset.from_tensors(tuple(a[full:] for a in parts)))
    return Feed(data)


def _fit_epoch(
    model: keras.Model, spec: ModelSpec, seed: int, epoch: int, arrays: SplitArrays, validation: Feed
) -> EpochRecord:
    """One epoch in the seed's own row order: one fit() call on the permuted rows (uint8 copies: 19 MB at the
    seed's scale)."""
    order = epoch_permutation(seed, epoch, arrays.x_train.shape[0])
    rows = feed(spec.batch_size, arrays.x_train[order], arrays.y_train[order])
    timer = EpochTimer()
    model.fit(
        rows.x,
        rows.y,
        batch_size=rows.batch_size,
        epochs=1,
        shuffle=False,  # the order above is the shuffle
        **validation.as_validation(),
        callbacks=[keras.callbacks.TerminateOnNaN(), timer],
        verbose=0,  # one log line per epoch instead of a progress bar
    )
    logs = timer.logs
    return EpochRecord(
        epoch=epoch,
        loss=_num(logs.get("loss")),
        accuracy=_num(logs.get("accuracy")),
        val_loss=_num(logs.get("val_loss")),
        val_accuracy=_num(logs.get("val_accuracy")),
        seconds=timer.seconds,
        train_seconds=timer.seconds - timer.val_seconds,
        val_seconds=timer.val_seconds,
        compile=False,
    )


def _backup(model: keras.Model, checkpoint: Checkpoint, epochs_done: int) -> None:
    """Weights and optimizer state after an epoch, in a new file; then the metadata points at it. A kill
    before that leaves the previous backup whole and named, so the epoch is redone from its start."""
    checkpoint.backup_dir.mkdir(exist_ok=True)
    weights = checkpoint.backup_weights_path(epochs_done)
    with writing(weights):
        model.save_weights(weights)  # a Keras 3 weights file holds the optimizer's variables too
    checkpoint.commit_backup(epochs_done)


def _save_best(model: keras.Model, checkpoint: Checkpoint) -> None:
    with writing(checkpoint.best_weights_path):
        model.save_weights(checkpoint.best_weights_path)


def _restore(model: keras.Model, checkpoint: Checkpoint) -> None:
    _, weights = checkpoint.backup()
    model.optimizer.build(model.trainable_variables)  # so that load_weights restores the moments and the step
    model.load_weights(weights)


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
        _restore(trainer, checkpoint)
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
        _backup(trainer, checkpoint, len(records))
    fit_seconds = time.perf_counter() - t0 + prior_seconds
    return _finish((model, trainer), spec, seed, arrays, settings, checkpoint, records, epochs, fit_seconds)


def _finish(models, spec, seed, arrays, settings, checkpoint, records, epochs, fit_seconds) -> TrainingResult:
    """The best epoch's weights, its probabilities on validation and test rows, and the saved model
    (probabilities out, compiled with the trained optimizer so the file holds its state too)."""
    model, trainer = models
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
        params=dense_params(model),
    )
    if failure is not None or best_epoch is None or not checkpoint.best_weights_path.exists():
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
