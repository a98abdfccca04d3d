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
from helpers import REPO, run_job

import job.pipeline
import job.plan
from job.cli import main
from job.family import seed_specs

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
    assert "Model 1 seed 3: finished before the interruption; not retrained" in resumed.stderr
    assert "model 1/2 (Model 1) epoch" not in resumed.stderr
    # the kill lands after epoch 3's record; its backup may or may not have been written
    import re

    done = int(re.search(r"Model 2: resuming after epoch (\d)", resumed.stderr).group(1))
    assert done in (2, 3)
    assert f"model 2/2 (Model 2) epoch {done + 1}/6" in resumed.stderr and "epoch 1/6" not in resumed.stderr
    (final,) = list(out.iterdir())
    assert not final.name.endswith(".partial")
    run = json.loads((final / "run.json").read_text())
    m2 = run["models"][1]["trainings"][0]
    # the history and timing are whole, though Keras's History only saw epochs 4..6
    assert m2["epochs_run"] == 6 and len(m2["history"]["loss"]) == 6 and len(m2["epoch_seconds"]) == 6
    assert m2["compile_epochs"] == [1, done + 1]
    assert all(v is not None for v in m2["history"]["val_accuracy"])
    assert sorted(p.name for p in final.iterdir()) == sorted(
        [
            "family.toml",
            "figures",
            "history.csv",
            "images.npz",
            "misclassified.csv",
            "models",
            "predictions.csv",
            "val_predictions.csv",
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
        a, b = a["trainings"][0], b["trainings"][0]
        assert a["history"] == b["history"] and a["confusion"] == b["confusion"]
        assert (a["test_loss"], a["test_accuracy"]) == (b["test_loss"], b["test_accuracy"])
    assert sorted(p.name for p in (final / "figures").iterdir()) == [
        "curves.png",
        "epoch_times.png",
        "keys.json",
        "reliability.png",
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
        a, b = a["trainings"][0], b["trainings"][0]
        assert a["history"] == b["history"] and a["test_loss"] == b["test_loss"]
    assert runs[0]["deterministic"] is True


def test_nan_loss_fails_that_model_only(tmp_path, monkeypatch):
    diverging = replace(seed_specs()[1], learning_rate=1e12)  # Adam with a huge step: inf, then NaN
    monkeypatch.setattr(job.plan, "select_specs", lambda _sel, _specs: [seed_specs()[0], diverging])
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
        and failed["trainings"][0]["failure"]["epoch"] >= 1
        and "nan" in failed["trainings"][0]["failure"]["reason"].lower()
    )
    assert run["failed_models"] == ["Model 2"]
    assert "Model 2 failed at epoch" in (run_dir / "report.html").read_text()


def test_two_processes_on_one_run_directory(tmp_path):
    """The second process is refused with the holder's pid; the lock dies with its holder, even by SIGKILL."""
    out = tmp_path / "out"
    args = ["run", "--models", "1", "--sample", "400", "--epochs", "8", "--out", str(out), "--seed", "2"]
    first = subprocess.Popen(
        [sys.executable, "-m", "job", *args], stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        for line in first.stderr:
            if "model 1/1 (Model 1) epoch 2/8" in line:
                first.send_signal(signal.SIGSTOP)  # holds the lock, makes no progress
                break
        (partial,) = list(out.iterdir())
        second = run_job("run", "--resume", str(partial))
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"in use by pid {first.pid} on host" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait(timeout=60)
    third = run_job("run", "--resume", str(partial))
    assert third.returncode == 0, third.stderr[-3000:]
    (final,) = list(out.iterdir())
    assert not (final / ".lock").exists() and (final / "run.json").exists()


DISK_FULL_SITES = {
    "split": ("job.rundir.resume.write_split_csv", None),
    "epoch log": ("job.rundir.resume.Checkpoint.append", None),
    "weights backup": ("job.training.loop.save_backup", None),
    "best weights": ("job.training.loop._save_best", None),
    "model file": ("job.rundir.atomic.atomic_write_bytes", ".keras"),
    "done marker": ("job.rundir.resume.RunState.mark_done", None),
    "predictions": ("job.rundir.writer.write_predictions_csv", None),
    "images": ("job.rundir.writer.write_images", None),
    "history": ("job.rundir.writer.write_history_csv", None),
    "run.json": ("job.rundir.writer.write_run", None),
    "report": ("job.rundir.atomic.atomic_write_bytes", ".html"),
}


@pytest.mark.parametrize("site", sorted(DISK_FULL_SITES))
def test_a_full_disk_at_any_write_is_one_line_and_the_run_resumes(tmp_path, monkeypatch, small_csv, site):
    import errno
    import importlib

    target, suffix = DISK_FULL_SITES[site]
    module_name, _, attr = target.rpartition(".")
    owner_name, _, cls_name = module_name.rpartition(".")
    try:
        owner = getattr(importlib.import_module(owner_name), cls_name)  # a class: job.rundir.resume.Checkpoint
    except (ImportError, AttributeError, ValueError):
        owner = importlib.import_module(module_name)
    original = getattr(owner, attr)

    def full(*args, **kwargs):
        path = next((a for a in args if hasattr(a, "suffix")), None)
        if suffix is None or (path is not None and path.suffix == suffix):
            raise OSError(errno.ENOSPC, "No space left on device", f"<{site}>")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attr, full)
    out = tmp_path / "out"
    args = ["run", "--data", str(small_csv), "--models", "1", "--epochs", "2", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: disk full while writing <{site}>; free space and resume with: job run --resume")
    assert "Traceback" not in result.stderr
    monkeypatch.setattr(owner, attr, original)
    (partial,) = list(out.iterdir())
    resumed = CliRunner().invoke(main, ["run", "--resume", str(partial)])
    assert resumed.exit_code == 0, resumed.stderr[-2000:]
    (final,) = list(out.iterdir())
    assert (final / "run.json").exists() and (final / "report.html").exists()
