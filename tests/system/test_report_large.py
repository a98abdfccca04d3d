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
