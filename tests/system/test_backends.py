"""One seed, the same start, the same batches and the same loss on TensorFlow and JAX."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO

pytestmark = pytest.mark.slow  # imports both backends in subprocesses


def probe(backend: str, tmp_path) -> dict:
    pytest.importorskip(backend if backend != "tensorflow" else "tensorflow")
    out = tmp_path / f"{backend}.npz"
    env = os.environ | {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "system" / "backend_probe.py"), str(out)],
                          capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as npz:
        return {k: npz[k] for k in npz.files}


def test_initial_weights_batches_loss_and_gradient_match_across_backends(tmp_path):
    tf, jax = probe("tensorflow", tmp_path), probe("jax", tmp_path)
    weights = sorted(k for k in tf if k.startswith("arr_"))
    assert weights and weights == sorted(k for k in jax if k.startswith("arr_"))
    for k in weights:
        np.testing.assert_array_equal(tf[k], jax[k])  # bit-equal: drawn with NumPy, not the backend
    np.testing.assert_array_equal(tf["batch"], jax["batch"])
    assert tf["min_prob"] < 1e-7  # the wrong row is confident enough that clipping at 1e-7 would show
    np.testing.assert_allclose(tf["loss"], jax["loss"], rtol=1e-5)
    grads = sorted(k for k in tf if k.startswith("g"))
    assert grads
    for k in grads:  # relative to the tensor's scale: float32 sums in another order differ in the last bits
        scale = float(np.abs(tf[k]).max())
        assert np.linalg.norm(tf[k] - jax[k]) <= 1e-5 * np.linalg.norm(tf[k]), k
        np.testing.assert_allclose(tf[k], jax[k], rtol=1e-5, atol=1e-5 * scale)


def test_numpy_initializers_match_kerass_distributions():
    from job.training.init import INITIALIZERS, kernel

    rng = np.random.default_rng(0)
    for name, (scale, mode, distribution) in INITIALIZERS.items():
        values = kernel(name, 400, 200, rng)
        n = {"fan_in": 400, "fan_out": 200, "fan_avg": 300}[mode]
        assert values.dtype == np.float32 and values.shape == (400, 200)
        assert abs(values.std() - np.sqrt(scale / n)) / np.sqrt(scale / n) < 0.02, name
        if distribution == "uniform":
            assert np.abs(values).max() <= np.sqrt(3 * scale / n)
        else:
            assert np.abs(values).max() <= 2 * np.sqrt(scale / n) / 0.87962566103423978 + 1e-6
