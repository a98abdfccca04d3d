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
