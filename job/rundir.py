"""The run directory as a contract: the only code that writes a finished run's files or reads them back.

Layout (documented in the README):
    run.json            everything about the run: `RunResult`, versioned by `schema_version`
    history.csv         one row per model per epoch (HISTORY_COLUMNS)
    predictions.csv     one row per test row: true label, each model's label and probabilities
    misclassified.csv   the chosen model's misclassified test rows, most confidently wrong first
    split.csv           which data row went to train, val or test
    images.npz          test images and per-class samples, so the report needs no input file
    models/<slug>.keras the saved models (best-validation-accuracy weights, raw 0..255 input)
    report.html         the report

`read_run` returns the dataclasses `write_run` was given. It reads every schema version this
project has written and refuses any other, and any missing key or wrong type, with one line.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from job.choice import LEGACY_RULE
from job.config import parse_image_shape
from job.data.validate import MAX_CLASSES  # the bound the loaders put on labels holds for a run's classes too
from job.result import RunResult

SCHEMA_VERSION = 3  # bump on every change to what a run directory holds; add the old one to `_MIGRATIONS`
RUN_JSON = "run.json"
HISTORY_CSV = "history.csv"
PREDICTIONS_CSV = "predictions.csv"
VAL_PREDICTIONS_CSV = "val_predictions.csv"
MISCLASSIFIED_CSV = "misclassified.csv"
SPLIT_CSV = "split.csv"
IMAGES_NPZ = "images.npz"
MODELS_DIR = "models"
FAMILY_FILE = "family.toml"  # the family file the run trained, as it was read
HISTORY_COLUMNS = (
    "model",
    "seed",
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "train_seconds",
    "val_seconds",
    "compile",
)
MISCLASSIFIED_COLUMNS = (
    "position",  # position in the test split (and in images.npz "test")
    "row",
    "true_label",
    "predicted",
    "confidence",
    "runner_up",
    "runner_up_probability",
    "true_label_probability",
)


class RunDirError(Exception):
    """A run directory that is missing, incomplete or malformed: one line, exit 2."""


def _stem(slug: str, seed: int | None) -> str:
    return slug if seed is None else f"{slug}_seed{seed}"


def pred_column(slug: str, seed: int | None = None) -> str:
    """A model's predicted label: `<slug>_pred` for its first seed, `<slug>_seed<n>_pred` for a repeat's."""
    return f"{_stem(slug, seed)}_pred"


def proba_column(slug: str, k: int, seed: int | None = None) -> str:
    """A model's probability of class k: `<slug>_p<k>`, or `<slug>_seed<n>_p<k>` for a repeat's seed."""
    return f"{_stem(slug, seed)}_p{k}"


def model_path(run_dir: Path, slug: str) -> Path:
    """The model for use: the seed with the highest validation accuracy."""
    return run_dir / MODELS_DIR / f"{slug}.keras"


def seed_model_path(run_dir: Path, slug: str, seed: int) -> Path:
    """Every other seed's model (with --repeats); while a run is in progress, every seed's."""
    return run_dir / MODELS_DIR / f"{slug}-seed{seed}.keras"


def keep_models(run_dir: Path, models: list) -> None:
    """The saved seed's file becomes models/<slug>.keras; a resume finds it renamed already."""
    for m in models:
        if m.saved_seed is None:
            continue
        source = seed_model_path(run_dir, m.slug, m.saved_seed)
        if source.exists():
            source.replace(model_path(run_dir, m.slug))


# --------------------------------------------------------------------------- writing


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Name `path` on an OSError that does not name its file (a write() or fsync() on a full disk),
    so the one-line error can say what was being written."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: a reader, or a resume after a kill, never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(value: Any) -> Any:
    """Dataclasses to dicts; JSON has no NaN, so non-finite floats become null."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    return value


def write_run(run_dir: Path, result: RunResult) -> None:
    text = json.dumps(to_jsonable(result), indent=2, allow_nan=False)
    atomic_write_text(run_dir / RUN_JSON, text)


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
    probas: dict[tuple[str, int], np.ndarray],
    first_seed: int,
    split: str = "test",
) -> None:
    """One row per test (or validation) row; `probas` by (slug, seed); probabilities rounded to 6 places."""
    import pandas as pd

    frame = {"row": rows, "true_label": y_true}
    for (slug, seed), proba in probas.items():
        tag = None if seed == first_seed else seed
        frame[pred_column(slug, tag)] = proba.argmax(axis=1)
        for k in range(proba.shape[1]):
            frame[proba_column(slug, k, tag)] = np.round(proba[:, k], 6)
    name = PREDICTIONS_CSV if split == "test" else VAL_PREDICTIONS_CSV
    with writing(run_dir / name):
        pd.DataFrame(frame).to_csv(run_dir / name, index=False)


def write_misclassified_csv(
    run_dir: Path, rows: np.ndarray, y_true: np.ndarray, probas: dict[str, np.ndarray], chosen: str
) -> None:
    """The chosen model's wrong test rows, most confidently wrong first, with the others' calls (by slug)."""
    import pandas as pd

    from job.evaluate import top_two

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
    atomic_write_text(path, frame.to_csv(index=False))  # resume reads it back: never half a file


def read_split_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    frame = pd.read_csv(path)
    train, val, test = (frame.loc[frame["split"] == name, "row"].to_numpy() for name in ("train", "val", "test"))
    return train, val, test


def write_images(run_dir: Path, test: np.ndarray, samples: np.ndarray, sample_labels: np.ndarray) -> None:
    with writing(run_dir / IMAGES_NPZ):
        np.savez_compressed(run_dir / IMAGES_NPZ, test=test, samples=samples, sample_labels=sample_labels)


# --------------------------------------------------------------------------- reading


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
    if not readable or (version not in _MIGRATIONS and version != SCHEMA_VERSION):
        known = ", ".join(map(str, [*_MIGRATIONS, SCHEMA_VERSION]))
        raise RunDirError(
            f"{path}: schema_version {version!r} is not one this job reads ({known}); "
            "render it with the job version that wrote it, or upgrade this one"
        )
    try:
        while raw["schema_version"] != SCHEMA_VERSION:
            raw = _MIGRATIONS[raw["schema_version"]](raw)
        run = _build(RunResult, raw, "")
        _check_consistent(run)
        return run
    except _Bad as exc:
        raise RunDirError(f"{path}: {exc}; the file is damaged or was edited, rerun the job") from None


class _Bad(ValueError):
    pass


def parse_as(tp: Any, raw: Any) -> Any:
    """Parsed JSON as dataclass `tp`, types checked all the way down; ValueError names the bad key."""
    return _build(tp, raw, "")


def _build(tp: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as type `tp`, checked all the way down; _Bad names the key that is wrong."""
    if tp is Any:
        return value
    if is_dataclass(tp):
        return _build_dataclass(tp, value, where)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for inner in members[:-1]:  # `float | bool`: the first member that takes the value
            try:
                return _build(inner, value, where)
            except _Bad:
                continue
        return _build(members[-1], value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise _Bad(f"key {where!r} must be a list, not {_kind(value)}")
        if origin is tuple and len(args) != len(value):
            raise _Bad(f"key {where!r} must have {len(args)} items, not {len(value)}")
        kinds = args if origin is tuple else [args[0]] * len(value)
        items = [_build(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(kinds, value, strict=True))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _Bad(f"key {where!r} must be an object, not {_kind(value)}")
        return {k: _build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(tp, value, where)


def _build_dataclass(tp: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise _Bad(f"key {where or '(top level)'!r} must be an object, not {_kind(value)}")
    hints = typing.get_type_hints(tp)
    kwargs = {}
    for f in fields(tp):
        key = f"{where}.{f.name}" if where else f.name
        if f.name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                raise _Bad(f"missing key {key!r}")
            continue
        kwargs[f.name] = _build(hints[f.name], value[f.name], key)
    return tp(**kwargs)


def _scalar(tp: type, value: Any, where: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise _Bad(f"key {where!r} must be {tp.__name__}, not {_kind(value)}")


def _check_consistent(run: RunResult) -> None:
    """Types are not enough: sizes the report indexes by must agree, and counts must be sane."""
    k = run.data.classes
    if not 2 <= k <= MAX_CLASSES:
        raise _Bad(f"key 'data.classes' is {k}, not 2..{MAX_CLASSES}")
    if len(run.data.label_counts) != k:
        raise _Bad(f"key 'data.label_counts' has {len(run.data.label_counts)} labels, not data.classes = {k}")
    if len(run.data.image_shape) != 2 or min(run.data.image_shape) < 1:
        raise _Bad(f"key 'data.image_shape' is {run.data.image_shape}, not [H, W]")
    for i, m in enumerate(run.models):
        if not m.trainings:
            raise _Bad(f"key 'models[{i}].trainings' is empty")
        for j, t in enumerate(m.trainings):
            _check_training(t, f"models[{i}].trainings[{j}]", k)
    names = {m.name for m in run.models}
    if len(names) != len(run.models):
        raise _Bad("key 'models' names a model twice")
    named = [("chosen_model", run.chosen_model), ("choice.chosen", run.choice.chosen), ("choice.best", run.choice.best)]
    named += [(f"choice.tests[{i}].model", t.model) for i, t in enumerate(run.choice.tests)]
    named += [(f"choice.legacy_tests[{i}].model", t.model) for i, t in enumerate(run.choice.legacy_tests)]
    named += [(f"choice.p_best.{n}", n) for n in run.choice.p_best]
    named += [(f"choice.at_margins[{i}].chosen", c.chosen) for i, c in enumerate(run.choice.at_margins)]
    named += [(f"comparison.pairs[{i}]", n) for i, p in enumerate(run.comparison.pairs) for n in (p.a, p.b)]
    for key, name in named:
        if name is not None and name not in names:
            raise _Bad(f"key '{key}' names {name!r}, which is not in models")


def _check_training(t: Any, where: str, k: int) -> None:
    lists = [t.epoch_seconds, t.epoch_train_seconds, t.epoch_val_seconds, *t.history.lists()]
    if any(len(values) != t.epochs_run for values in lists):
        raise _Bad(f"key '{where}' has per-epoch lists whose length is not epochs_run = {t.epochs_run}")
    if t.confusion is not None and (len(t.confusion) != k or any(len(row) != k for row in t.confusion)):
        raise _Bad(f"key '{where}.confusion' is not {k}x{k}")
    if t.status == "ok" and (t.confusion is None or len(t.per_class) != k):
        raise _Bad(f"key '{where}' is ok but lacks a {k}x{k} confusion or {k} per_class rows")
    if t.calibration is not None:
        _check_calibration(t.calibration, f"{where}.calibration")
    for key in ("val_accuracy", "test_accuracy", "macro_f1", "accuracy"):
        value = getattr(t, key)
        if value is not None and not 0.0 <= value <= 1.0:
            raise _Bad(f"key '{where}.{key}' is {value}, not a proportion in 0..1")


def _check_calibration(cal: Any, where: str) -> None:
    if not 1 <= len(cal.bins) <= 1000:
        raise _Bad(f"key '{where}.bins' has {len(cal.bins)} bins, not 1..1000")
    if not (0.0 <= cal.ece <= 1.0 and 0.0 <= cal.brier <= 2.0 and 0.0 <= cal.nll < 1e6):
        raise _Bad(f"key '{where}' has ece {cal.ece}, brier {cal.brier}, nll {cal.nll}: out of range")
    for i, b in enumerate(cal.bins):
        values = [b.low, b.high] + [v for v in (b.confidence, b.accuracy) if v is not None]
        filled = b.confidence is not None and b.accuracy is not None
        if b.count < 0 or not all(0.0 <= v <= 1.0 for v in values) or b.low > b.high or filled != (b.count > 0):
            raise _Bad(f"key '{where}.bins[{i}]' is not a bin of 0..1 with a count (and values when it has one)")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _from_v1(raw: dict) -> dict:
    """Schema 1 (one seed, no intervals, no per-model settings or split fractions) as schema 2."""
    raw = dict(raw)
    seed = raw.get("seed", 42)
    split = raw.get("split") if isinstance(raw.get("split"), dict) else {}
    raw["split"] = {k: split.get(k) for k in ("train", "val", "test")} | {
        "fractions": [0.6, 0.2, 0.2],  # schema 1 always split 60/20/20
        "seed": seed,
    }
    data = dict(raw.get("data")) if isinstance(raw.get("data"), dict) else {}
    data.pop("split", None)
    data.setdefault("sampled_rows", data.get("rows"))
    raw["data"] = data
    models = raw.get("models") if isinstance(raw.get("models"), list) else []
    raw["models"] = [_model_from_v1(m, seed) for m in models]
    config = raw.get("config")
    if isinstance(config, dict) and isinstance(config.get("image_shape"), str):
        try:
            raw["config"] = config | {"image_shape": list(parse_image_shape(config["image_shape"]))}
        except ValueError:
            raise _Bad(f"key 'config.image_shape' is {config['image_shape']!r}, not HxW") from None
    not_computed = "not computed (schema 1)"
    raw |= {
        "schema_version": 2,
        "repeats": 1,
        "family": {"source": "built-in", "sha256": not_computed, "file": not_computed},
        "choice": {"best": None, "chosen": raw.get("chosen_model"), "reason": raw.get("chosen_reason"),
                   "val_rows": split.get("val"), "tests": [], "detectable_gap": None},  # fmt: skip
        "comparison": {"test_rows": split.get("test"), "resamples": 0, "bootstrap": not_computed, "pairs": [],
                       "cochran": {"statistic": None, "p_value": None, "note": not_computed}, "overlap": None},
    }  # fmt: skip
    return raw


_V1_TRAINING = (
    "status failure epochs_planned epochs_run best_epoch loss accuracy val_loss val_accuracy test_loss "
    "test_accuracy history epoch_seconds epoch_train_seconds epoch_val_seconds compile_epochs first_epoch_seconds "
    "steady_epoch_seconds train_seconds samples_per_second stopped_early confusion per_class"
).split()


def _model_from_v1(m: Any, seed: int) -> Any:
    """A schema-1 model was one training: it becomes the model's only seed."""
    if not isinstance(m, dict):
        return m
    m = dict(m)
    training = {k: m.pop(k) for k in _V1_TRAINING if k in m}
    training |= {"seed": seed, "test_accuracy_ci": None, "macro_f1": None, "macro_f1_ci": None, "calibration": None}
    if isinstance(training.get("per_class"), list):
        training["per_class"] = [
            ({"label": c.pop("class", None)} | c) if isinstance(c, dict) else c
            for c in map(_copy, training["per_class"])
        ]
    ok = training.get("status") == "ok"
    # Schema 1 ran every model with the seed's fixed protocol.
    fixed = {"batch_size": 32, "patience": 3, "monitor": "loss", "optimizer": "adam", "learning_rate": 0.001,
             "optimizer_args": {}, "dropout": 0.0, "notes": "",
             "loss_function": "sparse categorical cross-entropy on the softmax output (schema 1)"}  # fmt: skip
    return fixed | m | {
        "status": training.get("status"),
        "trainings": [training],
        "saved_seed": seed if ok else None,
        "val_accuracy": _single(training.get("val_accuracy")),
        "test_accuracy": _single(training.get("test_accuracy")),
        "macro_f1": _single(None),
    }


def _single(value: Any) -> dict:
    return {"mean": value, "sd": None, "ci": None}


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _from_v2(raw: dict) -> dict:
    """Schema 2 chose by "not significantly below the best" (exact McNemar, Holm): its tests are kept as
    `legacy_tests` under that rule's name, so the report says which rule chose the run."""
    raw = dict(raw)
    old = raw.get("choice") if isinstance(raw.get("choice"), dict) else {}
    raw["choice"] = {
        "rule": LEGACY_RULE,
        "margin_pp": None,
        "alpha": 0.05,
        "best": old.get("best"),
        "chosen": old.get("chosen"),
        "reason": old.get("reason"),
        "val_rows": old.get("val_rows"),
        "resamples": 0,
        "resampling_seed": None,
        "resampling": "exact McNemar on validation rows, no resampling (schema 2 or earlier)",
        "p_best": {},
        "tests": [],
        "at_margins": [],
        "cost": None,
        "legacy_tests": old.get("tests", []),
        "detectable_gap": old.get("detectable_gap"),
    }
    raw["schema_version"] = 3
    return raw


_MIGRATIONS = {1: _from_v1, 2: _from_v2}  # schema version -> function that lifts it one version


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
        test is None or samples is None or labels is None
        or test.ndim != 3 or samples.ndim != 3 or labels.ndim != 1 or labels.size != samples.shape[0]
        or test.dtype.kind not in "iu" or samples.dtype.kind not in "iu" or labels.dtype.kind not in "iu"
    ):  # fmt: skip
        raise RunDirError(f"{path}: arrays {shapes} are not test/samples images and sample_labels; rerun the job")
    return images
