"""Code shape the project holds itself to: short functions, a docstring atop every module."""

from __future__ import annotations

import ast
from pathlib import Path

JOB = Path(__file__).resolve().parent.parent / "job"
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
