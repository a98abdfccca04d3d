"""Family files that train: the examples end to end, and a family's file kept with its run (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO
from test_family import _run_example

from job.family import load_family

EXAMPLES = sorted((REPO / "examples").glob("*.toml"))
GOOD = '[[model]]\nname = "a"\nhidden = [4]\n'

CASES = {
    "margin under [defaults]": (
        "[defaults]\nepochs = 2\nmargin = 2.0\n" + GOOD,
        "'margin' is inside [defaults]",
        "move it to the top of the file",
    ),
    "name not starting with a letter or digit": (
        '[[model]]\nname = "(baseline) wide"\nhidden = [4]\n',
        "'name' is '(baseline) wide'",
        "start the name with a letter",
    ),
    "name starting with a non-ASCII letter": (
        '[[model]]\nname = "Ärger"\nhidden = [4]\n',
        "models/_rger.keras",
        "start the name with a letter a-z or a digit",
    ),
    "name ending like a seed suffix": (
        GOOD + '[[model]]\nname = "a-seed43"\nhidden = [4]\n',
        "'name' is 'a-seed43', which ends like a repeat's seed suffix",
        "rename it",
    ),
    "name ending like a seed column": ('[[model]]\nname = "a_Seed7"\nhidden = [4]\n', "seed suffix", "rename it"),
    "margin not a number": ('margin = "one"\n' + GOOD, "'margin' is 'one'", "percentage points"),
    "margin out of range": ("margin = 150\n" + GOOD, "'margin' is 150", "from 0 to 100"),
    "margin negative": ("margin = -1.0\n" + GOOD, "'margin' is -1.0", "from 0 to 100"),
    "toml syntax": ('[[model]]\nname = "a"\nhidden = [4\n', "not valid TOML", "line"),
    "unknown key, near miss": (GOOD + "activaton = 'relu'\n", "unknown key 'activaton'", "did you mean 'activation'?"),
    "unknown top-level key": ("[defualts]\nepochs = 2\n" + GOOD, "unknown key 'defualts'", "did you mean 'defaults'?"),
    "wrong type": (GOOD + 'epochs = "ten"\n', "'epochs' is 'ten'", "whole number"),
    "empty hidden": ('[[model]]\nname = "a"\nhidden = []\n', "'hidden' is missing or empty", "hidden widths"),
    "non-positive hidden": ('[[model]]\nname = "a"\nhidden = [4, 0]\n', "'hidden' is [4, 0]", "1 to 100,000"),
    "missing hidden": ('[[model]]\nname = "a"\n', "'hidden' is missing", "hidden widths"),
    "unknown activation": (GOOD + 'activation = "rellu"\n', "'activation' is 'rellu'", "did you mean 'relu'?"),
    "unknown initializer": (GOOD + 'initializer = "he"\n', "'initializer' is 'he'", "choose one of"),
    "unknown optimizer": (GOOD + 'optimizer = { name = "adagrad" }\n', "'optimizer.name' is 'adagrad'", "adam"),
    "unknown optimizer argument": (
        GOOD + 'optimizer = { name = "sgd", beta_1 = 0.9 }\n',
        "unknown key 'beta_1'",
        "in optimizer 'sgd'",
    ),  # fmt: skip
    "dropout 1": (GOOD + "dropout = 1.0\n", "'dropout' is 1.0", "[0, 1)"),
    "negative dropout": (GOOD + "dropout = -0.1\n", "'dropout' is -0.1", "[0, 1)"),
    "zero epochs": (GOOD + "epochs = 0\n", "'epochs' is 0", "above 0"),
    "negative batch": (GOOD + "batch_size = -32\n", "'batch_size' is -32", "above 0"),
    "zero patience": (GOOD + "early_stopping = { patience = 0 }\n", "'early_stopping.patience' is 0", "above 0"),
    "zero learning rate": (
        GOOD + "optimizer = { learning_rate = 0.0 }\n",
        "'optimizer.learning_rate' is 0.0",
        "(0, 10]",
    ),  # fmt: skip
    "negative learning rate": (
        GOOD + "optimizer = { learning_rate = -1e-3 }\n",
        "learning_rate' is -0.001",
        "(0, 10]",
    ),  # fmt: skip
    "momentum of 5": (GOOD + 'optimizer = { name = "sgd", momentum = 5 }\n', "'optimizer.momentum' is 5", "[0, 1)"),
    "nested too deeply": ("x = " + "[" * 3000 + "]" * 3000 + "\n" + GOOD, "nested too deeply", "flat tables"),
    "a model named all": ('[[model]]\nname = "All"\nhidden = [4]\n', "'name' is 'all'", "means every model"),
    "bidi control in name": ('[[model]]\nname = "a\u202eb"\nhidden = [4]\n', "'name' is", "letters, digits"),
    "too many layers": ('[[model]]\nname = "a"\nhidden = [' + "4, " * 1001 + "4]\n", "has 1002 layers", "1000"),
    "too many parameters": (
        '[[model]]\nname = "a"\nhidden = [100000, 100000]\n',
        "parameters on 784",
        "at most 1,000,000,000",
    ),  # fmt: skip
    "unknown monitor": (
        GOOD + 'early_stopping = { monitor = "val_acc" }\n',
        "'early_stopping.monitor' is 'val_acc'",
        "did you mean 'val_accuracy'?",
    ),  # fmt: skip
    "name in defaults": ('[defaults]\nname = "x"\n' + GOOD, "[defaults] sets 'name'", "move it to [[model]]"),
    "hidden in defaults": ("[defaults]\nhidden = [3]\n" + GOOD, "[defaults] sets 'hidden'", "move it"),
    "bare number name": ('[[model]]\nname = "3"\nhidden = [4]\n', "'name' is '3'", "not a bare number"),
    "comma in name": ('[[model]]\nname = "a,b"\nhidden = [4]\n', "'name' is 'a,b'", "no comma"),
    "unsafe name": ('[[model]]\nname = "../.."\nhidden = [4]\n', "'name' is '../..'", "letters, digits"),
    "duplicate names": (GOOD + GOOD, "two models are named 'a'", "its own name"),
    "colliding slugs": (
        GOOD + '[[model]]\nname = "A"\nhidden = [4]\n',
        "both be saved as models/a.keras",
        "rename one",
    ),  # fmt: skip
    "empty family": ("# nothing\n", "no [[model]] tables", "add at least one"),
    "missing name": ("[[model]]\nhidden = [4]\n", "'name' is missing", "give every model a name"),
}


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_parameter_counts_without_keras_match_built_models(path: Path):
    import numpy as np

    from job.training.model import build_model, dense_params

    for spec in load_family(path).specs:
        model = build_model(spec, 784, 10, np.zeros(784, np.float32), np.full(784, 255.0, np.float32))
        assert dense_params(model) == spec.param_count(), spec.name


@pytest.mark.slow
def test_seed_plus_runs_end_to_end_with_each_variants_settings(tmp_path):
    import hashlib

    source = REPO / "examples" / "seed-plus.toml"
    run_dir, run = _run_example("seed-plus.toml", tmp_path, "--sample", "1000", "--epochs", "1")
    assert run["family"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (run_dir / "family.toml").read_bytes() == source.read_bytes()
    by_name = {m["name"]: m for m in run["models"]}
    assert len(by_name) == 7 and by_name["M3 dropout"]["dropout"] == 0.2
    assert (by_name["M3 relu he"]["activation"], by_name["M3 relu he"]["initializer"]) == ("relu", "he_normal")
    assert by_name["M3 batch 128"]["batch_size"] == 128 and by_name["M3 batch 128"]["learning_rate"] == 0.002
    assert by_name["M3 dropout"]["monitor"] == "val_loss"
    assert len(list((run_dir / "models").iterdir())) == 7
    html = (run_dir / "report.html").read_text()
    differs = html[html.index("<h3>What differs</h3>") : html.index("<h3>Each model's settings</h3>")]
    for column in ("activation", "initializer", "dropout", "batch", "learning rate", "early stopping"):
        assert f'<th class="l">{column}</th>' in differs
    assert '<th class="l">optimizer</th>' not in differs  # every model uses Adam: not a difference


@pytest.mark.slow
def test_the_smoke_family_runs_with_sgd(tmp_path):
    _, run = _run_example("smoke.toml", tmp_path, "--sample", "300", "--models", "tiny sgd")
    (model,) = run["models"]
    assert model["optimizer"] == "sgd" and model["optimizer_args"] == {"momentum": 0.9, "nesterov": True}
    assert model["status"] == "ok" and "--models 'tiny sgd'" in run["command"]
    assert run["choice"]["margin_pp"] == 2.0 and "--margin 2.0" in run["command"]  # the file's margin, kept
    _, beaten = _run_example("smoke.toml", tmp_path / "cli", "--sample", "300", "--margin", "0.5")
    assert beaten["choice"]["margin_pp"] == 0.5 and beaten["config"]["margin"] == 0.5
