"""Pure evaluation: a training's probabilities in, typed metrics out. No Keras, no files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from job.result import (
    DENSE_CLASSES,
    TOP_CONFUSIONS,
    ClassMetrics,
    ConfusionCell,
    EpochRecord,
    Failure,
    History,
    ModelResult,
    SeedSummary,
    TrainingMetrics,
    TrainingResult,
)
from job.specs import LOSS_FUNCTION, ModelSpec
from job.stats.calibration import calibration
from job.stats.compare import Resampler
from job.stats.metrics import (
    class_counts,
    clopper_pearson,
    confusion_matrix,
    cross_entropy,
    macro_f1_of_counts,
    mean_interval,
    percentile_interval,
    top_confusions,
)
from job.stats.splits import corrected_interval
from job.training.epochs import steady_epoch_seconds

NOT_FINITE = "its predicted probabilities are not finite (NaN or inf), though its loss was"


def per_class_metrics(counts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[ClassMetrics]:
    """Precision, recall and F1 per class from its right, true and predicted counts; None where a class has
    no samples (never NaN)."""
    out = []
    for k, (tp, support, predicted) in enumerate(zip(*(c.tolist() for c in counts), strict=True)):
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        out.append(ClassMetrics(label=k, precision=precision, recall=recall, f1=f1, support=support))
    return out


def evaluate_training(
    training: TrainingResult, y_test: np.ndarray, n_classes: int, n_train: int, resampler: Resampler
) -> TrainingMetrics:
    """One training's records and test probabilities as metrics, with their intervals."""
    records = training.records
    best = next((r for r in records if r.epoch == training.best_epoch), None)
    failure = training.failure
    ok = training.ok and best is not None
    if ok and not all(np.isfinite(p).all() for p in (training.val_proba, training.test_proba) if p is not None):
        # a finite loss of 1e18 can still predict NaN: no metric of it would be a number
        ok, failure = False, Failure(training.best_epoch or len(records), NOT_FINITE)
    proba = training.test_proba if ok else None
    metrics = _test_metrics(proba, y_test, n_classes, resampler) if proba is not None else {}
    return TrainingMetrics(
        seed=training.seed,
        split=training.split,
        status="ok" if ok else "failed",
        failure=failure,
        epochs_planned=training.epochs_planned,
        epochs_run=len(records),
        best_epoch=training.best_epoch,
        loss=best.loss if best is not None and ok else None,
        accuracy=best.accuracy if best is not None and ok else None,
        val_loss=best.val_loss if best is not None and ok else None,
        val_accuracy=best.val_accuracy if best is not None and ok else None,
        test_loss=metrics.get("test_loss"),
        test_accuracy=metrics.get("test_accuracy"),
        test_accuracy_ci=metrics.get("test_accuracy_ci"),
        macro_f1=metrics.get("macro_f1"),
        macro_f1_ci=metrics.get("macro_f1_ci"),
        calibration=metrics.get("calibration"),
        history=History(*([getattr(r, k) for r in records] for k in ("loss", "accuracy", "val_loss", "val_accuracy"))),
        epoch_seconds=[r.seconds for r in records],
        epoch_train_seconds=[r.train_seconds for r in records],
        epoch_val_seconds=[r.val_seconds for r in records],
        compile_epochs=[r.epoch for r in records if r.compile],
        first_epoch_seconds=records[0].seconds if records else None,
        steady_epoch_seconds=steady_epoch_seconds(records),
        train_seconds=training.fit_seconds,
        samples_per_second=throughput(records, n_train),
        stopped_early=training.stopped_early,
        confusion=metrics.get("confusion"),
        per_class=per_class_metrics(metrics["counts"]) if metrics else [],
        placement=training.placement,
        pack=training.pack,
        pack_size=training.pack_size,
        loss_scale=training.loss_scale,
        skipped_steps=training.skipped_steps,
        top_confusions=metrics.get("top_confusions", []),
    )


def _test_metrics(proba: np.ndarray, y_test: np.ndarray, n_classes: int, resampler: Resampler) -> dict:
    pred = proba.argmax(axis=1)
    counts = class_counts(y_test, pred, n_classes)
    dense = confusion_matrix(y_test, pred, n_classes).tolist() if n_classes <= DENSE_CLASSES else None
    _, f1_resampled = resampler.scores(y_test, pred, n_classes)
    return {
        "confusion": dense,
        "counts": counts,
        "top_confusions": [ConfusionCell(*c) for c in top_confusions(y_test, pred, n_classes, TOP_CONFUSIONS)],
        "test_loss": cross_entropy(proba, y_test),
        "test_accuracy": float((pred == y_test).mean()),
        "test_accuracy_ci": clopper_pearson(int((pred == y_test).sum()), int(y_test.size)),
        "macro_f1": float(macro_f1_of_counts(*counts)),
        "macro_f1_ci": percentile_interval(f1_resampled),
        "calibration": calibration(proba, y_test),
    }


def model_result(
    spec: ModelSpec,
    trainings: list[TrainingMetrics],
    params: int,
    n_features: int,
    n_classes: int,
    rows: tuple[int, int, int] | None = None,
) -> ModelResult:
    """A model with every training, and each metric summarised over them. `rows`: (train, val, test) rows of a
    split, for the intervals over splits (--splits)."""
    ok = [t for t in trainings if t.status == "ok"]
    first_split = [t for t in ok if t.split == 1]
    saved = max(first_split, key=lambda t: t.val_accuracy or 0.0, default=None)  # first of equals: the lowest seed
    epochs = trainings[0].epochs_planned if trainings else spec.epochs
    return ModelResult(
        spec=replace(spec, epochs=epochs),  # as trained: --epochs applied
        loss_function=LOSS_FUNCTION,
        params=params,
        layers=spec.layer_count(),
        architecture=spec.architecture(n_features, n_classes),
        status="ok" if len(ok) == len(trainings) and trainings else "failed",
        trainings=trainings,
        saved_seed=saved.seed if saved is not None else None,
        val_accuracy=summary(ok, "val_accuracy", rows),
        test_accuracy=summary(ok, "test_accuracy", rows, on_test=True),
        macro_f1=summary(ok, "macro_f1", rows, on_test=True),
    )


def summary(
    trainings: list[TrainingMetrics], metric: str, rows: tuple[int, int, int] | None, on_test: bool = False
) -> SeedSummary:
    """One split: over the seeds (`seed_summary`). Several: the mean and sd over every training, and an interval
    over the per-split means with the Nadeau–Bengio variance; on the test rows, which every split shares, their
    own binomial sampling is added (for macro-F1 too, as an approximation)."""
    values = [getattr(t, metric) for t in trainings]
    if len({t.split for t in trainings}) < 2 or rows is None:
        return seed_summary(values)
    n_train, n_val, n_test = rows
    by_split: dict[int, list[float]] = {}
    for t, v in zip(trainings, values, strict=True):
        if v is not None:
            by_split.setdefault(t.split, []).append(v)
    per_split = [float(np.mean(by_split[k])) for k in sorted(by_split)]
    present = [v for v in values if v is not None]
    if not present:
        return SeedSummary(None, None, None)
    mean = float(np.mean(present))
    extra = mean * (1.0 - mean) / n_test if on_test else 0.0
    sd = float(np.std(present, ddof=1)) if len(present) > 1 else None
    return SeedSummary(mean, sd, corrected_interval(np.array(per_split), n_val / n_train, extra))


def seed_summary(maybe: list[float | None]) -> SeedSummary:
    values = [v for v in maybe if v is not None]
    if not values:
        return SeedSummary(None, None, None)
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return SeedSummary(float(np.mean(values)), sd, mean_interval(values, bounds=(0.0, 1.0)))


def throughput(records: list[EpochRecord], n_train: int) -> float | None:
    """Training rows per second over the steady epochs (all epochs if every one compiled)."""
    steady = [r.train_seconds for r in records if not r.compile] or [r.train_seconds for r in records]
    if not steady or sum(steady) <= 0:
        return None
    return n_train * len(steady) / sum(steady)
