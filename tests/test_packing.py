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
    assert resolve("auto", SPECS, at(5)) == f"model_1={most},model_2={most},model_3=1,model_4=1"
    assert resolve("auto", SPECS, at(2)) == "off"  # a pack of two did not pay on a CPU
    assert resolve("auto", SPECS, at(2, True, "mixed_bfloat16")) == str(most)
    assert resolve("auto", SPECS, at(1, True, "mixed_bfloat16")) == "off"
    assert resolve("auto", SPECS, at(5, True, "mixed_float16")) == "off"
    assert resolve("4", SPECS, at(5, True, "mixed_float16")) == "off"  # one loss scale would skip every member
    assert resolve("1", SPECS, at(5)) == "off"  # a pack of one is a separate training
    assert resolve("model_2=3", SPECS, at(5)) == "model_1=1,model_2=3,model_3=1,model_4=1"
    jax_cpu = Where(784, 10, 5, False, "float32", "jax")  # JAX's lean step: only the deeper small model gained
    assert resolve("auto", SPECS, jax_cpu) == f"model_1=1,model_2={most},model_3=1,model_4=1"


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
    assert "--pack" not in RunConfig().command_line()


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
