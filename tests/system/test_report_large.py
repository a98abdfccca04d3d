"""A large family's report: grids of panels, a bounded number of them, and a page of a few MB (slow: it draws)."""

from __future__ import annotations

import pytest
from helpers import hand_result, write_hand_run

from job.report.render import render_report


@pytest.mark.slow
def test_a_large_family_gets_a_grid_of_panels_and_a_page_of_a_few_mb(tmp_path):
    """100 models: the per-model charts wrap into rows, hold at most MAX_PANELS panels, and say so."""
    import io
    from dataclasses import replace

    from PIL import Image

    from job.report import figures
    from job.report.render import MAX_PANELS
    from job.rundir import writer
    from job.rundir.typed_json import to_jsonable

    run = hand_result()
    ok = next(m for m in run.models if m.status == "ok")
    many = [replace(ok, spec=replace(ok.spec, name=f"Wide {i}", key=str(i + 1))) for i in range(100)]
    png = figures.reliability([to_jsonable(m) for m in many[:30]])
    width, height = Image.open(io.BytesIO(png)).size
    assert width <= 1400 and height > width  # rows of MAX_COLUMNS panels, not one strip of 30
    run.models = many
    run.choice = replace(run.choice, chosen="Wide 50", best="Wide 50", tests=[], p_best={}, at_margins=[])
    run.comparison = replace(run.comparison, pairs=[], overlap=None)
    run.failed_models = []
    write_hand_run(tmp_path)
    writer.write_run(tmp_path, run)
    (tmp_path / "misclassified.csv").unlink()
    (tmp_path / "predictions.csv").unlink()
    html = render_report(tmp_path)
    size = len(html.encode())
    print(f"report of 100 models: {size / 1e6:.2f} MB")
    assert size < 3_000_000
    assert f"for {MAX_PANELS} of the 100 models" in html
    assert "Wide 50" in html


@pytest.mark.slow
def test_ten_thousand_classes_run_end_to_end_in_files_of_a_few_mb(tmp_path):
    """The documented class limit trains, scores and reports with nothing of classes squared (#25, item 8)."""
    import json

    import numpy as np
    from helpers import run_job

    k = 10_000
    y = np.repeat(np.arange(k), 5)
    x = np.random.default_rng(0).integers(0, 255, size=(y.size, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "many.npz", x=x, y=y)
    done = run_job("run", "--data", str(tmp_path / "many.npz"), "--models", "1", "--epochs", "1", "--out",
                   str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "out").iterdir()
    sizes = {p.name: p.stat().st_size for p in run_dir.iterdir() if p.is_file()}
    assert sizes["report.html"] < 3_000_000 and sizes["run.json"] < 5_000_000, sizes
    assert sizes["predictions.csv"] < 5_000_000 and sizes["val_predictions.csv"] < 5_000_000, sizes
    training = json.loads((run_dir / "run.json").read_text())["models"][0]["trainings"][0]
    assert training["confusion"] is None and len(training["per_class"]) == k and training["top_confusions"]
    assert "Largest confusions of Model 1" in (run_dir / "report.html").read_text()
