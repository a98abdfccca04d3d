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


def test_a_backup_keeps_the_dropout_streams_beside_the_weights_and_refuses_damaged_ones(tmp_path):
    ckpt = Checkpoint(tmp_path)
    assert ckpt.backup_seeds() is None  # no backup yet
    _fake_backup(ckpt, 1)
    assert ckpt.backup_seeds() is None  # no dropout (or a backup from before the streams were kept)
    ckpt.backup_weights_path(2).write_bytes(b"weights")
    ckpt.commit_backup(2, [[7, 3], [8, 3]])
    assert ckpt.backup_seeds() == [[7, 3], [8, 3]] and ckpt.backup() == (2, ckpt.backup_weights_path(2))
    (ckpt.backup_dir / "training_metadata.json").write_text(
        '{"epoch": 2, "weights": "epoch-2.weights.h5", "seeds": [1]}'
    )
    with pytest.raises(ResumeError, match="training_metadata.json: damaged"):
        ckpt.backup_seeds()


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


def tiny_arrays(seed: int = 0):
    from job.training.inputs import SplitArrays

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(160, 16), dtype=np.uint8)
    y = np.arange(160) % 3
    x[y == 1, :5] = 255  # learnable
    return SplitArrays(x[:96], y[:96], x[96:128], y[96:128], x[128:], y[128:], 3)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path
