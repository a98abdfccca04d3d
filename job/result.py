"""The typed results of a run: what one training gives back, and what run.json holds.

Plain dataclasses, no Keras and no files: `job.rundir` writes them and reads them back as
the same types, and the report renders from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from job.config import RunConfig
from job.cost import Estimate
from job.specs import LayerRow, ModelSpec, slugify
from job.stats.calibration import Calibration
from job.stats.choice import Choice
from job.stats.compare import Comparison
from job.stats.metrics import Interval
from job.stats.splits import Architectures


def training_label(model: str, seed: int, split: int = 1) -> str:
    """ "Model 1 seed 42", and " split 2" after it from split 2 on: how logs, the report and MLflow name a training."""
    return f"{model} seed {seed}" + (f" split {split}" if split != 1 else "")


@dataclass
class EpochRecord:
    """One finished epoch, as the training unit logs it the moment the epoch ends."""

    epoch: int  # 1-based
    loss: float | None  # None: the value was not finite (NaN/inf)
    accuracy: float | None  # training accuracy
    val_loss: float | None  # validation loss
    val_accuracy: float | None  # validation accuracy
    seconds: float  # wall time of the epoch
    train_seconds: float  # of which training
    val_seconds: float  # of which validation
    compile: bool  # the first epoch of a fit() call: includes tracing and compiling


@dataclass
class Failure:
    epoch: int  # the epoch whose loss was not finite
    reason: str  # in words, e.g. "training loss is nan"


@dataclass
class Placement:
    """Where and when a training ran: for the report's timeline and for audits of a fanned-out run."""

    executor: str  # "local" or "ray"
    node: str  # host name (and Ray node id, shortened)
    device: str  # the accelerator it was given (CUDA_VISIBLE_DEVICES), or "CPU"
    started: float  # Unix time the training began
    finished: float  # Unix time it ended
    attempts: int = 1  # more than 1: a lost worker or node made it start over elsewhere


@dataclass
class TrainingResult:
    """What one (spec, seed, split) training gives back, wherever it ran. No metrics: evaluation makes those."""

    name: str
    seed: int
    split: int = field(default=1, kw_only=True)  # the development split it trained on (1 without --splits)
    records: list[EpochRecord]
    epochs_planned: int
    best_epoch: int | None  # 1-based; None if no epoch finished cleanly
    fit_seconds: float  # wall time of fit(), summed over a resume
    stopped_early: bool
    failure: Failure | None
    params: int  # trainable parameters of the built model
    placement: Placement | None = None
    pack_size: int = 1  # trained in a pack of this many (--pack): its times are the pack's, shared out
    pack: str | None = None  # the pack's name (`<slug>-pack<i>`), None when it trained alone
    loss_scale: float | None = None  # the final dynamic loss scale under mixed_float16; None without loss scaling
    skipped_steps: int | None = None  # steps the loss scale skipped for overflow (non-finite gradients)
    val_proba: np.ndarray | None = field(default=None, repr=False)  # (val rows, classes) float32, best epoch
    test_proba: np.ndarray | None = field(default=None, repr=False)
    model_bytes: bytes | None = field(default=None, repr=False)  # the saved .keras file

    @property
    def ok(self) -> bool:
        return self.failure is None and self.best_epoch is not None and self.test_proba is not None

    def summary(self) -> dict:
        """The JSON-able part (no arrays, no model): what a done marker keeps."""
        return {k: v for k, v in asdict(self).items() if k not in ("val_proba", "test_proba", "model_bytes")}


@dataclass
class History:
    """Per-epoch metrics of one training, epoch 1 first; None where a value was not finite."""

    loss: list[float | None]  # training loss per epoch
    accuracy: list[float | None]  # training accuracy per epoch
    val_loss: list[float | None]  # validation loss per epoch
    val_accuracy: list[float | None]  # validation accuracy per epoch

    def lists(self) -> list[list[float | None]]:
        return [self.loss, self.accuracy, self.val_loss, self.val_accuracy]


@dataclass
class ClassMetrics:
    label: int  # the class, 0..K-1
    precision: float | None  # None where the class was never predicted or has no rows
    recall: float | None  # None where the class has no test rows
    f1: float | None  # None where precision or recall is
    support: int  # test rows of the class


DENSE_CLASSES = (
    30  # up to this many classes a run keeps K x K confusions and K probability columns; above, bounded forms
)
TOP_CONFUSIONS = 20  # the largest off-diagonal cells kept per training at any class count


@dataclass
class ConfusionCell:
    true: int  # the true class
    predicted: int  # the class predicted instead
    count: int  # test rows


@dataclass
class TrainingMetrics:
    """One (model, seed, split) training, evaluated: best-epoch numbers, test metrics with intervals, timing."""

    seed: int  # initial weights and batch order
    split: int = field(kw_only=True)  # the development split: its training and validation rows (1 before schema 5)
    status: str  # "ok" or "failed"
    failure: Failure | None  # why it failed; null when ok
    epochs_planned: int  # the spec's epochs, or --epochs
    epochs_run: int  # epochs that finished
    best_epoch: int | None  # 1-based: the highest validation accuracy (the earlier of equals)
    loss: float | None  # training loss at the best epoch
    accuracy: float | None  # training accuracy at the best epoch
    val_loss: float | None  # at the best epoch
    val_accuracy: float | None  # at the best epoch
    test_loss: float | None  # cross-entropy on the test rows, best-epoch weights
    test_accuracy: float | None  # best-epoch weights, test rows
    test_accuracy_ci: Interval | None  # 95% Clopper-Pearson
    macro_f1: float | None  # on the test rows
    macro_f1_ci: Interval | None  # 95% bootstrap percentile interval over test rows
    calibration: Calibration | None  # on the test rows; null when failed
    history: History  # every epoch's metrics
    epoch_seconds: list[float]  # wall time per epoch
    epoch_train_seconds: list[float]  # training part per epoch
    epoch_val_seconds: list[float]  # validation part per epoch
    compile_epochs: list[int]  # epochs that include graph build/compile (1, and the first after a resume)
    first_epoch_seconds: float | None  # epoch 1, with compiling
    steady_epoch_seconds: float | None  # median of the epochs without compiling
    train_seconds: float  # wall time of the epochs, summed over a resume
    samples_per_second: float | None  # training rows per second in steady-state epochs
    stopped_early: bool  # early stopping ended it
    confusion: list[list[int]] | None  # test rows: true class by row, predicted by column; null above DENSE_CLASSES
    per_class: list[ClassMetrics]  # precision, recall, F1 per class
    placement: Placement | None = None  # where and when it ran
    top_confusions: list[ConfusionCell] = field(default_factory=list)  # the largest errors, most rows first
    pack: str | None = None  # the pack it trained in (--pack), `<slug>-pack<i>`; null when it trained alone
    pack_size: int = 1  # the pack's members: its seconds are the pack's wall time shared out, its samples/s the pack's
    loss_scale: float | None = None  # mixed_float16: the final dynamic loss scale; null without loss scaling
    skipped_steps: int | None = None  # mixed_float16: optimizer steps skipped because a gradient overflowed


@dataclass
class SeedSummary:
    """A metric over a model's trainings: mean, standard deviation, and a 95% interval of the mean. With one
    split, a t-interval over the seeds; with --splits, over the splits with the Nadeau–Bengio variance (and, on
    the test rows every split shares, their own sampling added): docs/statistics.md."""

    mean: float | None  # over the trainings that finished; null when none did
    sd: float | None  # None with one training
    ci: Interval | None  # None with one training


# the spec's fields as run.json holds them, flat in each model: every one but `epochs` (each training's
# `epochs_planned` says how many it was given), and its `slug`
SPEC_KEYS = ("name", "key", "slug", *(f.name for f in fields(ModelSpec) if f.name not in ("key", "name", "epochs")))


@dataclass
class ModelResult:
    """One model of the family: the spec it was trained with, and one TrainingMetrics per training (split by split,
    the first seed first in each). `run.json` holds the spec's fields flat in the model (SPEC_KEYS), and `m.hidden`,
    `m.slug` and the others read them off the spec, as run.json spells them (lists and objects, not tuples)."""

    spec: ModelSpec = field(metadata={"flat": True})  # the spec as trained (--epochs applied), flat in run.json
    loss_function: str  # the training loss exactly as computed
    params: int  # trainable parameters
    layers: int  # layers as the seed counted them: the input, the hidden layers and the output
    architecture: list[LayerRow]  # one row per layer
    status: str  # "ok" when every training (every seed, every split) is
    trainings: list[TrainingMetrics]  # one per (split, seed): split 1's first, the first seed first in each
    saved_seed: int | None  # the seed whose model is models/<slug>.keras: split 1's highest validation accuracy
    val_accuracy: SeedSummary  # over the trainings (splits x seeds)
    test_accuracy: SeedSummary  # over the trainings
    macro_f1: SeedSummary  # over the trainings

    def __getattr__(self, name: str) -> Any:
        if name in SPEC_KEYS and "spec" in self.__dict__:
            value = getattr(self.spec, name)
            if name == "optimizer_args":
                return dict(value)
            return list(value) if isinstance(value, tuple) else value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def json_object(self) -> dict[str, Any]:
        """The model as run.json holds it: the spec's fields first, flat, then the rest in field order."""
        out: dict[str, Any] = {key: getattr(self, key) for key in SPEC_KEYS if key != "notes"}
        out["loss_function"] = self.loss_function
        out["notes"] = self.spec.notes
        out |= {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("spec", "loss_function")}
        return out

    @staticmethod
    def from_json_object(raw: Any, where: str) -> Any:
        """run.json's flat model with its spec fields gathered into `spec`, for the typed reader."""
        if not isinstance(raw, dict):
            return raw
        missing = [key for key in SPEC_KEYS if key not in raw]
        if missing:
            raise ValueError(f"missing key '{where}.{missing[0]}'")
        raw = dict(raw)
        spec = {key: raw.pop(key) for key in SPEC_KEYS if key != "slug"}
        slug = raw.pop("slug")  # the name's slug: derived, and checked
        if isinstance(spec["name"], str) and slug != slugify(spec["name"]):
            raise ValueError(f"key '{where}.slug' is {slug!r}, not the slug of its name ({slugify(spec['name'])!r})")
        args = spec["optimizer_args"]
        spec["optimizer_args"] = [[k, v] for k, v in args.items()] if isinstance(args, dict) else args
        trainings = raw.get("trainings")
        first = trainings[0] if isinstance(trainings, list) and trainings and isinstance(trainings[0], dict) else {}
        spec["epochs"] = first.get("epochs_planned", 0)
        raw["spec"] = spec
        return raw

    @property
    def first(self) -> TrainingMetrics:
        return self.trainings[0]

    @property
    def seeds(self) -> list[int]:
        """The seeds, once each (every split trains the same ones)."""
        return list(dict.fromkeys(t.seed for t in self.trainings))

    def training(self, seed: int, split: int = 1) -> TrainingMetrics | None:
        return next((t for t in self.trainings if t.seed == seed and t.split == split), None)


@dataclass
class DataSummary:
    source: str  # what --data named: a path or a built-in name
    kind: str  # csv, parquet, npz, idx, pickle or builtin
    sha256: str  # of the file(s) read
    rows: int  # in the data
    pixels: int  # per image
    image_shape: list[int]  # [H, W]
    classes: int  # K: labels are 0..K-1
    label_counts: dict[str, int]  # rows per label
    pixel_min: int  # the smallest pixel value
    pixel_max: int  # the largest pixel value
    ignored_columns: list[str]  # columns that were neither label nor pixel
    sampled_rows: int  # rows used: all of them, or the stratified sample


@dataclass
class SplitInfo:
    train: int  # rows
    val: int  # rows
    test: int  # rows
    fractions: list[float]  # train, validation, test, per class
    seed: int  # the split's seed (--seed)
    stratified: bool = True  # per class
    held_out_copies: int | None = None  # val/test rows with a byte-identical copy in train (the most of any split)


@dataclass
class PrecisionInfo:
    requested: str  # --precision
    policy: str  # what it resolved to on the training device
    loss_scaling: bool  # on under mixed_float16


@dataclass
class DeviceRecord:
    kind: str  # "GPU" or "CPU"
    name: str  # the device's name
    compute_capability: str | None  # GPUs only
    description: str  # as the report shows it


@dataclass
class Versions:
    """What produced the numbers; None where a package is absent or the build does not say."""

    python: str  # interpreter
    keras: str  # Keras
    backend: str  # the Keras backend's version
    numpy: str | None = None  # NumPy
    tensorflow: str | None = None  # TensorFlow
    jax: str | None = None  # JAX
    cuda: str | None = None  # the backend's CUDA build
    cudnn: str | None = None  # the backend's cuDNN build


@dataclass
class EnvironmentInfo:
    device: DeviceRecord  # the device that trained
    versions: Versions  # what produced the numbers
    backend: str  # tensorflow or jax


@dataclass
class FamilyInfo:
    source: str  # the --spec-file given, or "built-in"
    sha256: str  # of the family file
    file: str  # the copy in the run directory


@dataclass
class RunResult:
    schema_version: int  # this file's version: 5
    run_id: str  # <UTC date>-<time>-<6 hex>: the folder's name
    config: RunConfig  # every job run option
    command: str  # the line that reproduces the run
    data: DataSummary  # what was read
    split: SplitInfo  # the split's sizes and seed
    precision: PrecisionInfo  # the precision policy
    environment: EnvironmentInfo  # device, versions, backend
    deterministic: bool  # op determinism was on
    seed: int  # --seed
    started: str  # ISO 8601, UTC
    finished: str  # ISO 8601, UTC
    total_seconds: float  # wall time, from the first start on a resumed run
    models: list[ModelResult]  # in the family's order
    failed_models: list[str]  # models with a failed training
    repeats: int  # --repeats: seeds per model (per split)
    splits: int = field(kw_only=True)  # --splits: development splits per model (1 before schema 5)
    family: FamilyInfo  # the family file trained
    choice: Choice  # which model to use, and why
    comparison: Comparison  # the models against each other, on test
    architectures: Architectures | None = field(kw_only=True)  # across splits and seeds; null before schema 5
    estimate: Estimate | None = field(kw_only=True)  # the cost estimate made before training; null before schema 5

    @property
    def chosen_model(self) -> str | None:
        """The choice's chosen model: run.json keeps a copy beside `choice` for readers outside the job."""
        return self.choice.chosen

    @property
    def chosen_reason(self) -> str:
        """The choice's reason, copied into run.json the same way."""
        return self.choice.reason

    def json_object(self) -> dict[str, Any]:
        """run.json's top level: the fields in order, with `chosen_model` and `chosen_reason` after `models`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = getattr(self, f.name)
            if f.name == "models":
                out |= {"chosen_model": self.chosen_model, "chosen_reason": self.chosen_reason}
        return out

    def model(self, name: str | None) -> ModelResult | None:
        return next((m for m in self.models if m.name == name), None)
