"""Older run.json schemas lifted one version at a time to today's: `MIGRATIONS[v]` takes version v to v + 1."""

from __future__ import annotations

from typing import Any

from job.config import parse_image_shape
from job.result import TOP_CONFUSIONS
from job.rundir.typed_json import Bad
from job.stats.choice import LEGACY_RULE


def _from_v1(raw: dict) -> dict:
    """Schema 1 (one seed, no intervals, no per-model settings or split fractions) as schema 2."""
    raw = dict(raw)
    seed = raw.get("seed", 42)
    split = _object(raw.get("split"))
    raw["split"] = {k: split.get(k) for k in ("train", "val", "test")} | {
        "fractions": [0.6, 0.2, 0.2],  # schema 1 always split 60/20/20
        "seed": seed,
    }
    data = dict(_object(raw.get("data")))
    data.pop("split", None)
    data.setdefault("sampled_rows", data.get("rows"))
    raw["data"] = data
    models = _list(raw.get("models"))
    raw["models"] = [_model_from_v1(m, seed) for m in models]
    config = raw.get("config")
    if isinstance(config, dict) and isinstance(config.get("image_shape"), str):
        try:
            raw["config"] = config | {"image_shape": list(parse_image_shape(config["image_shape"]) or ())}
        except ValueError:
            raise Bad(f"key 'config.image_shape' is {config['image_shape']!r}, not HxW") from None
    not_computed = "not computed (schema 1)"
    raw |= {
        "schema_version": 2,
        "repeats": 1,
        "family": {"source": "built-in", "sha256": not_computed, "file": not_computed},
        "choice": {
            "best": None,
            "chosen": raw.get("chosen_model"),
            "reason": raw.get("chosen_reason"),
            "val_rows": split.get("val"),
            "tests": [],
            "detectable_gap": None,
        },
        "comparison": {
            "test_rows": split.get("test"),
            "resamples": 0,
            "bootstrap": not_computed,
            "pairs": [],
            "cochran": {"statistic": None, "p_value": None, "note": not_computed},
            "overlap": None,
        },
    }
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
    # Schema 1 ran every model with the seed's fixed protocol: these are what it used, not today's defaults.
    fixed = {
        "batch_size": 32,
        "patience": 3,
        "monitor": "loss",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "optimizer_args": {},
        "dropout": 0.0,
        "notes": "",
        "loss_function": "sparse categorical cross-entropy on the softmax output (schema 1)",
    }
    return (
        fixed
        | m
        | {
            "status": training.get("status"),
            "trainings": [training],
            "saved_seed": seed if ok else None,
            "val_accuracy": _single(training.get("val_accuracy")),
            "test_accuracy": _single(training.get("test_accuracy")),
            "macro_f1": _single(None),
        }
    )


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one where the old file had something else (the reader then names the key)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _single(value: Any) -> dict:
    return {"mean": value, "sd": None, "ci": None}


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _from_v2(raw: dict) -> dict:
    """Schema 2 chose by "not significantly below the best" (exact McNemar, Holm): its tests are kept as
    `legacy_tests` under that rule's name, so the report says which rule chose the run."""
    raw = dict(raw)
    old = _object(raw.get("choice"))
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


def _from_v3(raw: dict) -> dict:
    """Schema 3 kept every training's full confusion and no top confusions: they are read off it."""
    raw = dict(raw)
    raw["models"] = [_top_from_confusion(m) for m in _list(raw.get("models"))]
    raw["schema_version"] = 4
    return raw


def _top_from_confusion(model: Any) -> Any:
    if not isinstance(model, dict) or not isinstance(model.get("trainings"), list):
        return model
    trainings = []
    for t in model["trainings"]:
        matrix = t.get("confusion") if isinstance(t, dict) else None
        if isinstance(matrix, list) and all(isinstance(row, list) for row in matrix):
            cells = [
                {"true": i, "predicted": j, "count": v}
                for i, row in enumerate(matrix)
                for j, v in enumerate(row)
                if i != j and isinstance(v, int) and v > 0
            ]
            cells.sort(key=lambda c: (-c["count"], c["true"], c["predicted"]))
            t = t | {"top_confusions": cells[:TOP_CONFUSIONS]}
        trainings.append(t)
    return model | {"trainings": trainings}


def _from_v4(raw: dict) -> dict:
    """Schema 4 had one development split: every training is on split 1, and there are no statistics across
    splits (the report leaves that section out)."""
    raw = dict(raw)
    models = []
    for m in _list(raw.get("models")):
        if isinstance(m, dict) and isinstance(m.get("trainings"), list):
            m = m | {"trainings": [t | {"split": 1} if isinstance(t, dict) else t for t in m["trainings"]]}
        models.append(m)
    raw["models"] = models
    raw.setdefault("splits", 1)
    raw.setdefault("architectures", None)
    raw.setdefault("estimate", None)
    raw["schema_version"] = 5
    return raw


def _from_v5(raw: dict) -> dict:
    """Schema 5 had no packs (every training trained alone, `--pack off`) and no loss-scale diagnostics."""
    raw = dict(raw)
    models = []
    for m in _list(raw.get("models")):
        if isinstance(m, dict) and isinstance(m.get("trainings"), list):
            new = {"pack": None, "pack_size": 1, "loss_scale": None, "skipped_steps": None}
            lifted = [t | new if isinstance(t, dict) else t for t in m["trainings"]]
            m = m | {"trainings": lifted}
        models.append(m)
    raw["models"] = models
    if isinstance(raw.get("config"), dict):
        raw["config"] = {"pack": "off"} | raw["config"]
    raw["schema_version"] = 6
    return raw


MIGRATIONS = {
    1: _from_v1,
    2: _from_v2,
    3: _from_v3,
    4: _from_v4,
    5: _from_v5,
}  # schema version -> function that lifts it one version
