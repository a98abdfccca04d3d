"""`job export mlflow` against a real MLflow server and a SQLite store, read back with MlflowClient (no training)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import REPO, hand_training, write_hand_run

from job.cli import main
from job.rundir import writer
from job.tracking.mlflow import COMPLETE_TAG, HTTP_SETTINGS, PARENT_TAG, RUN_ID_TAG

RUN_ID = "20260101-000000-abcdef"  # hand_result's
MODEL_FILES = {  # Model 2 trained seeds 7 and 8 and kept seed 8; Model 3 failed and left no file
    "model_1.keras": b"model 1, seed 7",
    "model_2.keras": b"model 2, seed 8",
    "model_2-seed7.keras": b"model 2, seed 7",
}
JAN_1_2026_MS = 1_767_225_600_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(uri: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"mlflow server did not answer within 60 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real `mlflow server` (SQLite backend, proxied artifacts) on a free local port, stopped at the end."""
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "art")]
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runner
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(uri, proc, log_path)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group: it and its uvicorn worker
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch):
    """The export sets these in os.environ for its own process; here they are undone after each test."""
    for key, value in HTTP_SETTINGS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "ERROR")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """The hand-built run, with a second seed (8, the saved one) for Model 2, a report and small model files."""
    run_dir = tmp_path / RUN_ID
    result = write_hand_run(run_dir)
    result.models[1].trainings.append(hand_training(0.95, seed=8))
    result.models[1].saved_seed = 8
    writer.write_run(run_dir, result)
    (run_dir / "report.html").write_text("<html>the hand report</html>")
    (run_dir / "models").mkdir()
    for name, data in MODEL_FILES.items():
        (run_dir / "models" / name).write_bytes(data)
    return run_dir


def _export(run_dir: Path, uri: str, experiment: str):
    args = ["export", "mlflow", str(run_dir), "--tracking-uri", uri, "--experiment", experiment]
    return CliRunner().invoke(main, args)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _active_runs(client, experiment: str) -> list:
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


def _parent_and_children(client, experiment: str):
    runs = _active_runs(client, experiment)
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = {(r.data.params["model"], int(r.data.params["seed"])): r for r in runs if r not in parents}
    return parents[0], children


def _artifacts(client, run_id: str, path: str | None = None) -> dict[str, bytes]:
    out = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out |= _artifacts(client, run_id, info.path)
        else:
            out[info.path] = Path(client.download_artifacts(run_id, info.path)).read_bytes()
    return out


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _check_parent(client, parent, run_dir: Path) -> None:
    tags = parent.data.tags
    assert tags[RUN_ID_TAG] == RUN_ID and tags[COMPLETE_TAG] == "true" and parent.info.run_name == RUN_ID
    assert tags["job.data_sha256"] == "ab" * 32 and tags["job.device"] == "CPU Test CPU"
    assert tags["job.backend"] == "tensorflow" and tags["job.precision_policy"] == "float32"
    assert tags["job.chosen_model"] == "Model 2" and tags["job.chosen_reason"].startswith("Model 2: the highest")
    assert tags["job.choice_rule"] == "margin"
    assert tags["job.repeats"] == "1" and tags["job.failed_models"] == "Model 3"
    assert parent.data.params["config.seed"] == "7" and parent.data.params["config.data"] == "hand.csv"
    assert parent.data.params["choice.margin_pp"] == "1.0"
    assert parent.data.metrics["total_seconds"] == 60.0
    assert (parent.info.start_time, parent.info.end_time) == (JAN_1_2026_MS, JAN_1_2026_MS + 60_000)
    assert parent.info.status == "FAILED"  # Model 3 failed, as `job run` exits 3
    artifacts = _artifacts(client, parent.info.run_id)
    assert artifacts == {n: (run_dir / n).read_bytes() for n in ("report.html", "run.json")}


def _check_model_1(client, run) -> None:
    expected = {"model": "Model 1", "model_key": "1", "hidden": "4", "activation": "selu"}
    expected |= {"initializer": "lecun_normal", "optimizer": "adam", "learning_rate": "0.001", "optimizer_args": "{}"}
    expected |= {"dropout": "0.0", "batch_size": "32", "epochs": "3", "patience": "3", "monitor": "loss", "seed": "7"}
    assert expected.items() <= run.data.params.items()
    run_id = run.info.run_id
    assert _history(client, run_id, "val_accuracy") == [(1, 0.5), (2, 0.8765), (3, 0.7)]
    assert _history(client, run_id, "loss") == [(1, 0.9), (2, 0.4321), (3, 0.5)]
    assert _history(client, run_id, "epoch_seconds") == [(1, 2.5), (2, 0.5), (3, 0.5)]
    final = {"best_epoch": 2, "best_val_accuracy": 0.8765, "test_accuracy": 0.8333, "test_loss": 0.6}
    final |= {"macro_f1": 0.8, "ece": 0.1, "brier": 0.2, "test_accuracy_ci_low": 0.3588}
    assert final.items() <= run.data.metrics.items()
    assert run.info.status == "FINISHED" and run.data.tags["job.saved_model"] == "true"
    assert _artifacts(client, run_id) == {"models/model_1.keras": MODEL_FILES["model_1.keras"]}


@pytest.mark.slow
def test_export_to_a_server_reads_back_whole(server, run_dir):
    result = _export(run_dir, server, "round-trip")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"exported {RUN_ID} to MLflow {server}") and "4 nested training runs" in line
    client = _client(server)
    parent, children = _parent_and_children(client, "round-trip")
    assert re.search(r"parent run (\w+)", line)[1] == parent.info.run_id
    _check_parent(client, parent, run_dir)
    assert set(children) == {("Model 1", 7), ("Model 2", 7), ("Model 2", 8), ("Model 3", 7)}
    assert all(r.data.tags[PARENT_TAG] == parent.info.run_id for r in children.values())
    _check_model_1(client, children["Model 1", 7])
    saved, other = children["Model 2", 8], children["Model 2", 7]
    assert _artifacts(client, saved.info.run_id) == {"models/model_2.keras": MODEL_FILES["model_2.keras"]}
    assert _artifacts(client, other.info.run_id) == {"models/model_2-seed7.keras": MODEL_FILES["model_2-seed7.keras"]}
    assert _history(client, saved.info.run_id, "val_accuracy") == [(1, 0.5), (2, 0.95), (3, 0.7)]
    failed = children["Model 3", 7]
    assert failed.info.status == "FAILED" and failed.data.tags["job.failure"].startswith("epoch 2: training loss")
    assert _history(client, failed.info.run_id, "loss") == [(1, 0.9)]  # epoch 2's NaN is skipped
    assert "test_accuracy" not in failed.data.metrics and _artifacts(client, failed.info.run_id) == {}


@pytest.mark.slow
def test_second_export_adds_nothing(server, run_dir):
    first = _export(run_dir, server, "twice")
    assert first.exit_code == 0, first.output
    client = _client(server)
    before = sorted(r.info.run_id for r in _active_runs(client, "twice"))
    second = _export(run_dir, server, "twice")
    assert second.exit_code == 0, second.output
    parent_id = re.search(r"parent run (\w+)", first.stdout)[1]
    already = f"{RUN_ID} is already in MLflow {server}, experiment 'twice' (parent run {parent_id}); nothing added\n"
    assert second.stdout == already
    assert sorted(r.info.run_id for r in _active_runs(client, "twice")) == before and len(before) == 5
    assert set(_artifacts(client, parent_id)) == {"report.html", "run.json"}


@pytest.mark.slow
def test_interrupted_export_is_redone(server, run_dir):
    first = _export(run_dir, server, "interrupted")
    assert first.exit_code == 0, first.output
    client = _client(server)
    old = [r.info.run_id for r in _active_runs(client, "interrupted")]
    old_parent = re.search(r"parent run (\w+)", first.stdout)[1]
    client.delete_tag(old_parent, COMPLETE_TAG)  # as if the export had been killed before its last step
    redo = _export(run_dir, server, "interrupted")
    assert redo.exit_code == 0, redo.output
    assert redo.stdout.startswith(f"exported {RUN_ID}") and f"interrupted export of {RUN_ID}" in redo.stderr
    assert all(client.get_run(run_id).info.lifecycle_stage == "deleted" for run_id in old)
    parent, children = _parent_and_children(client, "interrupted")
    assert parent.info.run_id not in old and parent.data.tags[COMPLETE_TAG] == "true" and len(children) == 4


PROBE = """import sys
from job.cli import main
try:
    main(sys.argv[1:])
finally:
    print("heavy modules:", sorted({"tensorflow", "keras", "jax"} & set(sys.modules)))
"""


@pytest.mark.slow
def test_export_to_a_sqlite_store_without_a_server(run_dir, tmp_path):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/store.db"
    args = ["export", "mlflow", str(run_dir), "--tracking-uri", uri]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line, probe = proc.stdout.splitlines()
    assert line.startswith(f"exported {RUN_ID} to MLflow {uri}, experiment 'keras-batch-job'")
    assert probe == "heavy modules: []"  # no TensorFlow, Keras or JAX: the run directory alone
    client = _client(uri)
    parent, children = _parent_and_children(client, "keras-batch-job")
    assert parent.data.tags[COMPLETE_TAG] == "true" and len(children) == 4
    assert set(_artifacts(client, parent.info.run_id)) == {"report.html", "run.json"}


@pytest.mark.slow
def test_unreachable_server_is_one_line_within_30_s(run_dir):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # the export's own timeouts
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "job", "export", "mlflow", str(run_dir), "--tracking-uri", uri],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and uri in line
    assert elapsed < 30


@pytest.mark.slow
def test_without_mlflow_the_error_says_how_to_install(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    result = _export(run_dir, "sqlite:///unused.db", "keras-batch-job")
    assert result.exit_code == 2
    assert result.stderr == "error: mlflow is not installed; pip install 'keras-batch-job[mlflow]'\n"


@pytest.mark.slow
def test_job_cli_does_not_import_mlflow():
    code = "import sys, job.cli, job.rundir; print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout == "[]\n", proc.stderr
