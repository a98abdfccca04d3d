"""Render report.html from a run directory alone: run.json, the CSVs and images.npz, read through
the run-directory contract (`job.rundir`) as typed objects.

`render_report` returns a string and takes its clock and figure cache as arguments; only
`write_report` writes a file.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from job.report import figures
from job.report.format import FILTERS
from job.result import DENSE_CLASSES, ModelResult, RunResult, training_label
from job.rundir import atomic, layout, reader, typed_json
from job.rundir.layout import RunDirError

log = logging.getLogger(__name__)

FIGURES_DIR = "figures"  # the charts as PNG files, reused by the next render while their inputs are unchanged
MAX_MISCLASSIFIED_ROWS = 200  # the page stays small; the CSV has them all
PREVIEW_ROWS = 10
MAX_PANELS = 24  # per-model chart panels; a 100-model family would make a page of 5 MB


def templates_dir() -> Path:
    """The report's templates: package data of `job.report`, in a checkout, a wheel or a container alike."""
    here = Path(__file__).resolve().parent / "templates"
    if not (here / "report.html").is_file():
        raise RunDirError(f"report templates not found in {here}; reinstall the package")
    return here


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
    """Rows for the per-label bar chart, drawn in HTML: label, count and bar width in percent. Above
    DENSE_CLASSES classes, only the smallest and the largest half of that many, smallest first."""
    top = max(counts.values(), default=0) or 1
    items = list(counts.items())
    if len(items) > DENSE_CLASSES:
        by_count = sorted(items, key=lambda kv: (kv[1], int(kv[0]) if kv[0].isdigit() else 0))
        items = by_count[: DENSE_CLASSES // 2] + by_count[-(DENSE_CLASSES // 2) :]
    return [{"label": k, "count": v, "width": round(100 * v / top, 1)} for k, v in items]


def top_confusions_table(model: ModelResult) -> list[dict]:
    """The first training's largest errors with their share of the true class's test rows."""
    support = {c.label: c.support for c in model.first.per_class}
    return [
        {"true": c.true, "predicted": c.predicted, "count": c.count, "share": c.count / (support.get(c.true) or 1)}
        for c in model.first.top_confusions
    ]


def class_rows(chosen: ModelResult | None, n_classes: int) -> list[int]:
    """The per-class table's rows: every class up to DENSE_CLASSES; above, the chosen model's worst by F1
    (a class it never predicts counts as 0), then by label."""
    if n_classes <= DENSE_CLASSES or chosen is None:
        return list(range(n_classes))
    rows = [c for c in chosen.first.per_class if c.support > 0]
    rows.sort(key=lambda c: (c.f1 or 0.0, c.label))
    return sorted(c.label for c in rows[:DENSE_CLASSES])


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


@dataclass
class ReportContext:
    """The one object the template receives as `run`: the typed RunResult plus what the page derives
    from the other files. Attributes not defined here are the RunResult's (`run.models`, `run.data`)."""

    result: RunResult
    figures: dict[str, str | None]
    label_bars: list[dict]
    samples: list[dict]
    confusion: dict | None
    top_confusions: list[dict]
    chosen: ModelResult | None
    others: list[ModelResult]
    classes: list[int]
    class_rows: list[int]
    misclassified: list[dict]
    misclassified_total: int
    preview: list[dict]
    preview_columns: list[str]
    test_support: list[int]
    galleries: dict[str, list[dict]]
    differs: dict
    timeline: list[dict]
    rendered_at: str
    beats: dict | None = None  # the P(A > B) matrix: names, and a row of cells per model

    @property
    def misclassified_shown(self) -> int:
        return len(self.misclassified)

    def __getattr__(self, name: str) -> Any:
        if name == "result":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.result, name)


def build_context(run_dir: Path, cache: FigureCache | None = None, now: datetime | None = None) -> ReportContext:
    """Everything the page shows, from the run directory alone."""
    run = reader.read_run(run_dir)
    images = reader.read_images(run_dir)
    chosen = run.model(run.chosen_model)
    others = [m for m in run.models if m.status == "ok" and chosen is not None and m.name != chosen.name]
    n_classes = run.data.classes
    misclassified, mis_total = _misclassified(run_dir, images, others)
    confusion = chosen.first.confusion if chosen else None
    many = n_classes > DENSE_CLASSES
    return ReportContext(
        result=run,
        figures=_charts(run, cache or FigureCache(run_dir)),
        label_bars=label_bars(run.data.label_counts),
        samples=_samples(images, min(n_classes, DENSE_CLASSES)),
        confusion=confusion_table(confusion) if confusion else None,
        top_confusions=top_confusions_table(chosen) if chosen else [],
        chosen=chosen,
        others=others,
        classes=list(range(n_classes)),
        class_rows=class_rows(chosen, n_classes),
        misclassified=misclassified,
        misclassified_total=mis_total,
        preview=_preview(run_dir, images, chosen, n_classes),
        preview_columns=["p(predicted)", "p(actual)"] if many else [str(k) for k in range(n_classes)],
        test_support=[c.support for c in chosen.first.per_class] if chosen else [],
        galleries=_galleries(run, images),
        differs=what_differs(run.models),
        timeline=timeline(run.models),
        rendered_at=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        beats=beats_matrix(run),
    )


def beats_matrix(run: RunResult) -> dict | None:
    """P(row model > column model) for every ordered pair, from the stored pairs (P(B > A) = 1 - P(A > B), its
    interval mirrored); None when the run has no P(A > B) (one training per model, or an old run)."""
    arch = run.architectures
    if arch is None or not any(p.p_a_beats_b is not None for p in arch.pairs):
        return None
    names = [n.model for n in arch.noise]
    cell: dict[tuple[str, str], dict[str, Any]] = {}
    for p in arch.pairs:
        if p.p_a_beats_b is None:
            continue
        ci = p.p_a_beats_b_ci
        cell[p.a, p.b] = {"p": p.p_a_beats_b, "low": ci.low if ci else None, "high": ci.high if ci else None}
        cell[p.b, p.a] = {
            "p": 1.0 - p.p_a_beats_b,
            "low": 1.0 - ci.high if ci else None,
            "high": 1.0 - ci.low if ci else None,
        }
    for c in cell.values():
        c["shade"] = _shade(abs(c["p"] - 0.5) * 1.2, (44, 160, 44) if c["p"] >= 0.5 else (214, 39, 40))
    rows = [{"name": a, "cells": [cell.get((a, b)) for b in names]} for a in names]
    return {"names": names, "rows": rows}


SETTINGS = (  # (label, how to read it off a model) for the "what differs" table
    ("hidden", lambda m: "[" + ", ".join(map(str, m.hidden)) + "]"),
    ("activation", lambda m: m.activation),
    ("initializer", lambda m: m.initializer),
    ("dropout", lambda m: f"{m.dropout:g}"),
    ("epochs", lambda m: str(m.first.epochs_planned)),
    ("batch", lambda m: str(m.batch_size)),
    (
        "optimizer",
        lambda m: (
            m.optimizer
            + "".join(f", {k} {v:g}" if not isinstance(v, bool) else f", {k} {v}" for k, v in m.optimizer_args.items())
        ),
    ),
    ("learning rate", lambda m: f"{m.learning_rate:g}"),
    ("early stopping", lambda m: f"{m.monitor}, patience {m.patience}"),
)


def timeline(models: list[ModelResult]) -> list[dict]:
    """Every training as a bar on one time axis (left and width in percent), with its node and device."""
    placed = [(m, t, t.placement) for m in models for t in m.trainings if t.placement is not None]
    if not placed:
        return []
    start = min(p.started for _, _, p in placed)
    span = max(max(p.finished for _, _, p in placed) - start, 1e-9)
    return [
        {
            "label": training_label(m.name, t.seed, t.split),
            "node": p.node,
            "device": p.device,
            "attempts": p.attempts,
            "seconds": p.finished - p.started,
            "left": round(100 * (p.started - start) / span, 2),
            "width": max(round(100 * (p.finished - p.started) / span, 2), 0.5),
        }
        for m, t, p in sorted(placed, key=lambda x: x[2].started)
    ]


def what_differs(models: list[ModelResult]) -> dict:
    """Only the settings that vary across the family, one column each."""
    keys = [(label, read) for label, read in SETTINGS if len({read(m) for m in models}) > 1]
    return {
        "columns": [label for label, _ in keys],
        "rows": [{"name": m.name, "cells": [read(m) for _, read in keys]} for m in models],
    }


def _galleries(run: RunResult, images: dict[str, np.ndarray] | None) -> dict[str, list[dict]]:
    """The test digits every model misses, and those only the chosen model misses."""
    overlap = run.comparison.overlap
    if overlap is None:
        return {"all": [], "chosen": []}
    return {
        name: [{"position": p, "image": _test_image(images, p)} for p in positions]
        for name, positions in (("all", overlap.all_missed_positions), ("chosen", overlap.only_chosen_positions))
    }


def _charts(run: RunResult, cache: FigureCache) -> dict[str, str | None]:
    """The three matplotlib charts, from the figure cache when their input is unchanged."""
    keys = ("curves", "val_accuracy", "epoch_times", "reliability", "seeds", "panels_note", "noise", "cd")
    figs: dict[str, str | None] = dict.fromkeys(keys)
    panelled = _panelled(run)
    if len(panelled) < len(run.models):
        figs["panels_note"] = (
            f"One panel a model for {len(panelled)} of the {len(run.models)} models: the chosen, the best on "
            "validation, then table order. Every model's numbers are in history.csv and run.json."
        )
    if any(t.epochs_run for m in run.models for t in m.trainings):
        data = [typed_json.to_jsonable(m) for m in run.models]
        panels = [typed_json.to_jsonable(m) for m in panelled]
        figs["curves"] = _data_uri(cache.get("curves", figures.learning_curves, panels))
        figs["val_accuracy"] = _data_uri(cache.get("val_accuracy", figures.val_accuracy_all, data))
        figs["epoch_times"] = _data_uri(cache.get("epoch_times", figures.epoch_times, panels))
    calibrated = [typed_json.to_jsonable(m) for m in panelled if m.first.calibration is not None]
    if calibrated:
        figs["reliability"] = _data_uri(cache.get("reliability", figures.reliability, calibrated))
    ok = [typed_json.to_jsonable(m) for m in run.models if m.status == "ok"]
    if (run.repeats > 1 or run.splits > 1) and ok:
        figs["seeds"] = _data_uri(cache.get("seeds", figures.seed_dots, ok))
    arch = run.architectures
    if arch is not None and arch.noise and (run.splits > 1 or run.repeats > 1):
        noise = [typed_json.to_jsonable(n) for n in arch.noise]
        figs["noise"] = _data_uri(cache.get("noise", figures.noise_bars, noise))
    if arch is not None and arch.split_means and arch.mean_ranks:
        names = list(arch.split_means)
        per_split = [list(row) for row in zip(*(arch.split_means[n] for n in names), strict=True)]
        ranked = {"models": names, "ranks": [arch.mean_ranks[n] for n in names], "accuracy": per_split}
        figs["cd"] = _data_uri(cache.get("cd", figures.cd_diagram, ranked))
    cache.save()
    return figs


def _panelled(run: RunResult) -> list[ModelResult]:
    """The models that get a panel in the per-model charts: all of a family up to MAX_PANELS; beyond, the
    chosen, the best on validation, then table order, shown in table order (the page stays a few MB)."""
    if len(run.models) <= MAX_PANELS:
        return run.models
    names = [run.choice.chosen, run.choice.best, *(m.name for m in run.models)]
    keep = [n for n in dict.fromkeys(names) if n is not None][:MAX_PANELS]
    return [m for m in run.models if m.name in keep]


def _samples(images: dict[str, np.ndarray] | None, n_classes: int) -> list[dict]:
    if images is None:
        return []
    out = []
    for k in range(n_classes):
        strip = images["samples"][images["sample_labels"] == k]
        out.append({"label": k, "image": _data_uri(figures.digit_strip(strip)) if len(strip) else None})
    return out


def _test_image(images: dict[str, np.ndarray] | None, position: int) -> str | None:
    if images is None or not 0 <= position < len(images["test"]):
        return None
    return _data_uri(figures.digit_png(images["test"][position]))


def _misclassified(
    run_dir: Path, images: dict[str, np.ndarray] | None, others: list[ModelResult]
) -> tuple[list[dict], int]:
    path = run_dir / layout.MISCLASSIFIED_CSV
    rows, total = reader.read_csv_rows(path, MAX_MISCLASSIFIED_ROWS)
    out = []
    try:
        for r in rows:
            true_label = int(r["true_label"])
            calls = [(m.name, int(r[layout.pred_column(m.slug)])) for m in others]
            out.append(
                {
                    "row": int(r["row"]),
                    "image": _test_image(images, int(r["position"])),
                    "true_label": true_label,
                    "predicted": int(r["predicted"]),
                    "confidence": float(r["confidence"]),
                    "runner_up": int(r["runner_up"]),
                    "runner_up_probability": float(r["runner_up_probability"]),
                    "others": [{"name": n, "pred": p, "right": p == true_label} for n, p in calls],
                }
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: malformed ({type(exc).__name__}: {exc}); rerun the job") from None
    return out, total


def _preview(
    run_dir: Path, images: dict[str, np.ndarray] | None, chosen: ModelResult | None, n_classes: int
) -> list[dict]:
    if chosen is None:
        return []
    path = run_dir / layout.PREDICTIONS_CSV
    rows, _ = reader.read_csv_rows(path, PREVIEW_ROWS)
    out = []
    try:
        for pos, r in enumerate(rows):
            out.append(
                {
                    "row": int(r["row"]),
                    "image": _test_image(images, pos),
                    "probs": [float(r[column]) for column in _preview_probability_columns(chosen.slug, n_classes)],
                    "predicted": int(r[layout.pred_column(chosen.slug)]),
                    "actual": int(r["true_label"]),
                }
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: malformed ({type(exc).__name__}: {exc}); rerun the job") from None
    return out


def _preview_probability_columns(slug: str, n_classes: int) -> list[str]:
    if n_classes > DENSE_CLASSES:
        return [layout.top_two_column(slug, "pred_p"), layout.top_two_column(slug, "true_p")]
    return [layout.proba_column(slug, k) for k in range(n_classes)]


def render_report(
    run_dir: Path, template_dir: Path | None = None, cache: FigureCache | None = None, now: datetime | None = None
) -> str:
    context = build_context(Path(run_dir), cache, now)
    return environment(template_dir).get_template("report.html").render(run=context)


def write_report(run_dir: Path, output: Path | None = None) -> Path:
    """Render and write atomically (to `output`, else RUN_DIR/report.html): a reader never opens half a report."""
    run_dir = Path(run_dir)
    html = render_report(run_dir)
    target = Path(output) if output is not None else run_dir / "report.html"
    try:
        atomic.atomic_write_text(target, html)
    except OSError as exc:
        if exc.errno in atomic.DISK_FULL:
            raise  # a run in progress says "disk full" and how to resume
        hint = "choose a writable --output" if output is not None else "pass --output FILE to write it elsewhere"
        raise RunDirError(f"{target}: cannot write it ({exc.strerror}); {hint}") from None
    return target
