"""The one validator every reader goes through: raw pixels and labels in, a `Dataset`'s arrays out.

Checks, in order: labels are finite whole numbers 0..K-1 with a sane K; pixels are numbers (no text,
no NaN) and whole numbers in 0..255; the pixel count makes an image; every class has enough rows.
Each failure names the cell: "data row 3, column 'pixel12'" when the file has column names,
"image 3, pixel 12" when it holds bare arrays.
"""

from __future__ import annotations

import math

import numpy as np

from job.data.dataset import DataError, RawData
from job.data.split import MIN_ROWS_PER_CLASS

PIXEL_MAX = 255
MAX_CLASSES = 10_000  # digits have 10; a larger label is an id or a typo, and counting it would allocate per value


def validate(
    raw: RawData, source: str, image_shape: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """uint8 pixels, int64 labels and the image shape, or a DataError naming the first bad cell."""
    if raw.x.shape[0] == 0 or raw.y.size == 0:
        raise DataError(f"{source}: no rows; add data rows")
    if raw.x.ndim != 2 or raw.x.shape[1] == 0:
        raise DataError(f"{source}: the images have no pixels; save one row of pixels per image")
    if raw.y.shape != (raw.x.shape[0],):
        raise DataError(f"{source}: {raw.x.shape[0]} images but {raw.y.size} labels; the arrays must match")
    y = _labels(raw.y, source, raw.label_name)
    x = _pixels(raw.x, source, raw.pixel_names)
    shape = _image_shape(source, x.shape[1], image_shape or raw.image_shape)
    _check_classes(source, y)
    return x, y, shape


# --------------------------------------------------------------------------- naming a cell


def _pixel_cell(row: int, col: int, names: list[str] | None) -> str:
    if names is not None:
        return f"data row {row + 1}, column '{names[col]}'"
    return f"image {row + 1}, pixel {col}"


def _label_cell(row: int, name: str | None) -> str:
    return f"data row {row + 1}, column '{name}'" if name is not None else f"label at row {row + 1}"


def _num(value: float | np.number) -> str:
    """300, 2.5, nan, inf: how a number reads in a message."""
    return str(int(value)) if isinstance(value, np.integer | int) else f"{float(value):g}"


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """The first True cell in row order (the row a user finds first in the file)."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _to_numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object or string values as float64 (NaN where not a number), and where a value is text."""
    import pandas as pd

    flat = pd.Series(values.ravel())
    numeric = pd.to_numeric(flat, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    text = np.isnan(numeric) & flat.notna().to_numpy()
    return numeric.reshape(values.shape), text.reshape(values.shape)


# --------------------------------------------------------------------------- labels


def _labels(y: np.ndarray, source: str, name: str | None) -> np.ndarray:
    original = y
    if y.dtype.kind in "OUS":
        y, _ = _to_numbers(y)
    elif y.dtype.kind not in "iuf":
        raise DataError(f"{source}: labels are {y.dtype}, not integers; labels must be 0..K-1")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            (row,) = _first(bad)
            raise DataError(
                f"{source}: {_label_cell(row, name)} is {_shown(original, y, row)}, not an integer label; "
                "labels must be 0..K-1"
            )
        frac = y != np.floor(y)
        if frac.any():
            (row,) = _first(frac)
            raise DataError(
                f"{source}: {_label_cell(row, name)} is {_num(y[row])}, a fractional label; "
                "labels must be integers 0..K-1"
            )
    lo, hi = y.min(), y.max()
    if lo < 0:
        row = int(np.flatnonzero(y < 0)[0])
        raise DataError(f"{source}: label {_num(lo)} at data row {row + 1} is negative; labels must be 0..K-1")
    limit = min(MAX_CLASSES, y.size)
    if hi >= limit:
        row = int(np.flatnonzero(y == hi)[0])
        why = f"at most {MAX_CLASSES:,} classes" if limit == MAX_CLASSES else f"no more classes than the {y.size} rows"
        raise DataError(
            f"{source}: label {_num(hi)} at data row {row + 1} is out of range: labels must be 0..K-1 with {why}; "
            "relabel to 0..K-1"
        )
    return y.astype(np.int64)


def _shown(original: np.ndarray, y: np.ndarray, row: int) -> str:
    """The cell as the file has it: 'abc' for text, nan or inf for numbers."""
    if original.dtype.kind in "OUS" and isinstance(original[row], str):
        return repr(str(original[row])[:20])
    return _num(y[row])


def _check_classes(source: str, y: np.ndarray) -> None:
    counts = np.bincount(y)  # y is bounded by MAX_CLASSES and the row count by now
    present = np.flatnonzero(counts)
    if present.size < 2:
        raise DataError(f"{source}: only one class ({int(present[0])}); a classifier needs at least 2 classes")
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        hi = int(y.max())
        row = int(np.flatnonzero(y == hi)[0])
        raise DataError(
            f"{source}: label {hi} at data row {row + 1} is out of range: labels must be 0..K-1 with "
            f"every class present, and {', '.join(map(str, missing[:5]))} has no rows; relabel to 0..K-1"
        )
    small = np.flatnonzero(counts < MIN_ROWS_PER_CLASS)
    if small.size:
        k = int(small[0])
        raise DataError(
            f"{source}: class {k} has {int(counts[k])} rows; a stratified 60/20/20 split needs at least "
            f"{MIN_ROWS_PER_CLASS} per class; add rows for it or drop that class"
        )


# --------------------------------------------------------------------------- pixels


def _pixels(x: np.ndarray, source: str, names: list[str] | None) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "OUS":  # text somewhere in the file: find it, then check the numbers
        original = x
        x, text = _to_numbers(x)
        if text.any():
            row, col = _first(text)
            raise DataError(
                f"{source}: {_pixel_cell(row, col, names)} holds text {str(original[row, col])[:20]!r}; "
                "pixels must be whole numbers 0..255"
            )
    elif x.dtype.kind not in "iuf":
        raise DataError(f"{source}: images are {x.dtype}, not numbers; save numeric pixel arrays")
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        if nan.any():
            row, col = _first(nan)
            raise DataError(f"{source}: {_pixel_cell(row, col, names)} is empty (NaN); fill or drop that row")
    if x.min() < 0 or x.max() > PIXEL_MAX:
        row, col = _first((x < 0) | (x > PIXEL_MAX))
        raise DataError(
            f"{source}: {_pixel_cell(row, col, names)} is {_num(x[row, col])}, outside 0..255; pass raw 8-bit pixels"
        )
    if x.dtype.kind == "f":
        frac = x != np.floor(x)
        if frac.any():
            row, col = _first(frac)
            raise DataError(
                f"{source}: {_pixel_cell(row, col, names)} is {_num(x[row, col])}, not a whole number; pass raw "
                "0..255 pixels, not scaled ones (the job scales them itself)"
            )
    return x.astype(np.uint8)


def _image_shape(source: str, pixels: int, given: tuple[int, int] | None) -> tuple[int, int]:
    if given is not None:
        if given[0] * given[1] != pixels:
            raise DataError(
                f"{source}: --image-shape {given[0]}x{given[1]} is {given[0] * given[1]} pixels but the data "
                f"has {pixels}; give a shape whose product is {pixels}"
            )
        return given
    side = math.isqrt(pixels)
    if side * side != pixels:
        raise DataError(
            f"{source}: {pixels} pixel columns is not a square image (784 = 28x28); "
            "a pixel column is missing, or pass --image-shape HxW"
        )
    return side, side
