"""Code shape the project holds itself to: short functions, a docstring atop every module."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "job"
MAX_FUNCTION_LINES = 60


def _modules():
    return sorted(JOB.rglob("*.py"))


def test_no_function_is_over_60_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(JOB.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_every_module_says_what_it_is_for():
    missing = [str(p) for p in _modules() if p.stat().st_size and not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, missing


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter's contract in `root/pyproject.toml`, over the `job` package in `root`."""
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(exe)], cwd=root, capture_output=True, text=True, timeout=120, env=os.environ | {"PYTHONPATH": str(root)}
    )


def test_the_layers_contract_holds():
    proc = _lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the arrow that ran back up: statistics importing report formatting
        ("stats/compare.py", "from job.report.format import fmt_pp", "job.stats is not allowed to import job.report"),
        # the circle that was: the training loop importing its executor
        ("training/loop.py", "from job.executors.local import LocalExecutor", "job.training is not allowed to import"),
        # a lazy import counts too
        (
            "rundir/writer.py",
            "def _f():\n    from job.evaluate import model_result",
            "job.rundir is not allowed to import",
        ),
        # a circle inside one package
        ("rundir/reader.py", "from job.rundir.resume import lock", "No cycles are allowed in job.rundir"),
    ],
)
def test_the_layers_contract_fails_when_an_arrow_runs_back_up(tmp_path, module, line, broken):
    shutil.copytree(JOB, tmp_path / "job", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with (tmp_path / "job" / module).open("a", encoding="utf-8") as fh:
        fh.write(f"\n\n{line}  # noqa\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode == 1 and broken in proc.stdout, proc.stdout + proc.stderr


def test_package_inits_import_nothing():
    inits = [p for p in _modules() if p.name == "__init__.py"]
    assert len(inits) >= 7
    for path in inits:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], path


def test_at_most_five_format_skips_each_with_its_reason():
    skips = [
        (p, line) for p in _modules() for line in p.read_text(encoding="utf-8").splitlines() if "fmt: skip" in line
    ]
    assert len(skips) <= 5, skips
