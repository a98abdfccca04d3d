"""The four seed models, pinned to the seed's parameter counts."""

import numpy as np
import pytest

from job.family import seed_specs
from job.specs import SpecError, select_specs

SEED_SPECS = seed_specs()

SEED_PARAMS = {"Model 1": 24_380, "Model 2": 53_730, "Model 3": 543_460, "Model 4": 1_168_460}
SEED_LAYERS = {"Model 1": 4, "Model 2": 6, "Model 3": 6, "Model 4": 10}


def test_spec_table_matches_the_seed():
    assert [s.hidden for s in SEED_SPECS] == [
        (30, 20),
        (60, 50, 40, 30),
        (500, 200, 200, 50),
        (600, 200, 500, 300, 400, 400, 100, 50),
    ]
    assert [s.epochs for s in SEED_SPECS] == [10, 10, 10, 20]
    assert all(s.batch_size == 32 and s.patience == 3 and s.activation == "selu" for s in SEED_SPECS)
    assert {s.name: s.param_count() for s in SEED_SPECS} == SEED_PARAMS
    assert {s.name: s.layer_count() for s in SEED_SPECS} == SEED_LAYERS


def test_built_keras_models_have_the_seed_parameter_counts():
    from job.training.model import build_model, dense_params

    lo, rng = np.zeros(784, np.float32), np.full(784, 255.0, np.float32)
    for spec in SEED_SPECS:
        model = build_model(spec, 784, 10, lo, rng)
        assert dense_params(model) == SEED_PARAMS[spec.name]
        assert model.inputs[0].dtype == "uint8"


def test_select_subset_keeps_table_order():
    assert [s.name for s in select_specs("3,1", SEED_SPECS)] == ["Model 1", "Model 3"]
    assert [s.name for s in select_specs("Model 4, 2", SEED_SPECS)] == ["Model 2", "Model 4"]
    assert len(select_specs(None, SEED_SPECS)) == 4


def test_unknown_model_is_a_clear_error():
    with pytest.raises(SpecError, match="unknown model 7"):
        select_specs("1,7", SEED_SPECS)


def test_the_initializer_names_a_spec_may_give_are_the_ones_init_draws():
    from job.specs import INITIALIZER_NAMES
    from job.training.init import INITIALIZERS

    assert tuple(INITIALIZERS) == INITIALIZER_NAMES
