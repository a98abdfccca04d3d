"""Benchmark: --executor local against --executor ray with two single-thread workers, in one run.

    RAY_USAGE_STATS_ENABLED=0 python bench/bench_ray.py --models 1,2 --repeats 3 --rounds 3
    RAY_USAGE_STATS_ENABLED=0 python bench/bench_ray.py --models 1,2,3,4 --repeats 3

Each side is a real `job run` on Fashion-MNIST at the seed's scale (--sample 40320: 24,192 training
rows), in its own process: local with every core, then Ray with --cpus-per-task 1 (two trainings at
once on this 2-core machine). Prints wall seconds, the ratio, and where the Ray run's time went:
start-up until the first training began, the trainings themselves (first start to last finish), and
the rest (data, evaluation, report). With --rounds N both sides run N times, alternating; each line is
the median over the rounds, and the ratio is the median of the rounds' own ratios (so the parts need
not add up to the wall). Writes bench/results/bench_ray.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FASHION = "/usr/share/datasets/fashion-mnist"
HERE = Path(__file__).resolve().parent


def one_run(executor: str, models: str, repeats: int, out: Path) -> dict:
    args = ["run", "--data", FASHION, "--sample", "40320", "--models", models, "--repeats", str(repeats),
            "--executor", executor, "--out", str(out)]  # fmt: skip
    if executor == "ray":
        args += ["--cpus-per-task", "1"]
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(HERE.parent)}
    t0 = time.time()
    done = subprocess.run([sys.executable, "-m", "job", *args], capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    run = json.loads((run_dir / "run.json").read_text())
    placements = [t["placement"] for m in run["models"] for t in m["trainings"]]
    first, last = min(p["started"] for p in placements), max(p["finished"] for p in placements)
    return {
        "wall": wall,
        "startup": first - t0,
        "training": last - first,
        "rest": wall - (last - t0),
        "val_accuracy": {f"{m['name']} s{t['seed']}": t["val_accuracy"] for m in run["models"] for t in m["trainings"]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="local then Ray, this many times; medians are reported")
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds: at least 1")
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            sides = ("local", "ray")
            rounds.append({ex: one_run(ex, args.models, args.repeats, Path(tmp) / f"{ex}{r}") for ex in sides})
            print(f"round {r + 1}: local {rounds[-1]['local']['wall']:.1f} s, ray {rounds[-1]['ray']['wall']:.1f} s, "
                  f"ratio {rounds[-1]['local']['wall'] / rounds[-1]['ray']['wall']:.2f}x", flush=True)  # fmt: skip
    median = {ex: {k: statistics.median(r[ex][k] for r in rounds) for k in ("wall", "startup", "training", "rest")}
              for ex in ("local", "ray")}  # fmt: skip
    local, ray = median["local"], median["ray"]
    ratio = statistics.median(r["local"]["wall"] / r["ray"]["wall"] for r in rounds)  # the rounds are paired
    n = len(args.models.split(",")) * args.repeats
    what = f"medians of {args.rounds} rounds" if args.rounds > 1 else "one round"
    print(f"models {args.models} x {args.repeats} seeds ({n} trainings), {what}: local {local['wall']:.1f} s, "
          f"ray {ray['wall']:.1f} s, ratio {ratio:.2f}x (median of the rounds' ratios)")  # fmt: skip
    for name, r in median.items():
        print(f"  {name}: start-up {r['startup']:.1f} s, trainings {r['training']:.1f} s, rest {r['rest']:.1f} s")
    (HERE / "results").mkdir(exist_ok=True)
    summary = {"median": median, "ratio": ratio, "rounds": rounds}
    (HERE / "results" / "bench_ray.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
