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
    header, first = result.output.splitlines()[:2]
    assert first[header.index("slug") :].startswith("model_1 ")  # what --pack SLUG=N takes


def test_the_models_table_keeps_its_columns_at_a_hundred_million_parameters(tmp_path):
    family = tmp_path / "big.toml"
    family.write_text('[[model]]\nname = "small"\nhidden = [4]\n\n[[model]]\nname = "big"\nhidden = [20000, 20000]\n')
    result = CliRunner().invoke(main, ["models", "--spec-file", str(family)])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    settings_at = header.index("settings")
    assert all(row.index("selu/") == settings_at for row in rows), result.output
    assert "415,920,010  selu" in result.output


def test_an_export_of_an_interrupted_run_is_refused(tmp_path):
    from helpers import write_hand_run

    partial = tmp_path / "20260101-000000-abcdef.partial"
    write_hand_run(partial)
    (partial / "config.json").write_text("{}")
    result = CliRunner().invoke(
        main, ["export", "mlflow", str(partial), "--tracking-uri", f"sqlite:///{tmp_path}/x.db"]
    )
    assert result.exit_code == 2 and "an interrupted run, not a finished one" in result.stderr, result.stderr
    assert f"job run --resume {partial}" in result.stderr and not (tmp_path / "x.db").exists()
