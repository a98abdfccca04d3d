"""Many classes: nothing of size classes squared in the scores, run.json, the CSVs or the report (#25, item 8)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import hand_result, write_hand_run

from job.evaluate import evaluate_training, per_class_metrics
from job.report.render import render_report
from job.result import DENSE_CLASSES, TOP_CONFUSIONS, ClassMetrics, ConfusionCell, EpochRecord, TrainingResult
from job.rundir import reader, writer
from job.rundir.layout import PREDICTIONS_CSV, RUN_JSON, RunDirError
from job.stats.compare import Resampler
from job.stats.metrics import class_counts, confusion_matrix, macro_f1, macro_f1_of_counts, top_confusions, top_two


def _labels(n_classes: int, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, rows)
    pred = np.where(rng.random(rows) < 0.6, y, rng.integers(0, n_classes, rows))
    return y, pred


@pytest.mark.parametrize("n_classes", [2, 10, 31])
def test_counts_and_top_confusions_equal_the_dense_matrix(n_classes):
    y, pred = _labels(n_classes, 500)
    dense = confusion_matrix(y, pred, n_classes)
    right, support, predicted = class_counts(y, pred, n_classes)
    assert right.tolist() == np.diag(dense).tolist()
    assert support.tolist() == dense.sum(axis=1).tolist() and predicted.tolist() == dense.sum(axis=0).tolist()
    assert float(macro_f1_of_counts(right, support, predicted)) == float(macro_f1(dense))  # bit-equal
    cells = [(i, j, int(dense[i, j])) for i in range(n_classes) for j in range(n_classes) if i != j and dense[i, j]]
    cells.sort(key=lambda c: (-c[2], c[0], c[1]))
    assert top_confusions(y, pred, n_classes, TOP_CONFUSIONS) == cells[:TOP_CONFUSIONS]


def _training(proba: np.ndarray) -> TrainingResult:
    record = EpochRecord(1, 1.0, 0.5, 1.0, 0.5, 1.0, 0.9, 0.1, True)
    return TrainingResult(
        name="m", seed=1, records=[record], epochs_planned=1, best_epoch=1, fit_seconds=1.0, stopped_early=False,
        failure=None, params=10, val_proba=proba, test_proba=proba,
    )  # fmt: skip


def test_a_training_at_ten_thousand_classes_keeps_no_square_confusion():
    k, rows = 10_000, 3_000
    y, pred = _labels(k, rows, seed=1)
    proba = np.full((rows, k), 0.1 / k, dtype=np.float32)
    proba[np.arange(rows), pred] = 0.9
    metrics = evaluate_training(_training(proba), y, k, 100, Resampler(rows, 200, 0))
    assert metrics.confusion is None and len(metrics.per_class) == k
    assert metrics.macro_f1 == float(macro_f1_of_counts(*class_counts(y, pred, k)))
    assert [(c.true, c.predicted, c.count) for c in metrics.top_confusions] == top_confusions(y, pred, k, 20)
    assert len(json.dumps([c.__dict__ for c in metrics.top_confusions])) < 2_000


def test_at_or_under_the_dense_bound_the_confusion_is_kept():
    k = DENSE_CLASSES
    y, pred = _labels(k, 400)
    proba = np.eye(k, dtype=np.float32)[pred]
    metrics = evaluate_training(_training(proba), y, k, 100, Resampler(400, 100, 0))
    assert metrics.confusion == confusion_matrix(y, pred, k).tolist()
    assert metrics.per_class == per_class_metrics(class_counts(y, pred, k))


def _many_class_run(tmp_path, k: int = 40):
    """The hand run widened to k classes: per-class rows, no confusion above DENSE_CLASSES, top confusions."""
    run_dir = tmp_path / "run"
    write_hand_run(run_dir)
    run = hand_result()
    cells = [ConfusionCell(1, 0, 3), ConfusionCell(5, 7, 2)]
    models = []
    for m in run.models:
        trainings = [
            replace(
                t,
                confusion=None,
                per_class=[ClassMetrics(c, 0.5, 0.5, 0.5 if c != 7 else 0.1, 2) for c in range(k)],
                top_confusions=cells,
            )
            if t.status == "ok"
            else t
            for t in m.trainings
        ]
        models.append(replace(m, trainings=trainings))
    run.models = models
    run.data = replace(run.data, classes=k, label_counts={str(c): 10 + c for c in range(k)})
    writer.write_run(run_dir, run)
    rows, y = np.array([3, 8, 11, 14, 20]), np.array([0, 0, 1, 1, k - 1])
    proba = np.full((5, k), 0.01, dtype=np.float32)
    proba[np.arange(5), [0, 7, 1, 1, k - 1]] = 0.6
    probas = {(m.slug, 7, 1): proba for m in run.models if m.status == "ok"}
    writer.write_predictions_csv(run_dir, rows, y, probas, 7)
    return run_dir, run


def test_above_the_bound_predictions_csv_has_the_top_two_not_a_column_a_class(tmp_path):
    run_dir, _ = _many_class_run(tmp_path)
    with open(run_dir / PREDICTIONS_CSV, newline="") as f:
        header = next(csv.reader(f))
    assert header == [
        "row", "true_label",
        "model_1_pred", "model_1_pred_p", "model_1_runner_up", "model_1_runner_up_p", "model_1_true_p",
        "model_2_pred", "model_2_pred_p", "model_2_runner_up", "model_2_runner_up_p", "model_2_true_p",
    ]  # fmt: skip


def test_a_many_class_report_shows_the_largest_confusions_and_the_worst_classes(tmp_path):
    run_dir, run = _many_class_run(tmp_path)
    html = render_report(run_dir)
    assert "Largest confusions of Model 2" in html and '<table class="confusion">' not in html
    assert "<tr><td>1</td><td>0</td><td>3</td>" in html  # true 1 predicted as 0, 3 of its 2 rows... as stored
    assert f"The {DENSE_CLASSES} classes with Model 2's lowest F1, of 40" in html
    assert "<th>p(predicted)</th><th>p(actual)</th>" in html
    assert "The 15 smallest and the 15 largest of 40 classes" in html
    assert 'pandas.crosstab(df.true_label, df["model_2_pred"])' in html


def test_the_reader_wants_a_dense_confusion_only_up_to_the_bound(tmp_path):
    run_dir, _ = _many_class_run(tmp_path, k=DENSE_CLASSES + 1)
    assert reader.read_run(run_dir).models[0].first.confusion is None
    raw = json.loads((run_dir / RUN_JSON).read_text())
    raw["models"][0]["trainings"][0]["top_confusions"][0]["predicted"] = 1  # the same class as the true one
    (run_dir / RUN_JSON).write_text(json.dumps(raw))
    with pytest.raises(RunDirError, match=r"top_confusions' has .* not two different classes"):
        reader.read_run(run_dir)
    small, _ = _many_class_run(tmp_path / "small", k=DENSE_CLASSES)
    with pytest.raises(RunDirError, match=r"lacks a 30x30 confusion"):
        reader.read_run(small)


def test_a_schema_3_run_gets_its_top_confusions_from_its_confusion(tmp_path):
    write_hand_run(tmp_path)
    raw = json.loads((tmp_path / RUN_JSON).read_text())
    raw["schema_version"] = 3
    for m in raw["models"]:
        for t in m["trainings"]:
            t.pop("top_confusions")
    (tmp_path / RUN_JSON).write_text(json.dumps(raw))
    first = reader.read_run(tmp_path).models[0].first
    assert first.confusion == [[2, 0, 0], [1, 2, 0], [0, 0, 0]]
    assert first.top_confusions == [ConfusionCell(1, 0, 1)]


def test_top_two_equals_a_stable_sort_with_ties_and_one_class():
    rng = np.random.default_rng(3)
    proba = rng.integers(0, 4, size=(300, 7)).astype(np.float32)  # many ties
    order = np.argsort(-proba, axis=1, kind="stable")
    rows = np.arange(300)
    got = top_two(proba)
    want = (order[:, 0], proba[rows, order[:, 0]], order[:, 1], proba[rows, order[:, 1]])
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    single = top_two(np.ones((3, 1), dtype=np.float32))
    assert single[0].tolist() == single[2].tolist() == [0, 0, 0]
