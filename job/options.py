"""Click options built from RunConfig's fields, so `run` and `check-data` declare each option once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import click

from job.config import RunConfig, parse_image_shape
from job.errors import EXIT_BAD_INPUT, JobError  # bad data, bad options, unwritable output: fix the input, rerun

DATA_OPTIONS = ("image_shape", "label_column", "allow_pickle")  # what `check-data` shares with `run`


class BadInput(click.ClickException):
    """One line on stderr and exit 2: the input or an option is wrong, and the message says the fix."""

    exit_code = EXIT_BAD_INPUT

    @classmethod
    def of(cls, error: JobError) -> BadInput:
        """The library's refusal as the command's: its message, and its exit code."""
        bad = cls(str(error))
        vars(bad)["exit_code"] = error.exit_code  # per instance: click reads it from the exception
        return bad

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _image_shape(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    try:
        return parse_image_shape(value)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _nonempty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise BadInput(f"{param.opts[0]} is empty; give a value or leave the option out")
    return value


def _click_option(name: str) -> Callable:
    f = next(f for f in fields(RunConfig) if f.name == name)
    meta = dict(f.metadata["click"])
    kwargs: dict = {"default": f.default, "help": f.metadata["help"], "show_default": f.default is not None}
    if "choices" in meta:
        kwargs["type"] = click.Choice(meta.pop("choices"))
    elif "fmin" in meta:
        kwargs["type"] = click.FloatRange(min=meta.pop("fmin"), max=meta.pop("fmax", 64.0))
    if "envvar" in meta:
        kwargs |= {"envvar": meta.pop("envvar"), "show_envvar": True}
    elif "min" in meta or "max" in meta:
        kwargs["type"] = click.IntRange(min=meta.pop("min", None), max=meta.pop("max", None))
    if f.type == "bool" and "/" not in f.metadata["flag"]:
        kwargs |= {"is_flag": True, "show_default": False}
    if name == "image_shape":
        kwargs["callback"] = _image_shape
    if meta.pop("nonempty", False):
        kwargs["callback"] = _nonempty
    if name in (
        "data",
        "models",
        "splits",
        "margin",
        "backend",
        "ray_address",
        "gpus_per_task",
        "cpus_per_task",
        "spec_file",
    ):
        kwargs["show_default"] = False
    return click.option(f.metadata["flag"], name, **kwargs)


def config_options(names: tuple[str, ...]) -> Callable:
    """Decorate a command with the click options of these RunConfig fields, in field order."""

    def decorate(command: Callable) -> Callable:
        for name in reversed(names):  # click lists options in the order the decorators are written
            command = _click_option(name)(command)
        return command

    return decorate


run_options = config_options(tuple(f.name for f in fields(RunConfig)))
data_options = config_options(DATA_OPTIONS)
