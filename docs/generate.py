"""Write the generated references: docs/cli.md from the click commands' help, docs/run-json.md from the
dataclasses that `run.json` is read back into. `tests/test_docs.py` fails when either file is stale.

    python docs/generate.py          # rewrite both
    python docs/generate.py --check  # exit 1 if either is stale
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import sys
import tokenize
import types
import typing
from pathlib import Path

import click

DOCS = Path(__file__).resolve().parent
WIDTH = 100  # the help text is wrapped at this width, whatever the terminal


def cli_reference() -> str:
    from job.cli import main

    out = [
        "# CLI reference",
        "",
        "Generated from the commands' own `--help` by `python docs/generate.py`; do not edit by hand.",
        "",
    ]
    for path, command, ctx in _commands(main, "job", None):
        out += [f"## `{path}`", "", "```text", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(out)


def _commands(command: click.Command, name: str, parent: click.Context | None):
    ctx = command.make_context(
        name, [], parent=parent, resilient_parsing=True, max_content_width=WIDTH, terminal_width=WIDTH
    )
    yield ctx.command_path, command, ctx
    if isinstance(command, click.Group):
        for sub in sorted(command.list_commands(ctx)):
            child = command.get_command(ctx, sub)
            if child is not None:
                yield from _commands(child, sub, ctx)


def run_json_reference() -> str:
    from job.result import RunResult
    from job.rundir.layout import SCHEMA_VERSION

    out = [
        "# `run.json` reference",
        "",
        f"Schema version {SCHEMA_VERSION}. Generated from the dataclasses in `job/result.py` and `job/stats/`, which",
        "`job.rundir.reader.read_run` reads the file back into, by `python docs/generate.py`; do not edit by hand.",
        "A type `X | None` is written as JSON `null` when absent; a non-finite float is written as `null` too.",
        "",
    ]
    seen: set[type] = set()
    queue: list[type] = [RunResult]
    while queue:
        cls = queue.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        out += [f"## `{cls.__name__}`", "", _first_line(cls), "", "| key | type | meaning |", "|---|---|---|"]
        for name, tp, note in json_keys(cls):
            queue += [c for c in _dataclasses_in(tp) if c not in seen]
            out.append(f"| `{name}` | {_type_name(tp)} | {note.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def json_keys(cls: type) -> list[tuple[str, typing.Any, str]]:
    """(key, type, meaning) of each key `cls` is written as: its fields, with a model's spec flat in it and the
    copies of the choice that run.json keeps at the top level."""
    from job.result import SPEC_KEYS, ModelResult, RunResult
    from job.specs import ModelSpec

    notes, hints = field_notes(cls), typing.get_type_hints(cls)
    rows: list[tuple[str, typing.Any, str]] = []
    for f in dataclasses.fields(cls):
        if cls is ModelResult and f.name == "spec":
            spec_notes, spec_hints = field_notes(ModelSpec), typing.get_type_hints(ModelSpec)
            spec_hints["slug"], spec_notes["slug"] = str, "the name as file names and CSV columns spell it"
            spec_hints["optimizer_args"] = dict[str, float | bool]  # an object in run.json
            rows += [(k, spec_hints[k], spec_notes.get(k, "")) for k in SPEC_KEYS]
            continue
        note = notes.get(f.name, "")
        if "flag" in f.metadata:  # RunConfig: the option's own flag and help
            note = f"`{f.metadata['flag']}`: {f.metadata['help']}"
        rows.append((f.name, hints[f.name], note))
        if cls is RunResult and f.name == "models":
            for name in ("chosen_model", "chosen_reason"):
                prop = getattr(RunResult, name)
                rows.append((name, typing.get_type_hints(prop.fget)["return"], _first_line(prop.fget)))
    return rows


def field_notes(cls: type) -> dict[str, str]:
    """Each field's trailing comment in the class body: the one line the reference shows."""
    source = inspect.getsource(cls)
    notes: dict[str, str] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        line = tok.line
        match = re.match(r"\s+(\w+)\s*:", line)
        if match and tok.start[1] > line.index(":"):
            notes[match.group(1)] = tok.string.lstrip("# ").strip()
    return notes


def _first_line(cls: typing.Any) -> str:
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(cls.__name__ + "("):  # the dataclass's generated signature, not a docstring
        return ""
    return doc.split("\n\n")[0].replace("\n", " ")


def _dataclasses_in(tp: typing.Any) -> list[type]:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [tp]
    return [c for arg in typing.get_args(tp) for c in _dataclasses_in(arg)]


def _type_name(tp: typing.Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin in (list, tuple):
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis)
        return f"list[{inner}]"
    if origin is dict:
        return f"object of {_type_name(args[1])}"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"[`{tp.__name__}`](#{tp.__name__.lower()})"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, getattr(tp, "__name__", str(tp)))


GENERATED = {"cli.md": cli_reference, "run-json.md": run_json_reference}


def main() -> None:
    """Write both files; with --check, write nothing and exit 1 naming any file that is stale."""
    stale = []
    for name, make in GENERATED.items():
        text = make() + "\n"
        if "--check" in sys.argv[1:]:
            if (DOCS / name).read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        (DOCS / name).write_text(text, encoding="utf-8")
        print(f"wrote docs/{name}", file=sys.stderr)
    if stale:
        sys.exit(f"stale: {', '.join('docs/' + n for n in stale)}; run python docs/generate.py")


if __name__ == "__main__":
    main()
