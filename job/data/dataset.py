"""What a loaded dataset is: the raw arrays a reader returns, the validated `Dataset`, and `DataError`.

Readers return `RawData` (arrays as the file holds them, plus the names needed to point at a bad cell);
`validate` turns it into a `Dataset` whose pixels are uint8 and labels int64 0..K-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from job.errors import JobError


class DataError(JobError):
    """Bad input: the message is one line that names the file, where, and the fix."""


@dataclass
class ReadOptions:
    """What the user said about how to read a file (the CLI's --allow-pickle and --label-column)."""

    allow_pickle: bool = False
    label_column: str = "label"


@dataclass
class RawData:
    """One reader's output, before validation: any dtype, one row per image."""

    x: np.ndarray  # (rows, pixels), as stored: uint8, int16, float, or object when text is present
    y: np.ndarray  # (rows,), as stored
    kind: str  # csv, parquet, npz, idx, pickle, builtin, keras.datasets
    sha256: str
    pixel_names: list[str] | None = None  # the file's column names, so a message can say "column 'pixel12'"
    label_name: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    image_shape: tuple[int, int] | None = None  # when the source says it (idx, 3-D npz, built-ins)


@dataclass
class Dataset:
    """Validated pixels and labels, ready for splitting."""

    x: np.ndarray  # (rows, pixels) uint8
    y: np.ndarray  # (rows,) int64, values 0..n_classes-1
    image_shape: tuple[int, int]
    source: str  # what the user named: a path or a built-in name
    kind: str  # csv, parquet, npz, idx, pickle, builtin
    sha256: str
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1

    def label_counts(self) -> dict[int, int]:
        counts = np.bincount(self.y, minlength=self.n_classes)
        return {i: int(c) for i, c in enumerate(counts)}

    def summary(self) -> dict:
        """What `check-data` prints and `run.json` keeps under `data`."""
        return {
            "source": self.source,
            "kind": self.kind,
            "sha256": self.sha256,
            "rows": self.rows,
            "pixels": int(self.x.shape[1]),
            "image_shape": list(self.image_shape),
            "classes": self.n_classes,
            "label_counts": {str(k): v for k, v in self.label_counts().items()},
            "pixel_min": int(self.x.min()),
            "pixel_max": int(self.x.max()),
            "ignored_columns": list(self.ignored_columns),
        }
