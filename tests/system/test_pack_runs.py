"""Packed trainings, end to end (#24): a packed `--repeats 3` run on Ray, the same run killed with SIGKILL inside a
pack and resumed locally, and the two give the same numbers; the report shows every member as its own training."""

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

# no --pack: the default, auto, packs both small models on this CPU, so the layout resolves to (and is spelled) 3
ARGS = ["--models", "1,2", "--repeats", "3", "--sample", "2000", "--epochs", "3", "--cpus-per-task", "1"]


def _run_dir(out):
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and p.name != "tensorboard"]
    return run_dir


def _numbers(run):
    return {
        (m["name"], t["seed"]): (t["history"], t["best_epoch"], t["test_accuracy"], t["confusion"], t["pack"])
        for m in run["models"]
        for t in m["trainings"]
    }


def test_a_packed_run_on_ray_equals_one_killed_inside_a_pack_and_resumed(tmp_path):
    pytest.importorskip("ray")
    on_ray = run_job("run", *ARGS, "--executor", "ray", "--tensorboard", "--out", str(tmp_path / "ray"), timeout=900)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "ray: 2 tasks (6 trainings)" in on_ray.stderr and "packed: 1 of model_1, 1 of model_2" in on_ray.stderr
    ray_dir = _run_dir(tmp_path / "ray")
    ray_run = json.loads((ray_dir / "run.json").read_text())
    assert "--pack 3" in ray_run["command"] and ray_run["config"]["pack"] == "3"
    for m in ray_run["models"]:
        assert [(t["seed"], t["pack"], t["pack_size"]) for t in m["trainings"]] == [
            (s, f"{m['slug']}-pack1", 3) for s in (42, 43, 44)
        ]
        windows = {(t["placement"]["started"], t["placement"]["finished"]) for t in m["trainings"]}
        assert len(windows) == 1  # a pack's members share its window
    models = {p.name for p in (ray_dir / "models").iterdir()}
    assert {"model_1.keras", "model_2.keras"} <= models and len(models) == 6  # one file per member
    events = {p.name for p in (ray_dir / "tensorboard" / "model_2").iterdir()}
    assert events == {"seed-42", "seed-43", "seed-44"}
    html = (ray_dir / "report.html").read_text()
    assert "pack of 3, shared" in html and "<code>--pack 3</code>" in html
    for seed in (42, 43, 44):
        assert f"Model 2 seed {seed}" in html  # every member has its own row and timeline bar

    out = tmp_path / "local"
    proc = subprocess.Popen([sys.executable, "-m", "job", "run", *ARGS, "--out", str(out)], stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=os.environ | {"PYTHONUNBUFFERED": "1"})  # fmt: skip
    seen, deadline = [], time.time() + 600
    for line in proc.stderr:
        seen.append(line)
        if "pack of 3 (Model 2, 4/6, 5/6, 6/6) epoch 2/3" in line:  # inside Model 2's pack, after its 2nd epoch
            proc.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline, "".join(seen)
    proc.stderr.read()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (partial,) = list(out.iterdir())
    assert (partial / "progress" / "model_2-pack1" / "backup").is_dir()
    resumed = run_job("run", "--resume", str(partial), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Model 1 seed 44: finished before the interruption; not retrained" in resumed.stderr
    assert "Model 2 pack of 3: resuming after epoch" in resumed.stderr
    local_run = json.loads((_run_dir(out) / "run.json").read_text())
    assert _numbers(local_run) == _numbers(ray_run)
    assert local_run["choice"]["chosen"] == ray_run["choice"]["chosen"]
