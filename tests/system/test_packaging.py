"""The wheel, installed as the container installs it (not the editable checkout), runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import REPO, write_hand_run


@pytest.mark.slow
def test_the_built_wheel_installs_and_runs(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("keras_batch_job-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    # the wheel's package comes first on the path; its dependencies come from this environment
    env = os.environ | {"PYTHONPATH": str(site)}
    # every module under job/, imported from the wheel: a subpackage left out of it fails here
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "job").rglob("*.py")
    )
    code = f"import importlib, job; [importlib.import_module(m) for m in {modules!r}]; print(job.__file__)"
    where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.returncode == 0 and where.stdout.startswith(str(site)), where.stderr
    shipped = {p.name for p in (site / "job" / "report" / "templates").glob("*.html")}
    assert shipped == {p.name for p in (REPO / "job" / "report" / "templates").glob("*.html")}
    models = subprocess.run([str(site / "bin" / "job"), "models"], capture_output=True, text=True, env=env)
    assert models.returncode == 0 and "1,168,460" in models.stdout, models.stderr
    write_hand_run(tmp_path / "run")  # the templates ship inside the wheel
    job_report = [str(site / "bin" / "job"), "report", str(tmp_path / "run")]
    report = subprocess.run(job_report, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "run" / "report.html").stat().st_size > 10_000
