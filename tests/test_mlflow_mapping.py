"""What the MLflow export logs, without a server: the parent's params, tags and metrics, and each training's."""

from __future__ import annotations

import importlib.util

import pytest
from helpers import hand_result, hand_training

from job.tracking import mlflow as export  # imports MLflow only where it logs

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="the [mlflow] extra is not installed"
)


def test_the_parent_run_carries_the_options_the_margin_and_the_choice():
    run = hand_result()
    params = export.parent_params(run)
    assert params["config.seed"] == str(run.config.seed) and params["schema_version"] == str(run.schema_version)
    assert params["choice.margin_pp"] == "1.0" and params["deterministic"] == str(run.deterministic)
    assert not [k for k, v in params.items() if v is None or len(v) > export.MAX_PARAM_VALUE]
    tags = export._parent_tags(run)
    assert tags[export.RUN_ID_TAG] == run.run_id and tags[export.ROLE_TAG] == "job"
    assert tags["job.chosen_model"] == run.chosen_model and tags["job.choice_rule"] == run.choice.rule
    metrics = {m.key: m.value for m in export.parent_metrics(run, 1000)}
    chosen = run.model(run.chosen_model)
    assert metrics["chosen_val_accuracy"] == pytest.approx(chosen.val_accuracy.mean)
    assert metrics["total_seconds"] == pytest.approx(run.total_seconds)


def test_a_training_logs_its_settings_its_epochs_by_step_and_its_final_numbers():
    run = hand_result()
    model = run.models[0]
    training = hand_training(0.9, seed=7)
    params = export.training_params(model, training)
    assert params["seed"] == "7" and params["hidden"] == ",".join(map(str, model.hidden))
    assert params["epochs"] == str(training.epochs_planned) and params["optimizer"] == model.optimizer
    metrics = export.training_metrics(training, timestamp=1_000)
    per_epoch = [m for m in metrics if m.key == "val_accuracy" and m.step > 0]
    assert [m.step for m in per_epoch] == list(range(1, training.epochs_run + 1))
    assert [m.value for m in per_epoch] == [v for v in training.history.val_accuracy if v is not None]
    ends = [m.timestamp for m in metrics if m.key == "epoch_seconds"]
    assert ends == sorted(ends) and ends[0] == 1_000 + int(1000 * training.epoch_seconds[0])
    final = {m.key: m.value for m in metrics if m.step == 0}
    assert final["test_accuracy"] == pytest.approx(training.test_accuracy)
    assert {"ece", "brier", "nll", "test_accuracy_ci_low", "test_accuracy_ci_high"} <= set(final)


def test_a_failed_training_logs_no_value_it_does_not_have():
    training = hand_training(0.5, status="failed")  # epoch 2's loss was NaN: stored as None
    metrics = export.training_metrics(training, timestamp=0)
    losses = [(m.step, m.value) for m in metrics if m.key == "loss"]
    assert losses == [(1, 0.9)]  # epoch 2 left out, not logged as NaN
    final = {m.key for m in metrics if m.step == 0}
    assert not final & {"test_accuracy", "test_accuracy_ci_low", "ece", "best_val_accuracy"}


def test_a_training_on_another_split_names_its_split_and_its_own_model_file(tmp_path):
    from dataclasses import replace

    run = hand_result()
    model = run.models[0]
    training = replace(hand_training(0.9, seed=model.saved_seed), split=2)
    assert export.training_params(model, training)["split"] == "2"
    assert export.training_params(model, hand_training(0.9, seed=7))["split"] == "1"
    assert "pack" not in export.training_params(model, training)
    packed = export.training_params(model, replace(training, pack="model_1-pack1", pack_size=5))
    assert (packed["pack"], packed["pack_size"]) == ("model_1-pack1", "5")
    models = tmp_path / "models"
    models.mkdir()
    for name in ("model_1.keras", "model_1-seed7-split2.keras"):
        (models / name).write_bytes(b"x")
    assert [p.name for p in export.model_files(tmp_path, model, training)] == ["model_1-seed7-split2.keras"]
    first = hand_training(0.9, seed=model.saved_seed)
    assert [p.name for p in export.model_files(tmp_path, model, first)] == ["model_1.keras"]
