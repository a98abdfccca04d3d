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
    """One panel per model with its own legend; x ticks are the epochs that model ran."""
    n = len(models)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig = _figure((6.2 * cols, 3.0 * rows))
    fig.subplots_adjust(left=0.06, right=0.98, top=1 - 0.3 / rows, bottom=0.45 / (rows * 3), hspace=0.45, wspace=0.15)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, m in enumerate(models):
        ax = axes[i // cols][i % cols]
        epochs = np.arange(1, m["epochs_run"] + 1)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            values = np.array([np.nan if v is None else v for v in m["history"][key]], dtype=float)
            ax.plot(epochs, values, marker="o", markersize=3, color=COLORS[key], label=key)
        if m.get("best_epoch"):
            ax.axvline(
                m["best_epoch"], color="#888", linestyle=":", linewidth=1, label=f"best epoch ({m['best_epoch']})"
            )
        ax.set_title(f"{plain(m['name'])}  ({m['epochs_run']} epochs run)", fontsize=10)
        ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
        ax.set_xlabel("epoch")
        ax.set_ylim(0, max(1.0, _finite_max(m["history"]["loss"], m["history"]["val_loss"]) * 1.05))
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
    for m in models:
        epochs = np.arange(1, m["epochs_run"] + 1)
        longest = max(longest, m["epochs_run"])
        vals = [np.nan if v is None else v for v in m["history"]["val_accuracy"]]
        ax.plot(epochs, vals, marker="o", markersize=3, label=plain(m["name"]))
    ax.set_xticks(np.arange(1, longest + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Validation accuracy, every model", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def epoch_times(models: list[dict]) -> bytes:
    """Seconds per epoch, training and validation stacked; compile epochs in a darker colour."""
    n = len(models)
    fig = _figure((3.4 * n, 2.8))
    fig.subplots_adjust(left=0.06 if n > 2 else 0.12, right=0.99, top=0.9, bottom=0.2, wspace=0.25)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, m in zip(axes, models, strict=True):
        epochs = np.arange(1, m["epochs_run"] + 1)
        train = np.array(m["epoch_train_seconds"], dtype=float)
        val = np.array(m["epoch_val_seconds"], dtype=float)
        compiled = set(m["compile_epochs"])
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
