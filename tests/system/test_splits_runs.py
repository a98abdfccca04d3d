"""Repeated development splits, end to end (#23): a 3-split run on Ray, the same run killed with SIGKILL and
resumed locally, and the two give the same numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import REPO, run_job

pytestmark = pytest.mark.slow  # trains, and starts Ray
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

ARGS = ["--splits", "3", "--repeats", "2", "--sample", "2000", "--epochs", "2", "--cpus-per-task", "1", "--pack", "off"]


def _run_dir(out):
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and p.name != "tensorboard"]
    return run_dir


def _numbers(run):
    return {
        (m["name"], t["seed"], t["split"]): (t["history"], t["test_accuracy"], t["confusion"])
        for m in run["models"]
        for t in m["trainings"]
    }


def test_a_three_split_run_on_ray_equals_one_killed_and_resumed(tmp_path):
    pytest.importorskip("ray")
    on_ray = run_job("run", *ARGS, "--executor", "ray", "--tensorboard", "--out", str(tmp_path / "ray"), timeout=900)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "24 trainings: 4 models x 2 seeds x 3 splits" in on_ray.stderr
    ray_dir = _run_dir(tmp_path / "ray")
    ray_run = json.loads((ray_dir / "run.json").read_text())
    assert ray_run["schema_version"] == 6 and ray_run["splits"] == 3 and "--splits 3" in ray_run["command"]
    assert {(t["seed"], t["split"]) for t in ray_run["models"][0]["trainings"]} == {
        (s, k) for s in (42, 43) for k in (1, 2, 3)
    }
    names = {p.name for p in ray_dir.iterdir()}
    assert {"split.csv", "split-2.csv", "split-3.csv", "val_predictions-split3.csv"} <= names
    models = {p.name for p in (ray_dir / "models").iterdir()}
    assert "model_1.keras" in models and "model_1-seed43-split3.keras" in models and len(models) == 24
    events = {p.name for p in (ray_dir / "tensorboard" / "model_1").iterdir()}
    assert events == {"seed-42", "seed-43", "seed-42-split2", "seed-43-split2", "seed-42-split3", "seed-43-split3"}
    arch = ray_run["architectures"]
    assert arch["splits"] == 3 and len(arch["pairs"]) == 6 and all(p["p_value"] is not None for p in arch["pairs"])
    html = (ray_dir / "report.html").read_text()
    assert "P(A &gt; B)" in html and "Where the noise comes from" in html and "Every pair across splits" in html

    out = tmp_path / "local"
    proc = subprocess.Popen([sys.executable, "-m", "job", "run", *ARGS, "--out", str(out)], stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=os.environ | {"PYTHONUNBUFFERED": "1"})  # fmt: skip
    seen, deadline = [], time.time() + 600
    for line in proc.stderr:
        seen.append(line)
        if "model 10/24 (Model 2) epoch 1/2" in line:  # Model 2, seed 43 on split 2
            proc.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline, "".join(seen)
    proc.stderr.read()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (partial,) = list(out.iterdir())
    assert partial.name.endswith(".partial") and (partial / "split-3.csv").is_file()
    resumed = run_job("run", "--resume", str(partial), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Model 1 seed 43 split 3: finished before the interruption; not retrained" in resumed.stderr
    assert "Model 2 seed 42 split 2: finished before the interruption" in resumed.stderr
    local_run = json.loads((_run_dir(out) / "run.json").read_text())
    assert _numbers(local_run) == _numbers(ray_run)
    assert local_run["choice"]["chosen"] == ray_run["choice"]["chosen"]
    assert local_run["architectures"] == ray_run["architectures"]


V4 = REPO / "tests" / "fixtures" / "run_v4"  # written by 1beb412, before --splits existed
TIMING = {"run_id", "started", "finished", "total_seconds", "placement", "train_seconds", "epoch_seconds",
          "epoch_train_seconds", "epoch_val_seconds", "first_epoch_seconds", "steady_epoch_seconds",
          "samples_per_second", "schema_version", "out"}  # fmt: skip
NEW = {"splits", "architectures", "estimate", "split", "pack", "pack_size", "loss_scale", "skipped_steps"}


def _differences(old, new, path=""):
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{path}.{k}: gone" for k in old if k not in new and k not in TIMING]
        out += [f"{path}.{k}: new" for k in new if k not in old and k not in NEW | TIMING]
        for k in old.keys() & new.keys() - TIMING:
            out += _differences(old[k], new[k], f"{path}.{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def test_one_split_gives_the_run_json_of_before_splits_existed(tmp_path):
    old = json.loads((V4 / "run.json").read_text())
    from job.environment import versions

    here = versions("tensorflow")
    if {k: here.get(k) for k in ("keras", "tensorflow", "numpy")} != {
        k: old["environment"]["versions"][k] for k in ("keras", "tensorflow", "numpy")
    } or os.cpu_count() != 2:
        pytest.skip("the fixture was written with other versions or thread counts: its numbers would differ")
    done = run_job("run", "--models", "1,2", "--sample", "1000", "--epochs", "2", "--repeats", "2", "--splits", "1",
                   "--backend", "tensorflow", "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    new = json.loads((_run_dir(tmp_path) / "run.json").read_text())
    assert " --pack off " in new["command"]  # the resolved pack is always spelled now: auto may differ elsewhere
    new["command"] = new["command"].replace(" --pack off", "")
    assert _differences(old, new) == []
    assert (_run_dir(tmp_path) / "split.csv").read_bytes() == (V4 / "split.csv").read_bytes()


V5 = REPO / "tests" / "fixtures" / "run_v5"  # written by 6ad53e8, before --pack existed


def test_pack_off_gives_the_run_json_of_before_packs_existed(tmp_path):
    old = json.loads((V5 / "run.json").read_text())
    from job.environment import versions

    here = versions("tensorflow")
    if {k: here.get(k) for k in ("keras", "tensorflow", "numpy")} != {
        k: old["environment"]["versions"][k] for k in ("keras", "tensorflow", "numpy")
    } or os.cpu_count() != 2:
        pytest.skip("the fixture was written with other versions or thread counts: its numbers would differ")
    done = run_job("run", "--data", "digits", "--models", "1,2", "--sample", "400", "--epochs", "2", "--repeats", "2",
                   "--pack", "off", "--backend", "tensorflow", "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    new = json.loads((_run_dir(tmp_path) / "run.json").read_text())
    assert " --pack off " in new["command"]  # the resolved pack is always spelled now: auto may differ elsewhere
    new["command"] = new["command"].replace(" --pack off", "")
    assert _differences(old, new) == []
