"""Family files that train: the examples end to end, and a family's file kept with its run (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO
from test_family import EXAMPLES, _run_example

from job.family import load_family


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_parameter_counts_without_keras_match_built_models(path: Path):
    import numpy as np

    from job.training.model import build_model, dense_params

    for spec in load_family(path).specs:
        model = build_model(spec, 784, 10, np.zeros(784, np.float32), np.full(784, 255.0, np.float32))
        assert dense_params(model) == spec.param_count(), spec.name


@pytest.mark.slow
def test_seed_plus_runs_end_to_end_with_each_variants_settings(tmp_path):
    import hashlib

    source = REPO / "examples" / "seed-plus.toml"
    run_dir, run = _run_example("seed-plus.toml", tmp_path, "--sample", "1000", "--epochs", "1")
    assert run["family"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (run_dir / "family.toml").read_bytes() == source.read_bytes()
    by_name = {m["name"]: m for m in run["models"]}
    assert len(by_name) == 7 and by_name["M3 dropout"]["dropout"] == 0.2
    assert (by_name["M3 relu he"]["activation"], by_name["M3 relu he"]["initializer"]) == ("relu", "he_normal")
    assert by_name["M3 batch 128"]["batch_size"] == 128 and by_name["M3 batch 128"]["learning_rate"] == 0.002
    assert by_name["M3 dropout"]["monitor"] == "val_loss"
    assert len(list((run_dir / "models").iterdir())) == 7
    html = (run_dir / "report.html").read_text()
    differs = html[html.index("<h3>What differs</h3>") : html.index("<h3>Each model's settings</h3>")]
    for column in ("activation", "initializer", "dropout", "batch", "learning rate", "early stopping"):
        assert f'<th class="l">{column}</th>' in differs
    assert '<th class="l">optimizer</th>' not in differs  # every model uses Adam: not a difference


@pytest.mark.slow
def test_the_smoke_family_runs_with_sgd(tmp_path):
    _, run = _run_example("smoke.toml", tmp_path, "--sample", "300", "--models", "tiny sgd")
    (model,) = run["models"]
    assert model["optimizer"] == "sgd" and model["optimizer_args"] == {"momentum": 0.9, "nesterov": True}
    assert model["status"] == "ok" and "--models 'tiny sgd'" in run["command"]
    assert run["choice"]["margin_pp"] == 2.0 and "--margin 2.0" in run["command"]  # the file's margin, kept
    _, beaten = _run_example("smoke.toml", tmp_path / "cli", "--sample", "300", "--margin", "0.5")
    assert beaten["choice"]["margin_pp"] == 0.5 and beaten["config"]["margin"] == 0.5
