"""Benchmark: packed against separate trainings in best validation accuracy, paired by seed (#24).

    python bench/pack_exactness.py --models 1,2 --seeds 10

Fashion-MNIST at the seed's scale (40,320 rows, 24,192 training rows), the job's two training units on one
backend per process: for every seed, a separate training (`job.training.loop.train`) and the same seed as a member
of one pack of all the seeds (`job.training.packed.train_pack`), as `--repeats 10 --pack 10` trains them. Both
start from the same NumPy-drawn weights and see the same batches. The table gives the mean paired difference
(packed - separate) of the best validation accuracy with its 95% t-interval (scipy), how many seeds agree exactly,
and the largest difference in any epoch's training loss. Writes bench/results/pack_exactness-<backend>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FASHION = "/usr/share/datasets/fashion-mnist"
HERE = Path(__file__).resolve().parent


def worker(key: str, seeds: list[int], split_seed: int) -> dict:
    from bench import load_arrays
    from job.family import seed_specs
    from job.rundir.resume import Checkpoint, PackCheckpoint
    from job.training.inputs import SplitArrays, TrainSettings
    from job.training.loop import train
    from job.training.model import configure
    from job.training.packed import Member, train_pack

    configure("float32")
    arrays, _ = load_arrays(split_seed)
    split = SplitArrays(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                        arrays["x_val"], arrays["y_val"], 10)  # fmt: skip
    spec = next(s for s in seed_specs() if s.key == key)
    out: dict = {"separate": {}, "packed": {}}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            result = train(spec, seed, split, TrainSettings(), Checkpoint(Path(tmp)))
        out["separate"][seed] = _summary(result)
    with tempfile.TemporaryDirectory() as tmp:
        members = [Member(seed, 1, split) for seed in seeds]
        for seed, result in zip(
            seeds, train_pack(spec, members, TrainSettings(), PackCheckpoint(Path(tmp))), strict=True
        ):
            out["packed"][seed] = _summary(result)
    return out


def _summary(result) -> dict:
    return {
        "best": max(r.val_accuracy for r in result.records if r.val_accuracy is not None),
        "losses": [r.loss for r in result.records],
        "epochs": len(result.records),
        "best_epoch": result.best_epoch,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="1,2")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--split-seed", type=int, default=42)
    p.add_argument("--backends", default="tensorflow,jax")
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "OUT"))
    args = p.parse_args()
    seeds = list(range(args.seeds))
    if args.worker:
        key, out = args.worker
        Path(out).write_text(json.dumps(worker(key, seeds, args.split_seed)))
        return
    import numpy as np
    from scipy.stats import t

    (HERE / "results").mkdir(exist_ok=True)
    for backend in args.backends.split(","):
        results = {}
        for key in args.models.split(","):
            out = HERE / "results" / f"pack-exact-{key}-{backend}.json"
            env = os.environ | {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(HERE.parent)}
            cmd = [sys.executable, __file__, "--seeds", str(args.seeds), "--split-seed", str(args.split_seed),
                   "--worker", key, str(out)]  # fmt: skip
            subprocess.run(cmd, check=True, env=env, cwd=HERE)
            results[key] = run = json.loads(out.read_text())
            sep = np.array([run["separate"][str(s)]["best"] for s in seeds])
            pk = np.array([run["packed"][str(s)]["best"] for s in seeds])
            d = pk - sep
            low, high = t.interval(0.95, d.size - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(d.size))
            if d.std() == 0:
                low = high = float(d.mean())
            loss_gap = max(
                abs(a - b) / abs(b)
                for s in seeds
                for a, b in zip(run["packed"][str(s)]["losses"], run["separate"][str(s)]["losses"], strict=False)
                if a is not None and b is not None
            )
            same_epochs = sum(run["packed"][str(s)]["epochs"] == run["separate"][str(s)]["epochs"] for s in seeds)
            print(f"{backend} Model {key}: separate {sep.mean():.4f}, packed {pk.mean():.4f}, packed - separate "
                  f"{d.mean() * 100:+.3f} pp [{low * 100:+.3f}, {high * 100:+.3f}] over {d.size} seeds; identical best "
                  f"accuracy in {int((d == 0).sum())}; same epochs run in {same_epochs}; largest relative gap in an "
                  f"epoch's training loss {loss_gap:.1e}", flush=True)  # fmt: skip
        (HERE / "results" / f"pack_exactness-{backend}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
