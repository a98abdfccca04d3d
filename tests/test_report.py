"""The report, rendered from a hand-built run directory: sections, numbers, escaping, no TensorFlow."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

from click.testing import CliRunner
from helpers import REPO, hand_result, write_hand_run

from job.cli import main
from job.report.render import render_report, templates_dir


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_sections_and_numbers(tmp_path):
    write_hand_run(tmp_path)
    html = render_report(tmp_path)
    text = _text(html)
    sections = ("data", "comparison", "difference", "curves", "timing", "architecture", "quality", "misclassified")
    for section in (*sections, "preview"):
        assert f'<section id="{section}">' in html
    # header
    assert "20260101-000000-abcdef" in text and "ab" * 32 in text and "CPU Test CPU" in text
    assert "float32" in text and "job run --data hand.csv --seed 7" in text and "1.00 min" not in text
    # comparison: best-epoch numbers, the chosen model highlighted with its reason
    assert re.search(r'<tr class="chosen">\s*<td class="l">Model 2 ★', html)
    assert "90.00%" in text and "87.65%" in text and "0.5555" in text and "1,234/s" in text
    assert "Model 2: the highest validation accuracy" in text
    # failed model reported with epoch and reason
    assert "Model 3 failed at epoch 2: training loss became nan" in text
    # split and data verification
    assert "train 15, validation 5, test 5" in text and "0..255" in text
    # quality: a class absent from the test split says so instead of NaN
    assert "no samples" in text and "nan%" not in text.lower()
    # misclassified table: total, runner-up, the other model's call
    assert "1 of 5 test digits are wrong" in text
    assert re.search(r"<td>20</td><td>1</td><td class=\"bad\">0</td><td>70.0%</td>\s*<td>1 \(20.0%\)</td>", html)
    # preview: first rows with probabilities
    assert "0.90" in text and "0.85" in text
    # every figure is embedded
    assert html.count('src="data:image/png;base64,') >= 6
    assert "http://" not in html and "https://" not in html


def test_strings_from_data_are_escaped(tmp_path):
    evil = "<script>alert('x')</script>"
    write_hand_run(tmp_path, source=f"/data/{evil}.csv", column_note=f"<img src=x onerror=alert(1)>{evil}")
    html = render_report(tmp_path)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_missing_run_dir_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no run.json" in result.stderr and "Traceback" not in result.stderr


def test_rerender_is_identical_apart_from_timestamp_and_imports_no_tensorflow(tmp_path):
    write_hand_run(tmp_path)
    code = (
        "import sys; from job.cli import main; sys.argv=['job','report',sys.argv[1]];\n"
        "try:\n main()\nexcept SystemExit as e:\n assert not e.code, e.code\n"
        "bad=[m for m in ('tensorflow','keras','jax') if m in sys.modules]; assert not bad, bad"
    )
    first = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert first.returncode == 0, first.stderr
    html1 = (tmp_path / "report.html").read_text()
    second = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert second.returncode == 0, second.stderr
    html2 = (tmp_path / "report.html").read_text()
    strip = re.compile(r"Rendered [^<]* from")
    assert strip.sub("", html1) == strip.sub("", html2)


def test_templates_found_and_partials_named_with_underscore():
    names = sorted(p.name for p in templates_dir().glob("*.html"))
    assert "report.html" in names
    assert all(n == "report.html" or n.startswith("_") for n in names)


def test_confusion_matrix_label_bars_and_sample_strips_are_html(tmp_path):
    write_hand_run(tmp_path)
    html = render_report(tmp_path)
    quality = html[html.index('<section id="quality">') : html.index("<h3>Per-class")]
    # Model 2 (chosen): [[2,0,0],[1,2,0],[0,0,0]], rows = true class, with row totals
    cells = re.findall(r'<td class="(right|wrong)[^"]*" style="background: (#[0-9a-f]{6})">(\d+)</td>', quality)
    assert [int(c[2]) for c in cells] == [2, 0, 0, 1, 2, 0, 0, 0, 0]
    assert [c[0] for c in cells[:4]] == ["right", "wrong", "wrong", "wrong"]
    assert cells[3][1] != "#ffffff" and cells[1][1] == "#ffffff"  # the one error is shaded; a zero is not
    assert re.findall(r"</td>\s*<td>(\d+)</td></tr>", quality) == ["2", "3", "0"]
    data = html[html.index('<section id="data">') : html.index('<section id="comparison">')]
    assert re.findall(r'<span style="width: ([\d.]+)%"></span></td><td>(\d+)</td>', data) == [
        ("100.0", "10"),
        ("100.0", "10"),
        ("50.0", "5"),
    ]
    assert len(re.findall(r'<img class="strip" alt="Training samples of class \d" src="data:image/png', data)) == 3


def test_charts_are_cached_in_the_run_dir_and_redrawn_when_their_input_changes(tmp_path):
    write_hand_run(tmp_path)
    render_report(tmp_path)
    figures = tmp_path / "figures"
    assert sorted(p.name for p in figures.iterdir()) == [
        "curves.png",
        "epoch_times.png",
        "keys.json",
        "reliability.png",
        "val_accuracy.png",
    ]
    before = {p.name: p.read_bytes() for p in figures.glob("*.png")}
    assert all(b.startswith(b"\x89PNG") for b in before.values())
    # a second render reuses them and never imports matplotlib
    code = (
        "import sys; from pathlib import Path; from job.report.render import render_report;"
        "render_report(Path(sys.argv[1])); assert 'matplotlib' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    # a changed history redraws the charts drawn from it
    run = json.loads((tmp_path / "run.json").read_text())
    run["models"][0]["trainings"][0]["history"]["val_accuracy"] = [0.2, 0.3, 0.4]
    (tmp_path / "run.json").write_text(json.dumps(run))
    html = render_report(tmp_path)
    after = {p.name: p.read_bytes() for p in figures.glob("*.png")}
    assert after["val_accuracy.png"] != before["val_accuracy.png"] and after["curves.png"] != before["curves.png"]
    assert base64.b64encode(after["val_accuracy.png"]).decode() in html


def test_charts_render_when_the_cache_cannot_be_written(tmp_path):
    write_hand_run(tmp_path)
    (tmp_path / "figures").write_text("not a directory")
    html = render_report(tmp_path)
    assert html.count('<img class="fig"') == 4
    assert (tmp_path / "figures").read_text() == "not a directory"


def test_new_drawing_code_redraws_cached_charts(tmp_path, monkeypatch):
    from job.report import render

    write_hand_run(tmp_path)
    render_report(tmp_path)
    keys = json.loads((tmp_path / "figures" / "keys.json").read_text())
    monkeypatch.setattr(render, "_code_version", lambda: "a newer figures.py")
    render_report(tmp_path)
    new_keys = json.loads((tmp_path / "figures" / "keys.json").read_text())
    assert set(new_keys) == set(keys) and all(new_keys[k] != keys[k] for k in keys)


def test_a_smaller_model_chosen_within_the_margin_shows_what_it_costs(tmp_path):
    from dataclasses import replace

    from job.rundir import writer
    from job.stats.choice import ChoiceCost, MarginChoice
    from job.stats.metrics import Interval

    run = hand_result()
    tests = [replace(run.choice.tests[0]), replace(run.choice.tests[1], within=True, lower_bound=-0.008, p_value=0.01,
                                                   p_holm=0.01)]  # fmt: skip
    reason = "Model 1: within 1 pp of the best (Model 2): −2.4 pp, 95% lower bound −0.8 pp; 2.8× fewer parameters"
    cost = ChoiceCost(-0.0235, Interval(-0.03, -0.01), -0.2, Interval(-0.6, 0.0), 99 / 35)
    margins = [MarginChoice(0.0, "Model 2"), MarginChoice(1.0, "Model 1")]
    run.choice = replace(run.choice, chosen="Model 1", reason=reason, tests=tests, at_margins=margins, cost=cost)
    write_hand_run(tmp_path)
    writer.write_run(tmp_path, run)
    (tmp_path / "misclassified.csv").unlink()  # written for Model 2; this section does not need it
    text = re.sub(r"<[^>]+>", " ", render_report(tmp_path))
    text = " ".join(text.split())
    assert "Chosen: Model 1." in text and "within 1 pp of the best (Model 2)" in text
    assert "validation accuracy (what the rule saw) -2.4 pp [-3.0, -1.0]" in text
    assert "test accuracy (reported only) -20.0 pp [-60.0, +0.0]" in text and "2.8× fewer" in text
    assert "1.0 pp Model 1 (this run)" in text and "yes" in text


def test_a_family_runs_reproduce_line_points_at_the_copy_it_trained(tmp_path):
    """The file named in the command may be edited after the run; the folder's family.toml is what it trained."""
    from dataclasses import replace

    from job.result import FamilyInfo
    from job.rundir import writer

    run = hand_result()
    run.family = replace(FamilyInfo("/data/family.toml", "ef" * 32, "family.toml"))
    write_hand_run(tmp_path)
    writer.write_run(tmp_path, run)
    text = " ".join(re.sub(r"<[^>]+>", " ", render_report(tmp_path)).split())
    assert "The family this run trained is family.toml in this folder (sha256 efefefefefef )" in text
    assert "if /data/family.toml has been edited since, pass that copy to --spec-file instead" in text


def test_the_precision_line_gives_the_loss_scale_and_skipped_steps_and_packs_are_said(tmp_path):
    import dataclasses

    from job.rundir import writer

    write_hand_run(tmp_path)
    result = hand_result()
    result.precision = dataclasses.replace(result.precision, policy="mixed_float16", loss_scaling=True)
    result.config = dataclasses.replace(result.config, pack="2")
    scales = iter([(32768.0, 0), (8192.0, 3)])
    for m in result.models:
        for t in m.trainings:
            if t.status == "ok":
                t.loss_scale, t.skipped_steps = next(scales, (16384.0, 1))
                t.pack, t.pack_size = f"{m.slug}-pack1", 2
    writer.write_run(tmp_path, result)
    text = _text(render_report(tmp_path))
    assert "final loss scale 8,192 to 32,768, 3 steps skipped for overflow over 2 trainings" in text
    assert "packed ( --pack 2 )" in text and "pack of 2, shared" in text
