"""Initial weights drawn with NumPy from the seed: the same start on every backend and Keras version.

Each backend draws Keras's initializers from its own random streams, so one seed gave TensorFlow
and JAX different starting weights. These are the same distributions as Keras's (VarianceScaling:
a normal truncated at two standard deviations, rescaled so its spread after truncation is the
target; or a uniform), drawn with `numpy.random.default_rng([seed, layer])`. Biases start at zero,
as Keras's do.
"""

from __future__ import annotations

import math

import numpy as np

TRUNCATED_STD = 0.87962566103423978  # sd of a standard normal truncated to [-2, 2]: Keras's correction

# name -> (scale, mode, distribution), as Keras defines them
INITIALIZERS: dict[str, tuple[float, str, str]] = {
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
}


def kernel(name: str, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """A (fan_in, fan_out) float32 kernel from initializer `name`."""
    scale, mode, distribution = INITIALIZERS[name]
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    if distribution == "uniform":
        limit = math.sqrt(3.0 * scale / n)
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
    stddev = math.sqrt(scale / n) / TRUNCATED_STD
    return (_truncated_normal(rng, (fan_in, fan_out)) * stddev).astype(np.float32)


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal values redrawn until they lie within two standard deviations."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return values


def dense_stack(initializer: str, widths: list[int], seed: int) -> list[np.ndarray]:
    """Kernels and zero biases for Dense layers of `widths` (input first, output last), layer by layer:
    the hidden layers use `initializer`, the output layer glorot_uniform, as Keras's Dense default."""
    weights = []
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        name = initializer if layer < len(widths) - 2 else "glorot_uniform"
        weights.append(kernel(name, fan_in, fan_out, np.random.default_rng([seed, layer])))
        weights.append(np.zeros(fan_out, dtype=np.float32))
    return weights
