"""`--pack`: the setting parsed and refused in one line, resolved once on the training device, and the layout."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from job.cli import main
from job.config import RunConfig, parse_pack
from job.family import seed_specs
from job.rundir.resume import TrainingKey
from job.training.packing import AUTO_MOST, Where, layout, resolve, sizes_of, spelled

SPECS = tuple(seed_specs())  # Models 1 and 2 are small, 3 and 4 wide


@pytest.mark.parametrize(
    ("text", "value"),
    [("off", "off"), ("AUTO", "auto"), ("5", 5), ("model_1=5, model_2=3", {"model_1": 5, "model_2": 3})],
)
def test_the_forms_of_pack_parse(text, value):
    assert parse_pack(text) == value


@pytest.mark.parametrize("text", ["0", "65", "five", "model_1=0", "model_1", "model_1=2,model_1=3", "=3", "a=b"])
def test_a_bad_pack_is_one_line_exit_2_before_anything_is_written(tmp_path, text):
    result = CliRunner().invoke(main, ["run", "--pack", text, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--pack" in result.stderr, result.stderr
    assert "off, auto, a number" in result.stderr and not (tmp_path / "o").exists()


def test_a_pack_for_a_model_not_in_the_run_names_the_slugs(tmp_path):
    result = CliRunner().invoke(main, ["run", "--models", "1", "--pack", "model_2=3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "no model model_2 in this run; use its slug (model_1)" in result.stderr and not (tmp_path / "o").exists()


def test_auto_packs_the_small_models_on_a_cpu_everything_on_a_gpu_and_nothing_under_float16():
    def at(trainings: int, gpu: bool = False, policy: str = "float32") -> Where:
        return Where(784, 10, trainings, gpu, policy)

    most = AUTO_MOST
    assert resolve("auto", SPECS, at(12)) == f"model_1={most},model_2={most},model_3=1,model_4=1"
    assert resolve("auto", SPECS, at(2)) == "off"  # a pack of two did not pay on a CPU
    assert resolve("auto", SPECS, at(12, True, "mixed_bfloat16")) == str(most)
    assert resolve("auto", SPECS, at(1, True, "mixed_bfloat16")) == "off"
    assert resolve("auto", SPECS, at(5, True, "mixed_float16")) == "off"
    assert resolve("4", SPECS, at(5, True, "mixed_float16")) == "off"  # one loss scale would skip every member
    assert resolve("1", SPECS, at(5)) == "off"  # a pack of one is a separate training
    assert resolve("model_2=3", SPECS, at(5)) == "model_1=1,model_2=3,model_3=1,model_4=1"
    jax_cpu = Where(784, 10, 12, False, "float32", "jax")  # JAX's lean step: only the deeper small model gained
    assert resolve("auto", SPECS, jax_cpu) == f"model_1=1,model_2={most},model_3=1,model_4=1"


def test_under_float16_the_default_says_it_packs_nothing_and_an_asked_for_pack_warns(caplog):
    """auto is the default, so a GPU run under mixed_float16 would warn on every run; it logs instead."""
    where = Where(784, 10, 5, True, "mixed_float16")
    with caplog.at_level("INFO", logger="job"):
        resolve("auto", SPECS, where)
        resolve("4", SPECS, where)
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("INFO", "--pack auto"),
        ("WARNING", "--pack 4"),
    ]


def test_a_resolved_pack_reads_back_the_same_sizes():
    for setting in ("off", "3", "model_1=5,model_2=3"):
        sizes = sizes_of(setting, SPECS)
        assert sizes_of(spelled(sizes), SPECS) == sizes
    with pytest.raises(ValueError, match="resolved on the device"):
        sizes_of("auto", SPECS)


def test_the_layout_cuts_each_models_trainings_into_even_packs_in_the_runs_order():
    keys = [TrainingKey(slug, seed, split) for slug in ("a", "b") for split in (1, 2) for seed in (1, 2, 3, 4)]
    units = layout(keys, {"a": 5, "b": 1})
    assert [len(u) for u in units] == [4, 4] + [1] * 8  # 8 at most 5: two of 4, not 5 and 3
    assert [k for u in units for k in u] == keys and {k.slug for k in units[0]} == {"a"}
    assert [len(u) for u in layout(keys[:7], {"a": 5})] == [4, 3]


def test_the_reproduce_line_spells_the_resolved_pack():
    config = RunConfig(pack="model_1=5,model_2=3")
    assert "--pack model_1=5,model_2=3" in config.command_line()
    assert "--pack off" in RunConfig(pack="off").command_line()  # auto may resolve otherwise elsewhere
    assert RunConfig().pack == "auto"


def test_a_packs_memory_is_in_the_estimate_and_grows_with_its_members():
    from job import cost

    shape = cost.Shape(784, 10, 70_000, 24_192, 6_048, 7_560)
    alone = cost.estimate(SPECS[:1], shape, 10, local=True)
    packed = cost.estimate(SPECS[:1], shape, 10, local=True, packs={"model_1": 10})
    rows = 10 * 784 * (4 * 24_192 + 3 * 6_048 + 7_560)
    assert packed.training_bytes >= 10 * alone.training_bytes + rows
    assert packed.peak_bytes - alone.peak_bytes == packed.training_bytes - alone.training_bytes
    assert cost.estimate(SPECS[:1], shape, 3, local=True, packs={"model_1": 10}).training_bytes < packed.training_bytes


def test_bfloat16_on_tensorflow_always_compiles_with_xla():
    from job.pipeline import jit_compile

    assert jit_compile("tensorflow", "mixed_bfloat16") is True
    assert jit_compile("tensorflow", "float32") == "auto" and jit_compile("jax", "mixed_bfloat16") == "auto"


def _record(epoch: int, loss: float = 1.0):
    from job.result import EpochRecord

    return EpochRecord(epoch, loss, 0.5, 1.0, 0.5, 1.0, 0.8, 0.2, epoch == 1)


def test_a_pack_checkpoint_tells_each_members_listener_and_drops_epochs_its_backup_does_not_cover(tmp_path):
    import json

    from job.rundir.resume import PackCheckpoint, ResumeError

    heard: dict[int, list[int]] = {0: [], 1: []}
    checkpoint = PackCheckpoint(tmp_path, (lambda r: heard[0].append(r.epoch), lambda r: heard[1].append(r.epoch)))
    checkpoint.append(1, [_record(1), _record(1)])
    checkpoint.append(2, [_record(2), None])  # member 2 ended after epoch 1
    assert heard == {0: [1, 2], 1: [1]}
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "epoch-1.weights.h5").write_bytes(b"w")
    checkpoint.unit.commit_backup(1)  # a kill after epoch 2's line, before its backup
    assert [[r is not None for r in line] for line in checkpoint.prior(2)] == [[True, True]]
    assert len(checkpoint.epochs_path.read_text().splitlines()) == 1  # epoch 2 is redone
    with checkpoint.epochs_path.open("a") as fh:
        fh.write('{"epoch": 2, "memb')  # torn by a kill mid-write
    assert len(checkpoint.prior(2)) == 1
    checkpoint.epochs_path.write_text(json.dumps({"epoch": 7, "members": []}) + "\n" + "{}\n")
    with pytest.raises(ResumeError, match="line 1 is damaged; delete"):
        checkpoint.prior(2)


def test_a_pack_is_handed_out_by_its_whole_work_in_the_longest_first_order():
    import numpy as np

    from job.training.inputs import DevSplits, Inputs, PackTask, TrainingTask, TrainSettings, expected_cost

    splits = DevSplits(
        np.zeros((10, 784), np.uint8), np.zeros(10, int), ((np.arange(6), np.arange(6, 8)),), np.arange(8, 10), 10
    )
    inputs = Inputs(splits, TrainSettings(), lambda key: None)
    one = TrainingTask(SPECS[0], TrainingKey("model_1", 1), "1/3")
    pack = PackTask("model_1-pack1", tuple(TrainingTask(SPECS[0], TrainingKey("model_1", s), "1/3") for s in (1, 2, 3)))
    assert expected_cost(pack, inputs) == 3 * expected_cost(one, inputs)
    assert pack.label == "Model 1 pack 1 (3 trainings)"


def test_pack_has_one_spelling_and_a_pack_larger_than_the_trainings_is_cut_to_them():
    from job.config import normal_pack

    assert normal_pack(" AUTO ") == "auto" and normal_pack("05") == "5"
    assert normal_pack("model_1=5, model_2=3") == "model_1=5,model_2=3"
    assert resolve("10", SPECS, Where(784, 10, 5, False, "float32")) == "5"
    assert resolve("10", SPECS, Where(784, 10, 1, False, "float32")) == "off"  # nothing shares a pack
    assert resolve("auto", SPECS, Where(784, 10, 4, True, "mixed_bfloat16")) == "4"


def test_the_budget_estimates_auto_as_a_cpu_resolves_it_not_every_model_at_its_cap():
    """Models 3 and 4 are never packed by auto on a CPU, so the check before the executor starts does not count
    them as packs of 10 (which refused default runs that fit); a GPU's layout is checked again once known."""
    from job import cost
    from job.pipeline import budget
    from job.plan import resolve

    plan = resolve(RunConfig(repeats=5, sample=300, max_memory=1000.0, backend="tensorflow"))
    est = budget(plan)
    shape = cost.Shape(784, 10, plan.dataset.rows, 300 - 45 - 45, 45, 45)
    specs = plan.specs
    cpu = cost.estimate(specs, shape, 5, local=True, packs={"model_1": 5, "model_2": 5})
    capped = cost.estimate(specs, shape, 5, local=True, packs={s.slug: 10 for s in specs})
    assert est.training_bytes == cpu.training_bytes < capped.training_bytes
