"""A finished run's files, written from the `RunResult` and the arrays the pipeline hands over."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from job.result import DENSE_CLASSES, RunResult
from job.rundir import atomic
from job.rundir.atomic import writing
from job.rundir.layout import (
    HISTORY_COLUMNS,
    HISTORY_CSV,
    IMAGES_NPZ,
    MISCLASSIFIED_COLUMNS,
    MISCLASSIFIED_CSV,
    PREDICTIONS_CSV,
    RUN_JSON,
    TOP_TWO_FIELDS,
    pred_column,
    proba_column,
    top_two_column,
)
from job.rundir.typed_json import to_jsonable


def write_run(run_dir: Path, result: RunResult) -> None:
    text = json.dumps(to_jsonable(result), indent=2, allow_nan=False)
    atomic.atomic_write_text(run_dir / RUN_JSON, text)


def write_history_csv(run_dir: Path, result: RunResult) -> None:
    with writing(run_dir / HISTORY_CSV), (run_dir / HISTORY_CSV).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HISTORY_COLUMNS)
        for m in result.models:
            for t in m.trainings:
                for i in range(t.epochs_run):
                    w.writerow(
                        [
                            m.name,
                            t.seed,
                            i + 1,
                            *(_fmt(values[i]) for values in t.history.lists()),
                            _fmt(t.epoch_seconds[i]),
                            _fmt(t.epoch_train_seconds[i]),
                            _fmt(t.epoch_val_seconds[i]),
                            int(i + 1 in t.compile_epochs),
                            t.split,
                        ]
                    )


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_predictions_csv(
    run_dir: Path,
    rows: np.ndarray,
    y_true: np.ndarray,
    probas: dict[tuple[str, int, int], np.ndarray],
    first_seed: int,
    file: str = PREDICTIONS_CSV,
) -> None:
    """One row per test (or validation) row; `probas` by (slug, seed, split); probabilities
    rounded to 6 places. Columns name the seed unless it is the first on split 1, and the split from split 2 on;
    `file`: predictions.csv, or a validation file (`layout.val_predictions_csv(k)`)."""
    import pandas as pd

    from job.stats.metrics import top_two

    frame = {"row": rows, "true_label": y_true}
    for (slug, seed, j), proba in probas.items():
        tag = None if seed == first_seed and j == 1 else seed
        if proba.shape[1] <= DENSE_CLASSES:
            frame[pred_column(slug, tag, j)] = proba.argmax(axis=1)
            for k in range(proba.shape[1]):
                frame[proba_column(slug, k, tag, j)] = np.round(proba[:, k], 6)
            continue
        # Many classes: a column a class would be the largest file of the run; keep the top two and the truth
        pred, conf, runner, runner_p = top_two(proba)
        frame[pred_column(slug, tag, j)] = pred
        for name, values in zip(TOP_TWO_FIELDS, (conf, runner, runner_p), strict=True):
            frame[top_two_column(slug, name, tag, j)] = np.round(values, 6) if values.dtype.kind == "f" else values
        frame[top_two_column(slug, "true_p", tag, j)] = np.round(proba[np.arange(y_true.size), y_true], 6)
    with writing(run_dir / file):
        pd.DataFrame(frame).to_csv(run_dir / file, index=False)


def write_misclassified_csv(
    run_dir: Path, rows: np.ndarray, y_true: np.ndarray, probas: dict[str, np.ndarray], chosen: str
) -> None:
    """The chosen model's wrong test rows, most confidently wrong first, with the others' calls (by slug)."""
    import pandas as pd

    from job.stats.metrics import top_two

    proba = probas[chosen]
    pred, conf, runner, runner_p = top_two(proba)
    wrong = np.flatnonzero(pred != y_true)
    values = (
        wrong,
        rows[wrong],
        y_true[wrong],
        pred[wrong],
        np.round(conf[wrong], 6),
        runner[wrong],
        np.round(runner_p[wrong], 6),
        np.round(proba[wrong, y_true[wrong]], 6),
    )
    frame = pd.DataFrame(dict(zip(MISCLASSIFIED_COLUMNS, values, strict=True)))
    for slug, other in probas.items():
        if slug != chosen:
            frame[pred_column(slug)] = other[wrong].argmax(axis=1)
    frame = frame.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)
    with writing(run_dir / MISCLASSIFIED_CSV):
        frame.to_csv(run_dir / MISCLASSIFIED_CSV, index=False)


def write_split_csv(path: Path, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> None:
    import pandas as pd

    parts = [("train", train), ("val", val), ("test", test)]
    frame = pd.DataFrame(
        {
            "row": np.concatenate([p for _, p in parts]),
            "split": np.concatenate([np.full(p.size, name) for name, p in parts]),
        }
    )
    atomic.atomic_write_text(path, frame.to_csv(index=False))  # resume reads it back: never half a file


def write_images(run_dir: Path, test: np.ndarray, samples: np.ndarray, sample_labels: np.ndarray) -> None:
    with writing(run_dir / IMAGES_NPZ):
        np.savez_compressed(run_dir / IMAGES_NPZ, test=test, samples=samples, sample_labels=sample_labels)
