"""Build the real Dockerfile and run the smoke job in it, on CPU, with no registry.

A base image is made with debootstrap (Debian bookworm, python3, python3-venv) and
loaded with `docker import`; the Dockerfile is built on it with --network host.
The container then runs with --network none, as a non-root user, writing to a
bind-mounted folder. Slow (minutes): it is CI's one slow step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "job-ci-base:bookworm"
IMAGE = "job-ci:test"


def sh(*cmd: str, timeout: int = 900, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def _engine_up() -> bool:
    return shutil.which("docker") is not None and sh("docker", "info", check=False, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def engine():
    if not _engine_up():
        if not (shutil.which("dockerd") and os.geteuid() == 0):
            if os.environ.get("CI"):
                pytest.fail("CI needs docker.io and root to run the container test (.ci/run installs it)")
            pytest.skip("no Docker engine and cannot start one")
        log = open("/tmp/job-dockerd.log", "w")
        subprocess.Popen(
            ["dockerd", "--storage-driver=vfs", "--iptables=false", "--bridge=none"],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        for _ in range(60):
            if _engine_up():
                break
            time.sleep(1)
        else:
            pytest.fail("dockerd did not start; see /tmp/job-dockerd.log")
    yield


def _debian_mirror() -> str:
    """The host's own Debian mirror, read from its apt sources."""
    for path in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if path.exists():
            text = path.read_text()
            m = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
            if m:
                return m.group(1)
    pytest.fail("no Debian mirror in the host's apt sources")


@pytest.fixture(scope="module")
def image(engine, tmp_path_factory):
    made = []
    if sh("docker", "image", "inspect", BASE, check=False).returncode != 0:
        root = tmp_path_factory.mktemp("rootfs") / "bookworm"
        sh(
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(root),
            _debian_mirror(),
            timeout=900,
        )
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
        (root / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        sh("docker", "import", "-", BASE, stdin=tar.stdout)
        tar.wait()
        shutil.rmtree(root, ignore_errors=True)
        made.append(BASE)
    sh(
        "docker",
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={BASE}",
        "--build-arg",
        "EXTRAS=ray",
        "-t",
        IMAGE,
        str(REPO),
        timeout=1500,
    )
    made.append(IMAGE)
    yield IMAGE
    for ref in made:
        sh("docker", "image", "rm", "-f", ref, check=False)


def docker_run(image: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`docker run --rm --network none [options] IMAGE [job args]`; options and job args split at "--"."""
    split = args.index("--")
    return sh(
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        *args[:split],
        image,
        *args[split + 1 :],
        timeout=timeout,
        check=False,
    )


def test_smoke_job_in_container(image, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:  # run as a distinct non-root caller, as a user on a GPU node would
        uid = gid = 4321
        os.chown(reports, uid, gid)
    # docs/docker.md's line, with the smoke options and no network
    proc = docker_run(
        image,
        "--user",
        f"{uid}:{gid}",
        "-v",
        f"{reports}:/reports",
        "--",
        "run",
        "--sample",
        "300",
        "--epochs",
        "1",
    )  # no --out: the image's JOB_OUT puts the run in the mounted /reports
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list(reports.iterdir())
    for name in ("report.html", "run.json"):
        st = (run_dir / name).stat()
        assert (st.st_uid, st.st_gid) == (uid, gid)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["precision"]["policy"] == "float32" and run["environment"]["device"]["kind"] == "CPU"
    assert len(run["models"]) == 4 and all(m["status"] == "ok" for m in run["models"])
    assert "device: CPU" in proc.stderr


def test_container_user_is_not_root(image):
    proc = sh("docker", "run", "--rm", "--network", "none", "--entrypoint", "id", image, "-u")
    assert proc.stdout.strip() == "10001"


def test_bad_data_exits_2_from_the_container(image, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    bad = data / "bad.csv"
    bad.write_text("label,pixel0\n0,12\n1,300\n")  # two classes, so the pixel is what is wrong
    bad.chmod(0o644)

    def run_bad() -> subprocess.CompletedProcess:
        return docker_run(image, "-v", f"{data}:/data:ro", "--", "run", "--data", "/data/bad.csv", "--out", "/tmp/out")

    data.chmod(0o700)  # unreadable by the container's user: a common mount mistake
    proc = run_bad()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "permission denied" in proc.stderr and "Traceback" not in proc.stderr
    data.chmod(0o755)
    proc = run_bad()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: /data/bad.csv" in proc.stderr and "outside 0..255" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ray_executor_smoke_in_container(image, tmp_path):
    """The image built with EXTRAS=ray runs a training as a Ray task, with no network but loopback."""
    reports = tmp_path / "reports"
    reports.mkdir(mode=0o777)
    reports.chmod(0o777)
    proc = docker_run(
        image, "--shm-size", "512m", "-e", "RAY_USAGE_STATS_ENABLED=0", "-v", f"{reports}:/reports", "--",
        "run", "--executor", "ray", "--cpus-per-task", "1", "--models", "1", "--sample", "300", "--epochs", "1",
        "--out", "/reports",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list(reports.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["models"][0]["trainings"][0]["placement"]["executor"] == "ray"
