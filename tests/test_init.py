"""The initial weights: drawn in bounded chunks, bit-equal to one whole-array float64 draw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from job.training import init


def _whole_array_kernel(name: str, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """The draw as it was before the chunks: all of it in float64 at once (21 bytes per weight)."""
    scale, mode, distribution = init.INITIALIZERS[name]
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    if distribution == "uniform":
        limit = math.sqrt(3.0 * scale / n)
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
    stddev = math.sqrt(scale / n) / init.TRUNCATED_STD
    values = rng.standard_normal((fan_in, fan_out))
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * stddev).astype(np.float32)


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
@pytest.mark.parametrize("shape", [(784, 600), (3, 5), (1, 1), (2001, 1)])
def test_chunked_draws_are_bit_equal_to_the_whole_array_draw(name, shape, monkeypatch):
    monkeypatch.setattr(init, "CHUNK_VALUES", 1000)  # many chunks, and redraws that span them
    a = _whole_array_kernel(name, *shape, np.random.default_rng([42, 1]))
    b = init.kernel(name, *shape, np.random.default_rng([42, 1]))
    assert b.dtype == np.float32 and b.shape == shape
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_the_default_chunk_is_bit_equal_too():
    a = _whole_array_kernel("lecun_normal", 1500, 1000, np.random.default_rng([7, 0]))
    b = init.kernel("lecun_normal", 1500, 1000, np.random.default_rng([7, 0]))  # 1.5 M values: two chunks
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
