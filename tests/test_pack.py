"""The packed program (#24): K members of one spec as one model, each exactly its separate training on one batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from job.specs import ModelSpec
from job.training.model import build_model, logits_model, scaler_from, set_initial_weights
from job.training.pack import (
    build_packed_model,
    member_model,
    member_sum_loss,
    member_weights,
    set_packed_initial_weights,
)

SPEC = ModelSpec("p", "Packed", (16, 8), activation="selu", initializer="lecun_normal", epochs=1)
SEEDS = [3, 4, 5]
FEATURES, CLASSES, ROWS = 20, 4, 12


def _members():
    """Three members on their own rows (as three splits would be), each with its own scaler."""
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 256, size=(ROWS, FEATURES), dtype=np.uint8) for _ in SEEDS]
    ys = [rng.integers(0, CLASSES, size=ROWS) for _ in SEEDS]
    scalers = [scaler_from(x) for x in xs]
    return xs, ys, scalers


def _packed(scalers):
    lows, ranges = np.stack([s[0] for s in scalers]), np.stack([s[1] for s in scalers])
    model = build_packed_model(SPEC, FEATURES, CLASSES, lows, ranges)
    set_packed_initial_weights(model, SPEC, SEEDS)
    return model


def _separate(scaler, seed):
    model = build_model(SPEC, FEATURES, CLASSES, *scaler)
    set_initial_weights(model, SPEC, seed)
    return model


def _gradients(model, loss_of):
    """d loss / d trainable weights, on whichever backend runs the tests."""
    variables = model.trainable_variables
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of()
        return float(loss), [np.asarray(g) for g in tape.gradient(loss, [v.value for v in variables])]
    if keras.backend.backend() == "jax":
        import jax

        values = [v.value for v in variables]

        def f(vals):
            for v, val in zip(variables, vals, strict=True):
                v.assign(val)
            return loss_of()

        loss, grads = jax.value_and_grad(f)(values)
        return float(loss), [np.asarray(g) for g in grads]
    pytest.skip(f"no gradient helper for {keras.backend.backend()}")


def test_every_members_initial_weights_are_its_separate_trainings_bit_for_bit():
    _, _, scalers = _members()
    packed = _packed(scalers)
    for k, (scaler, seed) in enumerate(zip(scalers, SEEDS, strict=True)):
        separate = _separate(scaler, seed)
        for name in ("hidden_1", "hidden_2", "logits"):
            kernel, bias = packed.get_layer(name).get_weights()
            own_kernel, own_bias = separate.get_layer(name).get_weights()
            assert np.array_equal(kernel[k], own_kernel) and np.array_equal(bias[k], own_bias)


def test_every_members_outputs_loss_and_gradient_are_its_separate_trainings_on_one_batch():
    xs, ys, scalers = _members()
    packed = _packed(scalers)
    x, y = np.stack(xs, axis=1), np.stack(ys, axis=1)
    probabilities = keras.ops.convert_to_numpy(packed(x))
    packed_logits = logits_model(packed)
    loss, grads = _gradients(packed_logits, lambda: member_sum_loss(y, packed_logits(x)))
    own_losses = []
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for k, (scaler, seed) in enumerate(zip(scalers, SEEDS, strict=True)):
        separate = _separate(scaler, seed)
        np.testing.assert_allclose(
            probabilities[:, k], keras.ops.convert_to_numpy(separate(xs[k])), rtol=1e-5, atol=1e-7
        )
        trainer = logits_model(separate)
        own_loss, own_grads = _gradients(trainer, lambda t=trainer, k=k: ce(ys[k], t(xs[k])))
        own_losses.append(own_loss)
        for packed_grad, own_grad in zip(grads, own_grads, strict=True):  # kernels and biases, layer by layer
            np.testing.assert_allclose(packed_grad[k], own_grad, rtol=1e-5, atol=1e-7)
    assert loss == pytest.approx(sum(own_losses), rel=1e-5)


def test_a_member_copied_out_is_a_plain_keras_model_that_loads_without_this_package(tmp_path):
    xs, _, scalers = _members()
    packed = _packed(scalers)
    rng = np.random.default_rng(1)
    for layer in packed.layers:  # weights no member shares with another
        if layer.weights:
            layer.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in layer.get_weights()])
    out = keras.ops.convert_to_numpy(packed(np.stack(xs, axis=1)))
    member = member_model(SPEC, member_weights(packed, SPEC, 1), CLASSES, scalers[1])
    member.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert {type(layer).__module__.split(".")[0] for layer in loaded.layers} == {"keras"}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(xs[1])), out[:, 1], rtol=1e-5, atol=1e-7)


def test_a_member_masked_out_adds_nothing_to_the_loss_and_gets_a_zero_gradient():
    xs, ys, scalers = _members()
    trainer = logits_model(_packed(scalers))
    x, y = np.stack(xs, axis=1), np.stack(ys, axis=1)
    loss, grads = _gradients(trainer, lambda: member_sum_loss(y, trainer(x)))
    y_masked = y.copy()
    y_masked[:, 1] = -1
    masked, masked_grads = _gradients(trainer, lambda: member_sum_loss(y_masked, trainer(x)))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = keras.ops.convert_to_numpy(trainer(x))
    assert masked == pytest.approx(loss - float(ce(ys[1], logits[:, 1])), rel=1e-5)
    for full, part in zip(grads, masked_grads, strict=True):
        assert not part[1].any()  # member 2's kernels and biases get exactly zero
        np.testing.assert_allclose(part[[0, 2]], full[[0, 2]], rtol=1e-5, atol=1e-7)
