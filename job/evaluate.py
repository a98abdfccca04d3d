"""Pure evaluation: arrays in, plain numbers out. No Keras, no files."""

from __future__ import annotations

import numpy as np

CHOICE_TOLERANCE_PP = 0.1  # within 0.1 pp of the best, prefer the smaller model (the seed's argument)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes, in counts."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_metrics(confusion: np.ndarray) -> list[dict]:
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
        out.append({"class": k, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return out


def top_two(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predicted class, its probability, runner-up class, its probability."""
    order = np.argsort(-proba, axis=1, kind="stable")
    rows = np.arange(proba.shape[0])
    first, second = order[:, 0], order[:, 1] if proba.shape[1] > 1 else order[:, 0]
    return first, proba[rows, first], second, proba[rows, second]


def choose_model(candidates: list[dict]) -> tuple[str | None, str]:
    """Highest validation accuracy; within 0.1 pp of it, the fewest parameters.

    `candidates` are dicts with name, val_accuracy, params and status.
    """
    ok = [c for c in candidates if c.get("status") == "ok" and c.get("val_accuracy") is not None]
    if not ok:
        return None, "no model finished training"
    best = max(ok, key=lambda c: c["val_accuracy"])
    close = [c for c in ok if (best["val_accuracy"] - c["val_accuracy"]) * 100 <= CHOICE_TOLERANCE_PP + 1e-9]
    chosen = min(close, key=lambda c: (c["params"], -c["val_accuracy"]))
    if chosen is best or chosen["name"] == best["name"]:
        others = [c["name"] for c in close if c["name"] != best["name"]]
        if others:
            reason = (
                f"{best['name']} has the highest validation accuracy ({best['val_accuracy']:.4f}); "
                f"{', '.join(others)} came within {CHOICE_TOLERANCE_PP} pp but {best['name']} has fewer parameters"
            )
        else:
            reason = (
                f"{best['name']} has the highest validation accuracy ({best['val_accuracy']:.4f}); "
                f"no other model came within {CHOICE_TOLERANCE_PP} pp"
            )
    else:
        gap = (best["val_accuracy"] - chosen["val_accuracy"]) * 100
        reason = (
            f"{chosen['name']} is within {gap:.2f} pp of the best validation accuracy "
            f"({best['name']}, {best['val_accuracy']:.4f}) with {chosen['params']:,} parameters "
            f"against {best['params']:,}; within {CHOICE_TOLERANCE_PP} pp the smaller model wins"
        )
    return chosen["name"], reason
