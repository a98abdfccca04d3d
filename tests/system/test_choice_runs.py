"""The margin rule on a real run: p and bound recomputed independently from val_predictions.csv (slow)."""

from __future__ import annotations

import json

import pytest
from helpers import run_job
from test_choice import independent_choice_tests


@pytest.mark.slow
def test_p_and_bound_recomputed_from_the_saved_validation_predictions_match_run_json(tmp_path):
    proc = run_job("run", "--data", "digits", "--models", "1,2", "--sample", "600", "--epochs", "2",
                   "--repeats", "3", "--margin", "20", "--pack", "off", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    choice = run["choice"]
    assert run["schema_version"] >= 3 and choice["rule"] == "margin" and choice["margin_pp"] == 20.0
    assert "--margin 20" in run["command"] and set(choice["p_best"]) == {"Model 1", "Model 2"}
    expected = independent_choice_tests(run_dir, 20.0)
    tested = {t["model"]: t for t in choice["tests"] if t["role"] == "smaller"}
    assert set(tested) == set(expected) and tested
    for name, (p, bound) in expected.items():
        assert tested[name]["p_value"] == pytest.approx(p, abs=1e-12)
        assert tested[name]["lower_bound"] == pytest.approx(bound, abs=1e-12)
    html = (run_dir / "report.html").read_text()
    assert '<section id="choice">' in html and "What the choice costs" in html and "At other margins" in html
