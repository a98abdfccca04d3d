"""`load_dataset`: name the source's kind, read it with that kind's reader, validate, return a `Dataset`.

Pixels stay uint8 from the file to the model: a 70,000-row set is 55 MB here, and the model scales
them itself. Every problem with the input becomes a `DataError` whose message names the file, the
row or column, and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from job.data.builtin import BUILTIN_READERS, BUILTIN_SOURCES, DEFAULT_SOURCE
from job.data.dataset import DataError, Dataset, RawData, ReadOptions
from job.data.files import looks_like_pickle, require_regular
from job.data.idx import read_idx_dir
from job.data.npz import read_npz
from job.data.tabular import read_csv, read_parquet, read_pickle
from job.data.validate import validate

READERS: dict[str, Callable[[Path, ReadOptions], RawData]] = {
    "csv": read_csv,
    "parquet": read_parquet,
    "pickle": read_pickle,
    "npz": read_npz,
    "idx": read_idx_dir,
}
SUFFIX_KINDS = {".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}  # by the last suffix; else CSV
PICKLE_SUFFIXES = {".pkl", ".pickle", ".p"}  # by any suffix: a pickle must never be read by accident


def load_dataset(
    source: str | None,
    *,
    image_shape: tuple[int, int] | None = None,
    allow_pickle: bool = False,
    label_column: str = "label",
) -> Dataset:
    """Load and validate `source`: a built-in name or a path (file or idx directory)."""
    source = source or DEFAULT_SOURCE
    try:
        raw = _read(source, ReadOptions(allow_pickle=allow_pickle, label_column=label_column))
    except PermissionError:
        raise DataError(
            f"{source}: permission denied for this user (uid {os.getuid()}); make the file and its folders "
            "readable (in a container, mount them readable by the --user you run as)"
        ) from None
    except OSError as exc:
        raise DataError(f"{source}: cannot read it ({exc.strerror or type(exc).__name__}); check the path") from None
    x, y, shape = validate(raw, source, image_shape)
    return Dataset(
        x=x,
        y=y,
        image_shape=shape,
        source=source,
        kind=raw.kind,
        sha256=raw.sha256,
        ignored_columns=raw.ignored_columns,
    )


def _read(source: str, options: ReadOptions) -> RawData:
    if source in BUILTIN_READERS:
        return BUILTIN_READERS[source]()
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"{source}: no such file or directory; pass a CSV, Parquet, .npz or idx "
            f"directory, or one of {', '.join(BUILTIN_SOURCES)}"
        )
    return READERS[kind_of(path)](path, options)


def kind_of(path: Path) -> str:
    """Which reader a path needs: a folder is idx; a file goes by its content (pickle) or suffix."""
    if path.is_dir():
        return "idx"
    require_regular(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; point --data at a file with a header and rows")
    suffixes = [s.lower() for s in path.suffixes]
    if looks_like_pickle(path) or set(suffixes) & PICKLE_SUFFIXES:
        return "pickle"
    return SUFFIX_KINDS.get(suffixes[-1] if suffixes else "", "csv")
