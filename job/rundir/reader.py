"""A finished run's files read back: `read_run` returns the dataclasses `write_run` was given.

It reads every schema version this project has written and refuses any other, and any missing key or wrong
type, with one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from job.data.validate import MAX_CLASSES  # the bound the loaders put on labels holds for a run's classes too
from job.result import DENSE_CLASSES, RunResult
from job.rundir.layout import IMAGES_NPZ, RUN_ID, RUN_JSON, SCHEMA_VERSION, RunDirError
from job.rundir.migrate import MIGRATIONS
from job.rundir.typed_json import Bad, build


def read_run(run_dir: Path) -> RunResult:
    """run.json as the RunResult that wrote it; RunDirError (one line) for anything else."""
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no {RUN_JSON}; pass a finished run directory (reports/<run-id>)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RunDirError(f"{path}: not UTF-8 text; the file is damaged, rerun the job") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); rerun the job") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read it ({exc.strerror}); check its permissions") from None
    if not isinstance(raw, dict):
        raise RunDirError(f"{path}: holds a JSON {type(raw).__name__}, not an object; rerun the job")
    version = raw.get("schema_version")
    readable = isinstance(version, int) and not isinstance(version, bool)
    if not readable or (version not in MIGRATIONS and version != SCHEMA_VERSION):
        known = ", ".join(map(str, [*MIGRATIONS, SCHEMA_VERSION]))
        raise RunDirError(
            f"{path}: schema_version {version!r} is not one this job reads ({known}); "
            "render it with the job version that wrote it, or upgrade this one"
        )
    try:
        while raw["schema_version"] != SCHEMA_VERSION:
            raw = MIGRATIONS[raw["schema_version"]](raw)
        run = build(RunResult, raw, "")
        _check_copies(raw, run)
        _check_consistent(run)
        return run
    except Bad as exc:
        raise RunDirError(f"{path}: {exc}; the file is damaged or was edited, rerun the job") from None


def _check_copies(raw: dict, run: RunResult) -> None:
    """`chosen_model` and `chosen_reason` are copies of the choice, kept for readers outside the job: present,
    and the same."""
    for key, value in (("chosen_model", run.choice.chosen), ("chosen_reason", run.choice.reason)):
        if key not in raw:
            raise Bad(f"missing key {key!r}")
        if raw[key] != value:
            names = {m.name for m in run.models}
            if key == "chosen_model" and raw[key] is not None and raw[key] not in names:
                raise Bad(f"key 'chosen_model' names {raw[key]!r}, which is not in models")
            raise Bad(f"key {key!r} is {raw[key]!r}, but the choice says {value!r}")


def _check_consistent(run: RunResult) -> None:
    """Types are not enough: sizes the report indexes by must agree, and counts must be sane."""
    if not RUN_ID.fullmatch(run.run_id):  # it names folders and MLflow runs: no quotes, slashes or backslashes
        raise Bad(f"key 'run_id' is {run.run_id!r}, not a run id (<yyyymmdd>-<hhmmss>-<6 hex digits>)")
    k = run.data.classes
    if not 2 <= k <= MAX_CLASSES:
        raise Bad(f"key 'data.classes' is {k}, not 2..{MAX_CLASSES}")
    if len(run.data.label_counts) != k:
        raise Bad(f"key 'data.label_counts' has {len(run.data.label_counts)} labels, not data.classes = {k}")
    if len(run.data.image_shape) != 2 or min(run.data.image_shape) < 1:
        raise Bad(f"key 'data.image_shape' is {run.data.image_shape}, not [H, W]")
    for i, m in enumerate(run.models):
        if not m.trainings:
            raise Bad(f"key 'models[{i}].trainings' is empty")
        for j, t in enumerate(m.trainings):
            _check_training(t, f"models[{i}].trainings[{j}]", k)
    names = {m.name for m in run.models}
    if len(names) != len(run.models):
        raise Bad("key 'models' names a model twice")
    # chosen_model is the choice's own (run.json's copy is checked against it in _check_copies)
    named = [("choice.chosen", run.choice.chosen), ("choice.best", run.choice.best)]
    named += [(f"choice.tests[{i}].model", t.model) for i, t in enumerate(run.choice.tests)]
    named += [(f"choice.legacy_tests[{i}].model", t.model) for i, t in enumerate(run.choice.legacy_tests)]
    named += [(f"choice.p_best.{n}", n) for n in run.choice.p_best]
    named += [(f"choice.at_margins[{i}].chosen", c.chosen) for i, c in enumerate(run.choice.at_margins)]
    named += [(f"comparison.pairs[{i}]", n) for i, p in enumerate(run.comparison.pairs) for n in (p.a, p.b)]
    for key, name in named:
        if name is not None and name not in names:
            raise Bad(f"key '{key}' names {name!r}, which is not in models")


def _check_training(t: Any, where: str, k: int) -> None:
    lists = [t.epoch_seconds, t.epoch_train_seconds, t.epoch_val_seconds, *t.history.lists()]
    if any(len(values) != t.epochs_run for values in lists):
        raise Bad(f"key '{where}' has per-epoch lists whose length is not epochs_run = {t.epochs_run}")
    if t.confusion is not None and (len(t.confusion) != k or any(len(row) != k for row in t.confusion)):
        raise Bad(f"key '{where}.confusion' is not {k}x{k}")
    if t.status == "ok" and ((t.confusion is None and k <= DENSE_CLASSES) or len(t.per_class) != k):
        raise Bad(f"key '{where}' is ok but lacks a {k}x{k} confusion or {k} per_class rows")
    for cell in t.top_confusions:
        if not (0 <= cell.true < k and 0 <= cell.predicted < k and cell.true != cell.predicted and cell.count > 0):
            raise Bad(f"key '{where}.top_confusions' has {cell}, not two different classes under {k} and a count")
    if t.calibration is not None:
        _check_calibration(t.calibration, f"{where}.calibration")
    for key in ("val_accuracy", "test_accuracy", "macro_f1", "accuracy"):
        value = getattr(t, key)
        if value is not None and not 0.0 <= value <= 1.0:
            raise Bad(f"key '{where}.{key}' is {value}, not a proportion in 0..1")


def _check_calibration(cal: Any, where: str) -> None:
    if not 1 <= len(cal.bins) <= 1000:
        raise Bad(f"key '{where}.bins' has {len(cal.bins)} bins, not 1..1000")
    if not (0.0 <= cal.ece <= 1.0 and 0.0 <= cal.brier <= 2.0 and 0.0 <= cal.nll < 1e6):
        raise Bad(f"key '{where}' has ece {cal.ece}, brier {cal.brier}, nll {cal.nll}: out of range")
    for i, b in enumerate(cal.bins):
        values = [b.low, b.high] + [v for v in (b.confidence, b.accuracy) if v is not None]
        filled = b.confidence is not None and b.accuracy is not None
        if b.count < 0 or not all(0.0 <= v <= 1.0 for v in values) or b.low > b.high or filled != (b.count > 0):
            raise Bad(f"key '{where}.bins[{i}]' is not a bin of 0..1 with a count (and values when it has one)")


def read_split_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    frame = pd.read_csv(path)
    train, val, test = (frame.loc[frame["split"] == name, "row"].to_numpy() for name in ("train", "val", "test"))
    return train, val, test


def read_csv_rows(path: Path, limit: int | None = None) -> tuple[list[dict], int]:
    """Rows (up to `limit`) of one of the run's CSVs, and the total count; a missing file has none."""
    if not path.exists():
        return [], 0
    rows, total = [], 0
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if limit is None or total < limit:
                    rows.append(row)
                total += 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RunDirError(f"{path}: unreadable ({type(exc).__name__}); rerun the job") from None
    return rows, total


def read_images(run_dir: Path) -> dict[str, np.ndarray] | None:
    path = run_dir / IMAGES_NPZ
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:  # NpzFile decompresses on every [key]: read each once
            images = {key: npz[key] for key in npz.files}
    except Exception as exc:  # zipfile, zlib and numpy each raise their own kinds for a damaged file
        raise RunDirError(f"{path}: unreadable ({type(exc).__name__}); rerun the job") from None
    shapes = {k: v.shape for k, v in images.items()}
    test, samples, labels = (images.get(k) for k in ("test", "samples", "sample_labels"))
    if (
        test is None
        or samples is None
        or labels is None
        or test.ndim != 3
        or samples.ndim != 3
        or labels.ndim != 1
        or labels.size != samples.shape[0]
        or test.dtype.kind not in "iu"
        or samples.dtype.kind not in "iu"
        or labels.dtype.kind not in "iu"
    ):
        raise RunDirError(f"{path}: arrays {shapes} are not test/samples images and sample_labels; rerun the job")
    return images
