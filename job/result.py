"""The typed results of a run: what one training gives back, and what run.json holds.

Plain dataclasses, no Keras and no files: `job.rundir` writes them and reads them back as
the same types, and the report renders from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from job.config import RunConfig
from job.specs import LayerRow
from job.stats.calibration import Calibration
from job.stats.choice import Choice
from job.stats.compare import Comparison
from job.stats.metrics import Interval


@dataclass
class EpochRecord:
    """One finished epoch, as the training unit logs it the moment the epoch ends."""

    epoch: int  # 1-based
    loss: float | None  # None: the value was not finite (NaN/inf)
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    train_seconds: float
    val_seconds: float
    compile: bool  # the first epoch of a fit() call: includes tracing and compiling


@dataclass
class Failure:
    epoch: int
    reason: str


@dataclass
class Placement:
    """Where and when a training ran: for the report's timeline and for audits of a fanned-out run."""

    executor: str  # "local" or "ray"
    node: str  # host name (and Ray node id, shortened)
    device: str  # the accelerator it was given (CUDA_VISIBLE_DEVICES), or "CPU"
    started: float  # Unix time the training began
    finished: float
    attempts: int = 1  # more than 1: a lost worker or node made it start over elsewhere


@dataclass
class TrainingResult:
    """What one (spec, seed) training gives back, wherever it ran. No metrics: evaluation makes those."""

    name: str
    seed: int
    records: list[EpochRecord]
    epochs_planned: int
    best_epoch: int | None  # 1-based; None if no epoch finished cleanly
    fit_seconds: float  # wall time of fit(), summed over a resume
    stopped_early: bool
    failure: Failure | None
    params: int  # trainable parameters of the built model
    placement: Placement | None = None
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

    loss: list[float | None]
    accuracy: list[float | None]
    val_loss: list[float | None]
    val_accuracy: list[float | None]

    def lists(self) -> list[list[float | None]]:
        return [self.loss, self.accuracy, self.val_loss, self.val_accuracy]


@dataclass
class ClassMetrics:
    label: int
    precision: float | None  # None where the class was never predicted or has no rows
    recall: float | None
    f1: float | None
    support: int


@dataclass
class TrainingMetrics:
    """One (model, seed) training, evaluated: best-epoch numbers, test metrics with intervals, timing."""

    seed: int  # initial weights and batch order
    status: str  # "ok" or "failed"
    failure: Failure | None
    epochs_planned: int
    epochs_run: int
    best_epoch: int | None
    loss: float | None  # training loss at the best epoch
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    test_loss: float | None
    test_accuracy: float | None
    test_accuracy_ci: Interval | None  # 95% Clopper-Pearson
    macro_f1: float | None
    macro_f1_ci: Interval | None  # 95% bootstrap percentile interval over test rows
    calibration: Calibration | None
    history: History
    epoch_seconds: list[float]
    epoch_train_seconds: list[float]
    epoch_val_seconds: list[float]
    compile_epochs: list[int]  # epochs that include graph build/compile (1, and the first after a resume)
    first_epoch_seconds: float | None
    steady_epoch_seconds: float | None
    train_seconds: float  # wall time of the epochs, summed over a resume
    samples_per_second: float | None  # training rows per second in steady-state epochs
    stopped_early: bool
    confusion: list[list[int]] | None
    per_class: list[ClassMetrics]
    placement: Placement | None = None


@dataclass
class SeedSummary:
    """A metric over a model's seeds: mean, standard deviation, and a 95% t-interval of the mean."""

    mean: float | None
    sd: float | None  # None with one seed
    ci: Interval | None  # None with one seed


@dataclass
class ModelResult:
    """One model of the family: its settings, and one TrainingMetrics per seed (the first seed first)."""

    name: str
    key: str
    slug: str
    hidden: list[int]
    activation: str
    initializer: str
    batch_size: int
    patience: int
    monitor: str  # what early stopping watches
    optimizer: str
    learning_rate: float
    optimizer_args: dict[str, float | bool]  # beyond the learning rate
    dropout: float
    loss_function: str  # the training loss exactly as computed
    notes: str
    params: int
    layers: int
    architecture: list[LayerRow]
    status: str  # "ok" when every seed's training is
    trainings: list[TrainingMetrics]
    saved_seed: int | None  # the seed whose model is models/<slug>.keras: the highest validation accuracy
    val_accuracy: SeedSummary
    test_accuracy: SeedSummary
    macro_f1: SeedSummary

    @property
    def first(self) -> TrainingMetrics:
        return self.trainings[0]

    @property
    def seeds(self) -> list[int]:
        return [t.seed for t in self.trainings]


@dataclass
class DataSummary:
    source: str
    kind: str
    sha256: str
    rows: int
    pixels: int
    image_shape: list[int]
    classes: int
    label_counts: dict[str, int]
    pixel_min: int
    pixel_max: int
    ignored_columns: list[str]
    sampled_rows: int  # rows used: all of them, or the stratified sample


@dataclass
class SplitInfo:
    train: int
    val: int
    test: int
    fractions: list[float]  # train, validation, test, per class
    seed: int
    stratified: bool = True
    held_out_copies: int | None = None  # val/test rows with a byte-identical copy in train; None: not checked


@dataclass
class PrecisionInfo:
    requested: str
    policy: str
    loss_scaling: bool


@dataclass
class DeviceRecord:
    kind: str  # "GPU" or "CPU"
    name: str
    compute_capability: str | None
    description: str


@dataclass
class Versions:
    """What produced the numbers; None where a package is absent or the build does not say."""

    python: str
    keras: str
    backend: str
    numpy: str | None = None
    tensorflow: str | None = None
    jax: str | None = None
    cuda: str | None = None
    cudnn: str | None = None


@dataclass
class EnvironmentInfo:
    device: DeviceRecord
    versions: Versions
    backend: str


@dataclass
class FamilyInfo:
    source: str  # the --spec-file given, or "built-in"
    sha256: str
    file: str  # the copy in the run directory


@dataclass
class RunResult:
    schema_version: int
    run_id: str
    config: RunConfig
    command: str
    data: DataSummary
    split: SplitInfo
    precision: PrecisionInfo
    environment: EnvironmentInfo
    deterministic: bool
    seed: int
    started: str
    finished: str
    total_seconds: float
    models: list[ModelResult]
    chosen_model: str | None
    chosen_reason: str
    failed_models: list[str]
    repeats: int
    family: FamilyInfo
    choice: Choice
    comparison: Comparison

    def model(self, name: str | None) -> ModelResult | None:
        return next((m for m in self.models if m.name == name), None)
