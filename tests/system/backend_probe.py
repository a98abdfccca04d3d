"""Run under one backend (KERAS_BACKEND=...): initial weights, the first batch's rows, and the loss and
gradient on one batch with a confidently wrong row, saved to the .npz named on the command line.
tests/system/test_backends.py compares what TensorFlow and JAX write."""

from __future__ import annotations

import sys

import numpy as np


def main(out: str) -> None:
    import keras

    from job.specs import ModelSpec
    from job.training.inputs import SplitArrays, TrainSettings
    from job.training.loop import _compiled_model, epoch_permutation
    from job.training.model import configure

    configure("float32")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(96, 16), dtype=np.uint8)
    y = np.arange(96) % 3
    arrays = SplitArrays(x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:], 3)
    spec = ModelSpec("p", "Probe", (8, 6), epochs=1)
    model, trainer = _compiled_model(spec, 11, arrays, TrainSettings())
    weights = [w for w in model.get_weights()]
    logits_layer = trainer.get_layer("logits")
    kernel, bias = logits_layer.get_weights()
    logits_layer.set_weights([kernel * 40.0, bias])  # confident: a wrong label costs a large, finite loss
    batch = epoch_permutation(11, 1, 64)[:32]
    xb, yb = arrays.x_train[batch], arrays.y_train[batch].copy()
    probs = model.predict(xb, verbose=0)
    yb[0] = int(np.argmin(probs[0]))  # the row's least likely class: confidently wrong
    loss_fn = trainer.loss
    loss, grads = _loss_and_grads(keras, trainer, loss_fn, xb, yb)
    gradients = {f"g{i}": g for i, g in enumerate(grads)}
    np.savez(out, *weights, batch=batch, loss=loss, min_prob=probs[0].min(), **gradients)


def _loss_and_grads(keras, trainer, loss_fn, xb, yb):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(yb, trainer(xb, training=True))
        grads = tape.gradient(loss, trainer.trainable_variables)
        return float(loss), [np.asarray(g) for g in grads]
    import jax

    trainable = [v.value for v in trainer.trainable_variables]
    non_trainable = [v.value for v in trainer.non_trainable_variables]

    def compute(tv):
        logits, _ = trainer.stateless_call(tv, non_trainable, xb, training=True)
        return loss_fn(yb, logits)

    loss, grads = jax.value_and_grad(compute)(trainable)
    return float(loss), [np.asarray(g) for g in grads]


if __name__ == "__main__":
    main(sys.argv[1])
