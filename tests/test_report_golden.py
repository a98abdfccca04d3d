"""The golden report: the hand-built run rendered and compared with a committed HTML file, so that every
template change shows up as a reviewable diff.

Volatile values are pinned (the render time) and embedded images replaced by a placeholder before the comparison,
so a matplotlib upgrade does not break it. After a deliberate change to the report, regenerate the file and
review its diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report_golden.py
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from helpers import REPO, write_hand_run

from job.report.render import render_report, templates_dir

GOLDEN = REPO / "tests" / "fixtures" / "golden" / "report.golden"  # HTML; the extension keeps code scanners off it
PINNED_NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IMAGE = re.compile(r"data:image/(png|svg\+xml|jpeg);base64,[A-Za-z0-9+/=]+")


def golden_html(run_dir: Path, template_dir: Path | None = None) -> str:
    html = render_report(run_dir, template_dir=template_dir, now=PINNED_NOW)
    html = IMAGE.sub(lambda m: f"data:image/{m.group(1)};base64,IMAGE", html)
    return html.replace(str(run_dir), "RUN_DIR")


def test_the_report_matches_the_golden_file(tmp_path):
    write_hand_run(tmp_path / "run")
    html = golden_html(tmp_path / "run")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(html, encoding="utf-8")
    assert html == GOLDEN.read_text(encoding="utf-8"), (
        "the report changed: if you meant it, regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


def test_every_partial_shows_in_the_golden_file():
    golden = GOLDEN.read_text(encoding="utf-8")
    partials = sorted(p.name for p in templates_dir().glob("_*.html"))
    included = re.findall(r'include "(_\w+\.html)"', (templates_dir() / "report.html").read_text(encoding="utf-8"))
    assert sorted(included) == partials  # every partial is in the page
    headings = re.findall(r"<h2[^>]*>([^<(]+)", golden)
    for section in (
        "Data verification",
        "Model comparison",
        "The choice",
        "Is the difference real?",
        "Learning curves",
        "Timing",
        "Architecture",
        "Errors and quality",
        "Misclassified",
        "Prediction",
    ):
        assert any(h.startswith(section) for h in headings), section  # fmt: skip
    assert "data:image/png;base64,IMAGE" in golden


def test_a_one_word_template_change_fails_the_golden_comparison(tmp_path):
    write_hand_run(tmp_path / "run")
    templates = tmp_path / "templates"
    shutil.copytree(templates_dir(), templates)
    choice = templates / "_choice.html"
    text = choice.read_text(encoding="utf-8")
    word = re.search(r">\s*([A-Z][a-z]{3,})\b", text).group(1)  # the first capitalised word of the text
    choice.write_text(text.replace(word, word + "s", 1), encoding="utf-8")
    assert golden_html(tmp_path / "run", templates) != GOLDEN.read_text(encoding="utf-8")
    assert golden_html(tmp_path / "run") == GOLDEN.read_text(encoding="utf-8")  # unchanged templates still match
