"""Property-based tests of every reader and of run.json, as trusted parsers are tested.

The contract: any input ends in a result or in the project's own one-line error (DataError,
RunDirError), never another exception and never a hang. Readers are called in-process with a
per-example deadline; a smaller set goes through the CLI in a subprocess under a 1 GB
address-space limit, so memory stays bounded whatever a file declares.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, digits_frame, write_hand_run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from job.data.dataset import DataError
from job.data.load import load_dataset
from job.rundir.layout import RunDirError, pred_column

pytestmark = pytest.mark.slow  # a fixed example budget: about a minute in all

# FUZZ_EXAMPLES=2000 searches further, with fresh random examples; CI runs the fixed, derandomized budget.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=3000,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
)
SUFFIXES = ["data.csv", "data.npz", "data.parquet", "data", "data.txt"]


def _load(path: Path) -> None:
    try:
        load_dataset(str(path))
    except DataError as exc:
        assert "\n" not in str(exc), str(exc)


def _valid_files() -> dict[str, bytes]:
    frame = digits_frame(rows_per_class=6, n_classes=3, pixels=16)
    x = frame.drop(columns="label").to_numpy(np.uint8)
    y = frame["label"].to_numpy(np.uint8)
    npz, parquet = io.BytesIO(), io.BytesIO()
    np.savez(npz, x_train=x, y_train=y)
    frame.to_parquet(parquet)
    return {
        "data.csv": frame.to_csv(index=False).encode(),
        "data.npz": npz.getvalue(),
        "data.parquet": parquet.getvalue(),
        "train-images-idx3-ubyte": struct.pack(">BBBB3I", 0, 0, 8, 3, len(x), 4, 4) + x.tobytes(),
        "train-images-idx3-ubyte.gz": gzip.compress(struct.pack(">BBBB3I", 0, 0, 8, 3, len(x), 4, 4) + x.tobytes()),
        "labels": struct.pack(">BBBBI", 0, 0, 8, 1, len(y)) + y.tobytes(),
    }


VALID = _valid_files()


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Flip, cut or insert bytes: the near-valid files a parser meets after a bad copy."""
    out = bytearray(data)
    for kind, pos, value in edits:
        if not out:
            break
        pos %= len(out)
        if kind == 0:
            out[pos] = value
        elif kind == 1:
            del out[pos:]
        else:
            out[pos:pos] = bytes([value]) * (value % 7 + 1)
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)


@FUZZ
@given(data=st.binary(max_size=2048), name=st.sampled_from(SUFFIXES))
def test_random_bytes_never_escape_the_readers(data, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        _load(path)


@FUZZ
@given(name=st.sampled_from(["data.csv", "data.npz", "data.parquet"]), edits=EDITS)
def test_mutated_files_never_escape_the_readers(name, edits):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(_mutate(VALID[name], edits))
        _load(path)


@FUZZ
@given(images=st.sampled_from(["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]), edits=EDITS, lab=EDITS)
def test_mutated_idx_folders_never_escape_the_reader(images, edits, lab):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / images).write_bytes(_mutate(VALID[images], edits))
        labels = _mutate(VALID["labels"], lab)
        name = "train-labels-idx1-ubyte" + (".gz" if images.endswith(".gz") else "")
        (folder / name).write_bytes(gzip.compress(labels) if name.endswith(".gz") else labels)
        _load(folder)


@FUZZ
@given(
    header=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    dims=st.lists(st.integers(0, 2**32 - 1), max_size=5),
    body=st.binary(max_size=512),
)
def test_random_idx_headers_never_escape_the_reader(header, dims, body):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw = bytes(header) + b"".join(struct.pack(">I", d) for d in dims) + body
        (folder / "train-images-idx3-ubyte").write_bytes(raw)
        (folder / "train-labels-idx1-ubyte").write_bytes(VALID["labels"])
        _load(folder)


@FUZZ
@given(
    shape=st.lists(st.integers(0, 40), max_size=4),
    dtype=st.sampled_from(["u1", "i8", "f4", "f8", "b1", "U3", "c8"]),
    labels=st.lists(st.integers(-3, 12) | st.floats(allow_nan=True), max_size=40),
)
def test_random_npz_shapes_and_dtypes_never_escape_the_reader(shape, dtype, labels):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        x = np.zeros(shape, dtype=dtype)
        np.savez(path, x=x, y=np.array(labels))
        _load(path)


# --------------------------------------------------------------------------- run.json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**15), 10**15) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _apply(raw, path, action, value):
    if not path:
        return value if action == "set" else raw
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return raw


HAND = tempfile.mkdtemp(prefix="hand-run-")
write_hand_run(Path(HAND))
HAND_JSON = json.loads((Path(HAND) / "run.json").read_text())
HAND_PATHS = list(_paths(HAND_JSON))


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(HAND_PATHS) - 1), st.sampled_from(["set", "delete"]), JSON_VALUES),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_run_json_renders_or_is_one_line(edits):
    from job.report.render import render_report

    raw = json.loads(json.dumps(HAND_JSON))
    for index, action, value in edits:
        path = HAND_PATHS[index]
        try:
            raw = _apply(raw, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed that path
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        for f in Path(HAND).iterdir():
            if f.is_file():
                (run_dir / f.name).write_bytes(f.read_bytes())
        (run_dir / "run.json").write_text(json.dumps(raw))
        try:
            html = render_report(run_dir)
        except RunDirError as exc:
            assert "\n" not in str(exc), str(exc)
        else:
            assert "<html" in html


# --------------------------------------------------------------------------- through the CLI, memory-bounded


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@settings(max_examples=8, deadline=None, derandomize=True)
@given(name=st.sampled_from(["data.csv", "data.npz", "data.parquet"]), edits=EDITS)
def test_mutated_files_through_the_cli_are_exit_0_or_2_in_1_gb(name, edits):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(_mutate(VALID[name], edits))
        env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "job", "check-data", str(path)],
            capture_output=True, text=True, timeout=60, cwd=REPO, env=env, preexec_fn=_limit_memory,
        )  # fmt: skip
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr[-2000:]
        if done.returncode == 2:
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# Family files: any bytes, any mutation of a real one, any table of odd values ends in a family whose every
# derived name is unique and valid, or in one SpecError line. `job models` says the same through the CLI.
FAMILY_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["selu", "relu", "adam", "sgd", "loss", "val_accuracy", "lecun_normal", "Model 1", "-seed3"]),
    st.lists(st.integers(min_value=-3, max_value=70_000), max_size=5),
)
PLAIN_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9 _-]{0,6}", fullmatch=True)
NAMES = st.one_of(  # mostly plain, so that whole families load and their derived names can be compared
    PLAIN_NAMES,
    PLAIN_NAMES,
    PLAIN_NAMES,
    st.text(min_size=1, max_size=12),
    st.sampled_from(
        ["a", "A", " a", "a-seed43", "a_seed43", "a seed", "Model 1", "model_1", "(x) wide", "Ünïcode", "1"]
    ),
)
MODEL_TABLE = st.fixed_dictionaries(
    {"name": NAMES, "hidden": st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=3)},
    optional={
        "activation": st.sampled_from(["selu", "relu", "tanh", "gelu"]) | st.sampled_from(["Relu", "", "x"]),
        "dropout": st.floats(0, 0.99) | st.sampled_from([1.0, -0.1]),
        "epochs": st.integers(1, 5) | st.sampled_from([0, 10**6, -1]),
        "batch_size": st.integers(1, 512) | st.sampled_from([0, 2**40]),
        "notes": st.text(max_size=20),
    },
)
FAMILY_KEYS = st.sampled_from(
    ["name", "hidden", "activation", "initializer", "dropout", "epochs", "batch_size", "notes", "bogus"]
)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan" if value != value else ("inf" if value > 0 else "-inf") if abs(value) == float("inf") else repr(value)
        )
    if isinstance(value, str):  # a TOML basic string: control characters escaped, the rest as it is
        body = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in value)
        return f'"{body}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def _family_text(models: list[dict], defaults: dict, margin) -> str:
    lines = [] if margin is None else [f"margin = {_toml_value(margin)}"]
    if defaults:
        lines += ["[defaults]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in defaults.items())]
    for table in models:
        lines += ["[[model]]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def _load_family_or_one_line(path: Path):
    from job.family import load_family
    from job.specs import SpecError

    try:
        family = load_family(path)
    except SpecError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
        event("refused: " + re.sub(r"'.*?'|\d+", "_", str(exc).split(": ", 1)[-1])[:60])
        return None
    event("loaded")
    names = []
    for spec in family.specs:
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", spec.slug), spec.slug
        for seed in (None, 43, 44):
            names += [pred_column(spec.slug, seed), f"models/{spec.slug}" + (f"-seed{seed}" if seed else "") + ".keras"]
    assert len(names) == len(set(names)), names  # every derived name is one model's and one seed's
    return family


@FUZZ
@given(
    models=st.lists(st.one_of(MODEL_TABLE, st.dictionaries(FAMILY_KEYS, FAMILY_VALUES, max_size=6)), max_size=5),
    defaults=st.one_of(st.just({}), st.dictionaries(FAMILY_KEYS, FAMILY_VALUES, max_size=3)),
    optimizer=st.just({})
    | st.fixed_dictionaries({"name": st.sampled_from(["adam", "sgd"]), "learning_rate": FAMILY_VALUES})
    | st.dictionaries(st.sampled_from(["name", "learning_rate", "epsilon", "momentum", "x"]), FAMILY_VALUES,
                              max_size=3),
    margin=st.one_of(st.none(), st.floats(0, 20), FAMILY_VALUES),
)  # fmt: skip
def test_random_family_tables_load_or_are_one_line(models, defaults, optimizer, margin):
    if models and optimizer:
        models[0]["optimizer"] = optimizer
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "family.toml"
        path.write_text(_family_text(models, defaults, margin), encoding="utf-8")
        _load_family_or_one_line(path)


@FUZZ
@given(data=st.binary(max_size=1024), bom=st.booleans())
def test_random_bytes_as_a_family_file_are_one_line(data, bom):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "family.toml"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
        _load_family_or_one_line(path)


@FUZZ
@given(edits=EDITS)
def test_mutated_example_families_load_or_are_one_line(edits):
    original = (REPO / "examples" / "seed-plus.toml").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "family.toml"
        path.write_bytes(_mutate(original, edits))
        _load_family_or_one_line(path)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(edits=EDITS)
def test_mutated_families_through_job_models_are_exit_0_or_2(edits):
    from click.testing import CliRunner

    from job.cli import main

    original = (REPO / "examples" / "seed-plus.toml").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "family.toml"
        path.write_bytes(_mutate(original, edits))
        result = CliRunner().invoke(main, ["models", "--spec-file", str(path)])
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output


@settings(FUZZ, max_examples=4 * FUZZ.max_examples)  # a few percent load whole: give them room
@given(models=st.lists(MODEL_TABLE, min_size=1, max_size=6, unique_by=lambda t: t["name"].strip().lower()))
def test_plausible_families_load_with_unique_valid_names_or_are_one_line(models):
    """Mostly valid tables, with names chosen to collide (case, spaces, seed suffixes, slugs)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "family.toml"
        path.write_text(_family_text(models, {}, None), encoding="utf-8")
        _load_family_or_one_line(path)
