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
