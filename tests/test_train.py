"""The training unit's rules (early stopping, best epoch, failure, resume bookkeeping) and, in the
slow tier, the unit itself: per-training seeding, exact resume, precision policy, fused Adam."""

from __future__ import annotations

import numpy as np
import pytest

from job.result import EpochRecord
from job.rundir.resume import Checkpoint, ResumeError
from job.training.epochs import best_epoch_of, failure_of, steady_epoch_seconds, stopped


def rec(epoch, loss, val_acc, seconds=1.0, compile=False):
    return EpochRecord(epoch, loss, 0.5, 1.0, val_acc, seconds, seconds, 0.0, compile)


def test_prior_records_are_cut_to_the_last_backup(tmp_path):
    ckpt = Checkpoint(tmp_path)
    for i in (1, 2, 3):
        ckpt.append(rec(i, 1.0 / i, 0.5))
    _fake_backup(ckpt, 2)
    assert [r.epoch for r in ckpt.prior_records()] == [1, 2]
    assert len(ckpt.epochs_path.read_text().splitlines()) == 2  # the orphan record is gone from disk too
    assert Checkpoint(tmp_path / "none").prior_records() == []


def test_a_torn_last_line_is_dropped_and_a_damaged_middle_line_is_one_error(tmp_path):
    ckpt = Checkpoint(tmp_path)
    ckpt.append(rec(1, 0.9, 0.5))
    ckpt.append(rec(2, 0.8, 0.6))
    _fake_backup(ckpt, 2)
    with ckpt.epochs_path.open("a") as fh:
        fh.write('{"epoch": 3, "loss": 0.')  # killed mid-write
    assert [r.epoch for r in ckpt.prior_records()] == [1, 2]
    assert ckpt.epochs_path.read_text().count("\n") == 2
    ckpt.epochs_path.write_text('{"epoch": 1\n' + ckpt.epochs_path.read_text())
    with pytest.raises(ResumeError, match="line 1 is damaged"):
        ckpt.prior_records()


def _fake_backup(ckpt: Checkpoint, epochs: int) -> None:
    ckpt.backup_dir.mkdir(exist_ok=True)
    ckpt.backup_weights_path(epochs).write_bytes(b"weights")
    ckpt.commit_backup(epochs)


def test_a_backup_is_a_new_file_then_the_metadata_points_at_it(tmp_path):
    ckpt = Checkpoint(tmp_path)
    assert ckpt.backup() == (0, None)
    _fake_backup(ckpt, 1)
    ckpt.backup_weights_path(2).write_bytes(b"half")  # killed before the metadata moved on
    assert ckpt.backup() == (1, ckpt.backup_weights_path(1))
    _fake_backup(ckpt, 2)
    assert ckpt.backup() == (2, ckpt.backup_weights_path(2)) and not ckpt.backup_weights_path(1).exists()
    (ckpt.backup_dir / "training_metadata.json").write_text('{"epoch": "x"}')
    with pytest.raises(ResumeError, match="training_metadata.json: damaged"):
        ckpt.backup()


def test_early_stopping_replays_keras_rule():
    # as Keras counts it: three epochs without improvement after the best one
    prior = [rec(1, 0.5, 0.8), rec(2, 0.6, 0.8), rec(3, 0.7, 0.8), rec(4, 0.55, 0.8)]
    assert stopped(prior, patience=3)
    assert not stopped(prior[:3], patience=3)
    rising = [rec(1, 0.5, 0.8), rec(2, 0.4, 0.7), rec(3, 0.3, 0.6), rec(4, 0.2, 0.5)]
    assert stopped(rising, patience=3, monitor="val_accuracy") and not stopped(rising, patience=3)
    assert stopped([rec(1, None, 0.8)], patience=3)  # a NaN loss stops at once


def test_best_epoch_keeps_the_first_of_ties_and_skips_nan():
    records = [rec(1, 0.5, 0.7), rec(2, 0.4, 0.9), rec(3, 0.3, 0.9), rec(4, None, 0.95)]
    assert best_epoch_of(records) == 2
    failure = failure_of(records)
    assert failure.epoch == 4 and "nan" in failure.reason
    assert failure_of(records[:3]) is None


def test_steady_epoch_seconds_leaves_out_compile_epochs():
    records = [rec(1, 1, 1, 5.0, True), rec(2, 1, 1, 1.0), rec(3, 1, 1, 3.0), rec(4, 1, 1, 9.0, True)]
    assert steady_epoch_seconds(records) == 2.0


@pytest.mark.slow
def test_scaler_is_fitted_like_minmaxscaler():
    from job.training.model import scaler_from

    x = np.array([[0, 5, 7], [10, 5, 255]], dtype=np.uint8)
    lo, rng = scaler_from(x)
    assert lo.tolist() == [0, 5, 7] and rng.tolist() == [10, 1, 248]  # constant column: range 1


@pytest.mark.slow
def test_adam_fused_on_tensorflow_matches_keras_adam_and_saves_as_plain_adam(tmp_path):
    import subprocess
    import sys

    import keras

    from job.training.optim import _fused_adam_step, adam

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


def tiny_arrays(seed: int = 0):
    from job.training.inputs import SplitArrays

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(160, 16), dtype=np.uint8)
    y = np.arange(160) % 3
    x[y == 1, :5] = 255  # learnable
    return SplitArrays(x[:96], y[:96], x[96:128], y[96:128], x[128:], y[128:], 3)


@pytest.mark.slow
def test_the_precision_policy_survives_the_per_model_clear_session(tmp_path):
    import keras

    from job.specs import ModelSpec
    from job.training.inputs import TrainSettings
    from job.training.loop import train

    spec = ModelSpec("t", "Tiny", (8,), epochs=2)
    losses = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_dtype_policy("float32")  # whatever was set before, the unit sets its own
        (tmp_path / policy).mkdir()
        out = train(spec, 1, tiny_arrays(), TrainSettings(policy=policy), Checkpoint(tmp_path / policy))
        model = keras.models.load_model(_write(tmp_path / f"{policy}.keras", out.model_bytes))
        hidden = model.get_layer("hidden_1")
        assert hidden.dtype_policy.name == policy
        assert hidden.compute_dtype == ("bfloat16" if policy != "float32" else "float32")
        assert model.get_layer("output").compute_dtype == "float32"  # softmax stays float32
        losses[policy] = [r.loss for r in out.records]
    keras.mixed_precision.set_dtype_policy("float32")
    assert losses["float32"] != losses["mixed_bfloat16"]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.slow
def test_unit_seeds_itself_and_a_resumed_training_equals_an_uninterrupted_one(tmp_path):
    """Whatever ran before in the process, the same (spec, seed) gives the same numbers; and a training
    stopped after epoch 2 and continued from its checkpoint gives exactly the uninterrupted records."""
    import keras

    from job.specs import ModelSpec
    from job.training.inputs import TrainSettings
    from job.training.loop import train

    spec = ModelSpec("t", "Tiny", (8, 8), epochs=4, patience=10)
    arrays, settings = tiny_arrays(), TrainSettings()
    whole = train(spec, 3, arrays, settings, Checkpoint(_mkdir(tmp_path / "whole")))
    keras.random.uniform((3,))  # consume global randomness, as other trainings in the process would
    again = train(spec, 3, arrays, settings, Checkpoint(_mkdir(tmp_path / "again")))
    cut = Checkpoint(_mkdir(tmp_path / "cut"))
    train(spec, 3, arrays, TrainSettings(epochs_override=2), cut)
    resumed = train(spec, 3, arrays, settings, cut)

    def numbers(result):
        return [(r.loss, r.accuracy, r.val_loss, r.val_accuracy) for r in result.records]

    assert numbers(whole) == numbers(again) == numbers(resumed) and len(whole.records) == 4
    assert [r.compile for r in resumed.records] == [True, False, True, False]
    np.testing.assert_array_equal(whole.test_proba, resumed.test_proba)
    other_seed = train(spec, 4, arrays, settings, Checkpoint(_mkdir(tmp_path / "other")))
    assert numbers(other_seed) != numbers(whole)


def _mkdir(path):
    path.mkdir()
    return path


@pytest.mark.slow
def test_the_feed_gives_kerass_own_batches_and_the_same_training(tmp_path, monkeypatch):
    """On TensorFlow the unit feeds fit() batches cut in NumPy instead of Keras's array feed: the same rows
    in the same batches (a short last one included), so the same records and probabilities, bit for bit."""
    import keras

    from job.specs import ModelSpec
    from job.training import loop as unit
    from job.training.inputs import TrainSettings

    rows = np.arange(100 * 3, dtype=np.uint8).reshape(100, 3)
    fed = unit.feed(32, rows, np.arange(100))
    if keras.backend.backend() == "tensorflow":
        batches = [(np.asarray(x), np.asarray(y)) for x, y in fed.x]
        assert [len(x) for x, _ in batches] == [32, 32, 32, 4] and fed.y is None and fed.batch_size is None
        np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), rows)
        np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), np.arange(100))
        (only,) = [np.asarray(x) for (x,) in unit.feed(2048, rows).x]  # x alone, for predict(); all in the tail
        np.testing.assert_array_equal(only, rows)
    else:
        assert fed.x is rows and fed.batch_size == 32

    spec = ModelSpec("t", "Tiny", (8,), epochs=3, patience=10, batch_size=20)  # 96 rows: 4 batches and 16
    settings = TrainSettings(val_batch_size=24)  # 32 validation rows: one batch and 8

    def numbers(result):
        return [(r.loss, r.accuracy, r.val_loss, r.val_accuracy) for r in result.records], result.test_proba

    ours = numbers(unit.train(spec, 5, tiny_arrays(), settings, Checkpoint(_mkdir(tmp_path / "ours"))))
    monkeypatch.setattr(unit, "feed", lambda batch_size, x, y=None: unit.Feed(x, y, batch_size))  # Keras's feed
    kerass = numbers(unit.train(spec, 5, tiny_arrays(), settings, Checkpoint(_mkdir(tmp_path / "keras"))))
    assert ours[0] == kerass[0]
    np.testing.assert_array_equal(ours[1], kerass[1])
