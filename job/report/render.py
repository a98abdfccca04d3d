"""Render report.html from a run directory alone: run.json, the CSVs and images.npz.

`render_report` returns a string; only `write_report` writes a file.
"""

from __future__ import annotations

import base64
import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from job.report import figures
from job.report.format import FILTERS

MAX_MISCLASSIFIED_ROWS = 200  # the page stays small; the CSV has them all
PREVIEW_ROWS = 10


class ReportError(Exception):
    """The run directory is missing or incomplete: one line, exit 2."""


def templates_dir() -> Path:
    """templates/ beside the package in a checkout, or job/templates in a wheel or container."""
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg / "templates", pkg.parent / "templates"):
        if (candidate / "report.html").is_file():
            return candidate
    raise ReportError(f"report templates not found beside {pkg}; reinstall the package")


def environment(template_dir: Path | None = None) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(template_dir or templates_dir())),
        autoescape=True,  # every string from the data or the user is escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _read_csv(path: Path, limit: int | None = None) -> tuple[list[dict], int]:
    """Rows (up to `limit`) and the total count."""
    if not path.exists():
        return [], 0
    rows, total = [], 0
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if limit is None or total < limit:
                rows.append(row)
            total += 1
    return rows, total


def build_context(run_dir: Path) -> dict:
    """The one object the template receives as `run`: run.json plus figures and tables."""
    run_json = run_dir / "run.json"
    if not run_json.exists():
        raise ReportError(f"{run_dir}: no run.json; pass a finished run directory (reports/<run-id>)")
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{run_json}: not valid JSON ({exc.msg} at line {exc.lineno}); rerun the job") from None
    models = run["models"]
    ok_models = [m for m in models if m["status"] == "ok"]
    by_name = {m["name"]: m for m in models}
    chosen = by_name.get(run["chosen_model"]) if run["chosen_model"] else None
    n_classes = run["data"]["classes"]

    images = np.load(run_dir / "images.npz") if (run_dir / "images.npz").exists() else None
    figs = {
        "label_counts": _data_uri(figures.label_counts(run["data"]["label_counts"])),
        "samples": _data_uri(figures.digit_grid(images["samples"], images["sample_labels"], n_classes))
        if images is not None
        else None,
        "curves": _data_uri(figures.learning_curves(models)) if any(m["epochs_run"] for m in models) else None,
        "val_accuracy": _data_uri(figures.val_accuracy_all(models)) if any(m["epochs_run"] for m in models) else None,
        "epoch_times": _data_uri(figures.epoch_times(models)) if any(m["epochs_run"] for m in models) else None,
        "confusion": _data_uri(figures.confusion(chosen["confusion"], f"{chosen['name']}: test confusion (counts)"))
        if chosen
        else None,
    }

    mis_rows, mis_total = _read_csv(run_dir / "misclassified.csv", MAX_MISCLASSIFIED_ROWS)
    others = [m for m in ok_models if chosen and m["name"] != chosen["name"]]
    misclassified = []
    for r in mis_rows:
        pos = int(r["position"])
        misclassified.append(
            {
                "row": int(r["row"]),
                "image": _data_uri(figures.digit_png(images["test"][pos])) if images is not None else None,
                "true_label": int(r["true_label"]),
                "predicted": int(r["predicted"]),
                "confidence": float(r["confidence"]),
                "runner_up": int(r["runner_up"]),
                "runner_up_probability": float(r["runner_up_probability"]),
                "others": [
                    {
                        "name": m["name"],
                        "pred": int(r[f"{m['slug']}_pred"]),
                        "right": int(r[f"{m['slug']}_pred"]) == int(r["true_label"]),
                    }
                    for m in others
                ],
            }
        )

    preview = []
    if chosen:
        pred_rows, _ = _read_csv(run_dir / "predictions.csv", PREVIEW_ROWS)
        for pos, r in enumerate(pred_rows):
            slug = chosen["slug"]
            probs = [float(r[f"{slug}_p{k}"]) for k in range(n_classes)]
            preview.append(
                {
                    "row": int(r["row"]),
                    "image": _data_uri(figures.digit_png(images["test"][pos])) if images is not None else None,
                    "probs": probs,
                    "predicted": int(r[f"{slug}_pred"]),
                    "actual": int(r["true_label"]),
                }
            )

    test_support = [sum(row) for row in chosen["confusion"]] if chosen else []
    return {
        **run,
        "figures": figs,
        "chosen": chosen,
        "others": others,
        "classes": list(range(n_classes)),
        "misclassified": misclassified,
        "misclassified_total": mis_total,
        "misclassified_shown": len(misclassified),
        "preview": preview,
        "test_support": test_support,
        "rendered_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_report(run_dir: Path, template_dir: Path | None = None) -> str:
    context = build_context(run_dir)
    return environment(template_dir).get_template("report.html").render(run=context)


def write_report(run_dir: Path) -> Path:
    """Render and write atomically: a reader never opens half a report."""
    run_dir = Path(run_dir)
    html = render_report(run_dir)
    target = run_dir / "report.html"
    tmp = run_dir / "report.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    return target
