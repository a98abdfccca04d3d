"""Packed against separate trainings (#24): seconds per steady epoch of K trainings of one model, interleaved.

    KERAS_BACKEND=tensorflow python bench/bench_pack.py --models 1,2,3,4 --k 1,3,5,10
    KERAS_BACKEND=jax        python bench/bench_pack.py --models 1,2,3,4 --k 1,3,5,10

For each model and K, the job's own training units as a run calls them: K separate trainings
(`job.training.loop.train`, one after another) against one pack of K members (`job.training.packed.train_pack`),
separate then packed, `--pairs` times. Each side trains `--epochs` epochs (3: the first compiles) with early
stopping off, and its figure is the seconds of its steady epochs (every epoch after the first, validation
included), per epoch: summed over the K for separate, the pack's own for packed. The ratio is per pair,
separate / packed. Members are seeds 0..K-1 on the same rows, as `--repeats` trains them; settings are a run's
(steps per execution 32, validation batch 2048). Data: `--rows` training rows of Fashion-MNIST (the seed's scale is
24,192), with 6,048 validation and 7,560 test rows beside them, as the seed's split makes them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
FASHION = "/usr/share/datasets/fashion-mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="1,2")
    parser.add_argument("--k", default="1,3,5,10")
    parser.add_argument("--rows", type=int, default=24_192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--data", default=FASHION)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import keras

    from job.data.load import load_dataset
    from job.family import seed_specs
    from job.specs import select_specs
    from job.training.inputs import SplitArrays, TrainSettings
    from job.training.model import configure

    configure(args.precision)
    data = load_dataset(args.data)
    rng = np.random.default_rng(0)
    n_val, n_test = round(args.rows / 0.64 * 0.16), round(args.rows / 0.64 * 0.2)
    rows = rng.permutation(data.rows)[: args.rows + n_val + n_test]
    x, y = data.x[rows], data.y[rows]
    cut = (args.rows, args.rows + n_val)
    arrays = SplitArrays(
        x[: cut[0]], y[: cut[0]], x[cut[0] : cut[1]], y[cut[0] : cut[1]], x[cut[1] :], y[cut[1] :], data.n_classes
    )
    settings = TrainSettings(policy=args.precision, epochs_override=args.epochs)
    results = []
    for spec in select_specs(args.models, seed_specs()):
        spec = dataclasses.replace(spec, patience=10_000)  # every epoch runs: the same work on both sides
        for k in (int(v) for v in args.k.split(",")):
            pairs = []
            for _ in range(args.pairs):
                separate = sum(_separate(spec, seed, arrays, settings) for seed in range(k))
                packed = _packed(spec, list(range(k)), arrays, settings)
                pairs.append((separate, packed))
            ratios = [s / p for s, p in pairs]
            row = {
                "backend": keras.backend.backend(),
                "policy": args.precision,
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


def _steady(records) -> float:
    """Seconds per epoch without the compile epochs (`steady_epoch_seconds`): the cost that scales with epochs."""
    from job.training.epochs import steady_epoch_seconds

    seconds = steady_epoch_seconds(records)
    return records[0].seconds if seconds is None else seconds


def _separate(spec, seed: int, arrays, settings) -> float:
    from job.rundir.resume import Checkpoint
    from job.training.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        return _steady(train(spec, seed, arrays, settings, Checkpoint(Path(tmp))).records)


def _packed(spec, seeds: list[int], arrays, settings) -> float:
    from job.rundir.resume import PackCheckpoint
    from job.training.packed import Member, train_pack

    with tempfile.TemporaryDirectory() as tmp:
        (first, *_) = train_pack(spec, [Member(s, 1, arrays) for s in seeds], settings, PackCheckpoint(Path(tmp)))
    return _steady(first.records) * len(seeds)  # a member's seconds are the pack's, shared out


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
