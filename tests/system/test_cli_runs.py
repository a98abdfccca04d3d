"""The CLI end to end on a tiny real sample, checking what run.json says, not only that it exists (slow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import run_job

from job.rundir.layout import SCHEMA_VERSION

SEED_PARAMS = [24_380, 53_730, 543_460, 1_168_460]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = run_job("run", "--sample", "300", "--epochs", "1", "--out", str(out), "--seed", "5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, proc


@pytest.mark.slow
def test_run_json_content(tiny_run):
    run_dir, proc = tiny_run
    run = json.loads((run_dir / "run.json").read_text())
    assert run["schema_version"] == SCHEMA_VERSION and run["run_id"] == run_dir.name
    assert run["data"]["source"] == "mnist5k" and run["data"]["rows"] == 5000 and len(run["data"]["sha256"]) == 64
    split = {"train": 180, "val": 60, "test": 60, "fractions": [0.6, 0.2, 0.2], "seed": 5, "stratified": True}
    split["held_out_copies"] = 0
    assert run["split"] == split
    assert [m["name"] for m in run["models"]] == ["Model 1", "Model 2", "Model 3", "Model 4"]
    assert [m["params"] for m in run["models"]] == SEED_PARAMS
    assert [m["layers"] for m in run["models"]] == [4, 6, 6, 10]
    for m in run["models"]:
        (t,) = m["trainings"]
        assert m["status"] == "ok" and t["best_epoch"] == 1 and t["epochs_run"] == 1 and t["seed"] == 5
        assert (m["batch_size"], m["patience"], m["monitor"], m["optimizer"]) == (32, 3, "loss", "adam")
        assert m["learning_rate"] == 0.001 and m["activation"] == "selu" and m["initializer"] == "lecun_normal"
        assert len(t["history"]["val_accuracy"]) == 1 and t["val_accuracy"] == t["history"]["val_accuracy"][0]
        assert 0 <= t["test_accuracy"] <= 1 and t["test_loss"] > 0 and m["saved_seed"] == 5
        lo, hi = t["test_accuracy_ci"]["low"], t["test_accuracy_ci"]["high"]
        assert lo <= t["test_accuracy"] <= hi and t["macro_f1_ci"]["low"] <= t["macro_f1"] <= t["macro_f1_ci"]["high"]
        assert t["train_seconds"] > 0 and t["epoch_seconds"][0] > 0 and t["compile_epochs"] == [1]
        assert sum(map(sum, t["confusion"])) == 60 and len(t["per_class"]) == 10 and len(t["calibration"]["bins"]) == 15
    assert run["repeats"] == 1 and len(run["comparison"]["pairs"]) == 6
    assert run["choice"]["chosen"] == run["chosen_model"] and "p" in run["chosen_reason"]
    assert run["chosen_model"] in {m["name"] for m in run["models"]} and run["chosen_reason"]
    assert run["precision"] == {"requested": "auto", "policy": "float32", "loss_scaling": False}
    assert run["environment"]["device"]["kind"] == "CPU" and run["environment"]["versions"]["keras"]
    assert run["deterministic"] is True and run["seed"] == 5
    assert "--sample 300" in run["command"] and "--epochs 1" in run["command"]
    assert "steps per execution 32 capped at the 6 steps of an epoch" in proc.stderr  # 180 rows, batch 32
    # one log line per epoch per model, readable in docker logs; no progress bars
    assert "model 4/4 (Model 4) epoch 1/1" in proc.stderr and "━" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_csvs_and_saved_models_agree(tiny_run):
    import keras

    run_dir, _ = tiny_run
    run = json.loads((run_dir / "run.json").read_text())
    preds = pd.read_csv(run_dir / "predictions.csv")
    assert len(preds) == 60 and {"row", "true_label", "model_1_pred", "model_4_p9"} <= set(preds.columns)
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 4 and list(history["model"]) == ["Model 1", "Model 2", "Model 3", "Model 4"]
    assert set(history["seed"]) == {5} and len(pd.read_csv(run_dir / "val_predictions.csv")) == 60
    split = pd.read_csv(run_dir / "split.csv")
    assert split["split"].value_counts().to_dict() == {"train": 180, "val": 60, "test": 60}
    chosen = next(m for m in run["models"] if m["name"] == run["chosen_model"])
    wrong = (preds[f"{chosen['slug']}_pred"] != preds["true_label"]).sum()
    mis = pd.read_csv(run_dir / "misclassified.csv")
    assert len(mis) == wrong and mis["confidence"].is_monotonic_decreasing
    # the saved model takes raw 0..255 pixels and gives the recorded probabilities
    from job.data.load import load_dataset

    ds = load_dataset(None)
    model = keras.models.load_model(run_dir / "models" / f"{chosen['slug']}.keras")
    proba = model.predict(ds.x[preds["row"].to_numpy()], verbose=0)
    recorded = preds[[f"{chosen['slug']}_p{k}" for k in range(10)]].to_numpy()
    np.testing.assert_allclose(proba, recorded, atol=1e-5)
    assert (run_dir / "report.html").stat().st_size > 10_000


@pytest.mark.slow
def test_real_run_escapes_script_in_file_and_column_names(tmp_path):
    from helpers import digits_frame

    frame = digits_frame()
    frame["<b onmouseover=alert(2)>note</b>"] = 1
    data = tmp_path / "<script>alert(1)<script>.csv"  # no "/" possible in a file name
    frame.to_csv(data, index=False)
    out = tmp_path / "out"
    proc = run_job("run", "--data", str(data), "--models", "1", "--epochs", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = list(out.iterdir())
    html = (run_dir / "report.html").read_text()
    assert "<script>" not in html and "<b onmouseover" not in html
    assert "&lt;script&gt;alert(1)&lt;script&gt;.csv" in html and "&lt;b onmouseover=alert(2)&gt;note&lt;/b&gt;" in html
    run = json.loads((run_dir / "run.json").read_text())
    assert run["data"]["ignored_columns"] == ["<b onmouseover=alert(2)>note</b>"]


@pytest.mark.slow
def test_same_job_runs_on_jax(tmp_path):
    pytest.importorskip("jax")
    proc = run_job(
        "run", "--backend", "jax", "--models", "1", "--sample", "300", "--epochs", "2", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = list(tmp_path.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["environment"]["backend"] == "jax" and run["precision"]["policy"] == "float32"
    assert run["models"][0]["params"] == 24_380 and run["models"][0]["trainings"][0]["epochs_run"] == 2
    assert "--backend jax" in run["command"]


@pytest.mark.slow
def test_repeats_end_to_end_and_statistics_recomputed_from_the_prediction_files(tmp_path):
    """--repeats 2: every (model, seed) trained on one split; the report shows the section; McNemar's p and
    the Clopper-Pearson intervals recomputed independently from the CSVs match run.json to 1e-9."""
    from scipy.stats import beta, binomtest

    proc = run_job("run", "--models", "1,2", "--sample", "400", "--epochs", "2", "--repeats", "2", "--seed", "8",
                   "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["repeats"] == 2 and "--repeats 2" in run["command"]
    for m in run["models"]:
        assert [t["seed"] for t in m["trainings"]] == [8, 9] and m["saved_seed"] in (8, 9)
        assert m["test_accuracy"]["sd"] is not None
    models = sorted(p.name for p in (run_dir / "models").iterdir())
    assert len(models) == 4 and "model_1.keras" in models and "model_2.keras" in models
    preds = pd.read_csv(run_dir / "predictions.csv")
    y = preds["true_label"].to_numpy()
    correct = {
        slug: np.mean([preds[f"{slug}{tag}_pred"].to_numpy() == y for tag in ("", "_seed9")], axis=0)
        for slug in ("model_1", "model_2")
    }
    only_a = int((correct["model_1"] > correct["model_2"]).sum())
    only_b = int((correct["model_2"] > correct["model_1"]).sum())
    (pair,) = run["comparison"]["pairs"]
    assert (pair["agreement"]["only_a"], pair["agreement"]["only_b"]) == (only_a, only_b)
    expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert abs(pair["p_value"] - expected) < 1e-9
    for m in run["models"]:
        for t, tag in zip(m["trainings"], ("", "_seed9"), strict=True):
            k, n = int((preds[f"{m['slug']}{tag}_pred"] == y).sum()), len(y)
            assert abs(t["test_accuracy"] - k / n) < 1e-12
            low = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
            high = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
            assert abs(t["test_accuracy_ci"]["low"] - low) < 1e-9 and abs(t["test_accuracy_ci"]["high"] - high) < 1e-9
    html = (run_dir / "report.html").read_text()
    assert '<section id="difference">' in html and "Every seed" in html and "trainings per model" in html
    history = pd.read_csv(run_dir / "history.csv")
    assert sorted(set(zip(history["model"], history["seed"], strict=True))) == [
        ("Model 1", 8), ("Model 1", 9), ("Model 2", 8), ("Model 2", 9)
    ]  # fmt: skip
