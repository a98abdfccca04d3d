"""The packed training unit (#24): every member is its separate training, stops on its own rule, fails alone, and a
pack resumed from its checkpoint equals one that ran through."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import job.training.packed as packed
from job.rundir.resume import Checkpoint, PackCheckpoint
from job.specs import ModelSpec
from job.training.inputs import SplitArrays, TrainSettings
from job.training.loop import train
from job.training.packed import Member, train_pack

pytestmark = pytest.mark.slow  # trains: small models on small data, about 30 s in all
SETTINGS = TrainSettings(steps_per_execution=4, val_batch_size=64)


def _arrays(seed: int) -> SplitArrays:
    """A small learnable 10-class problem of 64 pixels; `seed` draws its own training and validation rows."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 30)
    x = rng.integers(0, 60, size=(y.size, 64))
    for c in range(10):
        x[y == c, c * 6 : c * 6 + 6] += 40  # faint: validation accuracy wanders, so members stop apart
    x = np.clip(x, 0, 255).astype(np.uint8)
    order = np.random.default_rng(seed).permutation(y.size)
    tr, va, te = order[:180], order[180:240], order[240:]
    return SplitArrays(x[tr], y[tr], x[va], y[va], x[te], y[te], 10)


SPEC = ModelSpec("p", "P", (12,), epochs=8, batch_size=16, patience=1, monitor="val_accuracy")
MEMBERS = [Member(42, 1, _arrays(1)), Member(43, 1, _arrays(1)), Member(42, 2, _arrays(2))]


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(b, rel=1e-4, abs=1e-5))


def test_every_member_trains_as_its_separate_training_and_stops_on_its_own_rule(tmp_path):
    results = train_pack(SPEC, MEMBERS, SETTINGS, PackCheckpoint(tmp_path / "pack"))
    lengths = set()
    for i, (member, got) in enumerate(zip(MEMBERS, results, strict=True)):
        (tmp_path / str(i)).mkdir()
        own = train(SPEC, member.seed, member.arrays, SETTINGS, Checkpoint(tmp_path / str(i)))
        assert len(got.records) == len(own.records) and got.best_epoch == own.best_epoch
        for a, b in zip(got.records, own.records, strict=True):
            assert _close(a.loss, b.loss) and _close(a.accuracy, b.accuracy)
            assert _close(a.val_loss, b.val_loss) and _close(a.val_accuracy, b.val_accuracy)
        np.testing.assert_allclose(got.test_proba, own.test_proba, rtol=1e-4, atol=1e-5)
        assert (got.seed, got.split, got.pack_size, got.failure) == (member.seed, member.split, 3, None)
        lengths.add(len(got.records))
    assert len(lengths) > 1, "the case must have members stopping at different epochs"


def test_a_saved_member_is_a_plain_keras_model_with_its_predictions(tmp_path):
    (result, *_) = train_pack(SPEC, MEMBERS, SETTINGS, PackCheckpoint(tmp_path / "pack"))
    (tmp_path / "m.keras").write_bytes(result.model_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # an unbuilt optimizer in the file: "Skipping variable loading"
        loaded = keras.models.load_model(tmp_path / "m.keras")
    assert {type(layer).__module__.split(".")[0] for layer in loaded.layers} == {"keras"}
    own = keras.ops.convert_to_numpy(loaded(MEMBERS[0].arrays.x_test))
    np.testing.assert_allclose(own, result.test_proba, rtol=1e-5, atol=1e-6)


def test_a_member_whose_loss_turns_nan_is_masked_out_and_the_others_go_on(tmp_path, monkeypatch):
    original = packed.set_packed_initial_weights

    def poisoned(model, spec, seeds):
        original(model, spec, seeds)
        kernel, bias = model.get_layer("hidden_1").get_weights()
        kernel[1] = np.float32(3e38)  # member 2's first layer overflows: its loss is nan from the first step
        model.get_layer("hidden_1").set_weights([kernel, bias])

    monkeypatch.setattr(packed, "set_packed_initial_weights", poisoned)
    spec = ModelSpec("p", "P", (12,), epochs=3, batch_size=16)
    results = train_pack(spec, MEMBERS, SETTINGS, PackCheckpoint(tmp_path / "pack"))
    assert results[1].failure is not None and results[1].failure.epoch == 1 and results[1].test_proba is None
    for i in (0, 2):
        (tmp_path / str(i)).mkdir()
        own = train(spec, MEMBERS[i].seed, MEMBERS[i].arrays, SETTINGS, Checkpoint(tmp_path / str(i)))
        assert results[i].failure is None and len(results[i].records) == 3
        assert all(_close(a.loss, b.loss) for a, b in zip(results[i].records, own.records, strict=True))


def test_a_pack_resumed_from_its_checkpoint_equals_one_that_ran_through_bit_for_bit(tmp_path):
    spec = ModelSpec("p", "P", (12,), epochs=4, batch_size=16)
    through = train_pack(spec, MEMBERS, SETTINGS, PackCheckpoint(tmp_path / "a"))
    checkpoint = PackCheckpoint(tmp_path / "b")
    cut = TrainSettings(steps_per_execution=4, val_batch_size=64, epochs_override=2)
    train_pack(spec, MEMBERS, cut, checkpoint)  # stopped after epoch 2, as a kill after its backup leaves it
    resumed = train_pack(spec, MEMBERS, SETTINGS, checkpoint)
    for a, b in zip(through, resumed, strict=True):
        assert [(r.loss, r.accuracy, r.val_loss, r.val_accuracy) for r in a.records] == [
            (r.loss, r.accuracy, r.val_loss, r.val_accuracy) for r in b.records
        ]
        assert a.best_epoch == b.best_epoch and np.array_equal(a.test_proba, b.test_proba)


def test_with_dropout_a_resumed_pack_and_training_continue_their_masks_bit_for_bit(tmp_path):
    """A Keras weights file leaves out the dropout layers' random streams; the backup keeps them, so a resume
    draws epoch 3's masks, not epoch 1's again."""
    spec = ModelSpec("p", "P", (12,), epochs=4, batch_size=16, dropout=0.3)
    cut = TrainSettings(steps_per_execution=4, val_batch_size=64, epochs_override=2)

    def numbers(results):
        return [[(r.loss, r.accuracy, r.val_loss, r.val_accuracy) for r in result.records] for result in results]

    through = train_pack(spec, MEMBERS, SETTINGS, PackCheckpoint(tmp_path / "a"))
    checkpoint = PackCheckpoint(tmp_path / "b")
    train_pack(spec, MEMBERS, cut, checkpoint)
    assert numbers(train_pack(spec, MEMBERS, SETTINGS, checkpoint)) == numbers(through)
    for name in ("c", "d"):
        (tmp_path / name).mkdir()
    alone = train(spec, 42, MEMBERS[0].arrays, SETTINGS, Checkpoint(tmp_path / "c"))
    train(spec, 42, MEMBERS[0].arrays, cut, Checkpoint(tmp_path / "d"))
    assert numbers([train(spec, 42, MEMBERS[0].arrays, SETTINGS, Checkpoint(tmp_path / "d"))]) == numbers([alone])


def test_mixed_float16_reports_its_loss_scale_and_the_steps_an_overflow_skipped(tmp_path, monkeypatch):
    from keras.src.optimizers import loss_scale_optimizer

    spec = ModelSpec("p", "P", (12,), epochs=2, batch_size=16)
    settings = TrainSettings(policy="mixed_float16", steps_per_execution=4, val_batch_size=64)
    (tmp_path / "a").mkdir()
    calm = train(spec, 42, MEMBERS[0].arrays, settings, Checkpoint(tmp_path / "a"))
    assert calm.skipped_steps == 0 and calm.loss_scale == 2.0**15  # Keras's start, no overflow in 24 steps
    keras.mixed_precision.set_dtype_policy("float32")
    init = loss_scale_optimizer.LossScaleOptimizer.__init__

    def huge(self, inner_optimizer, initial_scale=2.0**15, **kwargs):
        init(self, inner_optimizer, initial_scale=2.0**40, **kwargs)  # float16 gradients overflow until it halves

    monkeypatch.setattr(loss_scale_optimizer.LossScaleOptimizer, "__init__", huge)
    (tmp_path / "b").mkdir()
    forced = train(spec, 42, MEMBERS[0].arrays, settings, Checkpoint(tmp_path / "b"))
    assert forced.skipped_steps is not None and 10 <= forced.skipped_steps < 24 and forced.loss_scale < 2.0**40
    assert forced.failure is None
    keras.mixed_precision.set_dtype_policy("float32")


def test_float32_has_no_loss_scale_and_a_pack_refuses_mixed_float16(tmp_path):
    (tmp_path / "a").mkdir()
    alone = train(SPEC, 42, MEMBERS[0].arrays, SETTINGS, Checkpoint(tmp_path / "a"))
    assert (alone.loss_scale, alone.skipped_steps) == (None, None)
    with pytest.raises(ValueError, match="one loss scale for every member"):
        train_pack(SPEC, MEMBERS, TrainSettings(policy="mixed_float16"), PackCheckpoint(tmp_path / "p"))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the compiled epoch is TensorFlow's")
def test_a_compiled_epoch_takes_the_steps_fit_takes_and_no_padding_step(tmp_path):
    """180 rows in batches of 16 are 11 whole batches and one of 4: blocks of 4 steps are 4, 4 and 3 (padded to 4),
    then the short batch. The same epoch through Keras's fit() gives the same logs and weights, to rounding."""
    from job.training.compiled import CompiledEpochs
    from job.training.feed import feed
    from job.training.loop import EpochTimer, fit_one_epoch

    arrays = MEMBERS[0].arrays
    x = np.stack([arrays.x_train, arrays.x_train[::-1]], axis=1)
    y = np.stack([arrays.y_train, arrays.y_train[::-1]], axis=1).astype(np.int32)
    val = np.stack([arrays.x_val] * 2, axis=1), np.stack([arrays.y_val] * 2, axis=1).astype(np.int32)  # 60 rows
    members = [Member(42, 1, arrays), Member(43, 1, arrays)]
    outcomes = []
    for compiled in (True, False):
        model, trainer, _ = packed._compiled(SPEC, members, SETTINGS)
        if compiled:
            epochs = CompiledEpochs(trainer, 16, 4, val, 32)
            run = epochs.fit_epoch(x, y)  # validation: a batch of 32, one of 28
            logs = run.logs
            assert 0 < run.val_seconds < run.seconds
        else:
            timer = EpochTimer()
            fit_one_epoch(trainer, feed(16, x, y), feed(32, *val), [timer])
            logs = timer.logs
        assert int(trainer.optimizer.iterations.numpy()) == 12  # 11 whole batches and the short one, no padding
        outcomes.append((logs, [w.copy() for w in trainer.get_weights()]))
    (got, got_w), (fit, fit_w) = outcomes
    for name in ("members", "val_members", "loss", "val_loss"):
        np.testing.assert_allclose(got[name], fit[name], rtol=1e-5, atol=1e-6)
    for a, b in zip(got_w, fit_w, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    epochs.fit_epoch(x, y)  # a later epoch reuses the programs: one for a whole block, one for the short batch
    assert epochs._steps.experimental_get_tracing_count() == 2 and epochs._tests.experimental_get_tracing_count() == 2
