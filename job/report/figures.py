"""Plot builders: data in, PNG bytes out. Built on matplotlib.figure.Figure, never pyplot,
so a batch job that draws many figures keeps no global state. matplotlib is imported on the
first chart drawn (about half a second), so a re-render that finds every chart cached skips it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 96
COLORS = {"loss": "#d62728", "val_loss": "#ff9896", "accuracy": "#1f77b4", "val_accuracy": "#2ca02c"}
PNG_META = {"Software": None}  # no version stamp: re-rendering gives the same bytes


def plain(text: str) -> str:
    """A name drawn as written: matplotlib would read "$...$" as mathtext (and fail on bad TeX)."""
    return text.replace("$", r"\$")


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


MAX_COLUMNS = 4  # panels a row: a large family wraps into a grid instead of one unreadable strip


def _panels(n: int, width: float, height: float, left: float) -> tuple[Figure, list]:
    """A figure of n panels, MAX_COLUMNS a row, each width x height inches; the spare cells of the last row
    are hidden. One row keeps the layout the report has always had."""
    cols = min(max(n, 1), MAX_COLUMNS)
    rows = -(-max(n, 1) // cols)
    fig = _figure((width * cols, height * rows))
    if rows == 1:
        fig.subplots_adjust(left=left, right=0.99, top=0.88, bottom=0.18, wspace=0.25)
    else:
        fig.subplots_adjust(
            left=left, right=0.99, top=1 - 0.35 / (height * rows), bottom=0.5 / (height * rows), wspace=0.25, hspace=0.6
        )
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_META)
    return buf.getvalue()


def digit_strip(images: np.ndarray) -> bytes:
    """Digits side by side with a 1-pixel gap, dark on light, drawn with PIL (no axes to lay out)."""
    n = max(len(images), 1)
    h, w = images.shape[1:3]
    strip = np.full((h, n * (w + 1) - 1), 255, dtype=np.uint8)
    for j, img in enumerate(images):
        strip[:, j * (w + 1) : j * (w + 1) + w] = 255 - _to_8bit(img)
    return _gray_png(strip)


def learning_curves(models: list[dict]) -> bytes:
    """One panel per model with its own legend, holding every seed's curves (the first seed with markers);
    x ticks are the epochs the model ran."""
    n = len(models)
    cols = 1 if n == 1 else 2 if n <= 8 else MAX_COLUMNS  # a large family: smaller panels, more a row
    rows = (n + cols - 1) // cols
    fig = _figure((6.2 * cols, 3.0 * rows) if cols <= 2 else (4.0 * cols, 2.6 * rows))
    fig.subplots_adjust(left=0.06, right=0.98, top=1 - 0.3 / rows, bottom=0.45 / (rows * 3), hspace=0.45, wspace=0.15)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, m in enumerate(models):
        ax = axes[i // cols][i % cols]
        trainings = m["trainings"]
        for j, t in enumerate(trainings):
            epochs = np.arange(1, t["epochs_run"] + 1)
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                values = np.array([np.nan if v is None else v for v in t["history"][key]], dtype=float)
                style = {"marker": "o", "markersize": 3, "label": key} if j == 0 else {"linewidth": 0.8, "alpha": 0.45}
                ax.plot(epochs, values, color=COLORS[key], **style)
        first = trainings[0]
        if first.get("best_epoch"):
            best = first["best_epoch"]
            ax.axvline(best, color="#888", linestyle=":", linewidth=1, label=f"best epoch ({best})")
        longest = max(t["epochs_run"] for t in trainings)
        seeds = f", {len(trainings)} trainings" if len(trainings) > 1 else ""
        ax.set_title(f"{plain(m['name'])}  ({longest} epochs run{seeds})", fontsize=10)
        epochs = np.arange(1, longest + 1)
        ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
        ax.set_xlabel("epoch")
        top = _finite_max(*(t["history"][k] for t in trainings for k in ("loss", "val_loss")))
        ax.set_ylim(0, max(1.0, top * 1.05))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center right")
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    return _png(fig)


def _finite_max(*seqs) -> float:
    vals = [v for s in seqs for v in s if v is not None and np.isfinite(v)]
    return max(vals) if vals else 1.0


def val_accuracy_all(models: list[dict]) -> bytes:
    fig = _figure((7, 3.2))
    fig.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.15)
    ax = fig.add_subplot()
    longest = 1
    for i, m in enumerate(models):
        color = f"C{i % 10}"
        for j, t in enumerate(m["trainings"]):
            epochs = np.arange(1, t["epochs_run"] + 1)
            longest = max(longest, t["epochs_run"])
            vals = [np.nan if v is None else v for v in t["history"]["val_accuracy"]]
            if j == 0:
                ax.plot(epochs, vals, marker="o", markersize=3, color=color, label=plain(m["name"]))
            else:
                ax.plot(epochs, vals, color=color, linewidth=0.8, alpha=0.45)
    ax.set_xticks(np.arange(1, longest + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Validation accuracy, every model (faint: further trainings)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def epoch_times(models: list[dict]) -> bytes:
    """Seconds per epoch of each model's first seed, training and validation stacked; compile epochs darker."""
    n = len(models)
    fig, axes = _panels(n, 3.4, 2.8, left=0.06 if n > 2 else 0.12)
    for ax, m in zip(axes, models, strict=False):
        t = m["trainings"][0]
        epochs = np.arange(1, t["epochs_run"] + 1)
        train = np.array(t["epoch_train_seconds"], dtype=float)
        val = np.array(t["epoch_val_seconds"], dtype=float)
        compiled = set(t["compile_epochs"])
        colors = ["#1b2a49" if e in compiled else "#4c72b0" for e in epochs]
        ax.bar(epochs, train, color=colors, label="train")
        ax.bar(epochs, val, bottom=train, color="#dd8452", label="validation")
        ax.set_title(plain(m["name"]), fontsize=10)
        ax.set_xlabel("epoch (dark: includes compile)", fontsize=8)
        ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("seconds")
    axes[0].legend(fontsize=7)
    return _png(fig)


def reliability(models: list[dict]) -> bytes:
    """Top-label reliability of each model's first seed on the test split: accuracy against confidence
    per bin (bar), the diagonal of perfect calibration, and the bin counts as the bars' shade."""
    drawn = [m for m in models if (m["trainings"][0].get("calibration") or {}).get("bins")]
    n = max(len(drawn), 1)
    fig, axes = _panels(n, 3.0, 3.0, left=0.08 if n > 2 else 0.15)
    for ax, m in zip(axes, drawn, strict=False):
        cal = m["trainings"][0]["calibration"]
        bins = [b for b in cal["bins"] if b["count"]]
        total = sum(b["count"] for b in bins) or 1
        centres = [(b["low"] + b["high"]) / 2 for b in bins]
        width = (cal["bins"][0]["high"] - cal["bins"][0]["low"]) * 0.9
        shades = [(0.12, 0.47, 0.71, 0.25 + 0.75 * min(1.0, 5 * b["count"] / total)) for b in bins]
        ax.bar(centres, [b["accuracy"] for b in bins], width=width, color=shades, edgecolor="#1f77b4")
        ax.plot([0, 1], [0, 1], color="#888", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{plain(m['name'])}  ECE {cal['ece'] * 100:.1f}%", fontsize=9)
        ax.set_xlabel("confidence", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("accuracy", fontsize=8)
    return _png(fig)


def seed_dots(models: list[dict]) -> bytes:
    """Every seed's validation and test accuracy per model, side by side, with the mean as a line."""
    fig = _figure((1.6 + 1.5 * len(models), 3.0))
    fig.subplots_adjust(left=0.12, right=0.98, top=0.88, bottom=0.2)
    ax = fig.add_subplot()
    for i, m in enumerate(models):
        for offset, key, color in ((-0.15, "val_accuracy", "#2ca02c"), (0.15, "test_accuracy", "#1f77b4")):
            values = [t[key] for t in m["trainings"] if t[key] is not None]
            if values:
                ax.scatter(
                    [i + offset] * len(values),
                    values,
                    s=14,
                    color=color,
                    label=key.replace("_", " ") if i == 0 else None,
                )
                ax.hlines(np.mean(values), i + offset - 0.1, i + offset + 0.1, color=color, linewidth=2)
    ax.set_xticks(range(len(models)), [plain(m["name"]) for m in models], fontsize=8)
    ax.set_ylabel("accuracy", fontsize=8)
    ax.set_title("Every training's accuracy (bar: mean)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def digit_png(image: np.ndarray) -> bytes:
    """A single digit, dark on light, at native resolution (CSS scales it up, pixelated)."""
    return _gray_png(255 - _to_8bit(image))


def _gray_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _to_8bit(image: np.ndarray) -> np.ndarray:
    hi = int(image.max()) if image.size else 0
    if 0 < hi <= 16:  # scikit-learn digits are 0..16: stretch so they are visible
        return (image.astype(np.float32) * (255 / 16)).astype(np.uint8)
    return image.astype(np.uint8)


NOISE_COLORS = {"splits": "#9467bd", "seeds": "#ff7f0e", "rows": "#7f7f7f"}
NOISE_LABELS = {"splits": "training set (splits)", "seeds": "seed", "rows": "validation rows"}


def noise_bars(noise: list[dict]) -> bytes:
    """Per model, a stacked bar of its validation accuracy's variance by source, as standard deviations' squares
    in pp²; a part that could not be estimated is left out (and the legend says so)."""
    fig = _figure((max(5.6, 1.8 + 0.9 * len(noise)), 3.2))
    fig.subplots_adjust(left=0.16, right=0.98, top=0.88, bottom=0.32)
    ax = fig.add_subplot()
    bottoms = np.zeros(len(noise))
    for part in ("splits", "seeds", "rows"):
        values = np.array([(n[part] or 0.0) * 1e4 for n in noise])  # accuracy² -> pp²
        missing = any(n[part] is None for n in noise)
        label = NOISE_LABELS[part] + (" (n/a)" if missing and not values.any() else "")
        ax.bar(range(len(noise)), values, bottom=bottoms, color=NOISE_COLORS[part], label=label, width=0.6)
        bottoms += values
    ax.set_xticks(
        range(len(noise)), [plain(n["model"]) for n in noise], fontsize=8, rotation=20 if len(noise) > 4 else 0
    )
    ax.set_ylabel("variance of a training's\nvalidation accuracy (pp²)", fontsize=8)
    ax.set_title("Where the noise comes from", fontsize=10)
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16 if len(noise) <= 4 else -0.24))
    return _png(fig)


def cd_diagram(data: dict) -> bytes:
    """Demšar's critical-difference diagram from scikit-posthocs: the mean ranks over splits on an axis, and bars
    joining models that Nemenyi's test (on the per-split accuracies, a Friedman design) does not separate.
    `data`: {"models": names, "ranks": their mean ranks, "accuracy": (splits x models) per-split means}, as
    `stats.splits.compare_architectures` stores them. Drawn on a Figure, never pyplot's."""
    import pandas as pd
    import scikit_posthocs as sp

    names = [plain(n) for n in data["models"]]
    acc = np.asarray(data["accuracy"], dtype=np.float64)
    ranks = pd.Series(data["ranks"], index=names)
    sig = sp.posthoc_nemenyi_friedman(acc)
    sig.index, sig.columns = names, names
    fig = _figure((7.2, 0.9 + 0.3 * len(names)))
    fig.subplots_adjust(left=0.22, right=0.78, top=0.8, bottom=0.06)
    ax = fig.add_subplot()
    sp.critical_difference_diagram(ranks, sig, ax=ax, label_props={"fontsize": 8}, text_h_margin=0.02)
    ax.set_title("Mean rank over splits (1 = best); descriptive", fontsize=9)
    return _png(fig)
