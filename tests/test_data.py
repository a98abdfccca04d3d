"""Every supported layout loads; every bad input is one clear line and exit 2, leaving nothing behind."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import digits_frame

from job.cli import main
from job.data.dataset import DataError
from job.data.idx import read_idx
from job.data.load import load_dataset
from job.data.split import SPLIT_FRACTIONS, Split, duplicates_across, stratified_sample, stratified_split

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


def _latin1(tmp_path) -> Path:
    """UTF-8-clean for the first 8 KiB (so not sniffed as binary), then a Latin-1 byte in the last row."""
    frame = digits_frame()
    frame["note"] = "x"
    frame.loc[99, "note"] = "caf\xe9"
    path = tmp_path / "latin1.csv"
    frame.to_csv(path, index=False, encoding="latin-1")
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
    "latin-1 csv": (_latin1, "not a text CSV"),
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


def test_split_is_bit_identical_to_the_previous_release():
    """Indices computed with job/data.py before it became a package: the same seed gives the same rows."""
    y = np.repeat(np.arange(4), [7, 5, 9, 3])
    split = stratified_split(y, 11)
    assert split.train.tolist() == [10, 13, 2, 15, 4, 1, 3, 14, 11, 20, 5, 9, 22, 12]
    assert split.val.tolist() == [23, 8, 0, 18, 16]
    assert split.test.tolist() == [17, 7, 21, 19, 6]
    other = stratified_split(np.repeat(np.arange(3), 20), 5, (0.5, 0.25, 0.25))
    assert other.val.tolist() == [6, 31, 48, 24, 4, 37, 49, 56, 20, 39, 10, 12, 44, 43, 17]
    assert other.test.tolist()[:5] == [8, 28, 21, 36, 52]
    sample = stratified_sample(np.repeat(np.arange(5), [40, 30, 20, 60, 50]), 37, 2)
    assert sample.tolist()[:10] == [7, 12, 22, 23, 32, 33, 34, 42, 48, 54] and sample.size == 38


def test_split_records_its_fractions():
    y = np.repeat(np.arange(3), 20)
    assert stratified_split(y, 0).fractions == SPLIT_FRACTIONS == (0.6, 0.2, 0.2)
    assert stratified_split(y, 0, (0.5, 0.25, 0.25)).fractions == (0.5, 0.25, 0.25)
    assert Split(train=np.arange(3), val=np.arange(1), test=np.arange(1)).fractions == SPLIT_FRACTIONS


# --------------------------------------------------------------------------- duplicates across the split


def test_duplicates_across_counts_exact_copies_of_training_rows():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 16), dtype=np.uint8)
    split = Split(train=np.arange(0, 120), val=np.arange(120, 160), test=np.arange(160, 200))
    assert duplicates_across(x, split) == 0
    x[125] = x[3]
    x[170] = x[3]
    x[180] = x[50]
    x[190] = x[150]  # a copy of a val row, not of a training row: not counted
    x[191] = x[50].copy()
    x[191, -1] ^= 1  # one byte off: not a copy
    assert duplicates_across(x, split) == 3


def test_duplicates_across_counts_exact_copies_at_mnist_size():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, size=(70_000, 784), dtype=np.uint8) * np.uint8(255)
    split = stratified_split(rng.integers(0, 10, 70_000), 0)
    x[split.test[:40]] = x[split.train[:40]]
    assert duplicates_across(x, split) == 40


# --------------------------------------------------------------------------- hardened readers


def _idx_set(tmp_path: Path, images: np.ndarray, labels: np.ndarray, suffix: str = "") -> Path:
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels)
    return tmp_path


def _digits_xy() -> tuple[np.ndarray, np.ndarray]:
    frame = digits_frame()
    return frame.drop(columns="label").to_numpy().astype(np.uint8).reshape(-1, 28, 28), frame["label"].to_numpy()


def _raw_idx(path: Path, ndim: int, dims: tuple[int, ...], data: bytes = b"") -> Path:
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, ndim) + struct.pack(f">{len(dims)}I", *dims) + data)
    return path


def _refused(source: Path | str, *fragments: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(str(source), **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _within(seconds: float, fn):
    """Run fn in a thread; fail (instead of hanging the suite) if it does not return in time."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_gzip_bomb_idx_is_read_only_to_its_declared_size(tmp_path):
    """200 MB of zeros behind a header that declares 2 small images: refused after a few KB."""
    x, y = _digits_xy()
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y[:2])
    zeros = gzip.compress(bytes(1 << 20), compresslevel=9)  # one 1 MiB member, ~1 KB compressed
    header = gzip.compress(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2, 28, 28) + x[:2].tobytes())
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(header + zeros * 200)  # gzip members concatenate: 200 MiB when inflated
    assert bomb.stat().st_size < 1 << 20
    message = "more data than the header's 2x28x28"
    peak = _peak_bytes(lambda: _refused(tmp_path, str(bomb), message, "download it again"))
    assert peak < 20 << 20


def _peak_bytes(fn) -> int:
    """Peak Python memory while fn runs: a bounded read stays small whatever the file inflates to."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_idx_header_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = _raw_idx(tmp_path / "train-images-idx3-ubyte", 3, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))
    with pytest.raises(DataError, match="over the .*-byte limit; check the file"):
        read_idx(path)


def test_npz_member_declaring_a_huge_array_is_refused(tmp_path):
    path = tmp_path / "huge.npz"
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6)}
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
        archive.writestr("y.npy", _npy(np.zeros(10, np.uint8)))
    _refused(path, str(path), "x declares shape (1000000, 1000000)", "over the", "limit")


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_npz_zip_bomb_member_is_refused_from_its_sizes(tmp_path):
    """A member that declares 2 images but inflates to 64 MiB is refused from the zip directory alone."""
    x, y = _digits_xy()
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w") as member:
            member.write(_npy(x[:2]))
            for _ in range(64):
                member.write(bytes(1 << 20))
        archive.writestr("y.npy", _npy(y[:2]))
    assert path.stat().st_size < 1 << 20
    peak = _peak_bytes(lambda: _refused(path, str(path), "x declares 1,568 bytes of data but holds", "save it again"))
    assert peak < 20 << 20  # nothing was inflated


def test_idx_folder_with_plain_and_gz_copies_is_ambiguous(tmp_path):
    x, y = _digits_xy()
    _idx_set(tmp_path, x, y)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x)
    _refused(tmp_path, "train-images-idx3-ubyte and train-images-idx3-ubyte.gz", "ambiguous", "keep one")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_idx_folder_is_refused_not_read(tmp_path):
    x, y = _digits_xy()
    write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="a FIFO, not a regular file"):
        _within(10, lambda: load_dataset(str(tmp_path)))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_as_data_is_refused_not_read(tmp_path):
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"data\.csv: a FIFO, not a regular file"):
        _within(10, lambda: load_dataset(str(fifo)))
    result = _within(30, lambda: CliRunner().invoke(main, ["check-data", str(fifo)]))
    assert result.exit_code == 2 and "a FIFO" in result.stderr


def test_idx_with_zero_dimensions(tmp_path):
    _raw_idx(tmp_path / "train-images-idx3-ubyte", 0, ())
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3))
    _refused(tmp_path, "train-images-idx3-ubyte: the idx header declares 0 dimensions", "check the file")


def test_idx_with_2d_labels(tmp_path):
    x, y = _digits_xy()
    _idx_set(tmp_path, x, np.stack([y, y], axis=1))
    _refused(tmp_path, "train-labels-idx1-ubyte: labels have shape (100, 2)", "one label per image")


def test_idx_train_and_test_with_different_image_sizes(tmp_path):
    x, y = _digits_xy()
    _idx_set(tmp_path, x, y)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x[:50, :20, :20])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[:50])
    _refused(tmp_path, "t10k-images-idx3-ubyte: images are 20x20 but train-images-idx3-ubyte holds 28x28")


def test_idx_non_square_images_keep_their_shape(tmp_path):
    x, y = _digits_xy()
    _idx_set(tmp_path, x.reshape(100, 16, 49), y)
    assert load_dataset(str(tmp_path)).image_shape == (16, 49)


def test_npz_with_a_0d_array(tmp_path):
    path = tmp_path / "scalar.npz"
    np.savez(path, x=np.array(7, dtype=np.uint8), y=np.arange(10))
    _refused(path, str(path), "x is a 0-d array", "save one row per image")


def test_npz_train_and_test_with_different_pixel_counts(tmp_path):
    x, y = _digits_xy()
    path = tmp_path / "mixed.npz"
    np.savez(path, x_train=x[:60], y_train=y[:60], x_test=x[60:, :20, :20], y_test=y[60:])
    _refused(path, str(path), "x_train has 784 pixels per image but x_test has 400", "same image size")


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        (10**13, "label 10000000000000 at data row 1 is out of range: labels must be 0..K-1 with no more classes"),
        (float("inf"), "data row 1, column 'label' is inf, not an integer label"),
        (float("-inf"), "data row 1, column 'label' is -inf, not an integer label"),
    ],
)
def test_absurd_labels(tmp_path, label, fragment):
    frame = digits_frame().astype({"label": object})
    frame.loc[0, "label"] = label
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    _refused(path, str(path), fragment, "0..K-1")


def test_more_classes_than_the_bound(tmp_path):
    path = tmp_path / "many.npz"
    y = np.arange(12_000) % 12_000
    np.savez(path, x=np.zeros((12_000, 4), np.uint8), y=y)
    _refused(path, "label 11999 at data row 12000 is out of range", "at most 10,000 classes")


def test_parquet_nullable_int_pixel_with_na(tmp_path):
    frame = digits_frame()
    frame["pixel5"] = frame["pixel5"].astype("Int64")
    frame.loc[3, "pixel5"] = None
    path = tmp_path / "na.parquet"
    frame.to_parquet(path)
    _refused(path, str(path), "data row 4, column 'pixel5' is empty (NaN)", "fill or drop that row")


def test_label_column_exact_match_wins_over_case(tmp_path):
    frame = digits_frame()
    frame["Label"] = 0  # a second, different column: the exact name is the label
    path = tmp_path / "both.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path))
    assert ds.n_classes == 10 and ds.ignored_columns == ["Label"]


def test_label_column_ambiguous_by_case(tmp_path):
    frame = digits_frame().rename(columns={"label": "Label"})
    frame["LABEL"] = frame["Label"]
    path = tmp_path / "ambiguous.csv"
    frame.to_csv(path, index=False)
    _refused(path, str(path), "columns 'Label', 'LABEL' all match 'label' apart from case", "--label-column")


def test_gap_in_pixel_numbering_names_the_first_missing_column(tmp_path):
    path = tmp_path / "gap.csv"
    digits_frame().drop(columns=["pixel17", "pixel40"]).to_csv(path, index=False)
    _refused(path, str(path), "'pixel17' is missing", "without gaps")


def test_pixel_numbering_from_one_is_accepted(tmp_path):
    """Kaggle's Fashion-MNIST CSV counts pixel1..pixel784."""
    frame = digits_frame()
    frame.columns = ["label"] + [f"pixel{i + 1}" for i in range(784)]
    path = tmp_path / "fashion.csv"
    frame.to_csv(path, index=False)
    assert load_dataset(str(path)).image_shape == (28, 28)


def test_bounded_read_stops_early():
    """read_bounded pulls at most limit bytes from an endless stream."""
    from job.data.files import read_bounded

    class Endless:
        def read(self, n: int) -> bytes:
            return b"\0" * n

    assert len(read_bounded(Endless(), 5_000_000)) == 5_000_000


def test_a_resplit_keeps_the_test_rows_and_each_classs_counts_and_moves_the_rest():
    """#23: split k >= 2 shares split 1's test rows, trains on as many rows of each class, and is its own draw."""
    from job.data.split import resplit

    y = np.repeat(np.arange(4), [30, 17, 9, 44])
    first = stratified_split(y, 7)
    second, again, third = resplit(y, first, 7, 2), resplit(y, first, 7, 2), resplit(y, first, 7, 3)
    np.testing.assert_array_equal(second.test, first.test)
    np.testing.assert_array_equal(second.train, again.train)  # seeded
    for s in (second, third):
        rows = np.concatenate([s.train, s.val, s.test])
        assert np.array_equal(np.sort(rows), np.arange(y.size))  # a partition of every row
        assert np.array_equal(np.bincount(y[s.train]), np.bincount(y[first.train]))
        assert np.array_equal(np.bincount(y[s.val]), np.bincount(y[first.val]))
    assert not np.array_equal(np.sort(second.val), np.sort(first.val))
    assert not np.array_equal(np.sort(second.val), np.sort(third.val))
    with pytest.raises(ValueError, match="split 1"):
        resplit(y, first, 7, 1)
