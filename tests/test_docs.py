"""The docs match the code: the generated references are current, the links resolve, the README stays short."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys

from helpers import REPO

DOCS = REPO / "docs"
PAGES = [
    "protocol",
    "data",
    "families",
    "statistics",
    "run-directory",
    "run-json",
    "faults",
    "ray",
    "tracking",
    "docker",
    "packing",
    "benchmarks",
    "architecture",
    "cli",
]


def _generator():
    spec = importlib.util.spec_from_file_location("generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_references_are_current():
    """In a fresh process: click caches each command's help option, so a process that ran other tests is not
    the one a developer regenerates the files in."""
    done = subprocess.run([sys.executable, str(DOCS / "generate.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_cli_reference_has_every_command_and_the_run_json_one_every_key_with_its_meaning():
    cli = (DOCS / "cli.md").read_text(encoding="utf-8")
    for command in ("job run", "job report", "job check-data", "job models", "job export mlflow"):
        assert f"## `{command}`" in cli
    rows = [line for line in (DOCS / "run-json.md").read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    assert len(rows) > 150
    assert not [r for r in rows if r.rstrip().endswith("|  |")], "a run.json key without its one line of meaning"


def test_a_new_field_without_its_meaning_shows_as_a_gap():
    from dataclasses import dataclass

    @dataclass
    class Probe:
        meant: int  # says what it is
        unmeant: int

    assert _generator().field_notes(Probe) == {"meant": "says what it is"}


def test_every_page_exists_and_every_relative_link_resolves():
    for page in PAGES:
        assert (DOCS / f"{page}.md").is_file(), page
    for doc in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+?\.md)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).is_file(), f"{doc.name} links to {target}, which does not exist"


def test_every_dated_figure_sits_in_benchmarks():
    date = re.compile(r"\b2026-\d\d-\d\d\b")
    for doc in [REPO / "README.md", *DOCS.glob("*.md")]:
        if doc.name in ("benchmarks.md", "run-directory.md"):  # run-directory dates the old schemas, not figures
            continue
        assert not date.search(doc.read_text(encoding="utf-8")), f"{doc.name} holds a dated figure"
    bench = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    sections = bench.split("\n## ")[1:]
    assert len(sections) >= 8
    for section in sections:
        assert date.search(section) and re.search(r"`[0-9a-f]{7}`", section), section.splitlines()[0]


def test_the_readme_is_for_a_user_and_short():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "../" not in text  # nothing outside the repository


def test_the_readmes_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if line.startswith("python3 -m venv .venv") and "test]" in line)
    assert command in ci.splitlines()
    for tool in ("ruff check", "ruff format --check", "lint-imports", "mypy", "pytest"):
        assert tool in command
    shlex.split(command)  # one shell line
