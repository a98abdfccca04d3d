"""The run directory as a typed, versioned contract: read back as the dataclasses that wrote it."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import hand_result, write_hand_run

from job.cli import main
from job.report.render import render_report
from job.result import RunResult
from job.rundir.layout import SCHEMA_VERSION, RunDirError
from job.rundir.reader import read_run

V1 = Path(__file__).parent / "fixtures" / "run_v1"  # written by the job at commit 63968a7 (schema 1)
V2 = Path(__file__).parent / "fixtures" / "run_v2"  # written by the job at commit 29f91d5 (schema 2, 2 seeds)
V4 = Path(__file__).parent / "fixtures" / "run_v4"  # by 1beb412 (schema 4: one split; 2 models, 2 seeds; no models)
V5 = Path(__file__).parent / "fixtures" / "run_v5"  # by 6ad53e8 (schema 5: no packs; 2 models, 2 seeds; no models)


def test_read_run_returns_the_dataclasses_that_were_written(tmp_path):
    write_hand_run(tmp_path)
    run = read_run(tmp_path)
    assert isinstance(run, RunResult) and run == hand_result()
    assert run.models[0].architecture[1].params == 20 and run.models[2].first.failure.epoch == 2
    assert run.config.seed == 7 and run.split.fractions == [0.6, 0.2, 0.2]


def _report(run_dir: Path):
    return CliRunner().invoke(main, ["report", str(run_dir)])


def _mutated(tmp_path: Path, change) -> Path:
    write_hand_run(tmp_path)
    raw = json.loads((tmp_path / "run.json").read_text())
    raw = change(raw)
    (tmp_path / "run.json").write_text(json.dumps(raw))
    return tmp_path


def _drop(raw, *path):
    target = raw
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return raw


def _set(raw, value, *path):
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda r: _drop(r, "models", 1, "trainings", 0, "val_accuracy"),
            "missing key 'models[1].trainings[0].val_accuracy'",
        ),  # fmt: skip
        (lambda r: _drop(r, "run_id"), "missing key 'run_id'"),
        (lambda r: _set(r, "many", "models", 0, "params"), "key 'models[0].params' must be int, not str"),
        (lambda r: _set(r, True, "models", 0, "params"), "key 'models[0].params' must be int, not bool"),
        (lambda r: _set(r, {"a": 1}, "models"), "key 'models' must be a list, not dict"),
        (lambda r: _set(r, None, "data"), "key 'data' must be an object, not null"),
        (lambda r: _set(r, [1], "environment", "device", "name"), "key 'environment.device.name' must be str"),
        (lambda r: _set(r, 99, "schema_version"), "schema_version 99 is not one this job reads"),
        (lambda r: _drop(r, "schema_version"), "schema_version None is not one this job reads"),
        (lambda r: [r], "holds a JSON list, not an object"),
    ],
)
def test_job_report_refuses_a_malformed_run_json_with_one_line(tmp_path, change, message):
    result = _report(_mutated(tmp_path, change))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert str(tmp_path / "run.json") in lines[0]
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe{}", b""])
def test_job_report_refuses_unreadable_run_json(tmp_path, content):
    write_hand_run(tmp_path)
    (tmp_path / "run.json").write_bytes(content)
    result = _report(tmp_path)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_schema_1_run_directory_still_renders(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(V1, run_dir)
    run = read_run(run_dir)
    assert json.loads((V1 / "run.json").read_text())["schema_version"] == 1
    assert run.schema_version == SCHEMA_VERSION and [m.name for m in run.models] == ["Model 1", "Model 2"]
    assert run.models[0].batch_size == 32 and run.models[0].first.per_class[0].label == 0
    assert run.models[0].saved_seed == 3 and run.repeats == 1 and run.comparison.pairs == []
    assert run.split.fractions == [0.6, 0.2, 0.2] and run.split.train == 120
    result = _report(run_dir)
    assert result.exit_code == 0, result.stderr
    html = (run_dir / "report.html").read_text()
    assert "stratified 60/20/20, seed 3" in html and "Model 2" in html


def test_a_schema_2_run_directory_still_renders_and_names_the_rule_that_chose_it(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(V2, run_dir)
    raw = json.loads((V2 / "run.json").read_text())
    assert raw["schema_version"] == 2 and "detectable_gap" in raw["choice"]
    run = read_run(run_dir)
    assert run.schema_version == SCHEMA_VERSION and run.choice.rule == "not-significantly-below"
    assert run.choice.margin_pp is None and run.choice.tests == [] and run.choice.p_best == {}
    assert [t.model for t in run.choice.legacy_tests] == [t["model"] for t in raw["choice"]["tests"]]
    assert run.chosen_model == raw["chosen_model"] and run.chosen_reason == raw["chosen_reason"]
    assert run.repeats == 2 and run.config.margin is None
    result = _report(run_dir)
    assert result.exit_code == 0, result.stderr
    html = (run_dir / "report.html").read_text()
    assert "chosen by the rule of its time" in html and "significantly below?" in html
    assert "At other margins" not in html


def test_the_report_takes_its_clock_from_the_caller(tmp_path):
    from datetime import datetime

    write_hand_run(tmp_path)
    html = render_report(tmp_path, now=datetime(2030, 5, 6, 7, 8, tzinfo=UTC))
    assert "Rendered 2030-05-06 07:08 UTC" in html


def test_malformed_csvs_and_images_are_one_line(tmp_path):
    write_hand_run(tmp_path)
    (tmp_path / "misclassified.csv").write_text("position,row\nx,y\n")
    with pytest.raises(RunDirError, match="misclassified.csv: malformed"):
        render_report(tmp_path)
    write_hand_run(tmp_path)
    (tmp_path / "images.npz").write_bytes((tmp_path / "images.npz").read_bytes()[:50])
    result = _report(tmp_path)
    assert result.exit_code == 2 and "images.npz: unreadable" in result.stderr


def test_an_unwritable_run_folder_renders_to_output(tmp_path):
    run_dir = tmp_path / "run"
    write_hand_run(run_dir)
    (run_dir / "report.html").mkdir()  # unwritable as that name, even for root
    line = _report(run_dir).stderr.strip()
    assert "cannot write it" in line and "--output FILE" in line and len(line.splitlines()) == 1
    out = tmp_path / "elsewhere.html"
    result = CliRunner().invoke(main, ["report", str(run_dir), "--output", str(out)])
    assert result.exit_code == 0, result.stderr
    assert out.stat().st_size > 10_000 and result.stdout.strip() == str(out)


def test_model_names_are_plain_text_in_charts_and_page(tmp_path):
    from dataclasses import replace

    from job.rundir import writer

    run = hand_result()
    weird = {m.name: f"$\\frac{{{m.name}" for m in run.models}
    run.models = [replace(m, spec=replace(m.spec, name=weird[m.name])) for m in run.models]
    run.choice.chosen = run.choice.best = weird["Model 2"]
    run.choice.tests = [replace(t, model=weird[t.model]) for t in run.choice.tests]
    run.choice.p_best = {weird[n]: v for n, v in run.choice.p_best.items()}
    run.choice.at_margins = [replace(a, chosen=weird[a.chosen]) for a in run.choice.at_margins]
    run.comparison.pairs = [replace(p, a=weird[p.a], b=weird[p.b]) for p in run.comparison.pairs]
    write_hand_run(tmp_path)
    writer.write_run(tmp_path, run)
    for name in ("predictions.csv", "misclassified.csv"):  # the columns follow the slugs of the new names
        path = tmp_path / name
        header, rest = path.read_text().split("\n", 1)
        path.write_text(re.sub(r"\bmodel_(\d)_", r"__frac_model_\1_", header) + "\n" + rest)
    html = render_report(tmp_path)
    assert "$\\frac{Model 2" in html and html.count('<img class="fig"') == 4


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: _set(r, 10**13, "data", "classes"), "key 'data.classes' is 10000000000000"),
        (lambda r: _set(r, [[1]], "models", 0, "trainings", 0, "confusion"), "trainings[0].confusion' is not 3x3"),
        (lambda r: _set(r, [1.0], "models", 0, "trainings", 0, "epoch_seconds"), "per-epoch lists"),
        (lambda r: _set(r, [], "models", 0, "trainings"), "models[0].trainings' is empty"),
        (lambda r: _set(r, "Model 9", "chosen_model"), "'chosen_model' names 'Model 9'"),
        (lambda r: _set(r, [], "models", 0, "trainings", 0, "calibration", "bins"), "has 0 bins"),
        (lambda r: _set(r, -3, "models", 0, "trainings", 0, "calibration", "bins", 12, "count"), "bins[12]"),
        (lambda r: _set(r, 1e308, "models", 0, "trainings", 0, "calibration", "ece"), "out of range"),
        (lambda r: _set(r, 3.5, "models", 0, "trainings", 0, "test_accuracy"), "not a proportion"),
        (
            lambda r: _set(_set(r, "Model 1", "models", 1, "name"), "model_1", "models", 1, "slug"),
            "names a model twice",
        ),
    ],
)
def test_job_report_refuses_inconsistent_sizes_with_one_line(tmp_path, change, message):
    result = _report(_mutated(tmp_path, change))
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_report_warns_about_held_out_rows_copied_from_training(tmp_path):
    from job.rundir import writer

    write_hand_run(tmp_path)
    run = hand_result()
    run.split.held_out_copies = 3
    writer.write_run(tmp_path, run)
    html = render_report(tmp_path)
    assert "3 validation and test rows have an exact copy in the training split" in html
    run.split.held_out_copies = 0
    writer.write_run(tmp_path, run)
    assert "no validation or test row has an exact copy" in render_report(tmp_path)


def test_images_of_the_wrong_shape_are_one_line(tmp_path):
    import numpy as np

    write_hand_run(tmp_path)
    flat = {"test": np.zeros(5), "samples": np.zeros((6, 2, 2)), "sample_labels": np.zeros(6)}
    np.savez_compressed(tmp_path / "images.npz", **flat)
    result = _report(tmp_path)
    assert result.exit_code == 2 and "images.npz: arrays" in result.stderr, result.stderr


def test_pairs_without_seed_differences_still_render(tmp_path):
    result = _report(_mutated(tmp_path, lambda r: _set(r, [], "comparison", "pairs", 0, "seed_diffs")))
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("run_id", ["2026'01", "a\\b", "../elsewhere", ""])
def test_a_run_id_that_is_not_one_is_refused_in_one_line(tmp_path, run_id):
    """It names folders and MLflow runs (whose search filter it is quoted into): only the job's own shape."""
    result = _report(_mutated(tmp_path, lambda r: _set(r, run_id, "run_id")))
    assert result.exit_code == 2 and "key 'run_id' is" in result.stderr and "not a run id" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_chosen_model_and_reason_must_be_the_choices_own(tmp_path):
    result = _report(_mutated(tmp_path, lambda r: _set(r, "edited", "chosen_reason")))
    assert result.exit_code == 2 and "key 'chosen_reason' is 'edited', but the choice says" in result.stderr
    result = _report(_mutated(tmp_path / "b", lambda r: _drop(r, "chosen_model")))
    assert result.exit_code == 2 and "missing key 'chosen_model'" in result.stderr


def test_a_bad_model_setting_is_named_as_run_json_spells_it(tmp_path):
    result = _report(_mutated(tmp_path, lambda r: _set(r, ["x"], "models", 0, "hidden")))
    assert result.exit_code == 2 and "key 'models[0].hidden[0]' must be int" in result.stderr, result.stderr
    result = _report(_mutated(tmp_path / "b", lambda r: _set(r, "other", "models", 0, "slug")))
    assert result.exit_code == 2 and "key 'models[0].slug' is 'other', not the slug of its name" in result.stderr


def test_a_schema_4_run_directory_reads_as_one_split_and_renders_without_the_splits_section(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(V4, run_dir)
    raw = json.loads((V4 / "run.json").read_text())
    assert raw["schema_version"] == 4 and "splits" not in raw and "split" not in raw["models"][0]["trainings"][0]
    run = read_run(run_dir)
    assert run.schema_version == SCHEMA_VERSION and run.splits == 1 and run.architectures is None
    assert [(t.seed, t.split) for t in run.models[0].trainings] == [(42, 1), (43, 1)]
    assert run.chosen_model == raw["chosen_model"] and run.repeats == 2
    result = _report(run_dir)
    assert result.exit_code == 0, result.stderr
    html = (run_dir / "report.html").read_text()
    assert "Model 2" in html and "Which architecture is better?" not in html


def test_a_schema_5_run_directory_reads_as_trained_unpacked_and_renders(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(V5, run_dir)
    raw = json.loads((V5 / "run.json").read_text())
    assert raw["schema_version"] == 5 and "pack" not in raw["config"] and "pack" not in raw["models"][0]["trainings"][0]
    run = read_run(run_dir)
    assert run.schema_version == SCHEMA_VERSION and run.config.pack == "off"
    assert [(t.seed, t.pack, t.pack_size) for t in run.models[0].trainings] == [(42, None, 1), (43, None, 1)]
    result = _report(run_dir)
    assert result.exit_code == 0, result.stderr
