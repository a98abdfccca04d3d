"""The CLI without training: help for every command, the model table, and refusals."""

from __future__ import annotations

from click.testing import CliRunner

from job.cli import main


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
