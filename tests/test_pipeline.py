"""Pipeline setup: preflight, resume arguments, run ids."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest
from click.testing import CliRunner

import job.pipeline as pipeline
from job.cli import main
from job.data import load_dataset
from job.specs import SEED_SPECS


def test_preflight_refuses_a_full_disk(tmp_path, monkeypatch, small_csv):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 1024))
    with pytest.raises(pipeline.RunError, match="MiB free, the run needs about"):
        pipeline.preflight(tmp_path / "out", list(SEED_SPECS), load_dataset(str(small_csv)))
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
    assert len({pipeline.new_run_id() for _ in range(200)}) == 200
