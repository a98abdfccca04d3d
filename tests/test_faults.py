"""Interruption and resume, numerical faults, determinism: with real training runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner
from conftest import REPO, run_job

import job.pipeline
from job.cli import main
from job.specs import SEED_SPECS

pytestmark = pytest.mark.slow  # every test here trains real models


def test_kill_during_training_then_resume(tmp_path):
    out = tmp_path / "out"
    args = ["run", "--models", "1,2", "--sample", "400", "--epochs", "6", "--out", str(out), "--seed", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "job", *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    seen = []
    deadline = time.time() + 300
    for line in proc.stderr:
        seen.append(line)
        if "model 2/2 (Model 2) epoch 3/6" in line:
            proc.send_signal(signal.SIGTERM)  # what docker stop and schedulers send
            break
        assert time.time() < deadline, "".join(seen)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 143, "".join(seen) + rest
    assert "Traceback" not in rest and "--resume" in rest
    (partial,) = list(out.iterdir())
    assert partial.name.endswith(".partial")
    assert not (partial / "report.html").exists() and not (partial / "run.json").exists()

    resumed = run_job("run", "--resume", str(partial))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Model 1: finished before the interruption; not retrained" in resumed.stderr
    assert "model 1/2 (Model 1) epoch" not in resumed.stderr
    # the kill lands after epoch 3's record; its backup may or may not have been written
    import re

    done = int(re.search(r"Model 2: resuming after epoch (\d)", resumed.stderr).group(1))
    assert done in (2, 3)
    assert f"model 2/2 (Model 2) epoch {done + 1}/6" in resumed.stderr and "epoch 1/6" not in resumed.stderr
    (final,) = list(out.iterdir())
    assert not final.name.endswith(".partial")
    run = json.loads((final / "run.json").read_text())
    m2 = run["models"][1]
    # the history and timing are whole, though Keras's History only saw epochs 4..6
    assert m2["epochs_run"] == 6 and len(m2["history"]["loss"]) == 6 and len(m2["epoch_seconds"]) == 6
    assert m2["compile_epochs"] == [1, done + 1]
    assert all(v is not None for v in m2["history"]["val_accuracy"])
    assert sorted(p.name for p in final.iterdir()) == sorted(
        [
            "figures",
            "history.csv",
            "images.npz",
            "misclassified.csv",
            "models",
            "predictions.csv",
            "report.html",
            "run.json",
            "split.csv",
        ]
    )
    assert sorted(p.name for p in (final / "models").iterdir()) == ["model_1.keras", "model_2.keras"]
    # killed and resumed, the run gives exactly the numbers of an uninterrupted one
    whole = run_job(*args[:-4], "--out", str(tmp_path / "whole"), "--seed", "3")
    assert whole.returncode == 0, whole.stderr[-3000:]
    (whole_dir,) = list((tmp_path / "whole").iterdir())
    uninterrupted = json.loads((whole_dir / "run.json").read_text())
    for a, b in zip(run["models"], uninterrupted["models"], strict=True):
        assert a["history"] == b["history"] and a["confusion"] == b["confusion"]
        assert (a["test_loss"], a["test_accuracy"]) == (b["test_loss"], b["test_accuracy"])
    assert sorted(p.name for p in (final / "figures").iterdir()) == [
        "curves.png",
        "epoch_times.png",
        "keys.json",
        "val_accuracy.png",
    ]


def test_same_seed_same_numbers(tmp_path):
    runs = []
    for name in ("a", "b"):
        proc = run_job(
            "run", "--models", "1,2", "--sample", "300", "--epochs", "2", "--out", str(tmp_path / name), "--seed", "11"
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        (run_dir,) = list((tmp_path / name).iterdir())
        runs.append(json.loads((run_dir / "run.json").read_text()))
    for a, b in zip(runs[0]["models"], runs[1]["models"], strict=True):
        assert a["history"] == b["history"] and a["test_loss"] == b["test_loss"]
    assert runs[0]["deterministic"] is True


def test_nan_loss_fails_that_model_only(tmp_path, monkeypatch):
    diverging = replace(SEED_SPECS[1], learning_rate=1e12)  # Adam with a huge step: inf, then NaN
    monkeypatch.setattr(job.pipeline, "select_specs", lambda _sel: [SEED_SPECS[0], diverging])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--sample", "300", "--epochs", "3", "--out", str(out)])
    assert result.exit_code == 3, result.output + result.stderr
    assert "Model 2 failed" in result.stderr
    (run_dir,) = list(out.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    ok, failed = run["models"]
    assert ok["status"] == "ok" and run["chosen_model"] == "Model 1"
    assert (
        failed["status"] == "failed"
        and failed["failure"]["epoch"] >= 1
        and "nan" in failed["failure"]["reason"].lower()
    )
    assert run["failed_models"] == ["Model 2"]
    assert "Model 2 failed at epoch" in (run_dir / "report.html").read_text()
