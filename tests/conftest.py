"""Shared fixtures: small synthetic data files and a hand-built run directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from job import rundir
from job.config import RunConfig
from job.result import (
    ClassMetrics,
    DataSummary,
    DeviceRecord,
    EnvironmentInfo,
    Failure,
    History,
    ModelResult,
    PrecisionInfo,
    RunResult,
    SplitInfo,
    Versions,
)
from job.rundir import SCHEMA_VERSION
from job.specs import LayerRow

REPO = Path(__file__).resolve().parent.parent


def digits_frame(rows_per_class: int = 10, n_classes: int = 10, pixels: int = 784, seed: int = 0) -> pd.DataFrame:
    """Kaggle layout: label, pixel0..pixelN, with class-dependent blobs so models can learn."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), rows_per_class)
    x = rng.integers(0, 40, size=(y.size, pixels))
    for k in range(n_classes):
        x[y == k, k * (pixels // n_classes) : (k + 1) * (pixels // n_classes)] += 200
    x = np.clip(x, 0, 255)
    frame = pd.DataFrame(x, columns=[f"pixel{i}" for i in range(pixels)])
    frame.insert(0, "label", y)
    return frame


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    digits_frame().to_csv(path, index=False)
    return path


def run_job(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user or a container would."""
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "job", *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO
    )


def hand_model(name: str, key: str, val_acc: float, params: int, status: str = "ok") -> ModelResult:
    """A ModelResult with known numbers; a failed one stopped at epoch 2 with a NaN loss."""
    ok = status == "ok"
    epochs = 3 if ok else 2
    return ModelResult(
        name=name,
        key=key,
        slug=name.lower().replace(" ", "_"),
        seed=7,
        hidden=[4],
        activation="selu",
        initializer="lecun_normal",
        batch_size=32,
        patience=3,
        monitor="loss",
        optimizer="adam",
        learning_rate=0.001,
        params=params,
        layers=3,
        architecture=[
            LayerRow("input (min-max scale)", 4, "", 0),
            LayerRow("hidden 1", 4, "selu", 20),
            LayerRow("output", 3, "softmax", 15),
        ],
        epochs_planned=3,
        epochs_run=epochs,
        status=status,
        failure=None if ok else Failure(2, "training loss became nan or inf (TerminateOnNaN stopped it)"),
        best_epoch=2 if ok else None,
        loss=0.4321 if ok else None,
        accuracy=0.91 if ok else None,
        val_loss=0.5555 if ok else None,
        val_accuracy=val_acc if ok else None,
        test_loss=0.6 if ok else None,
        test_accuracy=0.8333 if ok else None,
        history=History(
            loss=[0.9, 0.4321, 0.5] if ok else [0.9, None],
            accuracy=[0.5, 0.91, 0.9] if ok else [0.5, None],
            val_loss=[1.0, 0.5555, 0.6] if ok else [1.0, None],
            val_accuracy=[0.5, val_acc, 0.7] if ok else [0.5, None],
        ),
        epoch_seconds=[2.5, 0.5, 0.5][:epochs],
        epoch_train_seconds=[2.0, 0.4, 0.4][:epochs],
        epoch_val_seconds=[0.5, 0.1, 0.1][:epochs],
        compile_epochs=[1],
        first_epoch_seconds=2.5,
        steady_epoch_seconds=0.5,
        train_seconds=3.5,
        samples_per_second=1234.0,
        stopped_early=False,
        confusion=[[2, 0, 0], [1, 2, 0], [0, 0, 0]] if ok else None,
        per_class=[
            ClassMetrics(0, 2 / 3, 1.0, 0.8, 2),
            ClassMetrics(1, 1.0, 2 / 3, 0.8, 3),
            ClassMetrics(2, None, None, None, 0),
        ]
        if ok
        else [],
    )


def hand_result(source: str = "hand.csv", column_note: str | None = None) -> RunResult:
    """A RunResult with known numbers, built through the same dataclasses the job writes."""
    models = [
        hand_model("Model 1", "1", 0.8765, 35),
        hand_model("Model 2", "2", 0.9, 99),
        hand_model("Model 3", "3", 0.0, 50, "failed"),
    ]
    return RunResult(
        schema_version=SCHEMA_VERSION,
        run_id="20260101-000000-abcdef",
        config=RunConfig(data=source, seed=7),
        command=f"job run --data {source} --seed 7",
        data=DataSummary(
            source=source,
            kind="csv",
            sha256="ab" * 32,
            rows=25,
            pixels=4,
            image_shape=[2, 2],
            classes=3,
            label_counts={"0": 10, "1": 10, "2": 5},
            pixel_min=0,
            pixel_max=255,
            ignored_columns=[column_note] if column_note else [],
            sampled_rows=25,
        ),
        split=SplitInfo(train=15, val=5, test=5, fractions=[0.6, 0.2, 0.2], seed=7),
        precision=PrecisionInfo("auto", "float32", False),
        environment=EnvironmentInfo(
            DeviceRecord("CPU", "Test CPU", None, "CPU Test CPU"),
            Versions(python="3.11", keras="3.0", backend="tensorflow", tensorflow="2.0"),
            "tensorflow",
        ),
        deterministic=True,
        seed=7,
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:01:00+00:00",
        total_seconds=60.0,
        models=models,
        chosen_model="Model 2",
        chosen_reason="Model 2 has the highest validation accuracy (0.9000); no other model came within 0.1 pp",
        failed_models=["Model 3"],
    )


def write_hand_run(run_dir: Path, *, source: str = "hand.csv", column_note: str | None = None) -> RunResult:
    """A complete run directory with known numbers, written by the job's own writers (no training)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result = hand_result(source, column_note)
    rng = np.random.default_rng(1)
    rows, y_true = np.array([3, 8, 11, 14, 20]), np.array([0, 0, 1, 1, 1])
    model_1 = np.full((5, 3), 0.1)
    model_1[[1, 4], :] = [[0.1, 0.2, 0.1], [0.2, 0.1, 0.1]]  # wrong on rows 8 and 20
    model_2 = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05], [0.2, 0.7, 0.1], [0.7, 0.2, 0.1]])
    probas = {"model_1": model_1, "model_2": model_2}
    rundir.write_run(run_dir, result)
    rundir.write_history_csv(run_dir, result)
    rundir.write_predictions_csv(run_dir, rows, y_true, probas)
    rundir.write_misclassified_csv(run_dir, rows, y_true, probas, "model_2")
    test = rng.integers(0, 255, size=(5, 2, 2), dtype=np.uint8)
    samples = rng.integers(0, 255, size=(6, 2, 2), dtype=np.uint8)
    rundir.write_images(run_dir, test, samples, np.array([0, 0, 1, 1, 2, 2]))
    return result
