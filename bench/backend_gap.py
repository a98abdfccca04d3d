"""Benchmark: the TensorFlow-JAX accuracy gap, paired by seed, with the same start, batches and loss.

    python bench/backend_gap.py --models 2,4 --seeds 10

Fashion-MNIST at the seed's scale (40,320 rows, 24,192 training rows), the job's training unit on
each backend in its own process. For every seed both backends start from the same NumPy-drawn
weights and see the same batches; the table gives the mean paired difference (JAX - TensorFlow)
of the best validation accuracy with its 95% t-interval (scipy), and how many seeds agree exactly.
Writes bench/results/backend_gap.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

FASHION = "/usr/share/datasets/fashion-mnist"
HERE = Path(__file__).resolve().parent


def worker(key: str, seeds: list[int], split_seed: int) -> dict:
    import tempfile

    from bench import load_arrays
    from job.family import seed_specs
    from job.rundir.resume import Checkpoint
    from job.training.inputs import SplitArrays, TrainSettings
    from job.training.loop import train
    from job.training.model import configure

    configure("float32")
    arrays, _ = load_arrays(split_seed)
    split = SplitArrays(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                        arrays["x_val"], arrays["y_val"], 10)  # fmt: skip
    spec = next(s for s in seed_specs() if s.key == key)
    out = {}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            result = train(spec, seed, split, TrainSettings(), Checkpoint(Path(tmp)))
        out[seed] = {
            "best": max(r.val_accuracy for r in result.records if r.val_accuracy is not None),
            "first_loss": result.records[0].loss,
            "epochs": len(result.records),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="2,4")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--split-seed", type=int, default=42)
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "OUT"))
    args = p.parse_args()
    seeds = list(range(args.seeds))
    if args.worker:
        key, out = args.worker
        Path(out).write_text(json.dumps(worker(key, seeds, args.split_seed)))
        return
    import numpy as np
    from scipy.stats import t

    results = {}
    (HERE / "results").mkdir(exist_ok=True)
    for key in args.models.split(","):
        for backend in ("tensorflow", "jax"):
            out = HERE / "results" / f"gap-{key}-{backend}.json"
            env = os.environ | {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(HERE.parent)}
            cmd = [sys.executable, __file__, "--seeds", str(args.seeds), "--split-seed", str(args.split_seed),
                   "--worker", key, str(out)]  # fmt: skip
            subprocess.run(cmd, check=True, env=env, cwd=HERE)
            results[key, backend] = json.loads(out.read_text())
        tf = np.array([results[key, "tensorflow"][str(s)]["best"] for s in seeds])
        jx = np.array([results[key, "jax"][str(s)]["best"] for s in seeds])
        d = jx - tf
        low, high = t.interval(0.95, d.size - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(d.size))
        first = [results[key, b][str(seeds[0])]["first_loss"] for b in ("tensorflow", "jax")]
        print(f"Model {key}: TF {tf.mean():.4f}, JAX {jx.mean():.4f}, JAX - TF {d.mean() * 100:+.2f} pp "
              f"[{low * 100:+.2f}, {high * 100:+.2f}] over {d.size} seeds; identical best accuracy in "
              f"{int((d == 0).sum())}; seed {seeds[0]} epoch-1 loss TF {first[0]:.6f} JAX {first[1]:.6f}")  # fmt: skip
    summary = {f"{k}-{b}": v for (k, b), v in results.items()}
    (HERE / "results" / "backend_gap.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
