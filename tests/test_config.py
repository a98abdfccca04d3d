"""Run options live in one place: RunConfig's fields make the click options and the reproduce line."""

from __future__ import annotations

import shlex
from dataclasses import fields, replace

import pytest
from click.testing import CliRunner

from job.cli import main
from job.config import RunConfig


def parse(args: list[str]) -> RunConfig:
    ctx = main.commands["run"].make_context("run", list(args))
    params = dict(ctx.params)
    params.pop("resume")
    return RunConfig(**params)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--seed", "0", "--backend", "jax"],
        [
            "--data", "/data/my file.csv", "--models", "1,3", "--epochs", "2", "--sample", "300", "--seed", "9",
            "--precision", "mixed_bfloat16", "--backend", "tensorflow", "--out", "/tmp/x", "--image-shape", "24x32",
            "--label-column", "digit", "--allow-pickle", "--steps-per-execution", "4", "--no-deterministic",
        ],
    ],
)  # fmt: skip
def test_parse_config_command_line_parse_round_trips(args):
    config = parse(args)
    words = shlex.split(config.command_line())
    assert words[:2] == ["job", "run"]
    again = parse(words[2:])
    assert replace(again, out=config.out) == config
    assert "--out" not in words


def test_every_field_is_an_option_of_run():
    names = {p.name for p in main.commands["run"].params}
    assert {f.name for f in fields(RunConfig)} <= names


def test_check_data_shares_the_data_options():
    run_opts = {p.name: p for p in main.commands["run"].params}
    for p in main.commands["check-data"].params:
        if p.name in run_opts:
            assert p.opts == run_opts[p.name].opts and p.help == run_opts[p.name].help


def test_a_bad_image_shape_is_one_line_exit_2(tmp_path):
    for cmd in (["check-data", "x.csv"], ["run", "--out", str(tmp_path / "o")]):
        result = CliRunner().invoke(main, [*cmd, "--image-shape", "28by28"])
        assert result.exit_code == 2, result.output
        expected = "error: --image-shape '28by28': write it as HxW, for example 28x28"
        assert result.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "o").exists()


def test_config_reads_back_what_it_wrote():
    from job.rundir.typed_json import parse_as, to_jsonable

    config = RunConfig(image_shape=(24, 32), seed=3, repeats=2)
    assert parse_as(RunConfig, to_jsonable(config)) == config
    assert config.seeds == [3, 4]


def test_repeats_that_run_past_the_seed_range_are_one_line(tmp_path):
    args = ["run", "--seed", str(2**32 - 2), "--repeats", "3", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "lower --seed" in result.stderr
    assert not (tmp_path / "o").exists()
