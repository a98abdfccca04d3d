import numpy as np

from job.evaluate import per_class_metrics
from job.result import ClassMetrics
from job.stats.metrics import class_counts, confusion_matrix, cross_entropy, top_two


def test_confusion_and_per_class_with_a_missing_class():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    stats = per_class_metrics(class_counts(y_true, y_pred, 3))
    assert [c.tolist() for c in class_counts(y_true, y_pred, 3)] == [
        np.diag(cm).tolist(),
        cm.sum(axis=1).tolist(),
        cm.sum(axis=0).tolist(),
    ]
    assert stats[0].precision == 0.5 and stats[0].recall == 0.5
    assert stats[1].f1 == 2 * (2 / 3) * (2 / 3) / (4 / 3)
    assert stats[2] == ClassMetrics(label=2, precision=None, recall=None, f1=None, support=0)


def test_cross_entropy_is_the_mean_log_loss_with_keras_floor():
    proba = np.array([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]], dtype=np.float32)
    expected = -(np.log(0.5) + np.log(0.9) + np.log(1e-7)) / 3
    assert abs(cross_entropy(proba, np.array([0, 0, 1])) - expected) < 1e-7


def test_top_two():
    pred, conf, runner, runner_p = top_two(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]))
    assert pred.tolist() == [1, 0] and runner.tolist() == [2, 2]
    assert conf.tolist() == [0.7, 0.5] and np.allclose(runner_p, [0.2, 0.3])


def test_a_training_whose_probabilities_are_not_finite_fails_instead_of_writing_null_metrics():
    """A finite loss of 1e18 can still predict NaN (a hostile family found it): the training is failed, with the
    reason, so the run exits 3 instead of writing a run.json its own reader refuses."""
    import json

    from job.evaluate import NOT_FINITE, evaluate_training
    from job.result import EpochRecord, TrainingResult
    from job.rundir.typed_json import to_jsonable
    from job.stats.compare import Resampler

    proba = np.full((6, 3), np.nan, dtype=np.float32)
    record = EpochRecord(1, 1e18, 0.3, 1e18, 0.3, 1.0, 0.9, 0.1, True)
    training = TrainingResult("m", 1, [record], 1, 1, 1.0, False, None, 10, val_proba=proba, test_proba=proba)
    metrics = evaluate_training(training, np.array([0, 1, 2, 0, 1, 2]), 3, 10, Resampler(6, 50, 0))
    assert metrics.status == "failed" and metrics.failure is not None and metrics.failure.reason == NOT_FINITE
    assert metrics.calibration is None and metrics.test_accuracy is None
    json.dumps(to_jsonable(metrics), allow_nan=False)
