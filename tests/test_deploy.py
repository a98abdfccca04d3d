"""The deploy files match the project: a valid `job run` entrypoint, GPU limits, /reports where it writes."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from helpers import REPO

from job.cli import main

yaml = pytest.importorskip("yaml")


def _parse_run(command: str):
    words = shlex.split(command)
    assert words[:2] == ["job", "run"], command
    return main.commands["run"].make_context("run", words[2:]).params


def test_the_rayjob_manifest_runs_a_valid_job_with_gpu_workers_and_reports_mounted():
    manifest = yaml.safe_load((REPO / "deploy" / "rayjob.yaml").read_text())
    assert manifest["kind"] == "RayJob" and manifest["apiVersion"].startswith("ray.io/")
    params = _parse_run(manifest["spec"]["entrypoint"])
    assert params["executor"] == "ray"
    cluster = manifest["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    mounts = [m["mountPath"] for c in head["containers"] for m in c.get("volumeMounts", [])]
    assert params["out"] in mounts  # the driver runs on the head and writes the run directory there
    for group in cluster["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            assert float(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1


def test_the_slurm_script_runs_a_valid_job_and_is_valid_bash():
    script = (REPO / "deploy" / "slurm.sh").read_text()
    assert subprocess.run(["bash", "-n", str(REPO / "deploy" / "slurm.sh")]).returncode == 0
    (line,) = [ln for ln in script.splitlines() if '/bin/job" run' in ln]
    command = line.replace('"$VENV/bin/job"', "job").replace('"$head_ip:$PORT"', "10.0.0.1:6379")
    params = _parse_run(command.replace('"$OUT"', "/scratch/reports"))
    assert params["executor"] == "ray" and params["ray_address"] == "10.0.0.1:6379"
    assert "ray start --head" in script.replace('"$VENV/bin/ray"', "ray") and "RAY_USAGE_STATS_ENABLED=0" in script
