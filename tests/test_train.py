"""Training helpers that decide resume, early stopping and the best epoch (no fitting here)."""

from __future__ import annotations

import json
import math

import numpy as np

from job.train import (
    ResumableEarlyStopping,
    _best_epoch,
    _failure,
    _prior_records,
    _stopped_before,
    scaler_from,
    steady_epoch_seconds,
)


def rec(epoch, loss, val_acc, seconds=1.0, compile=False):
    return {"epoch": epoch, "loss": loss, "val_accuracy": val_acc, "seconds": seconds, "compile": compile}


def test_prior_records_are_cut_to_the_last_backup(tmp_path):
    path = tmp_path / "m.epochs.jsonl"
    path.write_text("".join(json.dumps(rec(i, 1.0 / i, 0.5)) + "\n" for i in (1, 2, 3)))
    backup = tmp_path / "m.backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    assert [r["epoch"] for r in _prior_records(path, backup)] == [1, 2]
    assert len(path.read_text().splitlines()) == 2  # the orphan record is gone from disk too
    assert _prior_records(tmp_path / "none.jsonl", backup) == []


def test_early_stopping_state_survives_a_resume():
    # as Keras counts it: three epochs without improvement after the best one
    prior = [rec(1, 0.5, 0.8), rec(2, 0.6, 0.8), rec(3, 0.7, 0.8), rec(4, 0.55, 0.8)]
    assert _stopped_before(prior, patience=3)
    assert not _stopped_before(prior[:3], patience=3)
    stopper = ResumableEarlyStopping(3, prior[:2])
    stopper.on_train_begin()
    assert stopper.best == 0.5 and stopper.wait == 1


def test_best_epoch_keeps_the_first_of_ties_and_skips_nan():
    records = [rec(1, 0.5, 0.7), rec(2, 0.4, 0.9), rec(3, 0.3, 0.9), rec(4, math.nan, 0.95)]
    assert _best_epoch(records) == 2
    assert _failure(records) == {"epoch": 4, "reason": "training loss became nan (TerminateOnNaN stopped it)"}
    assert _failure(records[:3]) is None


def test_scaler_is_fitted_like_minmaxscaler():
    x = np.array([[0, 5, 7], [10, 5, 255]], dtype=np.uint8)
    lo, rng = scaler_from(x)
    assert lo.tolist() == [0, 5, 7] and rng.tolist() == [10, 1, 248]  # constant column: range 1


def test_steady_epoch_seconds_leaves_out_compile_epochs():
    records = [rec(1, 1, 1, 5.0, True), rec(2, 1, 1, 1.0), rec(3, 1, 1, 3.0), rec(4, 1, 1, 9.0, True)]
    assert steady_epoch_seconds(records) == 2.0


def test_adam_fused_on_tensorflow_matches_keras_adam_and_saves_as_plain_adam(tmp_path):
    import subprocess
    import sys

    import keras
    import pytest

    from job.train import _fused_adam_step, adam

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the fused step is TensorFlow's; JAX fuses Adam through XLA")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = rng.integers(0, 3, size=64)

    def fitted(optimizer):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="selu"), keras.layers.Dense(3)])
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for step in range(25):
            batch = slice((step % 4) * 16, (step % 4 + 1) * 16)
            model.train_on_batch(x[batch], y[batch])
        return model

    fused = adam(0.01)
    assert fused.update_step.__func__ is _fused_adam_step and type(fused) is keras.optimizers.Adam
    stock = fitted(keras.optimizers.Adam(0.01))
    ours = fitted(fused)
    assert int(ours.optimizer.iterations.numpy()) == 25
    for a, b in zip(stock.get_weights(), ours.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(stock.get_weights()[0], fitted(keras.optimizers.Adam(0.02)).get_weights()[0])
    path = tmp_path / "m.keras"
    ours.save(path)
    code = (
        "import sys, keras; m = keras.models.load_model(sys.argv[1]);"
        "assert type(m.optimizer).__name__ == 'Adam' and 'job' not in sys.modules;"
        "print(m.optimizer.learning_rate.numpy())"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert abs(float(done.stdout.split()[-1]) - 0.01) < 1e-7


def test_the_precision_policy_survives_the_per_model_clear_session(tmp_path):
    import keras

    from job.specs import ModelSpec
    from job.train import TrainSettings, train_spec

    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, size=(96, 16), dtype=np.uint8),
        "y_train": np.arange(96) % 3,
        "x_val": rng.integers(0, 256, size=(32, 16), dtype=np.uint8),
        "y_val": np.arange(32) % 3,
    }
    spec = ModelSpec("t", "Tiny", (8,), epochs=2)
    losses = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.utils.set_random_seed(1)
        keras.mixed_precision.set_dtype_policy("float32")  # whatever was set before, train_spec sets its own
        (tmp_path / policy).mkdir()
        out = train_spec(spec, arrays, 3, TrainSettings(policy=policy), tmp_path / policy, "1/1")
        hidden = out.model.get_layer("hidden_1")
        assert hidden.dtype_policy.name == policy
        assert hidden.compute_dtype == ("bfloat16" if policy != "float32" else "float32")
        assert out.model.get_layer("output").compute_dtype == "float32"  # softmax stays float32
        losses[policy] = [r["loss"] for r in out.records]
    keras.mixed_precision.set_dtype_policy("float32")
    assert losses["float32"] != losses["mixed_bfloat16"]
