"""Shared helpers of the tests: synthetic data, a hand-built run directory, and running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from job.config import RunConfig
from job.result import (
    ClassMetrics,
    DataSummary,
    DeviceRecord,
    EnvironmentInfo,
    Failure,
    FamilyInfo,
    History,
    ModelResult,
    PrecisionInfo,
    RunResult,
    SeedSummary,
    SplitInfo,
    TrainingMetrics,
    Versions,
)
from job.rundir import writer
from job.rundir.layout import SCHEMA_VERSION
from job.specs import LayerRow, ModelSpec
from job.stats.calibration import Calibration, ReliabilityBin
from job.stats.choice import Choice, MarginChoice, MarginTest
from job.stats.compare import Agreement, CochranQ, Comparison, Overlap, PairComparison
from job.stats.metrics import Interval

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


def run_job(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user or a container would."""
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "job", *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO
    )


def hand_training(val_acc: float, seed: int = 7, status: str = "ok") -> TrainingMetrics:
    """One training with known numbers; a failed one stopped at epoch 2 with a NaN loss."""
    ok = status == "ok"
    epochs = 3 if ok else 2
    return TrainingMetrics(
        seed=seed,
        split=1,
        status=status,
        failure=None if ok else Failure(2, "training loss became nan or inf (TerminateOnNaN stopped it)"),
        epochs_planned=3,
        epochs_run=epochs,
        best_epoch=2 if ok else None,
        loss=0.4321 if ok else None,
        accuracy=0.91 if ok else None,
        val_loss=0.5555 if ok else None,
        val_accuracy=val_acc if ok else None,
        test_loss=0.6 if ok else None,
        test_accuracy=0.8333 if ok else None,
        test_accuracy_ci=Interval(0.3588, 0.9958) if ok else None,
        macro_f1=0.8 if ok else None,
        macro_f1_ci=Interval(0.5, 1.0) if ok else None,
        calibration=Calibration(0.1, 0.2, 0.6, [ReliabilityBin(i / 15, (i + 1) / 15, 1 if i > 10 else 0,
                                0.9 if i > 10 else None, 0.8 if i > 10 else None) for i in range(15)])
        if ok
        else None,
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
    )  # fmt: skip


def hand_model(name: str, key: str, val_acc: float, params: int, status: str = "ok") -> ModelResult:
    """A model with one seed's training and known numbers."""
    training = hand_training(val_acc, 7, status)
    ok = status == "ok"
    return ModelResult(
        spec=ModelSpec(key, name, (4,), epochs=training.epochs_planned),  # the seed's protocol otherwise
        loss_function="sparse categorical cross-entropy from logits (log-softmax), float32",
        params=params,
        layers=3,
        architecture=[
            LayerRow("input (min-max scale)", 4, "", 0),
            LayerRow("hidden 1", 4, "selu", 20),
            LayerRow("output", 3, "softmax", 15),
        ],
        status=status,
        trainings=[training],
        saved_seed=7 if ok else None,
        val_accuracy=SeedSummary(training.val_accuracy, None, None),
        test_accuracy=SeedSummary(training.test_accuracy, None, None),
        macro_f1=SeedSummary(training.macro_f1, None, None),
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
        config=RunConfig(data=source, seed=7, pack="off"),  # as a run records it: resolved
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
        failed_models=["Model 3"],
        repeats=1,
        splits=1,
        architectures=None,
        estimate=None,
        family=FamilyInfo("built-in", "cd" * 32, "family.toml"),
        choice=Choice(
            rule="margin",
            margin_pp=1.0,
            alpha=0.05,
            best="Model 2",
            chosen="Model 2",
            reason="Model 2: the highest validation accuracy (90.00%); no smaller model is shown within 1 pp "
            "(Model 1: -2.4 pp, lower bound -40.0 pp)",
            val_rows=5,
            resamples=2000,
            resampling_seed=20_261_201,
            resampling="2,000 paired resamples of validation rows, one seed per model (NumPy)",
            p_best={"Model 2": 0.75, "Model 1": 0.25},
            tests=[
                MarginTest("Model 2", 99, 0.9, 0.0, None, "best", None, None, None, None, False, 0.75),
                MarginTest("Model 1", 35, 0.8765, -0.0235, Interval(-0.4, 0.2), "smaller", 0.62, 0.62, 0.05, -0.4,
                           False, 0.25, None, None),
            ],
            at_margins=[MarginChoice(0.0, "Model 2"), MarginChoice(0.5, "Model 2"), MarginChoice(1.0, "Model 2"),
                        MarginChoice(2.0, "Model 2")],
            cost=None,
        ),  # fmt: skip
        comparison=Comparison(
            test_rows=5,
            resamples=2000,
            bootstrap="paired percentile bootstrap over test rows, 2,000 resamples (NumPy)",
            pairs=[
                PairComparison("Model 1", "Model 2", Agreement(3, 0, 1, 1), 1.0, 1.0, -0.2, Interval(-0.6, 0.0),
                               -0.25, Interval(-0.7, 0.0), [-0.2], None,
                               "Model 1 − Model 2: -20.0 pp [-60.0, +0.0], p = 1.00 (Holm 1.00): not distinguishable")
            ],
            cochran=CochranQ(1.0, 0.32, "Cochran's Q = 1.00, p = 0.32 across 2 models"),
            overlap=Overlap(1, [4], {"Model 1": 1, "Model 2": 0}, []),
        ),
    )  # fmt: skip


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
    writer.write_run(run_dir, result)
    writer.write_history_csv(run_dir, result)
    writer.write_predictions_csv(run_dir, rows, y_true, {(slug, 7, 1): p for slug, p in probas.items()}, 7)
    writer.write_misclassified_csv(run_dir, rows, y_true, probas, "model_2")
    test = rng.integers(0, 255, size=(5, 2, 2), dtype=np.uint8)
    samples = rng.integers(0, 255, size=(6, 2, 2), dtype=np.uint8)
    writer.write_images(run_dir, test, samples, np.array([0, 0, 1, 1, 2, 2]))
    return result
