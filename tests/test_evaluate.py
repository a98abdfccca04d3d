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
