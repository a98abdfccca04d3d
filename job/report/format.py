"""Small formatters, registered as Jinja filters so templates hold no arithmetic."""

from __future__ import annotations

import math

NO_SAMPLES = "no samples"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_percent(value, digits: int = 2) -> str:
    """0.97123 -> '97.12%'; None -> 'no samples' (a class absent from a small split)."""
    return NO_SAMPLES if _missing(value) else f"{value * 100:.{digits}f}%"


def fmt_float(value, digits: int = 4) -> str:
    return "—" if _missing(value) else f"{value:.{digits}f}"


def fmt_seconds(value) -> str:
    if _missing(value):
        return "—"
    if value >= 100:
        return f"{value:.0f} s"
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def fmt_int(value) -> str:
    return "—" if _missing(value) else f"{int(value):,}"


def fmt_rate(value) -> str:
    return "—" if _missing(value) else f"{value:,.0f}/s"


def fmt_fractions(values) -> str:
    """[0.6, 0.2, 0.2] -> '60/20/20' (train/validation/test percentages)."""
    return "/".join(f"{v * 100:g}" for v in values)


FILTERS = {
    "fractions": fmt_fractions,
    "pct": fmt_percent,
    "num": fmt_float,
    "secs": fmt_seconds,
    "int": fmt_int,
    "rate": fmt_rate,
}
