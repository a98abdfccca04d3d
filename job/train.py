"""Build a Keras model from a spec and train it with the seed's protocol, made resumable.

This is the only module besides `environment` that imports Keras. It is
backend-neutral: it runs on TensorFlow (default) and on JAX.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from job.specs import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    policy: str = "float32"
    steps_per_execution: int = 32  # amortises per-step dispatch; epoch logs stay exact
    val_batch_size: int = 2048  # validation is inference only: big batches, same numbers
    # Keras's "auto": XLA on GPU, not on CPU, and always on JAX. Forcing XLA on the 2-core CPU
    # looked ~17% faster over 3 epochs of Model 4 but was slower over the full benchmark
    # (1.51x against 1.73x without it), so the job keeps Keras's choice.
    jit_compile: bool | str = "auto"
    epochs_override: int | None = None


@dataclass
class TrainOutcome:
    """What fit produced for one spec, before evaluation on the test split."""

    records: list[dict]
    epochs_planned: int
    best_epoch: int | None  # 1-based; None if no epoch finished cleanly
    fit_seconds: float
    stopped_early: bool
    failure: dict | None = None
    model: object | None = field(default=None, repr=False)


def adam(learning_rate: float | None = None) -> keras.optimizers.Optimizer:
    """The seed's optimizer: Keras's Adam (default learning rate 0.001 unless a spec sets one).

    On TensorFlow its per-variable update runs as one fused kernel (`ResourceApplyAdam`, the
    formula Keras's Adam.update_step spells out as about a dozen separate ops, each a full
    pass over the weights). On CPU that cuts a Model 4 epoch by about a third. It stays a
    plain `keras.optimizers.Adam` for saving, so a saved model loads without this package.
    On JAX, XLA fuses the same ops by itself, so nothing changes there.
    """
    optimizer = keras.optimizers.Adam() if learning_rate is None else keras.optimizers.Adam(learning_rate)
    if keras.backend.backend() == "tensorflow":
        optimizer.update_step = _fused_adam_step.__get__(optimizer)
    return optimizer


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


def configure(policy: str, seed: int, deterministic: bool = True) -> dict:
    """Global Keras state for one run: dtype policy, seeds and op determinism."""
    keras.mixed_precision.set_dtype_policy(policy)
    keras.utils.set_random_seed(seed)
    determinism = False
    backend = keras.backend.backend()
    if deterministic and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        determinism = True
    elif backend == "jax":
        import os

        determinism = "xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", "") or _jax_on_cpu()
    return {"deterministic": determinism, "loss_scaling": policy == "mixed_float16"}


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
    # The softmax stays float32 under mixed precision: float16 probabilities underflow.
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name="output")(x)
    model = keras.Model(inputs, outputs, name=spec.slug)
    return model


def scaler_from(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel min and range on the training split; constant pixels get range 1, as sklearn does."""
    lo = x_train.min(axis=0).astype(np.float32)
    rng = x_train.max(axis=0).astype(np.float32) - lo
    rng[rng == 0] = 1.0
    return lo, rng


def dense_params(model: keras.Model) -> int:
    """Trainable parameters: the number the seed's table reports."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch (training and validation apart) and persists its record at once.

    Records are appended to a JSON-lines file as each epoch ends, because after a
    resume Keras's own History holds only the epochs run since the resume.
    """

    def __init__(self, path: Path, spec: ModelSpec, position: str, epochs: int, prior: list[dict]):
        super().__init__()
        self.path = path
        self.spec = spec
        self.position = position
        self.epochs = epochs
        self.records = list(prior)

    def on_train_begin(self, logs=None):
        self._first = True  # the first epoch of each fit() call includes tracing/compiling

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._val = 0.0

    def on_test_begin(self, logs=None):
        self._v0 = time.perf_counter()

    def on_test_end(self, logs=None):
        self._val += time.perf_counter() - self._v0

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        logs = logs or {}
        record = {
            "epoch": epoch + 1,
            "loss": _num(logs.get("loss")),
            "accuracy": _num(logs.get("accuracy")),
            "val_loss": _num(logs.get("val_loss")),
            "val_accuracy": _num(logs.get("val_accuracy")),
            "seconds": seconds,
            "train_seconds": seconds - self._val,
            "val_seconds": self._val,
            "compile": self._first,
        }
        self._first = False
        self.records.append(record)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        log.info(
            "model %s (%s) epoch %d/%d  loss %.4f  val_acc %.4f  %.2fs%s",
            self.position,
            self.spec.name,
            epoch + 1,
            self.epochs,
            _nan(record["loss"]),
            _nan(record["val_accuracy"]),
            seconds,
            "  (includes compile)" if record["compile"] else "",
        )


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else float("nan")


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation accuracy, on disk.

    The seed checkpointed these weights, then predicted with the last epoch's.
    We evaluate with these. Ties keep the earlier epoch (fewer updates).
    """

    def __init__(self, path: Path, best_so_far: float | None):
        super().__init__()
        self.path = path
        self.best = -math.inf if best_so_far is None else best_so_far

    def on_epoch_end(self, epoch, logs=None):
        acc = (logs or {}).get("val_accuracy")
        loss = (logs or {}).get("loss")
        if acc is None or loss is None or not math.isfinite(float(loss)):
            return
        if float(acc) > self.best:
            self.best = float(acc)
            self.model.save_weights(self.path)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """The seed's EarlyStopping(monitor='loss', patience=3), seeded with epochs run before a resume."""

    def __init__(self, patience: int, prior: list[dict]):
        super().__init__(monitor="loss", patience=patience)
        self.prior = prior

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for rec in self.prior:
            loss = rec.get("loss")
            if loss is None or not math.isfinite(loss):
                continue
            if self.best is None or loss < self.best:
                self.best, self.wait = loss, 0
            else:
                self.wait += 1


def train_spec(
    spec: ModelSpec,
    arrays: dict[str, np.ndarray],
    n_classes: int,
    settings: TrainSettings,
    progress_dir: Path,
    position: str,
) -> TrainOutcome:
    """Fit one spec; resumes from `progress_dir` if an earlier attempt was interrupted."""
    keras.backend.clear_session()  # outside any timed region: fresh graph state per model
    keras.mixed_precision.set_dtype_policy(settings.policy)  # clear_session resets it to float32
    epochs = settings.epochs_override or spec.epochs
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    lo, rng = scaler_from(x_train)
    model = build_model(spec, x_train.shape[1], n_classes, lo, rng)
    optimizer = adam(spec.learning_rate)
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=settings.steps_per_execution,
        jit_compile=settings.jit_compile,
    )

    records_path = progress_dir / f"{spec.slug}.epochs.jsonl"
    backup_dir = progress_dir / f"{spec.slug}.backup"
    best_path = progress_dir / f"{spec.slug}.best.weights.h5"
    prior = _prior_records(records_path, backup_dir)
    if prior:
        log.info("%s: resuming after epoch %d", spec.name, len(prior))
    best_prior = max((r["val_accuracy"] for r in prior if r.get("val_accuracy") is not None), default=None)

    recorder = EpochRecorder(records_path, spec, position, epochs, prior)
    stopper = ResumableEarlyStopping(spec.patience, prior)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        recorder,  # before the backup: a record may exist without its backup, never the reverse
        BestWeights(best_path, best_prior),
        stopper,
        keras.callbacks.BackupAndRestore(str(backup_dir)),
    ]
    already_stopped = _stopped_before(prior, spec.patience)
    t0 = time.perf_counter()
    if len(prior) < epochs and not already_stopped:
        model.fit(
            x_train,
            y_train,
            batch_size=spec.batch_size,
            epochs=epochs,
            validation_data=(arrays["x_val"], arrays["y_val"]),
            validation_batch_size=settings.val_batch_size,
            callbacks=callbacks,
            verbose=0,  # one log line per epoch instead of a progress bar
            shuffle=True,
        )
    # fit() wall time; after a resume, the epochs run before it count too
    fit_seconds = time.perf_counter() - t0 + sum(r["seconds"] for r in prior)
    records = recorder.records
    failure = _failure(records)
    stopped_early = len(records) < epochs and failure is None
    best_epoch = _best_epoch(records)
    if best_epoch is not None and best_path.exists():
        model.load_weights(best_path)
    return TrainOutcome(records, epochs, best_epoch, fit_seconds, stopped_early, failure, model)


def _prior_records(path: Path, backup_dir: Path) -> list[dict]:
    """Epoch records that the last backup covers (a record written just before a kill is dropped)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    meta = backup_dir / "training_metadata.json"
    done = json.loads(meta.read_text())["epoch"] if meta.exists() else 0
    if len(records) != done:
        records = records[:done]
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def _stopped_before(records: list[dict], patience: int) -> bool:
    best, wait = None, 0
    for rec in records:
        loss = rec.get("loss")
        if loss is None or not math.isfinite(loss):
            return True
        if best is None or loss < best:
            best, wait = loss, 0
        else:
            wait += 1
    return wait >= patience


def _failure(records: list[dict]) -> dict | None:
    for rec in records:
        loss = rec.get("loss")
        if loss is None or not math.isfinite(loss):
            return {"epoch": rec["epoch"], "reason": f"training loss became {loss} (TerminateOnNaN stopped it)"}
    return None


def _best_epoch(records: list[dict]) -> int | None:
    best, best_epoch = -math.inf, None
    for rec in records:
        acc, loss = rec.get("val_accuracy"), rec.get("loss")
        if acc is None or loss is None or not math.isfinite(loss) or not math.isfinite(acc):
            continue
        if acc > best:
            best, best_epoch = acc, rec["epoch"]
    return best_epoch


def steady_epoch_seconds(records: list[dict]) -> float | None:
    """Median epoch time without the compile epochs: the cost that scales with epochs."""
    steady = [r["seconds"] for r in records if not r.get("compile")]
    return statistics.median(steady) if steady else None
