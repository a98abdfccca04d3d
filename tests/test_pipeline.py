"""Pipeline setup: preflight, resume arguments, run ids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import namedtuple

import pytest
from click.testing import CliRunner

import job.pipeline as pipeline
import job.plan as plan
from job.cli import main
from job.config import RunConfig
from job.data.load import load_dataset
from job.family import seed_specs


def test_preflight_refuses_a_full_disk(tmp_path, monkeypatch, small_csv):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 1024))
    with pytest.raises(pipeline.RunError, match="MiB free, the run needs about"):
        pipeline.preflight(tmp_path / "out", list(seed_specs()), load_dataset(str(small_csv)))
    assert list((tmp_path / "out").iterdir()) == []


def test_resume_of_a_folder_that_is_not_a_partial_run(tmp_path):
    result = CliRunner().invoke(main, ["run", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "not an interrupted run" in result.stderr
    (tmp_path / "run.json").write_text("{}")
    result = CliRunner().invoke(main, ["run", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "already complete" in result.stderr


def test_unknown_model_key_is_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["run", "--models", "9", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "unknown model 9" in result.stderr
    assert not (tmp_path / "o").exists()


def test_run_ids_are_unique():
    assert len({plan.new_run_id() for _ in range(200)}) == 200


def test_the_backend_is_fixed_before_the_data_loads(monkeypatch):
    """`--data mnist` imports Keras in its loader: the backend must already be the one asked for."""
    seen = {}

    class Stop(Exception):
        pass

    def loader(config):
        seen["backend"] = os.environ.get("KERAS_BACKEND")
        raise Stop

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(plan, "load_for", loader)
    with pytest.raises(Stop):
        pipeline.run(RunConfig(backend="jax", data="mnist"))
    assert seen["backend"] == "jax"


def test_run_command_sets_the_backend_before_importing_the_pipeline():
    code = (
        "import sys, os; from job.cli import main\n"
        "sys.argv = ['job', 'run', '--backend', 'jax', '--models', '9']\n"
        "try:\n main()\nexcept SystemExit as e:\n code = e.code\n"
        "assert code == 2, code\n"
        "assert os.environ['KERAS_BACKEND'] == 'jax'\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def test_warming_imports_what_evaluation_and_the_report_need_in_the_background():
    """In a fresh process (this one has them all): none is loaded before, every one after, and a name that
    does not import fails the test instead of only a debug line."""
    code = (
        "import sys, logging, importlib\n"
        "from job import pipeline\n"
        "names = pipeline.EVALUATION_IMPORTS\n"
        "assert not [n for n in names if n in sys.modules], [n for n in names if n in sys.modules]\n"
        "failed = []\n"
        "logging.getLogger('job.pipeline').debug = lambda msg, *a: failed.append(msg % a)\n"
        "thread = pipeline._warm()\n"
        "assert thread.name == 'warm-evaluation' and not thread.daemon\n"
        "thread.join(timeout=120)\n"
        "assert not failed, failed\n"
        "assert all(n in sys.modules for n in names), [n for n in names if n not in sys.modules]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
