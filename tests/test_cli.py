"""The CLI without training: help for every command, the model table, and refusals."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import run_job

from job.cli import main

SEED_PARAMS = [24_380, 53_730, 543_460, 1_168_460]


def _every_command(group, path=()):
    import click

    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _every_command(command, (*path, name))


def test_every_command_has_help():
    seen = []
    for path, command in _every_command(main):
        assert command.help, f"{' '.join(path)} has no help text"
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, result.output
        seen.append(" ".join(path))
    assert {"run", "report", "check-data", "models", "export", "export mlflow"} <= set(seen)


def test_models_lists_the_table():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "[600, 200, 500, 300, 400, 400, 100, 50]" in result.output and "1,168,460" in result.output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = run_job("run", "--sample", "300", "--epochs", "1", "--out", str(out), "--seed", "5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, proc
