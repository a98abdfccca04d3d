"""The cost estimate before training: memory refused before anything is written, trainings and time logged."""

from __future__ import annotations

import logging

import numpy as np
from click.testing import CliRunner

from job import cost
from job.cli import main
from job.config import RunConfig
from job.pipeline import budget
from job.plan import resolve
from job.specs import ModelSpec

SEED = ModelSpec("1", "Model 1", (600, 200), 10)


def _shape(rows: int = 5000, classes: int = 10, features: int = 784) -> cost.Shape:
    return cost.Shape(features, classes, rows, rows * 3 // 5, rows // 5, rows // 5)


def test_the_estimate_counts_parameters_on_the_real_shape_and_the_optimizer_state():
    small, wide = cost.training_bytes(SEED, 784, 10), cost.training_bytes(SEED, 300 * 300, 10)
    assert wide > 50 * small  # 300x300 pixels: the first layer's kernel grows with them
    adam = cost.training_bytes(SEED, 784, 10)
    sgd = cost.training_bytes(ModelSpec("1", "m", (600, 200), 10, optimizer="sgd"), 784, 10)
    assert adam > sgd  # Adam keeps two moments, SGD one
    # 19.2 M parameters under Adam measured 0.78 GB above a tiny model's peak (docs/benchmarks.md)
    big = ModelSpec("1", "big", (4000, 4000), 1)
    assert 0.7 < cost.training_bytes(big, 784, 10) / 2**30 < 0.9


def test_held_predictions_grow_with_trainings_and_classes_and_ray_leaves_training_to_the_workers():
    one = cost.estimate((SEED,), _shape(), seeds=1, local=True)
    many = cost.estimate((SEED,), _shape(), seeds=1000, local=True)
    per_training = one.held_bytes / (1 + cost.SCORING_COPIES)  # held, and copied while it is scored
    assert many.trainings == 1000 and many.held_bytes == (1000 + cost.SCORING_COPIES) * per_training
    assert many.seconds > 900 * one.seconds / 1.01
    on_ray = cost.estimate((SEED,), _shape(), seeds=1, local=False)
    assert one.peak_bytes - on_ray.peak_bytes == one.training_bytes


def test_a_run_over_max_memory_is_refused_before_anything_is_written(tmp_path):
    family = tmp_path / "big.toml"
    family.write_text('[[model]]\nname = "big"\nhidden = [4000, 4000]\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["run", "--spec-file", str(family), "--sample", "300", "--out", str(out), "--max-memory", "1"]
    )
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "about 1.7 GB" in line and "--max-memory 1" in line and "narrower" in line
    assert not out.exists() or not any(out.iterdir())


def test_a_model_over_the_parameter_cap_on_large_images_is_refused_naming_the_model(tmp_path):
    data = tmp_path / "wide.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 256, (20, 300 * 300), dtype=np.uint8), y=np.repeat([0, 1], 10))
    family = tmp_path / "f.toml"
    family.write_text('[[model]]\nname = "wide"\nhidden = [20000]\n')  # 1.8 G parameters on 90,000 pixels
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--data", str(data), "--spec-file", str(family), "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "model 1 ('wide')" in line and "90,000 pixels" in line and str(family) in line
    assert not out.exists() or not any(out.iterdir())


def test_a_thousand_repeats_warn_with_the_count_and_the_time(caplog):
    plan = resolve(RunConfig(repeats=1000, sample=300, max_memory=1000.0))
    with caplog.at_level(logging.INFO, logger="job"):
        est = budget(plan)
    assert est.trainings == 4000
    text = caplog.text
    assert "plan: 4,000 trainings" in text and "4,000 trainings will take about" in text and "--repeats" in text


def test_the_default_run_logs_its_plan_without_a_warning(caplog):
    with caplog.at_level(logging.INFO, logger="job"):
        budget(resolve(RunConfig()))
    assert "plan: 4 trainings" in caplog.text and "WARNING" not in caplog.text


def test_available_memory_reads_the_cgroup_limit_before_meminfo(tmp_path, monkeypatch):
    limit, usage, meminfo = tmp_path / "memory.max", tmp_path / "memory.current", tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nMemAvailable:   2048 kB\n")
    monkeypatch.setattr(cost, "MEMINFO", str(meminfo))
    monkeypatch.setattr(cost, "CGROUP_FILES", ((str(limit), str(usage)),))
    assert cost.available_bytes() == (2048 * 1024, "MemAvailable in /proc/meminfo")  # no cgroup files
    limit.write_text("max\n")
    usage.write_text("100\n")
    assert cost.available_bytes()[0] == 2048 * 1024  # a cgroup without a limit
    limit.write_text(f"{3 * 2**30}\n")
    usage.write_text(f"{2**30}\n")
    assert cost.available_bytes() == (2 * 2**30, f"the cgroup limit in {limit}")
    est = cost.estimate((ModelSpec("1", "big", (4000, 4000), 1),), _shape(), seeds=1, local=True)
    usage.write_text(f"{int(2.5 * 2**30)}\n")  # half a GB left: the run is refused against the cgroup
    try:
        cost.check(est, None)
    except cost.CostError as exc:
        assert "available (the cgroup limit in" in str(exc)
    else:
        raise AssertionError("not refused")
    cost.check(est, 100.0)  # --max-memory overrides what is available
