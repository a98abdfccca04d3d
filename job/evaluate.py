"""Pure evaluation: a training's probabilities in, typed metrics out. No Keras, no files."""

from __future__ import annotations

import numpy as np

from job.epochs import steady_epoch_seconds
from job.result import ClassMetrics, EpochRecord, History, ModelResult, TrainingResult
from job.specs import ModelSpec

PROBA_FLOOR = 1e-7  # Keras's epsilon: the loss of a probability clipped here, as model.evaluate reports it

CHOICE_TOLERANCE_PP = 0.1  # within 0.1 pp of the best, prefer the smaller model (the seed's argument)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes, in counts."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_metrics(confusion: np.ndarray) -> list[ClassMetrics]:
    """Precision, recall and F1 per class; None where a class has no samples (never NaN)."""
    out = []
    for k in range(confusion.shape[0]):
        tp = int(confusion[k, k])
        support = int(confusion[k].sum())
        predicted = int(confusion[:, k].sum())
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        out.append(ClassMetrics(label=k, precision=precision, recall=recall, f1=f1, support=support))
    return out


def top_two(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class, its probability, runner-up class, its probability."""
    order = np.argsort(-proba, axis=1, kind="stable")
    rows = np.arange(proba.shape[0])
    first, second = order[:, 0], order[:, 1] if proba.shape[1] > 1 else order[:, 0]
    return first, proba[rows, first], second, proba[rows, second]


def cross_entropy(proba: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-probability of the true class (sparse categorical cross-entropy)."""
    p = np.clip(proba[np.arange(y_true.size), y_true].astype(np.float64), PROBA_FLOOR, 1.0)
    return float(-np.log(p).mean())


def evaluate_training(
    spec: ModelSpec, training: TrainingResult, y_test: np.ndarray, n_features: int, n_classes: int, n_train: int
) -> ModelResult:
    """One training's records and test probabilities as the ModelResult that run.json keeps."""
    records = training.records
    best = next((r for r in records if r.epoch == training.best_epoch), None)
    ok = training.ok and best is not None
    proba = training.test_proba if ok else None
    confusion = confusion_matrix(y_test, proba.argmax(axis=1), n_classes) if proba is not None else None
    return ModelResult(
        name=spec.name,
        key=spec.key,
        slug=spec.slug,
        seed=training.seed,
        hidden=list(spec.hidden),
        activation=spec.activation,
        initializer=spec.initializer,
        batch_size=spec.batch_size,
        patience=spec.patience,
        monitor=spec.monitor,
        optimizer=spec.optimizer,
        learning_rate=spec.learning_rate,
        params=training.params,
        layers=spec.layer_count(),
        architecture=spec.architecture(n_features, n_classes),
        epochs_planned=training.epochs_planned,
        epochs_run=len(records),
        status="ok" if ok else "failed",
        failure=training.failure,
        best_epoch=training.best_epoch,
        loss=best.loss if ok else None,
        accuracy=best.accuracy if ok else None,
        val_loss=best.val_loss if ok else None,
        val_accuracy=best.val_accuracy if ok else None,
        test_loss=cross_entropy(proba, y_test) if proba is not None else None,
        test_accuracy=float((proba.argmax(axis=1) == y_test).mean()) if proba is not None else None,
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
        confusion=confusion.tolist() if confusion is not None else None,
        per_class=per_class_metrics(confusion) if confusion is not None else [],
    )


def throughput(records: list[EpochRecord], n_train: int) -> float | None:
    """Training rows per second over the steady epochs (all epochs if every one compiled)."""
    steady = [r.train_seconds for r in records if not r.compile] or [r.train_seconds for r in records]
    if not steady or sum(steady) <= 0:
        return None
    return n_train * len(steady) / sum(steady)


def choose_model(candidates: list[ModelResult]) -> tuple[str | None, str]:
    """Highest validation accuracy; within 0.1 pp of it, the fewest parameters."""
    ok = [c for c in candidates if c.status == "ok" and c.val_accuracy is not None]
    if not ok:
        return None, "no model finished training"
    best = max(ok, key=lambda c: c.val_accuracy)
    close = [c for c in ok if (best.val_accuracy - c.val_accuracy) * 100 <= CHOICE_TOLERANCE_PP + 1e-9]
    chosen = min(close, key=lambda c: (c.params, -c.val_accuracy))
    if chosen.name == best.name:
        others = [c.name for c in close if c.name != best.name]
        if others:
            reason = (
                f"{best.name} has the highest validation accuracy ({best.val_accuracy:.4f}); "
                f"{', '.join(others)} came within {CHOICE_TOLERANCE_PP} pp but {best.name} has fewer parameters"
            )
        else:
            reason = (
                f"{best.name} has the highest validation accuracy ({best.val_accuracy:.4f}); "
                f"no other model came within {CHOICE_TOLERANCE_PP} pp"
            )
    else:
        gap = (best.val_accuracy - chosen.val_accuracy) * 100
        reason = (
            f"{chosen.name} is within {gap:.2f} pp of the best validation accuracy "
            f"({best.name}, {best.val_accuracy:.4f}) with {chosen.params:,} parameters "
            f"against {best.params:,}; within {CHOICE_TOLERANCE_PP} pp the smaller model wins"
        )
    return chosen.name, reason
