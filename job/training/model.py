"""A spec as a Keras model: Keras configured for the run, the layers, the NumPy-drawn initial weights, the scaler.

With `job.training.optim`, `feed` and `loop`, the only modules besides `environment` that import Keras.
"""

from __future__ import annotations

import keras
import numpy as np

from job.specs import ModelSpec
from job.training.init import dense_stack


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


def fresh_backend_state() -> None:
    """Forget what earlier trainings left in Keras and its backend, so memory stays flat over many trainings.

    `clear_session` drops Keras's graph state, but on TensorFlow every traced train step also registers a
    `CustomGradient-<n>` in TensorFlow's global gradient registry (the optimizer's all-reduce of the
    gradients, an identity on one replica, is a `tf.custom_gradient`), and that entry keeps the whole traced
    step alive: its graphs, its functions and the tensors they captured, about 6 MB a training for Model 1.
    Nothing reads those entries once their step is traced, and every earlier model is gone by now."""
    keras.backend.clear_session()
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import ops  # the registry has no public way to unregister

        registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
        if isinstance(registry, dict):
            for name in [k for k in registry if isinstance(k, str) and k.startswith("CustomGradient-")]:
                del registry[name]


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
