"""Fan-out on Ray, offline on this machine: a local Ray, logical GPUs, and a two-node cluster that loses a node.

Ray listens on 127.0.0.1 only here, with usage stats off; every test starts and stops its own Ray.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import REPO, run_job

pytestmark = pytest.mark.slow  # starts Ray and trains
ray = pytest.importorskip("ray")
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def _run_json(out):
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and p.name != "tensorboard"]
    return run_dir, json.loads((run_dir / "run.json").read_text())


def _numbers(run):
    return {
        (m["name"], t["seed"]): (t["history"], t["test_accuracy"], t["confusion"])
        for m in run["models"]
        for t in m["trainings"]
    }


def test_ray_run_equals_the_local_run_with_one_thread_per_training(tmp_path):
    args = ["--cpus-per-task", "1", "--repeats", "2", "--sample", "2000", "--epochs", "2", "--models", "1,2"]
    # the driver never imports Keras or its backend: the workers train and report the runtime
    watch = ("import atexit, sys; atexit.register(lambda: print('DRIVER IMPORTED', sorted(m for m in "
             "('keras', 'tensorflow', 'jax') if m in sys.modules), file=sys.stderr)); "
             "from job.cli import main; main()")  # fmt: skip
    on_ray = subprocess.run([sys.executable, "-c", watch, "run", "--executor", "ray", "--tensorboard", *args, "--out",
                             str(tmp_path / "ray")], capture_output=True, text=True, cwd=REPO, timeout=600,
                            env=os.environ | {"RAY_USAGE_STATS_ENABLED": "0"})  # fmt: skip
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "DRIVER IMPORTED []" in on_ray.stderr, on_ray.stderr[-3000:]
    local = run_job("run", *args, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr[-3000:]
    ray_dir, ray_run = _run_json(tmp_path / "ray")
    _, local_run = _run_json(tmp_path / "local")
    assert _numbers(ray_run) == _numbers(local_run)
    placements = [t["placement"] for m in ray_run["models"] for t in m["trainings"]]
    assert {p["executor"] for p in placements} == {"ray"} and len(placements) == 4
    html = (ray_dir / "report.html").read_text()
    assert "When and where each training ran" in html
    events = sorted(p.relative_to(ray_dir / "tensorboard").as_posix() for p in (ray_dir / "tensorboard").glob("*/*"))
    assert events == ["model_1/seed-42", "model_1/seed-43", "model_2/seed-42", "model_2/seed-43"]


def _in_process_run(tmp_path, executor, repeats=2, epochs=2):
    from job.config import RunConfig
    from job.pipeline import run

    config = RunConfig(models="1", repeats=repeats, sample=400, epochs=epochs, cpus_per_task=1, pack="off",
                       out=str(tmp_path), backend="tensorflow")  # fmt: skip
    result, run_dir = run(config, executor=executor)
    return result, run_dir


def test_trainings_at_once_see_different_gpus(tmp_path):
    from job.executors.ray import RayExecutor

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"KERAS_BACKEND": "tensorflow", "RAY_USAGE_STATS_ENABLED": "0"}})  # fmt: skip
    try:
        result, _ = _in_process_run(tmp_path, RayExecutor(None, 1, None, "tensorflow"))  # default: 1 GPU each
    finally:
        ray.shutdown()
    a, b = (t.placement for t in result.models[0].trainings)
    assert a.started < b.finished and b.started < a.finished  # they ran at the same time
    assert {a.device, b.device} == {"0", "1"}


def test_two_nodes_and_losing_one_mid_run_still_completes_correctly(tmp_path):
    from ray.cluster_utils import Cluster

    from job.executors.ray import RayExecutor

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"KERAS_BACKEND": "tensorflow", "RAY_USAGE_STATS_ENABLED": "0"}})  # fmt: skip
    box = {}
    submitted = _on_log("job.executors.ray", "ray: ")  # the trainings, not the start-up probes, are out

    def go():
        try:
            box["result"] = _in_process_run(tmp_path / "cluster", RayExecutor(None, 1, 0, "tensorflow"), repeats=4,
                                            epochs=6)[0]  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            box["error"] = exc

    try:
        worker = threading.Thread(target=go)
        worker.start()
        deadline = time.time() + 120
        while time.time() < deadline and not (submitted.is_set() and _busy_on(second)):
            time.sleep(0.2)
        time.sleep(1.0)
        cluster.remove_node(second)  # a node lost mid-run, as a preempted machine would be
        worker.join(timeout=600)
    finally:
        submitted.remove()
        ray.shutdown()
        cluster.shutdown()
    assert "error" not in box, box.get("error")
    result = box["result"]
    placements = [t.placement for t in result.models[0].trainings]
    assert all(t.status == "ok" for t in result.models[0].trainings) and len(placements) == 4
    assert max(p.attempts for p in placements) >= 2  # the lost training ran again and says so
    args = ["--models", "1", "--repeats", "4", "--sample", "400", "--epochs", "6", "--cpus-per-task", "1",
            "--pack", "off"]  # fmt: skip
    local = run_job("run", *args, "--out", str(tmp_path / "local"))  # one thread, as each Ray task had
    assert local.returncode == 0, local.stderr[-2000:]
    _, local_run = _run_json(tmp_path / "local")
    expected = [t["test_accuracy"] for t in local_run["models"][0]["trainings"]]
    assert [t.test_accuracy for t in result.models[0].trainings] == expected


def _on_log(logger: str, prefix: str) -> threading.Event:
    """An event set when `logger` logs a message starting with `prefix`."""
    seen = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith(prefix):
                seen.set()

    log, watch = logging.getLogger(logger), Watch()
    log.addHandler(watch)
    level, log.level = log.level, logging.INFO
    seen.remove = lambda: (log.removeHandler(watch), log.setLevel(level))  # type: ignore[attr-defined]
    return seen


def _busy_on(node) -> bool:
    """A training is running on `node` (its CPU is taken)."""
    for n in ray.nodes():
        if n["NodeID"] == node.node_id and n.get("Alive"):
            return n["Resources"].get("CPU", 0) > 0 and _available(node.node_id) == 0
    return False


def _available(node_id: str) -> float:
    from ray._private.state import available_resources_per_node

    return available_resources_per_node().get(node_id, {}).get("CPU", 0.0)


def test_a_training_no_node_can_hold_is_refused_not_left_waiting(tmp_path):
    proc = run_job("run", "--executor", "ray", "--cpus-per-task", "64", "--models", "1", "--sample", "300",
                   "--epochs", "1", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "largest Ray node has" in last and "lower --cpus-per-task" in last and "Traceback" not in proc.stderr


def test_a_driver_stopped_with_sigterm_resumes_without_redoing_finished_trainings(tmp_path):
    """ray.init installs its own SIGTERM handler; the job's must win: exit 143, the resume hint, then
    `--resume` keeps every training that had returned and runs only the others."""
    out = tmp_path / "out"
    args = ["run", "--executor", "ray", "--cpus-per-task", "1", "--models", "1", "--repeats", "4", "--pack", "off",
            "--sample", "1000", "--epochs", "8", "--out", str(out)]  # fmt: skip
    env = os.environ | {"PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "job", *args], stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    seen, deadline = [], time.time() + 300
    for line in proc.stderr:
        seen.append(line)
        if "finished on" in line:  # one training has returned and been recorded
            proc.send_signal(signal.SIGTERM)
            break
        assert time.time() < deadline, "".join(seen)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 143, "".join(seen) + rest
    assert "Traceback" not in rest and "--resume" in rest
    finished = {int(s) for s in re.findall(r"ray: Model 1 seed (\d+) finished on", "".join(seen) + rest)}
    assert finished and len(finished) < 4
    (partial,) = list(out.iterdir())
    resumed = run_job("run", "--resume", str(partial))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for seed in finished:
        assert f"Model 1 seed {seed}: finished before the interruption; not retrained" in resumed.stderr, (
            "".join(seen) + rest + "\n-----\n" + resumed.stderr
        )
        assert f"ray: Model 1 seed {seed} finished on" not in resumed.stderr
    _, run = _run_json(out)
    assert len(run["models"][0]["trainings"]) == 4


@pytest.mark.parametrize("delay", [0.5, 2.0, 4.0, 5.0, 6.0])
def test_sigterm_while_ray_starts_is_exit_143_and_nothing_written(tmp_path, delay):
    """A stop that lands while the local Ray starts (ray.init installs its own SIGTERM handler, which exits
    15): the job's handler stays, so it is exit 143 with the job's line, and no run folder exists yet."""
    out = tmp_path / "out"
    args = ["run", "--executor", "ray", "--models", "1", "--sample", "300", "--epochs", "1", "--out", str(out)]
    env = os.environ | {"PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "job", *args], stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if " plan: " in line:  # the estimate is logged just before Ray starts
            time.sleep(delay)
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    code = proc.wait(timeout=120)
    text = "".join(seen) + rest
    if "complete:" in text:
        pytest.skip("Ray started and the run finished before the signal")  # a fast machine: nothing to test
    assert code == 143, text
    assert "Traceback" not in rest and "Segmentation" not in rest, text
    assert "terminated (SIGTERM)" in rest.strip().splitlines()[-1], text
    if "run 20" not in text:  # stopped before the run folder: the line says so, and --out holds nothing
        assert "nothing was written" in rest and not list(out.glob("*")), text
