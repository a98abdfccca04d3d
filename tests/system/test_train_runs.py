"""The training unit on real Keras: precision policies, resume equal to an uninterrupted run, the feed (slow)."""

from __future__ import annotations

import numpy as np
import pytest
from test_train import _mkdir, _write, tiny_arrays

from job.rundir.resume import Checkpoint


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


@pytest.mark.slow
def test_the_deepest_family_allowed_trains(tmp_path):
    """MAX_LAYERS hidden layers build, train and save: 1,000 once hit Keras's recursion limit mid-run."""
    from job.family import MAX_LAYERS
    from job.specs import ModelSpec
    from job.training.inputs import TrainSettings
    from job.training.loop import train

    spec = ModelSpec("1", "deep", (4,) * MAX_LAYERS, epochs=1)
    result = train(spec, 1, tiny_arrays(), TrainSettings(), Checkpoint(_mkdir(tmp_path / "deep")))
    assert result.failure is None and result.model_bytes and len(result.records) == 1


@pytest.mark.slow
def test_trainings_one_after_another_leave_no_traced_steps_behind(tmp_path):
    """#25 item 5: each TensorFlow train step registered a CustomGradient (the optimizer's all-reduce) that kept the
    step's graphs alive forever, about 6 MB a training. After the next training starts, no graph of an earlier
    one is alive: the count of live FuncGraphs after the fourth training is the count after the second."""
    import gc

    import keras

    from job.specs import ModelSpec
    from job.training.inputs import TrainSettings
    from job.training.loop import train

    def live_graphs() -> int:
        gc.collect()
        return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())

    counts = []
    for seed in range(4):
        spec = ModelSpec("1", "m", (8,), epochs=1)
        result = train(spec, seed, tiny_arrays(), TrainSettings(), Checkpoint(_mkdir(tmp_path / str(seed))))
        assert result.failure is None
        del result
        counts.append(live_graphs())
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import ops

        assert sum(k.startswith("CustomGradient-") for k in ops._gradient_registry._registry if isinstance(k, str)) <= 2
    assert counts[3] == counts[1], counts
