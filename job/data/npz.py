"""Reader for NumPy .npz archives: keras' mnist.npz layout, x/y, or images/labels.

Each member's .npy header is read and checked (no object arrays, no 0-d arrays, a sane size that
the member really holds) before its data is, so a small archive cannot make the job allocate
gigabytes, and nothing in it is unpickled.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from job.data.dataset import DataError, RawData, ReadOptions
from job.data.files import one_line, open_regular, sha256_file

NPZ_PAIRS = (("x_train", "y_train"), ("x_test", "y_test"), ("x", "y"), ("images", "labels"))
MAX_ARRAY_BYTES = 1 << 32  # 4 GiB: 75 times MNIST's pixels; a larger header is a mistake or a bomb


def read_npz(path: Path, options: ReadOptions) -> RawData:
    try:
        with open_regular(path) as fh, zipfile.ZipFile(fh) as archive:
            members = {n.removesuffix(".npy"): archive.getinfo(n) for n in archive.namelist()}
            pairs = [(xk, yk) for xk, yk in NPZ_PAIRS if xk in members and yk in members]
            if not pairs:
                raise DataError(
                    f"{path}: the .npz has arrays {sorted(members)}; it needs x_train/y_train (keras mnist.npz), "
                    "x/y or images/labels"
                )
            arrays = {k: _read_member(archive, members[k], path) for pair in pairs for k in pair}
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DataError(
            f"{path}: not a readable .npz ({type(exc).__name__}: {one_line(exc)}); save it with numpy.savez"
        ) from None
    return _combine(path, pairs, arrays)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """Check the .npy header against a bound and the member's size, then read exactly that much."""
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise DataError(f"{path}: {name} is .npy format {version}; save it again with numpy.savez")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
        header_size = member.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: {name} is an object array, which needs pickle to load; save plain numeric arrays")
    if len(shape) == 0:
        raise DataError(f"{path}: {name} is a 0-d array (a single value); save one row per image or label")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise DataError(
            f"{path}: {name} declares shape {shape} of {dtype}, {nbytes:,} bytes, over the {MAX_ARRAY_BYTES:,}-byte "
            "limit; check the file"
        )
    if info.file_size != header_size + nbytes:  # checked before inflating anything: no zip bomb
        raise DataError(
            f"{path}: {name} declares {nbytes:,} bytes of data but holds {info.file_size - header_size:,}; "
            "the file is truncated or corrupt, save it again"
        )
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)  # reads the declared size, no more


def _combine(path: Path, pairs: list[tuple[str, str]], arrays: dict[str, np.ndarray]) -> RawData:
    """One row per image across the pairs (train before test), all with the same pixel count."""
    xs, ys = [], []
    for xk, yk in pairs:
        x, y = arrays[xk], arrays[yk]
        if x.ndim < 2:
            raise DataError(f"{path}: {xk} has shape {x.shape}; save one row (or 2-D image) per image")
        if y.ndim > 1 and math.prod(y.shape[1:]) != 1:
            raise DataError(f"{path}: {yk} has shape {y.shape}; save one integer label per image, not one-hot")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{path}: {x.shape[0]} images but {y.shape[0]} labels; the arrays must match")
        if x.size == 0:
            raise DataError(f"{path}: {xk} has shape {x.shape}, no pixels; save at least one non-empty image")
        xs.append(x.reshape(x.shape[0], -1))
        ys.append(y.reshape(-1))
    first = pairs[0][0]
    for (xk, _), x in zip(pairs, xs, strict=True):
        if x.shape[1] != xs[0].shape[1]:
            raise DataError(
                f"{path}: {first} has {xs[0].shape[1]} pixels per image but {xk} has {x.shape[1]}; "
                "save every split with the same image size"
            )
    image_shapes = {arrays[xk].shape[1:] for xk, _ in pairs}
    shape = image_shapes.pop() if len(image_shapes) == 1 else None
    return RawData(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        kind="npz",
        sha256=sha256_file(path),
        image_shape=(int(shape[0]), int(shape[1])) if shape is not None and len(shape) == 2 else None,
    )
