"""K trainings of one spec as one Keras model: the packed program that `job.training.packed` trains (`--pack`).

Each dense layer holds the K members' kernels as one `(K, in, out)` weight and each member sees its own batch:
the model takes `(batch, K, pixels)` and gives `(batch, K, classes)`. Members stay independent:
- every member's initial weights are the ones its separate training would draw (`init.dense_stack` with its
  seed), and its min-max scaling is fitted on its own training rows;
- the loss is the sum of the members' own mean losses (`member_sum_loss`), so each member's gradient is its own
  (the other members' terms do not depend on its weights), and Adam's update is element by element;
- dropout masks are drawn for the whole `(batch, K, units)` tensor, so they differ from a separate training's.

`member_model` copies one member out as a plain Keras model with the layers of a separate training's
(`model.build_model`), loadable without this package.
"""

from __future__ import annotations

import keras
import numpy as np

from job.specs import ModelSpec
from job.training.init import dense_stack
from job.training.model import build_model


class PackedScale(keras.layers.Layer):
    """Each member's min-max scaling, as `keras.layers.Normalization(mean=lo, variance=range²)` computes it,
    clipped to [0, 1] like the separate model's ReLU(max_value=1): the same float32 arithmetic per member."""

    def __init__(self, lows: np.ndarray, ranges: np.ndarray, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.lows = np.asarray(lows, dtype=np.float32)  # (K, pixels)
        self.variances = np.square(np.asarray(ranges, dtype=np.float32))

    def call(self, x):
        x = keras.ops.cast(x, "float32")
        scale = keras.ops.maximum(keras.ops.sqrt(self.variances), keras.backend.epsilon())
        return keras.ops.clip((x - self.lows) / scale, 0.0, 1.0)

    def get_config(self):
        return super().get_config() | {"lows": self.lows.tolist(), "ranges": np.sqrt(self.variances).tolist()}


class PackedDense(keras.layers.Layer):
    """K dense layers side by side: `(batch, K, in)` -> `(batch, K, units)` with a `(K, in, units)` kernel."""

    def __init__(self, members: int, units: int, activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.members, self.units = members, units
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        k, fan_in = self.members, int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(k, fan_in, self.units), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(k, self.units), initializer="zeros")

    def call(self, x):
        return self.activation(keras.ops.einsum("bki,kio->bko", x, self.kernel) + self.bias)

    def get_config(self):
        activation = keras.activations.serialize(self.activation)
        return super().get_config() | {"members": self.members, "units": self.units, "activation": activation}


def build_packed_model(
    spec: ModelSpec, n_features: int, n_classes: int, lows: np.ndarray, ranges: np.ndarray
) -> keras.Model:
    """K members of `spec` (K = len(lows)): raw uint8 pixels `(batch, K, pixels)` in, probabilities out. The
    layers are named as the separate model's, so member k's weights map one to one (`member_model`)."""
    k = len(lows)
    inputs = keras.Input(shape=(k, n_features), dtype="uint8", name="pixels")
    x = PackedScale(lows, ranges, name="minmax_scale")(inputs)
    for i, units in enumerate(spec.hidden, start=1):
        x = PackedDense(k, units, spec.activation, name=f"hidden_{i}")(x)
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    logits = PackedDense(k, n_classes, None, dtype="float32", name="logits")(x)
    outputs = keras.layers.Softmax(dtype="float32", name="output")(logits)
    return keras.Model(inputs, outputs, name=f"{spec.slug}_packed")


def dense_names(spec: ModelSpec) -> list[str]:
    return [f"hidden_{i}" for i in range(1, len(spec.hidden) + 1)] + ["logits"]


def set_packed_initial_weights(model: keras.Model, spec: ModelSpec, seeds: list[int]) -> None:
    """Member k's kernels are the ones seed `seeds[k]` draws for a separate training, bit for bit; biases zero."""
    widths = [model.inputs[0].shape[-1], *spec.hidden, model.get_layer("logits").units]
    stacks = [dense_stack(spec.initializer, widths, seed) for seed in seeds]
    for i, name in enumerate(dense_names(spec)):
        kernels = np.stack([stack[2 * i] for stack in stacks])
        biases = np.stack([stack[2 * i + 1] for stack in stacks])
        model.get_layer(name).set_weights([kernels, biases])


def member_sum_loss(y_true, logits):
    """The sum over members of each member's mean sparse cross-entropy over its batch: `y_true` is `(batch, K)`,
    `logits` `(batch, K, classes)`, so member k's gradient is the gradient of its own mean loss. A member whose
    labels are -1 (masked out after a failure) adds zero and gets a zero gradient."""
    y = keras.ops.cast(y_true, "int32")
    active = keras.ops.cast(keras.ops.greater_equal(y, 0), "float32")
    per_row = keras.ops.sparse_categorical_crossentropy(keras.ops.maximum(y, 0), logits, from_logits=True)
    return keras.ops.sum(keras.ops.mean(per_row * active, axis=0))


def member_weights(packed: keras.Model, spec: ModelSpec, k: int) -> list[np.ndarray]:
    """Member k's dense weights, kernel and bias layer by layer, as a separate training's model holds them."""
    out = []
    for name in dense_names(spec):
        kernel, bias = packed.get_layer(name).get_weights()
        out += [kernel[k], bias[k]]
    return out


def member_model(
    spec: ModelSpec, weights: list[np.ndarray], n_classes: int, scaler: tuple[np.ndarray, np.ndarray]
) -> keras.Model:
    """A member as the model a separate training builds (`model.build_model`), with its dense `weights`
    (`member_weights`): a plain Keras model, loadable without this package. `scaler` is the member's (min, range)
    per pixel, as `model.scaler_from` fits it on its training rows."""
    low, rng = scaler
    model = build_model(spec, low.shape[0], n_classes, low, rng)
    values = iter(weights)
    for name in dense_names(spec):
        model.get_layer(name).set_weights([next(values), next(values)])
    return model
