"""Repeated development splits in a run (#23), without training: the option and the family key, the split stage,
the rows each training reads, names on disk, the choice over splits, the architectures, and the report."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import write_hand_run

import job.pipeline as pipeline
from job.cli import main
from job.config import RunConfig
from job.data.dataset import Dataset
from job.data.split import Split, resplit, stratified_split
from job.family import SpecError, load_family
from job.report.render import render_report
from job.rundir import reader
from job.rundir.layout import pred_column, seed_model_path, split_csv, val_predictions_csv
from job.rundir.resume import ResumeError, RunState, SavedConfig, TrainingKey
from job.rundir.typed_json import to_jsonable
from job.rundir.writer import write_run
from job.stats.choice import choose, choose_over_splits, split_draws
from job.stats.compare import ModelPredictions
from job.stats.splits import compare_architectures, corrected_interval


def _dataset(n_per_class: int = 20, classes: int = 3) -> Dataset:
    y = np.repeat(np.arange(classes), n_per_class)
    x = (np.arange(y.size)[:, None] % 251 + np.zeros((1, 4), dtype=np.int64)).astype(np.uint8)
    return Dataset(x=x, y=y, image_shape=(2, 2), source="t", kind="csv", sha256="00" * 32)


def _state(tmp_path) -> RunState:
    return RunState.create(tmp_path, SavedConfig("r", RunConfig(), "00", "2026-01-01T00:00:00+00:00"))


def test_split_one_is_todays_split_and_the_others_keep_its_test_rows(tmp_path):
    dataset = _dataset()
    state = _state(tmp_path)
    plan = SimpleNamespace(config=RunConfig(seed=5, splits=3), dataset=dataset, resumed=False)
    rows = pipeline.split(plan, state)  # type: ignore[arg-type]
    today = stratified_split(dataset.y, 5)
    assert len(rows) == 3
    for a, b in zip((rows[0].train, rows[0].val, rows[0].test), (today.train, today.val, today.test), strict=True):
        assert np.array_equal(a, b)
    for k in (2, 3):
        assert np.array_equal(rows[k - 1].test, today.test)
        assert np.array_equal(rows[k - 1].train, resplit(dataset.y, today, 5, k).train)
        assert (tmp_path / split_csv(k)).is_file()
    assert (tmp_path / "split.csv").is_file() and not (tmp_path / "split-1.csv").exists()
    (tmp_path / "split-2.csv").write_text((tmp_path / "split-2.csv").read_text())  # saved: a resume reads these
    plan.resumed, plan.work = True, tmp_path
    again = pipeline.split(plan, state)  # type: ignore[arg-type]
    for a, b in zip(rows, again, strict=True):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val) and np.array_equal(a.test, b.test)
    # an edited split-3.csv that trains on a test row is refused on resume, not trained on
    from job.rundir.writer import write_split_csv

    third = rows[2]
    write_split_csv(tmp_path / "split-3.csv", np.append(third.train, third.test[0]), third.val, third.test[1:])
    with pytest.raises(ResumeError, match=r"split-3.csv: its test rows are not split 1's"):
        pipeline.split(plan, state)  # type: ignore[arg-type]
    state.release()


def test_a_test_row_copied_into_a_later_splits_training_rows_is_counted():
    x = np.arange(40, dtype=np.uint8).reshape(10, 4)
    x[7] = x[2]  # row 7 (validation on split 1, training on split 2) is a copy of test row 2
    first = Split(train=np.array([0, 1, 3, 4, 5, 6]), val=np.array([7, 8]), test=np.array([2, 9]))
    second = Split(train=np.array([0, 1, 3, 4, 5, 7]), val=np.array([6, 8]), test=np.array([2, 9]))
    assert pipeline.split_info([first], 1, x).held_out_copies == 0
    assert pipeline.split_info([first, second], 1, x).held_out_copies == 1


def test_each_split_reads_its_own_rows_and_split_one_reads_what_it_read_before(tmp_path):
    dataset = _dataset()
    state = _state(tmp_path)
    plan = SimpleNamespace(config=RunConfig(seed=1, splits=2, sample=30), dataset=dataset, resumed=False)
    rows = pipeline.split(plan, state)  # type: ignore[arg-type]
    splits = pipeline.dev_splits(dataset, rows)
    assert splits.x.shape[0] == 30  # the sampled rows, copied once
    for k, part in enumerate(rows, start=1):
        arrays = splits.arrays(k)
        assert np.array_equal(arrays.x_train, dataset.x[part.train]) and np.array_equal(
            arrays.y_val, dataset.y[part.val]
        )
        assert np.array_equal(arrays.x_test, dataset.x[rows[0].test])
    state.release()
    (tmp_path / "b").mkdir()
    other = _state(tmp_path / "b")
    whole_plan = SimpleNamespace(config=RunConfig(seed=1), dataset=dataset, resumed=False)
    whole = pipeline.dev_splits(dataset, pipeline.split(whole_plan, other))  # type: ignore[arg-type]
    assert whole.x is dataset.x  # no sample: no copy of the data
    other.release()


def test_trainings_are_named_by_split_from_split_two_on():
    assert TrainingKey("model_1", 42).folder == "model_1-seed42"
    assert TrainingKey("model_1", 42, 2).folder == "model_1-seed42-split2"
    assert pred_column("model_1") == "model_1_pred" and pred_column("model_1", 42, 3) == "model_1_seed42_split3_pred"
    assert val_predictions_csv(1) == "val_predictions.csv" and val_predictions_csv(2) == "val_predictions-split2.csv"
    assert seed_model_path(Path("r"), "m", 7, 2).name == "m-seed7-split2.keras"


def test_the_plan_runs_model_by_model_split_by_split_and_the_reproduce_line_carries_splits():
    config = RunConfig(repeats=2, splits=2)
    plan = SimpleNamespace(config=config, specs=[SimpleNamespace(slug="a"), SimpleNamespace(slug="b")])
    from job.plan import RunPlan

    keys = RunPlan.keys.fget(plan)  # type: ignore[attr-defined]
    assert [(k.slug, k.seed, k.split) for k in keys][:4] == [("a", 42, 1), ("a", 43, 1), ("a", 42, 2), ("a", 43, 2)]
    assert "--splits 2" in config.command_line()
    assert "--splits" not in RunConfig(splits=1).command_line()
    assert "--splits 1" in RunConfig(splits=1, spec_file="f.toml").command_line()  # the file could say otherwise


def test_the_family_file_sets_splits_and_the_command_line_beats_it(tmp_path):
    from job.plan import _absolute

    path = tmp_path / "f.toml"
    path.write_text('splits = 4\n[[model]]\nname = "a"\nhidden = [4]\n')
    family = load_family(path)
    assert family.splits == 4
    assert _absolute(RunConfig(spec_file=str(path)), family).splits == 4
    assert _absolute(RunConfig(spec_file=str(path), splits=2), family).splits == 2
    assert _absolute(RunConfig(), load_family(None)).splits is None  # one split, and run.json as before


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("splits = 0\n", "'splits' is 0; give the number of development splits"),
        ("splits = 101\n", "from 1 to 100"),
        ("splits = 2.5\n", "a whole number"),
        ("splits = true\n", "a whole number"),
        ('[defaults]\nsplits = 3\n', "'splits' is inside [defaults]"),
    ],
)  # fmt: skip
def test_a_bad_splits_key_is_one_line(tmp_path, text, needle):
    path = tmp_path / "f.toml"
    path.write_text(text + '[[model]]\nname = "a"\nhidden = [4]\n')
    with pytest.raises(SpecError, match=re.escape(needle)):
        load_family(path)


@pytest.mark.parametrize("value", ["0", "101", "x"])
def test_a_bad_splits_option_is_one_line_and_exit_2(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--splits", value])
    assert result.exit_code == 2 and "'--splits'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def _preds(y: np.ndarray, wrong: dict[str, list[int]], params: dict[str, int]) -> list[ModelPredictions]:
    out = []
    for name, rows in wrong.items():
        p = y.copy()
        p[rows] = (p[rows] + 1) % 3
        out.append(ModelPredictions(name, params[name], [p], [p]))
    return out


def test_the_choice_over_one_split_is_the_choice_itself():
    y = np.arange(300) % 3
    models = _preds(y, {"big": list(range(10)), "small": list(range(14))}, {"big": 100, "small": 10})
    one = choose_over_splits([(y, models)], 1.0, 1 / 3)
    assert one == choose(y, models, 1.0)


def test_over_splits_a_smaller_model_as_good_on_every_split_is_within_and_the_spread_widens_the_bound():
    rng = np.random.default_rng(0)
    per_split = []
    for _ in range(4):
        y = rng.integers(0, 3, 2000)
        wrong = rng.choice(2000, 100, replace=False).tolist()
        per_split.append((y, _preds(y, {"big": wrong, "small": wrong}, {"big": 100, "small": 10})))
    same = choose_over_splits(per_split, 1.0, 1 / 3)
    assert same.chosen == "small" and "4 splits" in same.resampling
    # the small model 2 pp worse on one split and 2 pp better on another: the same mean, a wider spread
    shifted = []
    for k, (y, models) in enumerate(per_split):
        small = models[1].val[0].copy()
        if k in (1, 2):
            flip = np.flatnonzero(small == y)[:40]
            small[flip] = (small[flip] + 1) % 3
        shifted.append((y, [models[0], ModelPredictions("small", 10, [small], [small])]))
    wide = choose_over_splits(shifted, 1.0, 1 / 3)
    narrow = choose_over_splits(shifted, 1.0, 0.0)  # without the Nadeau-Bengio inflation
    bound = {id(c): next(t.lower_bound for t in c.tests if t.model == "small") for c in (wide, narrow)}
    assert bound[id(wide)] < bound[id(narrow)]


def test_the_interval_over_splits_known_answer_and_none_at_one_split():
    means = np.array([0.80, 0.82, 0.84])
    ci = corrected_interval(means, 1 / 3)
    from scipy import stats

    half = stats.t.ppf(0.975, 2) * math.sqrt(0.0004 * (1 / 3 + 1 / 3))
    assert ci is not None and ci.low == pytest.approx(0.82 - half) and ci.high == pytest.approx(0.82 + half)
    with_rows = corrected_interval(means, 1 / 3, 0.82 * 0.18 / 400)
    assert with_rows is not None and with_rows.low < ci.low
    assert corrected_interval(np.array([0.8]), 1 / 3) is None and corrected_interval(np.full(3, 0.8), 1 / 3) is None


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (3, 1), (5, 2)])
@pytest.mark.parametrize("models", [1, 2, 3])
def test_the_architectures_are_never_nan(shape, models):
    rng = np.random.default_rng(1)
    acc = {f"M{i}": rng.uniform(0.8, 0.9, shape) for i in range(models)}
    acc |= {"same": acc["M0"]} if models > 1 else {}
    arch = compare_architectures(acc, 400, 1200)
    json.dumps(to_jsonable(arch), allow_nan=False)
    assert (arch.mean_ranks is not None) == (shape[0] >= 5 and len(acc) >= 3)
    if shape == (1, 1):
        assert all(p.p_a_beats_b is None and p.p_value is None for p in arch.pairs)
    assert all((p.p_value is None) == (shape[0] < 2) for p in arch.pairs)
    same = [p for p in arch.pairs if p.b == "same"]
    assert all(p.a != "M0" or p.p_a_beats_b in (None, 0.5) for p in same)


def test_a_run_with_splits_renders_the_matrix_the_noise_and_the_cd_diagram(tmp_path):
    run = write_hand_run(tmp_path / "run")
    rng = np.random.default_rng(2)
    names = [m.name for m in run.models if m.status == "ok"] + ["Model 4"]
    acc = {n: rng.uniform(0.8, 0.9, (5, 2)) for n in names}
    run.architectures = compare_architectures({n: acc[n] for n in names[:2]}, 400, 1200)
    run.splits = 2
    write_run(tmp_path / "run", run)
    html = render_report(tmp_path / "run")
    assert "Which architecture is better?" in html and "P(A &gt; B)" in html and "Where the noise comes from" in html
    assert "Every pair across splits" in html and "Mean ranks" not in html  # two models: no diagram
    assert "Left out: Model 3: a training of it did not finish." in html  # the hand run's failed model
    assert "95% interval over trainings" in html and "<th>split</th>" in html  # one seed, two splits
    assert "mean over 2 splits × 1 seed" in html
    assert reader.read_run(tmp_path / "run").architectures == run.architectures
    run.architectures = compare_architectures(acc, 400, 1200)  # 3 models on 5 splits: the diagram
    write_run(tmp_path / "run", run)
    html = render_report(tmp_path / "run")
    assert "Mean ranks" in html and "Critical-difference diagram" in html and "Descriptive" in html


def test_an_old_run_without_splits_renders_without_the_section(tmp_path):
    run = write_hand_run(tmp_path / "run")
    raw = json.loads((tmp_path / "run" / "run.json").read_text())
    raw["schema_version"] = 4
    for key in ("splits", "architectures"):
        raw.pop(key)
    for m in raw["models"]:
        for t in m["trainings"]:
            t.pop("split")
    (tmp_path / "run" / "run.json").write_text(json.dumps(raw))
    back = reader.read_run(tmp_path / "run")
    assert (
        back.splits == 1 and back.architectures is None and all(t.split == 1 for m in back.models for t in m.trainings)
    )
    assert back.models == run.models
    assert "Which architecture is better?" not in render_report(tmp_path / "run")


def _split_models(rng, k: int, gap: float, rows: int = 800, base: float = 0.85):
    """K splits of two models (big, small) with true accuracies base and base + gap, independent rows."""
    per_split = []
    for _ in range(k):
        y = rng.integers(0, 3, rows)
        preds = []
        for name, acc, params in (("big", base, 100), ("small", base + gap, 10)):
            p = y.copy()
            wrong = rng.random(rows) > acc
            p[wrong] = (p[wrong] + 1) % 3
            preds.append(ModelPredictions(name, params, [p], [p]))
        per_split.append((y, preds))
    return per_split


def test_over_splits_the_bound_is_the_corrected_t_tests_at_the_holm_level():
    """With one smaller model the bound is the one-sided Nadeau-Bengio bound: mean(d) + t(K-1) quantile x
    sqrt(var(d) (1/K + ratio)), up to the draws' own noise."""
    from scipy import stats

    per_split = _split_models(np.random.default_rng(3), 4, -0.005)
    choice = choose_over_splits(per_split, 1.0, 1 / 3)
    d = np.array([np.mean(ms[1].val[0] == y) - np.mean(ms[0].val[0] == y) for y, ms in per_split])
    small = next(t for t in choice.tests if t.model == "small")
    expected = d.mean() + stats.t.ppf(small.level, 3) * math.sqrt(d.var(ddof=1) * (1 / 4 + 1 / 3))
    assert small.diff == pytest.approx(d.mean())
    assert small.lower_bound == pytest.approx(expected, abs=0.1 * abs(expected - d.mean()))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_over_few_splits_a_model_exactly_a_margin_worse_is_shown_within_at_most_five_percent_of_the_time(k):
    """The rule's bound on the draws (the (floor(alpha (B + 1)))-th smallest difference, as `_decide` reads it
    for one smaller model), on simulated per-split accuracies of 800 validation rows with a true gap of exactly
    the margin: "within" at most alpha of the time, whenever the larger model is the best on validation."""
    rng = np.random.default_rng(k)
    b, calls, wrong = 2000, 0, 0
    for trial in range(400):
        acc = rng.binomial(800, [0.85, 0.84], size=(k, 2)) / 800  # (splits, [big, small])
        if acc[:, 1].mean() >= acc[:, 0].mean():
            continue  # the smaller model is the best on validation: chosen without a test
        draws = split_draws(acc, 1 / 3, b, trial)
        bound = np.sort(draws[:, 1] - draws[:, 0])[math.floor(0.05 * (b + 1)) - 1]
        calls, wrong = calls + 1, wrong + (bound > -0.01)
    assert calls > 200 and wrong / calls <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / calls)


@pytest.mark.parametrize("drop", ["splits", "architectures", "estimate", "models[0].trainings[0].split"])
def test_a_schema_5_run_json_without_its_new_keys_is_refused_in_one_line(tmp_path, drop):
    write_hand_run(tmp_path / "run")
    raw = json.loads((tmp_path / "run" / "run.json").read_text())
    if drop.startswith("models"):
        raw["models"][0]["trainings"][0].pop("split")
    else:
        raw.pop(drop)
    (tmp_path / "run" / "run.json").write_text(json.dumps(raw))
    with pytest.raises(reader.RunDirError, match=drop.rsplit(".", 1)[-1]):
        reader.read_run(tmp_path / "run")
