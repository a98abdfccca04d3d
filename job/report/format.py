"""Small formatters, registered as Jinja filters so templates hold no arithmetic."""

from __future__ import annotations

import math

from job.stats.metrics import fmt_p, signed_pp

NO_SAMPLES = "no samples"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_percent(value, digits: int = 2) -> str:
    """0.97123 -> '97.12%'; None -> '—' (failed, or not computed)."""
    return "—" if _missing(value) else f"{value * 100:.{digits}f}%"


def fmt_class_percent(value, missing: str = NO_SAMPLES, digits: int = 1) -> str:
    """Per-class precision, recall and F1; `missing` says why a value is None (no rows, never predicted)."""
    return missing if _missing(value) else f"{value * 100:.{digits}f}%"


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


def fmt_interval(interval, digits: int = 1) -> str:
    """An Interval of proportions as '[91.2%, 93.1%]'; '—' when there is none."""
    if interval is None or _missing(interval.low) or _missing(interval.high):
        return "—"
    return f"[{interval.low * 100:.{digits}f}%, {interval.high * 100:.{digits}f}%]"


def fmt_pp(value, digits: int = 1) -> str:
    """A difference of proportions in percentage points, signed: 0.006 -> '+0.6 pp'."""
    return "—" if _missing(value) else f"{signed_pp(value, digits)} pp"


def fmt_pp_interval(interval, digits: int = 1) -> str:
    if interval is None or _missing(interval.low) or _missing(interval.high):
        return "—"
    return f"[{signed_pp(interval.low, digits)}, {signed_pp(interval.high, digits)}]"


def fmt_count(value, noun: str) -> str:
    """3, 'model' -> '3 models'; 1 -> '1 model' (regular plurals only: the report's nouns are)."""
    return f"{int(value):,} {noun}" if int(value) == 1 else f"{int(value):,} {noun}s"


FILTERS = {
    "count": fmt_count,
    "ci": fmt_interval,
    "pp": fmt_pp,
    "ppci": fmt_pp_interval,
    "p": fmt_p,
    "fractions": fmt_fractions,
    "classpct": fmt_class_percent,
    "pct": fmt_percent,
    "num": fmt_float,
    "secs": fmt_seconds,
    "int": fmt_int,
    "rate": fmt_rate,
}
