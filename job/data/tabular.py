"""Readers for tables: CSV, Parquet and pickled DataFrames, and the one way a table becomes arrays.

A table has a label column and pixel columns. Columns named `pixel0..pixelN` (or `pixel1..pixelN`)
may come in any order and must have no gaps; without such names, every non-label column is a pixel.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from job.data.dataset import DataError, RawData, ReadOptions
from job.data.files import looks_binary, one_line, sha256_file

if TYPE_CHECKING:
    import pandas as pd

PIXEL_RE = re.compile(r"^pixel[_ ]?(\d+)$", re.IGNORECASE)


# --------------------------------------------------------------------------- CSV


def read_csv(path: Path, options: ReadOptions) -> RawData:
    if looks_binary(path):
        raise DataError(
            f"{path}: binary content, not a text CSV (and not .npz, .parquet or pickle by name); "
            "pass a CSV, Parquet, .npz or idx directory"
        )
    frame = _read_csv_frame(path)
    if len(frame) == 0:
        raise DataError(f"{path}: the header has no rows under it; add data rows")
    return frame_to_raw(frame, path, options.label_column, "csv")


def _not_utf8(path: Path) -> DataError:
    return DataError(
        f"{path}: not a text CSV (binary content, or text that is not UTF-8); save it as UTF-8, "
        "or pass a Parquet, .npz or idx directory"
    )


def _read_csv_frame(path: Path) -> pd.DataFrame:
    """Read pixels as int16 when the file is clean; fall back to a plain read to explain why not."""
    import pandas as pd

    try:
        header = pd.read_csv(path, nrows=0)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file has no header line; the first line must name the columns") from None
    except Exception as exc:
        raise DataError(
            f"{path}: could not be parsed as CSV ({type(exc).__name__}); check the delimiter and quoting"
        ) from None
    dtypes = {c: "int16" for c in header.columns if PIXEL_RE.match(str(c))}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a NaN cast to int16 must fail, not wrap
            return pd.read_csv(path, dtype=dtypes or None)
    except UnicodeDecodeError:  # before ValueError, which it is a kind of
        raise _not_utf8(path) from None
    except (ValueError, OverflowError, TypeError, RuntimeWarning):
        pass  # not clean integers: read it plainly, so the validator can name the bad cell
    except Exception as exc:
        raise DataError(f"{path}: could not be parsed as CSV ({type(exc).__name__}: {one_line(exc)})") from None
    try:
        return pd.read_csv(path)  # slower and larger, but only to name the bad cell
    except Exception as exc:
        raise DataError(f"{path}: could not be parsed as CSV ({type(exc).__name__}: {one_line(exc)})") from None


# --------------------------------------------------------------------------- Parquet


def read_parquet(path: Path, options: ReadOptions) -> RawData:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise DataError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}); check the file or export it again"
        ) from None
    return frame_to_raw(frame, path, options.label_column, "parquet")


# --------------------------------------------------------------------------- pickle


def read_pickle(path: Path, options: ReadOptions) -> RawData:
    import pandas as pd

    if not options.allow_pickle:
        raise DataError(
            f"{path}: this is a pickle, and loading a pickle runs code from the file; "
            "convert it to CSV or Parquet, or pass --allow-pickle if you trust its author"
        )
    try:
        obj = pd.read_pickle(path)
    except Exception as exc:
        raise DataError(f"{path}: could not unpickle ({type(exc).__name__}); export it to CSV or Parquet") from None
    if not isinstance(obj, pd.DataFrame):
        raise DataError(f"{path}: the pickle holds a {type(obj).__name__}, not a DataFrame; save a DataFrame")
    return frame_to_raw(obj, path, options.label_column, "pickle")


# --------------------------------------------------------------------------- table to arrays


def frame_to_raw(frame: pd.DataFrame, path: Path, label_column: str, kind: str) -> RawData:
    """Pick the label and pixel columns; the values go to the validator as the file holds them."""
    columns = list(frame.columns)
    label_col = _label_column(columns, label_column, path)
    pixel_cols = _pixel_columns(columns, label_col, path)
    if not pixel_cols:
        raise DataError(f"{path}: only a label column; add the pixel columns (pixel0..pixel783)")
    numbered = any(PIXEL_RE.match(str(c)) for c in pixel_cols)
    ignored = [str(c) for c in columns if c not in set(pixel_cols) and c != label_col] if numbered else []
    return RawData(
        x=_values(frame[pixel_cols]),
        y=_values(frame[[label_col]])[:, 0],
        kind=kind,
        sha256=sha256_file(path),
        pixel_names=[str(c) for c in pixel_cols],
        label_name=str(label_col),
        ignored_columns=ignored,
    )


def _label_column(columns: list[Hashable], wanted: str, path: Path) -> Hashable:
    """The exact name first; else the one column that matches apart from case."""
    exact = [c for c in columns if str(c) == wanted]
    if exact:
        return exact[0]
    loose = [c for c in columns if str(c).lower() == wanted.lower()]
    if len(loose) > 1:
        names = ", ".join(f"'{c}'" for c in loose)
        raise DataError(
            f"{path}: columns {names} all match '{wanted}' apart from case; pass the one you mean "
            "exactly with --label-column, or rename the others"
        )
    if not loose:
        shown = ", ".join(str(c) for c in columns[:5])
        raise DataError(
            f"{path}: no '{wanted}' column (columns start {shown}); name the label column "
            f"'{wanted}' or pass --label-column"
        )
    return loose[0]


def _pixel_columns(columns: list[Hashable], label_col: Hashable, path: Path) -> list[Hashable]:
    """`pixelN` columns in number order, with no gaps and no repeats; else every other column, in file order."""
    numbered: dict[int, Hashable] = {}
    for c in columns:
        m = PIXEL_RE.match(str(c))
        if m is None or c == label_col:
            continue
        n = int(m.group(1))
        if n in numbered:
            raise DataError(f"{path}: columns '{numbered[n]}' and '{c}' are both pixel {n}; drop or rename one")
        numbered[n] = c
    if not numbered:
        return [c for c in columns if c != label_col]
    first = min(numbered)
    start = first if first <= 1 else 0  # Kaggle's MNIST counts from pixel0, its Fashion-MNIST from pixel1
    gap = next((n for n in range(start, max(numbered) + 1) if n not in numbered), None)
    if gap is not None:
        raise DataError(
            f"{path}: pixel columns run {numbered[first]}..{numbered[max(numbered)]} but 'pixel{gap}' is missing; "
            "restore that column, or number the pixel columns without gaps"
        )
    return [numbered[n] for n in sorted(numbered)]


def _values(block: pd.DataFrame) -> np.ndarray:
    """Numeric columns as numbers (nullable ones with NaN for NA); anything else as objects, text kept."""
    import pandas as pd

    dtypes = list(block.dtypes)
    if not all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in dtypes):
        return block.to_numpy(dtype=object)
    if any(isinstance(t, pd.api.extensions.ExtensionDtype) for t in dtypes):
        return block.to_numpy(dtype=np.float64, na_value=np.nan)
    return block.to_numpy()
