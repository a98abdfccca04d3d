"""Model families from TOML files: every validation case is one line and exit 2, before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import REPO

from job.cli import main
from job.family import load_family, seed_specs

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
    "name of non-ASCII letters only": (
        '[[model]]\nname = "日本"\nhidden = [4]\n',
        "'name' is '日本'",
        "with at least one ASCII letter or digit",
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
    "epsilon that is 0 in float32": (
        GOOD + "optimizer = { epsilon = 1e-50 }\n",
        "'optimizer.epsilon' is 1e-50, which is 0 in float32",
        "use at least 1.2e-38",
    ),
    "learning rate that is 0 in float32": (
        GOOD + "optimizer = { learning_rate = 1e-300 }\n",
        "'optimizer.learning_rate' is 1e-300, which is 0 in float32",
        "use at least 1.2e-38",
    ),
    "nested too deeply": ("x = " + "[" * 3000 + "]" * 3000 + "\n" + GOOD, "nested too deeply", "flat tables"),
    "a model named all": ('[[model]]\nname = "All"\nhidden = [4]\n', "'name' is 'all'", "means every model"),
    "bidi control in name": ('[[model]]\nname = "a\u202eb"\nhidden = [4]\n', "'name' is", "letters, digits"),
    "too many layers": ('[[model]]\nname = "a"\nhidden = [' + "4, " * 100 + "4]\n", "has 101 layers", "at most 100"),
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
    "a bad value in defaults": ("[defaults]\nepochs = 0\n" + GOOD, "[defaults]: 'epochs' is 0", "above 0"),
    "a bad optimizer in defaults": (
        '[defaults]\noptimizer = { name = "sgd", beta_1 = 0.9 }\n' + GOOD,
        "[defaults]: unknown key 'beta_1'",
        "in optimizer 'sgd'",
    ),
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


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_bad_family_is_one_line_and_exit_2_before_data(case, tmp_path):
    text, *needles = CASES[case]
    family = tmp_path / "family.toml"
    family.write_text(text)
    for args in (["models"], ["run", "--data", str(tmp_path / "no-such-data.csv"), "--out", str(tmp_path / "o")]):
        result = CliRunner().invoke(main, [*args, "--spec-file", str(family)])
        assert result.exit_code == 2, (case, result.output, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(family) in lines[0] and all(n in lines[0] for n in needles), lines[0]
        assert "no-such-data" not in lines[0]  # the family is checked before the data is read
    assert not (tmp_path / "o").exists()


def test_a_missing_or_binary_family_file_is_one_line(tmp_path):
    for path, needle in ((tmp_path / "none.toml", "cannot read it"), (tmp_path / "bin.toml", "not UTF-8")):
        if path.name == "bin.toml":
            path.write_bytes(b"\xff\xfe\x00")
        result = CliRunner().invoke(main, ["models", "--spec-file", str(path)])
        assert result.exit_code == 2 and needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_family_file_is_read_like_the_data_files(tmp_path):
    """A FIFO (would block), a device (never ends), a folder and a huge file: one line each, at once."""
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as fh:
        fh.truncate(3 * 2**30)  # sparse: 3 GB that cost nothing on disk
    zero_link = tmp_path / "zero.toml"
    zero_link.symlink_to("/dev/zero")
    cases = ((fifo, "a FIFO, not a regular file"), (zero_link, "a character device"), (tmp_path, "a directory"),
             (huge, "larger than 1 MiB"))  # fmt: skip
    for path, needle in cases:
        for args in (["models"], ["run", "--out", str(tmp_path / "o")]):
            result = CliRunner().invoke(main, [*args, "--spec-file", str(path)])
            lines = result.stderr.strip().splitlines()
            assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], (path, result.stderr)
            assert str(path) in lines[0] and "--spec-file" in lines[0]
    assert not (tmp_path / "o").exists()


def test_a_family_file_with_a_bom_reads_as_without(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + ("margin = 0.5\n" + GOOD).encode())
    family = load_family(path)
    assert family.margin_pp == 0.5 and [s.name for s in family.specs] == ["a"]


def test_a_family_carries_its_own_margin(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text("margin = 2\n" + GOOD)
    assert load_family(path).margin_pp == 2.0
    path.write_text(GOOD)
    assert load_family(path).margin_pp is None and load_family(None).margin_pp is None


def test_defaults_and_model_keys_merge_with_the_seed_protocol(tmp_path):
    family = tmp_path / "f.toml"
    family.write_text(
        '[defaults]\nactivation = "relu"\noptimizer = { name = "sgd", momentum = 0.9 }\n'
        '[[model]]\nname = "a"\nhidden = [8]\noptimizer = { learning_rate = 0.05 }\n'
        '[[model]]\nname = "b"\nhidden = [8]\nactivation = "tanh"\noptimizer = { name = "adam" }\n'
        'early_stopping = { monitor = "val_accuracy" }\n'
    )
    a, b = load_family(family).specs
    assert (a.activation, a.optimizer, a.learning_rate, a.optimizer_args) == ("relu", "sgd", 0.05, (("momentum", 0.9),))
    assert (b.activation, b.optimizer, b.optimizer_args, b.learning_rate) == ("tanh", "adam", (), 0.001)
    assert (b.monitor, b.patience, b.batch_size, b.initializer, b.epochs) == ("val_accuracy", 3, 32, "lecun_normal", 10)


def test_a_string_optimizer_in_defaults_merges_like_a_table(tmp_path):
    family = tmp_path / "f.toml"
    family.write_text(
        '[defaults]\noptimizer = "sgd"\n[[model]]\nname = "a"\nhidden = [8]\noptimizer = { learning_rate = 0.1 }\n'
        '[[model]]\nname = "b"\nhidden = [8]\noptimizer = { momentum = 0.9 }\n'
    )
    a, b = load_family(family).specs
    assert (a.optimizer, a.learning_rate) == ("sgd", 0.1)
    assert (b.optimizer, b.optimizer_args) == ("sgd", (("momentum", 0.9),))


def test_the_built_in_family_is_the_seed_and_the_examples_are_valid():
    assert [s.name for s in seed_specs()] == ["Model 1", "Model 2", "Model 3", "Model 4"]
    names = {p.name: [s.name for s in load_family(p).specs] for p in EXAMPLES}
    assert names["seed-plus.toml"][:4] == ["Model 1", "Model 2", "Model 3", "Model 4"] and len(names) >= 2
    plus = {s.name: s for s in load_family(REPO / "examples" / "seed-plus.toml").specs}
    assert plus["M3 dropout"].dropout == 0.2 and plus["M3 batch 128"].batch_size == 128
    assert (plus["M3 relu he"].activation, plus["M3 relu he"].initializer) == ("relu", "he_normal")


def test_models_selects_by_position_or_name_from_the_file():
    result = CliRunner().invoke(main, ["models", "--spec-file", str(REPO / "examples" / "seed-plus.toml")])
    assert result.exit_code == 0 and "M3 batch 128" in result.output and "dropout 0.2" in result.output
    from job.specs import select_specs

    specs = load_family(REPO / "examples" / "seed-plus.toml").specs
    assert [s.name for s in select_specs("M3 dropout,1", specs)] == ["Model 1", "M3 dropout"]


def test_resume_trains_the_copied_family_not_the_edited_file(tmp_path, monkeypatch, small_csv):
    import job.pipeline as pipeline
    from job.config import RunConfig

    family = tmp_path / "f.toml"
    family.write_text(GOOD)
    seen = []

    def stop(plan, *args, **kwargs):
        seen.append([s.name for s in plan.specs])
        raise KeyboardInterrupt  # as a user's Ctrl-C would, once the run folder exists

    monkeypatch.setattr(pipeline, "split", stop)
    config = RunConfig(data=str(small_csv), spec_file=str(family), out=str(tmp_path / "out"), backend="tensorflow")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(config)
    (partial,) = (tmp_path / "out").iterdir()
    assert (partial / "family.toml").read_text() == GOOD
    family.write_text(GOOD.replace('"a"', '"edited"'))
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(RunConfig(), resume=partial)
    assert seen == [["a"], ["a"]]
    (partial / "family.toml").write_text(GOOD + "# edited\n")
    with pytest.raises(Exception, match="family.toml: changed since the run started"):
        pipeline.run(RunConfig(), resume=partial)


def _run_example(name: str, out: Path, *args: str) -> tuple[Path, dict]:
    """`job run --spec-file examples/NAME ARGS`, and its run directory and run.json."""
    import json

    from helpers import run_job

    proc = run_job("run", "--spec-file", str(REPO / "examples" / name), *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list(out.iterdir())
    return run_dir, json.loads((run_dir / "run.json").read_text())


def test_optimizer_arguments_in_defaults_are_for_the_models_own_optimizers(tmp_path):
    """[defaults] may give momentum for models that each say sgd: it is checked against each model's optimizer."""
    family = tmp_path / "f.toml"
    family.write_text('[defaults]\noptimizer = { momentum = 0.9 }\n\n[[model]]\nname = "a"\nhidden = [4]\n'
                      'optimizer = { name = "sgd" }\n')  # fmt: skip
    (spec,) = load_family(family).specs
    assert spec.optimizer == "sgd" and spec.optimizer_args == (("momentum", 0.9),)
    family.write_text(
        '[defaults]\noptimizer = { name = "sgd", momentum = 2.0 }\n\n[[model]]\nname = "a"\nhidden = [4]\n'
    )
    from job.specs import SpecError

    with pytest.raises(SpecError, match=r"\[defaults\]: 'optimizer.momentum' is 2.0"):
        load_family(family)


def test_sgd_without_a_learning_rate_gets_ours_not_kerass_and_the_docs_say_so(tmp_path):
    """#25 item 16: an optimizer without `learning_rate` trains at 0.001 (Keras's SGD default is 0.01)."""
    path = tmp_path / "sgd.toml"
    path.write_text('[[model]]\nname = "s"\nhidden = [8]\noptimizer = { name = "sgd" }\n')
    (spec,) = load_family(path).specs
    assert spec.optimizer == "sgd" and spec.learning_rate == 0.001
    docs = " ".join((Path(__file__).parents[1] / "docs" / "families.md").read_text().split())
    assert "An optimizer without `learning_rate` gets 0.001" in docs and "Keras's own default is 0.01" in docs
