"""Packed against separate trainings (#24): seconds per steady epoch of K trainings of one model, interleaved.

    KERAS_BACKEND=tensorflow python bench/bench_pack.py --models 1,2 --k 1,3,5,10
    KERAS_BACKEND=jax        python bench/bench_pack.py --models 1,2 --k 1,3,5,10

For each model and K: K separate trainings (the job's own model, optimizer and feed from `job.training`, fit() on
each member's own row order) against one packed model of K members (`job.training.pack`), each measured as the
seconds of one steady epoch (a first epoch compiles and is not counted), separate then packed, `--pairs` times;
the ratio is per pair, separate / packed. Members are seeds SEED.. on the same rows, as `--repeats` trains them.
Data: `--rows` training rows of Fashion-MNIST (the seed's scale is 24,192), batch size and optimizer the spec's.
The packed epoch here is the bare fit(); the job's unit adds per-member validation, records and checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
FASHION = "/usr/share/datasets/fashion-mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="1,2")
    parser.add_argument("--k", default="1,3,5,10")
    parser.add_argument("--rows", type=int, default=24_192)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--data", default=FASHION)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import keras

    from job.data.load import load_dataset
    from job.family import seed_specs
    from job.specs import select_specs
    from job.training.model import configure

    configure("float32")
    data = load_dataset(args.data)
    rng = np.random.default_rng(0)
    rows = rng.permutation(data.rows)[: args.rows]
    x, y = data.x[rows], data.y[rows]
    results = []
    for spec in select_specs(args.models, seed_specs()):
        for k in (int(v) for v in args.k.split(",")):
            pairs = []
            for _ in range(args.pairs):
                separate = sum(_separate_epoch(spec, seed, x, y, data.n_classes) for seed in range(k))
                packed = _packed_epoch(spec, list(range(k)), x, y, data.n_classes)
                pairs.append((separate, packed))
            ratios = [s / p for s, p in pairs]
            row = {
                "backend": keras.backend.backend(),
                "model": spec.name,
                "k": k,
                "separate_s": statistics.median(s for s, _ in pairs),
                "packed_s": statistics.median(p for _, p in pairs),
                "ratio": statistics.median(ratios),
                "ratios": ratios,
            }
            results.append(row)
            print(
                f"{row['backend']:>10} {spec.name} K={k:>2}: separate {row['separate_s']:.2f} s, packed "
                f"{row['packed_s']:.2f} s per epoch; {row['ratio']:.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _steady_epoch(model, x, y, batch_size: int) -> float:
    """Seconds of the second of two one-epoch fit() calls (the first compiles), fed as the job feeds them."""
    from job.training.feed import feed

    for _ in range(2):
        rows = feed(batch_size, x, y)
        start = time.perf_counter()
        model.fit(rows.x, rows.y, batch_size=rows.batch_size, epochs=1, shuffle=False, verbose=0)
        seconds = time.perf_counter() - start
    return seconds


def _separate_epoch(spec, seed: int, x: np.ndarray, y: np.ndarray, classes: int) -> float:
    import keras

    from job.training.model import build_model, fresh_backend_state, logits_model, scaler_from, set_initial_weights
    from job.training.optim import make_optimizer

    fresh_backend_state()
    model = build_model(spec, x.shape[1], classes, *scaler_from(x))
    set_initial_weights(model, spec, seed)
    trainer = logits_model(model)
    trainer.compile(make_optimizer(spec), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    order = np.random.default_rng([seed, 1]).permutation(len(x))
    return _steady_epoch(trainer, x[order], y[order], spec.batch_size)


def _packed_epoch(spec, seeds: list[int], x: np.ndarray, y: np.ndarray, classes: int) -> float:
    from job.training.model import fresh_backend_state, logits_model, scaler_from
    from job.training.optim import make_optimizer
    from job.training.pack import build_packed_model, member_sum_loss, set_packed_initial_weights

    fresh_backend_state()
    lo, rng = scaler_from(x)
    k = len(seeds)
    packed = build_packed_model(spec, x.shape[1], classes, np.stack([lo] * k), np.stack([rng] * k))
    set_packed_initial_weights(packed, spec, seeds)
    trainer = logits_model(packed)
    trainer.compile(make_optimizer(spec), member_sum_loss)
    orders = [np.random.default_rng([seed, 1]).permutation(len(x)) for seed in seeds]
    xs = np.stack([x[o] for o in orders], axis=1)  # (rows, K, pixels): each member its own order
    ys = np.stack([y[o] for o in orders], axis=1)
    return _steady_epoch(trainer, xs, ys, spec.batch_size)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
