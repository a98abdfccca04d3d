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


CHUNK_VALUES = 1 << 20  # values drawn per call: the float64 draw is bounded at 8 MB, not 8 bytes per weight


def kernel(name: str, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """A (fan_in, fan_out) float32 kernel from initializer `name`.

    Drawn in chunks of float64 values straight into the float32 kernel: NumPy's generator gives the same
    stream in chunks as in one call, so the weights are bit-equal to one whole-array draw (a test keeps
    that), at 4 bytes per weight instead of 21."""
    scale, mode, distribution = INITIALIZERS[name]
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    out = np.empty(fan_in * fan_out, dtype=np.float32)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * scale / n)
        for start in range(0, out.size, CHUNK_VALUES):
            stop = min(start + CHUNK_VALUES, out.size)
            out[start:stop] = rng.uniform(-limit, limit, size=stop - start)
        return out.reshape(fan_in, fan_out)
    stddev = math.sqrt(scale / n) / TRUNCATED_STD
    _truncated_normal_into(rng, out, stddev)
    return out.reshape(fan_in, fan_out)


def _truncated_normal_into(rng: np.random.Generator, out: np.ndarray, stddev: float) -> None:
    """Standard normal values, redrawn in order until they lie within two standard deviations, times
    `stddev`, into `out`: the whole draw first, chunk by chunk, then the redraws of what fell outside."""
    outside = []
    for start in range(0, out.size, CHUNK_VALUES):
        values = rng.standard_normal(min(CHUNK_VALUES, out.size - start))
        out[start : start + values.size] = values * stddev
        outside.append(np.flatnonzero(np.abs(values) > 2.0) + start)
    where = np.concatenate(outside)
    while where.size:
        values = rng.standard_normal(where.size)
        out[where] = values * stddev
        where = where[np.abs(values) > 2.0]


def dense_stack(initializer: str, widths: list[int], seed: int) -> list[np.ndarray]:
    """Kernels and zero biases for Dense layers of `widths` (input first, output last), layer by layer:
    the hidden layers use `initializer`, the output layer glorot_uniform, as Keras's Dense default."""
    weights = []
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        name = initializer if layer < len(widths) - 2 else "glorot_uniform"
        weights.append(kernel(name, fan_in, fan_out, np.random.default_rng([seed, layer])))
        weights.append(np.zeros(fan_out, dtype=np.float32))
    return weights
