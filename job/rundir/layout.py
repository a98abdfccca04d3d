"""The run directory's layout: its file names, columns and paths, and the one error its readers raise.

run.json            everything about the run: `RunResult`, versioned by `schema_version`
history.csv         one row per training per epoch (HISTORY_COLUMNS)
predictions.csv     one row per test row: true label, each model's label and probabilities
val_predictions.csv the same for the validation rows, from which the choice was made (split 1's; split k's
                    rows are in val_predictions-split<k>.csv)
misclassified.csv   the chosen model's misclassified test rows, most confidently wrong first
split.csv           which data row went to train, val or test (split 1)
split-<k>.csv       the same for development split k >= 2 (--splits): the same test rows
images.npz          test images and per-class samples, so the report needs no input file
models/<slug>.keras the model for use: split 1's best-validation seed (best-epoch weights, raw 0..255 input);
                    the other trainings' are models/<slug>-seed<n>[-split<k>].keras
family.toml         the family file the run trained, as it was read (family runs only)
report.html         the report
"""

from __future__ import annotations

import re
from pathlib import Path

from job.errors import JobError

SCHEMA_VERSION = 6  # bump on every change to what a run directory holds; add the old one to `_MIGRATIONS`


RUN_JSON = "run.json"
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # what plan.new_run_id makes; a run's final folder name
PARTIAL_SUFFIX = ".partial"  # <out>/<run-id>.partial: a run being built, renamed to <run-id> when whole


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
    "split",  # last, so a reader of the columns before schema 5 by position still reads them
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


class RunDirError(JobError):
    """A run directory that is missing, incomplete or malformed: one line, exit 2."""


def split_suffix(split: int) -> str:
    """What a file or folder name carries for a development split: nothing for split 1 (so a run without
    --splits names everything as before), `-split<k>` from split 2 on."""
    return "" if split == 1 else f"-split{split}"


def split_csv(split: int = 1) -> str:
    return SPLIT_CSV if split == 1 else f"split-{split}.csv"


def val_predictions_csv(split: int = 1) -> str:
    return VAL_PREDICTIONS_CSV if split == 1 else f"val_predictions-split{split}.csv"


def _stem(slug: str, seed: int | None, split: int = 1) -> str:
    stem = slug if seed is None else f"{slug}_seed{seed}"
    return stem if split == 1 else f"{stem}_split{split}"


def pred_column(slug: str, seed: int | None = None, split: int = 1) -> str:
    """A model's predicted label: `<slug>_pred` for its first seed on split 1, `<slug>_seed<n>_pred` for a
    repeat's, and `_split<k>` after the seed for a training on split k >= 2 (`<slug>_seed42_split2_pred`)."""
    return f"{_stem(slug, seed, split)}_pred"


def proba_column(slug: str, k: int, seed: int | None = None, split: int = 1) -> str:
    """A model's probability of class k: `<slug>_p<k>`, or `<slug>_seed<n>[_split<s>]_p<k>` as above."""
    return f"{_stem(slug, seed, split)}_p{k}"


TOP_TWO_FIELDS = ("pred_p", "runner_up", "runner_up_p")  # with "true_p": the columns above DENSE_CLASSES classes


def top_two_column(slug: str, name: str, seed: int | None = None, split: int = 1) -> str:
    """Above DENSE_CLASSES classes, instead of one column a class: `<slug>_pred_p` (the predicted class's
    probability), `<slug>_runner_up`, `<slug>_runner_up_p` and `<slug>_true_p`, with `_seed<n>` as above."""
    return f"{_stem(slug, seed, split)}_{name}"


def model_path(run_dir: Path, slug: str) -> Path:
    """The model for use: the seed with the highest validation accuracy."""
    return run_dir / MODELS_DIR / f"{slug}.keras"


def seed_model_path(run_dir: Path, slug: str, seed: int, split: int = 1) -> Path:
    """Every other training's model (with --repeats or --splits); while a run is in progress, every one's."""
    return run_dir / MODELS_DIR / f"{slug}-seed{seed}{split_suffix(split)}.keras"


def keep_models(run_dir: Path, models: list) -> None:
    """The saved seed's file on split 1 becomes models/<slug>.keras; a resume finds it renamed already."""
    for m in models:
        if m.saved_seed is None:
            continue
        source = seed_model_path(run_dir, m.slug, m.saved_seed)
        if source.exists():
            source.replace(model_path(run_dir, m.slug))
