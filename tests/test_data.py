"""Every supported layout loads; every bad input is one clear line and exit 2, leaving nothing behind."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import digits_frame

from job.cli import main
from job.data import DataError, load_dataset, stratified_sample, stratified_split

# --------------------------------------------------------------------------- good layouts


def test_embedded_default_is_5000_real_digits():
    ds = load_dataset(None)
    assert ds.rows == 5000 and ds.n_classes == 10 and ds.image_shape == (28, 28)
    assert ds.x.dtype == np.uint8 and ds.x.shape == (5000, 784)
    assert set(ds.label_counts().values()) == {500}


def test_sklearn_digits():
    ds = load_dataset("digits")
    assert ds.image_shape == (8, 8) and ds.x.dtype == np.uint8 and ds.n_classes == 10


def test_kaggle_csv_stays_uint8(small_csv):
    ds = load_dataset(str(small_csv))
    assert ds.x.dtype == np.uint8 and ds.y.dtype == np.int64
    assert ds.rows == 100 and ds.kind == "csv" and len(ds.sha256) == 64


def test_any_column_order_and_extra_columns(tmp_path):
    frame = digits_frame()
    cols = list(frame.columns)
    shuffled = frame[cols[::-1]].copy()
    shuffled["id"] = range(len(shuffled))  # like the seed's extra DataFrame column
    path = tmp_path / "odd.csv"
    shuffled.to_csv(path, index=False)
    ds = load_dataset(str(path))
    np.testing.assert_array_equal(ds.x, frame.drop(columns="label").to_numpy().astype(np.uint8))
    assert ds.ignored_columns == ["id"]


def test_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    digits_frame().to_parquet(path)
    assert load_dataset(str(path)).kind == "parquet"


def test_keras_npz_layout(tmp_path):
    frame = digits_frame()
    x = frame.drop(columns="label").to_numpy().astype(np.uint8).reshape(-1, 28, 28)
    y = frame["label"].to_numpy().astype(np.uint8)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    ds = load_dataset(str(path))
    assert ds.rows == 100 and ds.x.dtype == np.uint8


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_idx_directory(tmp_path):
    frame = digits_frame()
    x = frame.drop(columns="label").to_numpy().astype(np.uint8).reshape(-1, 28, 28)
    y = frame["label"].to_numpy()
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x[:70])
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y[:70])
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x[70:])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[70:])
    ds = load_dataset(str(tmp_path))
    assert ds.rows == 100 and ds.kind == "idx"
    np.testing.assert_array_equal(ds.x[:70], x[:70].reshape(70, -1))


def test_keras_download_path_offline(tmp_path, monkeypatch):
    """`--data mnist` goes through keras.datasets; only the network boundary (get_file) is mocked."""
    import keras

    frame = digits_frame()
    x = frame.drop(columns="label").to_numpy().astype(np.uint8).reshape(-1, 28, 28)
    y = frame["label"].to_numpy().astype(np.uint8)
    cached = tmp_path / "mnist.npz"
    np.savez(cached, x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    calls = []

    def fake_get_file(*args, **kwargs):
        calls.append(kwargs.get("origin") or args)
        return str(cached)

    monkeypatch.setattr(keras.src.datasets.mnist, "get_file", fake_get_file)
    ds = load_dataset("mnist")
    assert calls and ds.rows == 100 and ds.kind == "keras.datasets"

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(keras.src.datasets.mnist, "get_file", offline)
    with pytest.raises(DataError, match="download failed.*pass --data PATH"):
        load_dataset("mnist")


def test_image_shape_for_non_square(tmp_path):
    path = tmp_path / "rect.csv"
    digits_frame(pixels=24).to_csv(path, index=False)
    with pytest.raises(DataError, match="not a square"):
        load_dataset(str(path))
    assert load_dataset(str(path), image_shape=(4, 6)).image_shape == (4, 6)


# --------------------------------------------------------------------------- the bad-input corpus


class Evil:
    """Unpickling this would create a file: proof of whether the pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _csv(tmp_path, mutate) -> Path:
    frame = digits_frame().astype(object)
    changed = mutate(frame)
    frame = frame if changed is None else changed
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def _write(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _truncated(tmp_path) -> Path:
    path = tmp_path / "cut.csv"
    digits_frame().to_csv(path, index=False)
    text = path.read_text()
    path.write_text(text[: len(text) - 1500])  # cut mid-row, as an interrupted copy would
    return path


CORPUS = {
    "empty file": (lambda t: _write(t, "empty.csv", b""), "empty"),
    "header only": (lambda t: _write(t, "header.csv", b"label,pixel0,pixel1\n"), "no rows"),
    "binary garbage": (lambda t: _write(t, "garbage.csv", bytes(range(256)) * 40), "binary"),
    "truncated csv": (_truncated, "empty (NaN)"),
    "missing label column": (lambda t: _csv(t, lambda f: f.rename(columns={"label": "digit"})), "no 'label' column"),
    "one pixel column too few": (
        lambda t: _csv(t, lambda f: f.drop(columns="pixel783")),
        "783 pixel columns is not a square",
    ),
    "pixel above 255": (
        lambda t: _csv(t, lambda f: f.__setitem__("pixel5", [300] + [0] * 99)),
        "data row 1, column 'pixel5' is 300",
    ),
    "negative pixel": (
        lambda t: _csv(t, lambda f: f.__setitem__("pixel7", [0, -3] + [0] * 98)),
        "data row 2, column 'pixel7' is -3",
    ),
    "NaN pixel": (
        lambda t: _csv(t, lambda f: f.__setitem__("pixel9", [0, 0, None] + [0] * 97)),
        "data row 3, column 'pixel9' is empty",
    ),
    "text in a pixel": (lambda t: _csv(t, lambda f: f.__setitem__("pixel2", ["abc"] + [0] * 99)), "holds text 'abc'"),
    "label out of range": (
        lambda t: _csv(t, lambda f: f.__setitem__("label", [12] + list(f["label"][1:]))),
        "label 12 at data row 1 is out of range",
    ),
    "fractional label": (
        lambda t: _csv(t, lambda f: f.__setitem__("label", [2.5] + list(f["label"][1:]))),
        "fractional label",
    ),
    "single class": (lambda t: _csv(t, lambda f: f.__setitem__("label", [0] * 100)), "only one class"),
    "too few rows per class": (lambda t: _csv(t, lambda f: f.drop(index=range(30, 38))), "class 3 has 2 rows"),
    "missing file": (lambda t: t / "nope.csv", "no such file"),
    "directory without idx files": (lambda t: (t / "emptydir").mkdir() or (t / "emptydir"), "no idx files"),
    "pickle": (lambda t: _write(t, "data.pkl", pickle.dumps(Evil(t / "PWNED"))), "--allow-pickle"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_check_data(case, tmp_path):
    make, fragment = CORPUS[case]
    path = make(tmp_path)
    result = CliRunner().invoke(main, ["check-data", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert str(path) in result.stderr or case == "missing file" and "nope.csv" in result.stderr


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_run_leaves_nothing(case, tmp_path):
    make, fragment = CORPUS[case]
    path = make(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--data", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_pickle_is_not_executed_without_allow_pickle(tmp_path):
    path = _write(tmp_path, "data.bin", pickle.dumps(Evil(tmp_path / "PWNED")))  # no telling suffix
    with pytest.raises(DataError, match="pickle"):
        load_dataset(str(path))
    assert not (tmp_path / "PWNED").exists()


def test_pickle_loads_with_allow_pickle(tmp_path):
    path = tmp_path / "frame.pkl"
    digits_frame().to_pickle(path)
    assert load_dataset(str(path), allow_pickle=True).kind == "pickle"


def test_html_in_column_names_is_kept_as_data(tmp_path):
    frame = digits_frame()
    frame["<script>alert(1)</script>"] = 1
    path = tmp_path / "x.csv"
    frame.to_csv(path, index=False)
    assert load_dataset(str(path)).ignored_columns == ["<script>alert(1)</script>"]


def test_unwritable_out(tmp_path, small_csv):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["run", "--data", str(small_csv), "--out", str(blocker / "sub")])
    assert result.exit_code == 2 and "--out" in result.stderr and "writable" in result.stderr
    assert blocker.read_text() == "x"


# --------------------------------------------------------------------------- splitting


def test_split_is_stratified_seeded_and_disjoint():
    y = np.repeat(np.arange(10), 50)
    a, b = stratified_split(y, 3), stratified_split(y, 3)
    np.testing.assert_array_equal(a.test, b.test)
    assert a.sizes() == {"train": 300, "val": 100, "test": 100}
    assert len(set(a.train) | set(a.val) | set(a.test)) == 500
    assert np.bincount(y[a.test]).tolist() == [10] * 10
    assert not np.array_equal(stratified_split(y, 4).test, a.test)


def test_stratified_sample_keeps_every_class():
    y = np.repeat(np.arange(10), 500)
    idx = stratified_sample(y, 300, seed=1)
    assert idx.size == 300 and np.bincount(y[idx]).tolist() == [30] * 10


def test_check_data_summary():
    result = CliRunner().invoke(main, ["check-data"])
    assert result.exit_code == 0, result.output
    assert "rows:    5000" in result.output and "0: 500" in result.output and "pixels:  0..255" in result.output
