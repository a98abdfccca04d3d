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
