"""Shared fixtures; the helpers they use live in `helpers.py`, which tests import directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import digits_frame


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    digits_frame().to_csv(path, index=False)
    return path


def pytest_collection_finish(session):
    """Freeze what collection imported (TensorFlow, pandas, scipy, ...) out of the garbage collector's sight:
    statsmodels' Holm correction calls gc.collect() on every use, which otherwise walks all of it each time."""
    import gc

    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _ray_settled_after_each_test():
    """A test that starts a (fake) Ray without shutting it down leaves `ray_unsettled` set, and a later in-process
    stop would then leave through os._exit, taking pytest with it: every test starts with it clear."""
    import sys

    yield
    executor = sys.modules.get("job.executors.ray")
    if executor is not None:
        executor.ray_unsettled = False
