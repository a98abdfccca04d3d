"""Reader for a folder of MNIST idx files (`*-images-idx3-ubyte[.gz]` beside `*-labels-idx1-ubyte[.gz]`).

Each file is read to at most the size its header declares, plus one byte to notice extra data, so a
small .gz that inflates to gigabytes is refused after a few kilobytes. Only regular files are opened.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import re
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from job.data.dataset import DataError, RawData, ReadOptions
from job.data.files import open_regular, read_bounded, require_regular, sha256_dir

IDX_IMAGES_RE = re.compile(r"^(?P<stem>.*?)[-.]?images[-.]idx3-ubyte(\.gz)?$")
IDX_FILE_RE = re.compile(r"idx\d-ubyte(\.gz)?$")
MAX_IDX_BYTES = 1 << 32  # 4 GiB: 75 times MNIST's pixels; a larger header is a mistake or a bomb


def read_idx(path: Path) -> np.ndarray:
    """Read one MNIST idx file (ubyte data only, as MNIST and Fashion-MNIST ship)."""
    try:
        with contextlib.ExitStack() as stack:
            fh: BinaryIO = stack.enter_context(open_regular(path))
            if path.suffix == ".gz":
                fh = stack.enter_context(gzip.GzipFile(fileobj=fh, mode="rb"))  # type: ignore[assignment]
            dims = _read_header(fh, path)
            expected = math.prod(dims)
            data = read_bounded(fh, expected + 1)
    except (OSError, EOFError, zlib.error, struct.error) as exc:
        raise DataError(f"{path}: unreadable idx file ({type(exc).__name__}); download it again") from None
    if len(data) < expected:
        raise DataError(f"{path}: truncated: {len(data)} bytes of data, header says {expected}; download it again")
    if len(data) > expected:
        raise DataError(
            f"{path}: more data than the header's {'x'.join(map(str, dims))} ({expected:,} bytes); download it again"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_header(fh: BinaryIO, path: Path) -> tuple[int, ...]:
    head = fh.read(4)
    if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
        raise DataError(f"{path}: not an idx ubyte file (bad magic number); check the file")
    ndim = head[3]
    if ndim == 0:
        raise DataError(f"{path}: the idx header declares 0 dimensions; images have 3 and labels 1, check the file")
    dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
    size = math.prod(dims)
    if size > MAX_IDX_BYTES:
        raise DataError(
            f"{path}: the idx header declares {'x'.join(map(str, dims))} = {size:,} bytes, over the "
            f"{MAX_IDX_BYTES:,}-byte limit; check the file"
        )
    return dims


def read_idx_dir(path: Path, options: ReadOptions) -> RawData:
    """Every images/labels pair in the folder, train before t10k, as one set of rows."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    shapes: list[tuple[Path, tuple[int, ...]]] = []
    for img, lab in _idx_pairs(path):
        images, labels = read_idx(img), read_idx(lab)
        if images.ndim < 2:
            raise DataError(f"{img}: images have shape {images.shape}; an idx images file is count x rows x columns")
        if labels.ndim != 1:
            raise DataError(f"{lab}: labels have shape {labels.shape}; an idx labels file holds one label per image")
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{img}: {images.shape[0]} images but {lab.name} has {labels.shape[0]} labels")
        if shapes and images.shape[1:] != shapes[0][1]:
            raise DataError(
                f"{img}: images are {'x'.join(map(str, images.shape[1:]))} but {shapes[0][0].name} holds "
                f"{'x'.join(map(str, shapes[0][1]))}; keep one image size per folder"
            )
        shapes.append((img, images.shape[1:]))
        xs.append(images.reshape(images.shape[0], -1))
        ys.append(labels)
    image = shapes[0][1]
    return RawData(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        kind="idx",
        sha256=sha256_dir(path),
        image_shape=(int(image[0]), int(image[1])) if len(image) == 2 else None,
    )


def _idx_pairs(path: Path) -> list[tuple[Path, Path]]:
    """(images, labels) files, train first; refuses special files and a file present both plain and .gz."""
    entries = sorted(path.iterdir())
    seen: dict[str, Path] = {}
    for entry in entries:
        if not IDX_FILE_RE.search(entry.name):
            continue
        require_regular(entry)
        key = entry.name.removesuffix(".gz")
        if key in seen:
            raise DataError(
                f"{path}: both {seen[key].name} and {entry.name} are here, so which to read is ambiguous; "
                "keep one of them"
            )
        seen[key] = entry
    pairs = []
    for img in entries:
        if not IDX_IMAGES_RE.match(img.name):
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
    return pairs
