"""Resume state and options (fast: no training): one owner, a lock, refusals that are one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import job.pipeline as pipeline
import job.plan
from job.cli import main
from job.config import RunConfig
from job.rundir.resume import ResumeError, RunState, SavedConfig, lock
from job.rundir.typed_json import to_jsonable


def partial(tmp_path: Path, run_id: str = "20260101-000000-abcdef") -> Path:
    work = tmp_path / f"{run_id}.partial"
    work.mkdir()
    saved = SavedConfig(run_id, RunConfig(seed=3, sample=300), "ab" * 32, "2026-01-01T00:00:00+00:00")
    (work / "config.json").write_text(json.dumps(to_jsonable(saved)))
    return work


def resumable(tmp_path: Path, config: RunConfig, policy: str, *missing: str) -> Path:
    """A .partial folder a resume can plan from: the built-in family's copy and the config saved with the data's
    hash, less the config keys `missing` (as a folder written before they existed)."""
    from job.family import load_family
    from job.rundir.layout import FAMILY_FILE

    family = load_family(None)
    work = tmp_path / "20260101-000000-abcdef.partial"
    work.mkdir()
    (work / FAMILY_FILE).write_text(family.text)
    saved = SavedConfig("20260101-000000-abcdef", config, job.plan.load_for(config).sha256,
                        "2026-01-01T00:00:00+00:00", family.sha256, policy=policy)  # fmt: skip
    raw = to_jsonable(saved)
    for key in missing:
        del raw["config"][key]
    (work / "config.json").write_text(json.dumps(raw))
    return work


def one_line_exit_2(result, *needles: str) -> str:
    assert result.exit_code == 2, (result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "option",
    [
        ["--seed", "4"], ["--models", "1"], ["--epochs", "2"], ["--sample", "500"], ["--data", "digits"],
        ["--backend", "jax"], ["--precision", "float32"], ["--no-deterministic"], ["--out", "elsewhere"],
        ["--margin", "2"], ["--splits", "3"], ["--pack", "5"], ["--pack", "auto"],
    ],
)  # fmt: skip
def test_resume_refuses_options_that_define_the_experiment(tmp_path, option):
    work = partial(tmp_path)
    result = CliRunner().invoke(main, ["run", "--resume", str(work), *option])
    one_line_exit_2(result, option[0], "would change the experiment")


def test_resume_applies_operational_options(tmp_path, monkeypatch):
    work = partial(tmp_path)
    seen = {}

    def fake_run(config, resume=None, executor=None, overrides=None):
        seen["overrides"] = overrides
        raise pipeline.RunError("stop here")

    monkeypatch.setattr(pipeline, "run", fake_run)
    result = CliRunner().invoke(main, ["run", "--resume", str(work), "--steps-per-execution", "4"])
    one_line_exit_2(result, "stop here")
    assert seen["overrides"] == {"steps_per_execution": 4}


def test_resume_of_the_current_folder_is_refused(tmp_path, monkeypatch):
    work = partial(tmp_path)
    monkeypatch.chdir(work)
    one_line_exit_2(CliRunner().invoke(main, ["run", "--resume", "."]), "current folder")


def test_resume_when_the_final_name_is_taken_is_refused(tmp_path):
    work = partial(tmp_path)
    (tmp_path / "20260101-000000-abcdef").mkdir()
    one_line_exit_2(CliRunner().invoke(main, ["run", "--resume", str(work)]), "already exists")


def test_damaged_config_json_says_the_run_cannot_be_resumed(tmp_path):
    work = partial(tmp_path)
    (work / "config.json").write_text('{"run_id": 3}')
    one_line_exit_2(CliRunner().invoke(main, ["run", "--resume", str(work)]), "config.json", "cannot be resumed")


def test_the_lock_names_its_holder_and_is_released_on_close(tmp_path):
    import os

    work = partial(tmp_path)
    fd = lock(work)
    with pytest.raises(ResumeError, match=rf"in use by pid {os.getpid()} on host"):
        RunState.open(work)
    os.close(fd)
    state, saved = RunState.open(work)
    assert saved.config == RunConfig(seed=3, sample=300)
    os.close(state.lock_fd)


def test_finished_training_state_round_trips_and_damage_is_one_error(tmp_path):
    import numpy as np

    from job.result import EpochRecord, TrainingResult
    from job.rundir.resume import TrainingKey

    state = RunState.create(tmp_path, SavedConfig("r", RunConfig(), "00", "2026-01-01T00:00:00+00:00"))
    key = TrainingKey("model_1", 42)
    record = EpochRecord(1, 0.5, 0.8, 0.6, 0.75, 1.0, 0.9, 0.1, True)
    proba = np.full((4, 3), 1 / 3, dtype=np.float32)
    result = TrainingResult("Model 1", 42, [record], 1, 1, 1.5, False, None, 35,
                            val_proba=proba, test_proba=proba, model_bytes=b"model")  # fmt: skip
    state.mark_done(key, result)
    back = state.load_done(key)
    assert back.records == [record] and back.best_epoch == 1 and back.model_bytes is None
    np.testing.assert_array_equal(back.test_proba, proba)
    (tmp_path / "progress" / key.folder / "test_proba.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ResumeError, match="delete that folder to retrain it"):
        state.load_done(key)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--models", ""], "--models is empty"),
        (["--out", ""], "--out is empty"),
        (["--seed", str(2**32)], "'--seed'"),
        (["--seed", "-1"], "'--seed'"),
        (["--steps-per-execution", str(2**31)], "'--steps-per-execution'"),
        (["--epochs", "0"], "'--epochs'"),
    ],
)
def test_bad_options_are_one_line_before_anything_is_written(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    one_line_exit_2(CliRunner().invoke(main, ["run", *args]), needle)
    assert list(tmp_path.iterdir()) == []


def test_the_data_path_is_stored_absolute(tmp_path, monkeypatch, small_csv):
    monkeypatch.chdir(small_csv.parent)
    seen = {}

    def stop(plan, *args, **kwargs):
        seen["data"] = plan.config.data
        saved = json.loads((plan.work / "config.json").read_text())
        seen["saved"] = saved["config"]["data"]
        raise pipeline.RunError("stop")

    monkeypatch.setattr(pipeline, "split", stop)
    with pytest.raises(pipeline.RunError):
        pipeline.run(replace(RunConfig(), data=small_csv.name, out=str(tmp_path / "out"), backend="tensorflow"))
    assert seen["data"] == seen["saved"] == str(small_csv.resolve())


def test_an_unwritable_run_folder_cannot_be_locked_and_says_so(tmp_path):
    work = partial(tmp_path)
    (work / ".lock").mkdir()  # cannot be opened for writing, even by root
    one_line_exit_2(CliRunner().invoke(main, ["run", "--resume", str(work)]), "cannot open its lock file")


def test_a_run_id_that_is_a_path_is_refused(tmp_path):
    work = partial(tmp_path)
    raw = json.loads((work / "config.json").read_text())
    (work / "config.json").write_text(json.dumps(raw | {"run_id": "../../elsewhere"}))
    one_line_exit_2(CliRunner().invoke(main, ["run", "--resume", str(work)]), "is not a run id")


@pytest.mark.parametrize("rows", ["0,train\n1,val\n99,test\n", "0,train\nx,val\n2,test\n", "0,train\n0,val\n2,test\n"])
def test_a_split_that_does_not_fit_the_data_is_one_error(tmp_path, rows):
    state = RunState.create(tmp_path, SavedConfig("r", RunConfig(), "00", "2026-01-01T00:00:00+00:00"))
    (tmp_path / "split.csv").write_text("row,split\n" + rows)
    with pytest.raises(ResumeError, match="split.csv: unusable"):
        state.load_split(10)
    state.release()


def test_environment_defaults_are_not_refused_on_resume(tmp_path, monkeypatch):
    work = partial(tmp_path)
    monkeypatch.setenv("JOB_OUT", str(tmp_path / "elsewhere"))  # as the image sets it
    seen = {}

    def fake_run(config, resume=None, executor=None, overrides=None):
        seen["overrides"] = overrides
        raise pipeline.RunError("stop here")

    monkeypatch.setattr(pipeline, "run", fake_run)
    one_line_exit_2(CliRunner().invoke(main, ["run", "--resume", str(work)]), "stop here")
    assert seen["overrides"] == {}


def test_job_out_sets_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("JOB_OUT", str(tmp_path / "from-env"))
    assert main.commands["run"].make_context("run", []).params["out"] == str(tmp_path / "from-env")
    assert main.commands["run"].make_context("run", ["--out", "x"]).params["out"] == "x"


def test_tensorboard_without_its_writer_is_refused_before_anything_is_written(tmp_path, monkeypatch, small_csv):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
    args = ["run", "--tensorboard", "--data", str(small_csv), "--out", str(tmp_path / "out")]
    one_line_exit_2(CliRunner().invoke(main, args), "--tensorboard needs tensorboardX")
    assert not (tmp_path / "out").exists()


def test_a_resume_keeps_the_precision_policy_the_run_started_with(tmp_path):
    """`--precision auto` is resolved once, where the run started; a resume on another machine or executor
    (`--executor` is operational) asks for that policy, so one run never mixes precisions."""
    from job.executors.local import LocalExecutor

    config = RunConfig(seed=3, sample=300, models="1")
    work = resumable(tmp_path, config, "mixed_float16")
    seen = []

    class Stop(Exception):
        pass

    class Recorder(LocalExecutor):
        def start(self, backend, precision, deterministic, tasks):
            seen.append((precision, tasks))
            raise Stop

    with pytest.raises(Stop):
        pipeline.run(config, resume=work, executor=Recorder())
    assert seen == [("mixed_float16", 1)]
    RunState.open(work)[0].release()  # the refusal gave the lock back


def test_a_resume_with_every_training_done_needs_no_cluster():
    from types import SimpleNamespace

    from job.executors.local import LocalExecutor
    from job.family import seed_specs
    from job.rundir.resume import TrainingKey

    state = SimpleNamespace(is_done=lambda key: True)
    config = RunConfig(executor="ray", ray_address="10.0.0.1:6379", backend="tensorflow")
    plan = SimpleNamespace(config=config, precision="float32", keys=[TrainingKey(s.slug, 42) for s in seed_specs()])
    executor = pipeline.start_executor(plan, state)
    assert isinstance(executor, LocalExecutor)  # no Ray to reach: only evaluation and the report are left


def test_a_signal_raised_inside_rays_wait_comes_out_as_itself():
    """Ray's C++ wait turns the SIGTERM handler's exception into a SystemError caused by it; the job's
    exit code 143 depends on getting the handler's exception back."""
    from job.cli import Terminated
    from job.executors.ray import signals_through

    def wait_interrupted_by(exc):
        try:
            raise exc
        except BaseException as cause:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from cause

    with pytest.raises(Terminated), signals_through():
        wait_interrupted_by(Terminated())
    with pytest.raises(KeyboardInterrupt), signals_through():
        wait_interrupted_by(KeyboardInterrupt())
    with pytest.raises(SystemError), signals_through():  # anything else stays what it was
        wait_interrupted_by(ValueError("x"))


def test_a_stop_before_the_run_folder_exists_does_not_promise_a_resume(tmp_path, monkeypatch):
    """SIGTERM while the data loads or Ray starts: exit 143, and no hint to resume a folder that was never made."""
    from job.cli import Terminated

    def stopped(config):
        raise Terminated()

    monkeypatch.setattr(job.plan, "load_for", stopped)
    result = CliRunner().invoke(main, ["run", "--sample", "300", "--out", str(tmp_path)])
    assert result.exit_code == 143
    assert "nothing was written" in result.stderr and "--resume" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_write_error_other_than_a_full_disk_is_one_line_with_the_resume_command(tmp_path, monkeypatch, small_csv):
    """An unwritable file mid-run (a permission taken away, an immutable folder): exit 2, the .partial kept."""

    def refused(plan, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(plan.work / "tensorboard"))

    monkeypatch.setattr(pipeline, "split", refused)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--data", str(small_csv), "--models", "1", "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the run's own log lines
    assert line.startswith("error: cannot write") and "(Permission denied)" in line, line
    assert "and resume with: job run --resume" in line
    (partial,) = list(out.iterdir())
    assert partial.name.endswith(".partial") and str(partial) in line


def test_a_stop_while_ray_is_unsettled_leaves_without_the_interpreters_exit(monkeypatch):
    """A stop inside ray.init leaves Ray's core worker half made, and Python's exit can then abort (134): the CLI
    leaves with os._exit and the job's code instead. With no Ray started, it is a plain sys.exit."""
    import job.cli
    import job.executors.ray as ray_executor

    left = []
    monkeypatch.setattr(job.cli.os, "_exit", lambda code: left.append(code))
    monkeypatch.setattr(ray_executor, "ray_unsettled", True)
    job.cli._exit_stopped(143)
    assert left == [143]
    monkeypatch.setattr(ray_executor, "ray_unsettled", False)
    with pytest.raises(SystemExit) as exit_:
        job.cli._exit_stopped(143)
    assert exit_.value.code == 143 and left == [143]


def test_a_folder_from_before_pack_resumes_with_every_training_alone(tmp_path):
    """A config.json written before --pack existed has no "pack" key; its trainings ran alone, so they resume so
    (the default, auto, is never in a saved config, which always holds the resolved layout)."""
    work = resumable(tmp_path, RunConfig(seed=3, sample=300, models="1", repeats=3, pack="off"), "float32", "pack")
    state, read = RunState.open(work)
    try:
        plan = job.plan.resolve(RunConfig(), (work, read))
    finally:
        state.release()
    assert read.config.pack == "auto"  # the default fills the missing key
    assert plan.config.pack == "off" and [len(unit) for unit in plan.units] == [1, 1, 1]  # no unresolved auto
