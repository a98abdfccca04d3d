"""The run directory: the typed result of a run, and the only code that writes or reads it.

Layout (documented in the README):
    run.json            everything about the run (schema below, `RunResult`)
    history.csv         one row per model per epoch
    predictions.csv     one row per test row: true label, each model's label and probabilities
    misclassified.csv   the chosen model's misclassified test rows, most confidently wrong first
    split.csv           which data row went to train, val or test
    images.npz          test images and per-class samples, so the report needs no input file
    models/<slug>.keras the saved models (best-validation-accuracy weights, raw 0..255 input)
    report.html         the report
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1


@dataclass
class ModelResult:
    name: str
    key: str
    slug: str
    hidden: list[int]
    activation: str
    initializer: str
    params: int
    layers: int
    architecture: list[dict]
    epochs_planned: int
    epochs_run: int
    status: str  # "ok" or "failed"
    failure: dict | None
    best_epoch: int | None
    loss: float | None  # training loss at the best epoch
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    test_loss: float | None
    test_accuracy: float | None
    history: dict[str, list]
    epoch_seconds: list[float]
    epoch_train_seconds: list[float]
    epoch_val_seconds: list[float]
    compile_epochs: list[int]  # epochs that include graph build/compile (1, and the first after a resume)
    first_epoch_seconds: float | None
    steady_epoch_seconds: float | None
    train_seconds: float  # wall time of fit(), summed over a resume
    samples_per_second: float | None  # training rows per second in steady-state epochs
    stopped_early: bool
    confusion: list[list[int]] | None
    per_class: list[dict]


@dataclass
class RunResult:
    run_id: str
    config: dict
    command: str
    data: dict
    split: dict
    precision: dict
    environment: dict
    deterministic: bool
    seed: int
    started: str
    finished: str
    total_seconds: float
    models: list[ModelResult]
    chosen_model: str | None
    chosen_reason: str
    failed_models: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return _clean(asdict(self))


def _clean(value):
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def write_run_json(run_dir: Path, result: RunResult) -> None:
    text = json.dumps(result.to_dict(), indent=2, allow_nan=False)
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(run_dir / "run.json")  # a reader never sees half a run.json


def read_run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


def write_history_csv(run_dir: Path, models: list[ModelResult]) -> None:
    cols = [
        "model",
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
        "train_seconds",
        "val_seconds",
        "compile",
    ]
    with (run_dir / "history.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for m in models:
            for i in range(m.epochs_run):
                epoch = i + 1
                w.writerow(
                    [
                        m.name,
                        epoch,
                        *(_fmt(m.history[k][i]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")),
                        _fmt(m.epoch_seconds[i]),
                        _fmt(m.epoch_train_seconds[i]),
                        _fmt(m.epoch_val_seconds[i]),
                        int(epoch in m.compile_epochs),
                    ]
                )


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_predictions_csv(
    run_dir: Path, rows: np.ndarray, y_true: np.ndarray, probas: dict[str, np.ndarray], slugs: dict[str, str]
) -> None:
    """One row per test row; probabilities rounded to 6 places to keep the file small."""
    import pandas as pd

    frame = {"row": rows, "true_label": y_true}
    for name, proba in probas.items():
        slug = slugs[name]
        frame[f"{slug}_pred"] = proba.argmax(axis=1)
        for k in range(proba.shape[1]):
            frame[f"{slug}_p{k}"] = np.round(proba[:, k], 6)
    pd.DataFrame(frame).to_csv(run_dir / "predictions.csv", index=False)


def write_split_csv(run_dir: Path, split) -> None:
    import pandas as pd

    parts = [("train", split.train), ("val", split.val), ("test", split.test)]
    frame = pd.DataFrame(
        {
            "row": np.concatenate([p for _, p in parts]),
            "split": np.concatenate([np.full(p.size, name) for name, p in parts]),
        }
    )
    frame.to_csv(run_dir / "split.csv", index=False)


def read_split_csv(run_dir: Path):
    import pandas as pd

    from job.data import Split

    frame = pd.read_csv(run_dir / "split.csv")
    pick = {name: frame.loc[frame["split"] == name, "row"].to_numpy() for name in ("train", "val", "test")}
    return Split(**pick)


def misclassified_table(
    rows: np.ndarray, y_true: np.ndarray, probas: dict[str, np.ndarray], chosen: str, slugs: dict[str, str]
):
    """The chosen model's wrong test rows, most confidently wrong first, with the others' calls."""
    import pandas as pd

    from job.evaluate import top_two

    proba = probas[chosen]
    pred, conf, runner, runner_p = top_two(proba)
    wrong = np.flatnonzero(pred != y_true)
    frame = pd.DataFrame(
        {
            "position": wrong,  # position in the test split (and in images.npz "test")
            "row": rows[wrong],
            "true_label": y_true[wrong],
            "predicted": pred[wrong],
            "confidence": np.round(conf[wrong], 6),
            "runner_up": runner[wrong],
            "runner_up_probability": np.round(runner_p[wrong], 6),
            "true_label_probability": np.round(proba[wrong, y_true[wrong]], 6),
        }
    )
    for name, other in probas.items():
        if name != chosen:
            frame[f"{slugs[name]}_pred"] = other[wrong].argmax(axis=1)
    return frame.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)


def write_images(run_dir: Path, test: np.ndarray, samples: np.ndarray, sample_labels: np.ndarray) -> None:
    np.savez_compressed(run_dir / "images.npz", test=test, samples=samples, sample_labels=sample_labels)
