"""The GPU check (#24) runs as the device machine runs it, on a CPU at tiny sizes, so it cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow  # trains 12 small trainings


def test_the_gpu_check_runs_every_model_policy_and_mode_and_says_whether_the_loss_scale_skipped(tmp_path):
    pytest.importorskip("jax")
    env = os.environ | {"PYTHON": sys.executable, "OUT": str(tmp_path), "KERAS_BACKEND": "jax"}
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--tiny"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("device: CPU") and "on jax" in out
    for model in ("Model 1", "Model 2"):
        for policy, mode in (
            ("mixed_float16", "separate"),
            ("mixed_bfloat16", "separate"),
            ("mixed_bfloat16", "packed"),
        ):
            line = next(x for x in out.splitlines() if x.startswith(model) and policy in x and mode in x)
            assert "s/epoch" in line and "steps/s" in line
            assert ("loss scale" in line) == (policy == "mixed_float16")
    assert "separate/packed" in out and "loss scale skipped a step: " in out
    rows = __import__("json").loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert len(rows) == 6 and all(r["failed"] == 0 and r["epoch_seconds"] > 0 for r in rows)


def test_the_gpu_check_without_keras_or_its_wheels_says_how_to_get_them(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text(f'#!/bin/sh\ncase "$*" in *"import keras"*) exit 1;; esac\nexec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    scratch = tmp_path / "repo"
    (scratch / "bench").mkdir(parents=True)
    (scratch / "bench" / "gpu_check.sh").write_text((REPO / "bench" / "gpu_check.sh").read_text())
    done = subprocess.run(["bash", "bench/gpu_check.sh"], capture_output=True, text=True, cwd=scratch,
                          env=os.environ | {"PYTHON": str(fake)}, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "--fetch-wheels" in done.stderr and done.stderr.count("\n") == 1
