"""Shared fixtures: small synthetic data files and a hand-built run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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


def write_hand_run(run_dir: Path, *, source: str = "hand.csv", column_note: str | None = None) -> dict:
    """A complete run directory with known numbers, built by hand (no training)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    n_classes = 3
    rng = np.random.default_rng(1)

    def model(name: str, key: str, val_acc: float, params: int, status: str = "ok") -> dict:
        epochs = 3 if status == "ok" else 2
        return {
            "name": name,
            "key": key,
            "slug": name.lower().replace(" ", "_"),
            "hidden": [4],
            "activation": "selu",
            "initializer": "lecun_normal",
            "params": params,
            "layers": 3,
            "architecture": [
                {"layer": "input (min-max scale)", "units": 4, "activation": "", "params": 0},
                {"layer": "hidden 1", "units": 4, "activation": "selu", "params": 20},
                {"layer": "output", "units": 3, "activation": "softmax", "params": 15},
            ],
            "epochs_planned": 3,
            "epochs_run": epochs,
            "status": status,
            "failure": None
            if status == "ok"
            else {"epoch": 2, "reason": "training loss became nan (TerminateOnNaN stopped it)"},
            "best_epoch": 2 if status == "ok" else None,
            "loss": 0.4321 if status == "ok" else None,
            "accuracy": 0.91 if status == "ok" else None,
            "val_loss": 0.5555 if status == "ok" else None,
            "val_accuracy": val_acc if status == "ok" else None,
            "test_loss": 0.6 if status == "ok" else None,
            "test_accuracy": 0.8333 if status == "ok" else None,
            "history": {
                "loss": [0.9, 0.4321, 0.5][:epochs] if status == "ok" else [0.9, None],
                "accuracy": [0.5, 0.91, 0.9][:epochs] if status == "ok" else [0.5, None],
                "val_loss": [1.0, 0.5555, 0.6][:epochs] if status == "ok" else [1.0, None],
                "val_accuracy": [0.5, val_acc, 0.7][:epochs] if status == "ok" else [0.5, None],
            },
            "epoch_seconds": [2.5, 0.5, 0.5][:epochs],
            "epoch_train_seconds": [2.0, 0.4, 0.4][:epochs],
            "epoch_val_seconds": [0.5, 0.1, 0.1][:epochs],
            "compile_epochs": [1],
            "first_epoch_seconds": 2.5,
            "steady_epoch_seconds": 0.5,
            "train_seconds": 3.5,
            "samples_per_second": 1234.0,
            "stopped_early": False,
            "confusion": [[2, 0, 0], [1, 2, 0], [0, 0, 0]] if status == "ok" else None,
            "per_class": [
                {"class": 0, "precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2},
                {"class": 1, "precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3},
                {"class": 2, "precision": None, "recall": None, "f1": None, "support": 0},
            ]
            if status == "ok"
            else [],
        }

    models = [
        model("Model 1", "1", 0.8765, 35),
        model("Model 2", "2", 0.9, 99),
        model("Model 3", "3", 0.0, 50, "failed"),
    ]
    run = {
        "schema_version": 1,
        "run_id": "20260101-000000-abcdef",
        "config": {"data": source, "seed": 7},
        "command": f"job run --data {source} --seed 7",
        "data": {
            "source": source,
            "kind": "csv",
            "sha256": "ab" * 32,
            "rows": 25,
            "pixels": 4,
            "image_shape": [2, 2],
            "classes": n_classes,
            "label_counts": {"0": 10, "1": 10, "2": 5},
            "pixel_min": 0,
            "pixel_max": 255,
            "ignored_columns": [column_note] if column_note else [],
            "split": {"train": 15, "val": 5, "test": 5},
            "sampled_rows": 25,
        },
        "split": {"train": 15, "val": 5, "test": 5},
        "precision": {"requested": "auto", "policy": "float32", "loss_scaling": False},
        "environment": {
            "device": {"kind": "CPU", "name": "Test CPU", "compute_capability": None, "description": "CPU Test CPU"},
            "versions": {
                "python": "3.11",
                "keras": "3.0",
                "backend": "tensorflow",
                "tensorflow": "2.0",
                "jax": None,
                "cuda": None,
                "cudnn": None,
            },
            "backend": "tensorflow",
        },
        "deterministic": True,
        "seed": 7,
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
        "total_seconds": 60.0,
        "models": models,
        "chosen_model": "Model 2",
        "chosen_reason": "Model 2 has the highest validation accuracy (0.9000); no other model came within 0.1 pp",
        "failed_models": ["Model 3"],
    }
    (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    test = rng.integers(0, 255, size=(5, 2, 2), dtype=np.uint8)
    samples = rng.integers(0, 255, size=(6, 2, 2), dtype=np.uint8)
    np.savez_compressed(run_dir / "images.npz", test=test, samples=samples, sample_labels=np.array([0, 0, 1, 1, 2, 2]))
    pd.DataFrame(
        {
            "row": [3, 8, 11, 14, 20],
            "true_label": [0, 0, 1, 1, 1],
            "model_1_pred": [0, 1, 1, 1, 0],
            **{f"model_1_p{k}": [0.1] * 5 for k in range(3)},
            "model_2_pred": [0, 0, 1, 1, 0],
            "model_2_p0": [0.9, 0.8, 0.1, 0.2, 0.7],
            "model_2_p1": [0.05, 0.1, 0.85, 0.7, 0.2],
            "model_2_p2": [0.05, 0.1, 0.05, 0.1, 0.1],
        }
    ).to_csv(run_dir / "predictions.csv", index=False)
    pd.DataFrame(
        {
            "position": [4],
            "row": [20],
            "true_label": [1],
            "predicted": [0],
            "confidence": [0.7],
            "runner_up": [1],
            "runner_up_probability": [0.2],
            "true_label_probability": [0.2],
            "model_1_pred": [0],
        }
    ).to_csv(run_dir / "misclassified.csv", index=False)
    return run
