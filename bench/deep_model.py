"""One epoch of the deepest model a family file allows (MAX_LAYERS hidden layers of width 4), on 300 random rows.

    KERAS_BACKEND=jax /usr/bin/time -v .venv/bin/python bench/deep_model.py [LAYERS]

Prints the layers and the seconds; `/usr/bin/time -v` gives the peak resident memory. The figures go in
docs/benchmarks.md.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from job.family import MAX_LAYERS
from job.rundir.resume import Checkpoint
from job.specs import ModelSpec
from job.training.inputs import SplitArrays, TrainSettings
from job.training.loop import train

log = logging.getLogger("bench.deep_model")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layers = int(sys.argv[1]) if len(sys.argv) > 1 else MAX_LAYERS
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (300, 64), dtype=np.uint8), rng.integers(0, 3, 300)
    arrays = SplitArrays(x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:], 3)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = train(
            ModelSpec("1", "deep", (4,) * layers, epochs=1), 1, arrays, TrainSettings(), Checkpoint(Path(folder))
        )
    log.info("%d hidden layers: %.1f s, failure %s", layers, time.perf_counter() - started, result.failure)


if __name__ == "__main__":
    main()
