"""Render report.html from a run directory alone: run.json, the CSVs and images.npz.

`render_report` returns a string; only `write_report` writes a file.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from job.report import figures
from job.report.format import FILTERS

log = logging.getLogger(__name__)

FIGURES_DIR = "figures"  # the charts as PNG files, reused by the next render while their inputs are unchanged
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


def _code_version() -> str:
    """What a chart's pixels depend on besides its data: the drawing code and matplotlib's version."""
    try:
        mpl = importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        mpl = "unknown"
    return hashlib.sha256(Path(figures.__file__).read_bytes() + mpl.encode()).hexdigest()


class FigureCache:
    """Charts in <run>/figures/NAME.png, keyed in figures/keys.json by a hash of their input and code.

    `job run` draws them once; `job report` redraws only a chart whose input or drawing code changed,
    and never imports matplotlib when none did. A run directory that cannot be written still renders."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir / FIGURES_DIR
        self.version = _code_version()
        try:
            self.keys = json.loads((self.dir / "keys.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.keys = {}
        self.dirty = False

    def get(self, name: str, draw, data) -> bytes:
        key = hashlib.sha256((name + self.version + json.dumps(data, sort_keys=True, default=str)).encode()).hexdigest()
        path = self.dir / f"{name}.png"
        if self.keys.get(name) == key:
            try:
                return path.read_bytes()
            except OSError:
                pass
        png = draw(data)
        try:
            self.dir.mkdir(exist_ok=True)
            tmp = path.with_suffix(".png.tmp")
            tmp.write_bytes(png)
            tmp.replace(path)
            self.keys[name] = key
            self.dirty = True
        except OSError as exc:
            log.debug("not caching %s: %s", path, exc)
        return png

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            tmp = self.dir / "keys.json.tmp"
            tmp.write_text(json.dumps(self.keys, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.dir / "keys.json")
        except OSError as exc:
            log.debug("not caching figure keys: %s", exc)


def label_bars(counts: dict[str, int]) -> list[dict]:
    """Rows for the per-label bar chart, drawn in HTML: label, count and bar width in percent."""
    top = max(counts.values(), default=0) or 1
    return [{"label": k, "count": v, "width": round(100 * v / top, 1)} for k, v in counts.items()]


def _shade(fraction: float, rgb: tuple[int, int, int]) -> str:
    """White blended towards `rgb` by `fraction` (0..1), as a CSS colour."""
    r, g, b = (round(255 + (c - 255) * fraction) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def confusion_table(matrix: list[list[int]]) -> dict:
    """The confusion matrix as table cells: correct counts shaded blue by their share of the true class,
    errors shaded red against the largest error, so a confusion of 5 digits stands out next to 180 right ones."""
    worst_error = max((v for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j), default=0) or 1
    rows = []
    for i, row in enumerate(matrix):
        total = sum(row)
        cells = []
        for j, v in enumerate(row):
            if i == j:
                frac = v / total if total else 0.0
                cells.append({"count": v, "bg": _shade(frac, (8, 69, 148)), "dark": frac > 0.55, "kind": "right"})
            else:
                frac = v / worst_error
                cells.append(
                    {"count": v, "bg": _shade(0.75 * frac, (203, 24, 29)), "dark": frac > 0.7, "kind": "wrong"}
                )
        rows.append({"label": i, "cells": cells, "total": total})
    return {"rows": rows, "classes": list(range(len(matrix)))}


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

    images = None
    if (run_dir / "images.npz").exists():
        with np.load(run_dir / "images.npz") as npz:  # NpzFile decompresses on every [key]: read each once
            images = {key: npz[key] for key in npz.files}
    has_epochs = any(m["epochs_run"] for m in models)
    cache = FigureCache(run_dir)
    figs = {
        "curves": _data_uri(cache.get("curves", figures.learning_curves, models)) if has_epochs else None,
        "val_accuracy": _data_uri(cache.get("val_accuracy", figures.val_accuracy_all, models)) if has_epochs else None,
        "epoch_times": _data_uri(cache.get("epoch_times", figures.epoch_times, models)) if has_epochs else None,
    }
    cache.save()
    samples = []
    if images is not None:
        for k in range(n_classes):
            strip = images["samples"][images["sample_labels"] == k]
            samples.append({"label": k, "image": _data_uri(figures.digit_strip(strip)) if len(strip) else None})

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
        "label_bars": label_bars(run["data"]["label_counts"]),
        "samples": samples,
        "confusion": confusion_table(chosen["confusion"]) if chosen else None,
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
