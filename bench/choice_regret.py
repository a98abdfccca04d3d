"""Score the job's choice on rows the run never saw: regret, how often a smaller model wins, and coverage.

    python bench/choice_regret.py --sample 4000 --runs 12
    python bench/choice_regret.py --sample 20000 --runs 12
    python bench/choice_regret.py --sample 4000 --runs 6 --repeats 3
    python bench/choice_regret.py --sample 4000 --runs 6 --splits 3      # seeds or splits: 3 trainings a model

Each run is `job run --data FASHION --sample N --seed s` (s = 1..runs), with --repeats and --splits as given.
Every saved model of the run (every training's) then predicts every row outside that run's split.csv (about
66,000 at --sample 4000; every split of a run uses the same rows). Per run it prints the chosen model, its
regret (the best model's unseen accuracy minus the chosen one's, models taken as the mean over their
trainings), the regret of "highest validation accuracy", and whether a model smaller than the best on
validation was chosen, with the parameters that saved, and what the rule before the margin rule would have
chosen on the same predictions (split 1's), with its regret. Then the coverage of the report's 95% intervals
against the unseen values: each training's test accuracy, each model's (over seeds and splits), and each
pair's difference; and the width of the deciding interval (the closest smaller model's difference to the best).

Runs already finished under --work are read again, not retrained (delete the folder to start over).
The figures, with the date and commit, go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FASHION = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist: 70,000 images
REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=12, help="seeds 1..runs (the issue asks for at least 12)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--splits", type=int, default=1, help="development splits (job run --splits)")
    parser.add_argument("--margin", type=float, default=None, help="default: the job's")
    parser.add_argument("--backend", default="jax", help="the choice does not depend on it; JAX trains faster")
    parser.add_argument("--data", default=FASHION)
    parser.add_argument("--work", type=Path, default=Path("/tmp/choice-regret"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from job.data.load import load_dataset

    dataset = load_dataset(args.data)
    rows = []
    for seed in range(1, args.runs + 1):
        run_dir, seconds = _run(args, seed)
        rows.append(_score(run_dir, dataset) | {"seed": seed, "seconds": seconds})
        _print_run(rows[-1])
    summary = _summary(rows, args)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": rows}, indent=2))


def _run(args, seed: int) -> tuple[Path, float | None]:
    name = f"sample{args.sample}-repeats{args.repeats}-margin{args.margin}"
    if args.splits > 1:
        name += f"-splits{args.splits}"
    if args.data != FASHION or args.backend != "jax":  # another experiment: never reuse its runs
        name += f"-{Path(args.data).name}-{args.backend}"
    out = args.work / name / f"seed{seed}"
    done = [p for p in out.glob("*") if (p / "run.json").is_file() and not p.name.endswith(".partial")]
    if done:
        return done[0], None
    command = [sys.executable, "-m", "job", "run", "--data", args.data, "--sample", str(args.sample),
               "--seed", str(seed), "--repeats", str(args.repeats), "--splits", str(args.splits),
               "--backend", args.backend, "--out", str(out)]  # fmt: skip
    if args.margin is not None:
        command += ["--margin", str(args.margin)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: job run failed:\n{proc.stderr[-3000:]}")
    (run_dir,) = [p for p in out.glob("*") if (p / "run.json").is_file()]
    return run_dir, time.perf_counter() - start


def _score(run_dir: Path, dataset) -> dict:
    import keras
    import pandas as pd

    run = json.loads((run_dir / "run.json").read_text())
    split = pd.read_csv(run_dir / "split.csv")  # every split uses the same rows: split 1's
    unseen = np.setdiff1d(np.arange(dataset.rows), split["row"].to_numpy())
    x, y = dataset.x[unseen], dataset.y[unseen]
    unseen_acc: dict[tuple[str, int, int], float] = {}
    for m in run["models"]:
        for t in m["trainings"]:
            k = t.get("split", 1)
            saved = t["seed"] == m["saved_seed"] and k == 1
            tail = f"-seed{t['seed']}" + (f"-split{k}" if k != 1 else "")
            model = keras.models.load_model(
                run_dir / "models" / (f"{m['slug']}.keras" if saved else f"{m['slug']}{tail}.keras")
            )
            pred = model.predict(x, batch_size=4096, verbose=0).argmax(axis=1)
            unseen_acc[m["name"], t["seed"], k] = float(np.mean(pred == y))
    arch = {m["name"]: float(np.mean([unseen_acc[_key(m, t)] for t in m["trainings"]]))
            for m in run["models"]}  # fmt: skip
    params = {m["name"]: m["params"] for m in run["models"]}
    choice = run["choice"]
    top = max(arch.values())
    covered_trainings = [
        t["test_accuracy_ci"]["low"] <= unseen_acc[_key(m, t)] <= t["test_accuracy_ci"]["high"]
        for m in run["models"]
        for t in m["trainings"]
    ]
    covered_models = [  # the report's per-model interval: over seeds with repeats, else Clopper-Pearson
        _inside(m["test_accuracy"]["ci"] or m["trainings"][0]["test_accuracy_ci"], arch[m["name"]])
        for m in run["models"]
    ]
    covered_pairs = [
        p["accuracy_diff_ci"]["low"] <= arch[p["a"]] - arch[p["b"]] <= p["accuracy_diff_ci"]["high"]
        for p in run["comparison"]["pairs"]
    ]
    chosen, best = choice["chosen"], choice["best"]
    old = _old_rule(run_dir, run)
    smaller_tests = [t for t in choice["tests"] if t["role"] == "smaller" and t["diff_ci"] is not None]
    deciding = max(smaller_tests, key=lambda t: t["diff"], default=None)  # the closest smaller model
    return {
        "run_dir": str(run_dir),
        "val_rows": choice["val_rows"],
        "unseen_rows": int(unseen.size),
        "chosen": chosen,
        "best_on_validation": best,
        "best_unseen": max(arch, key=arch.get),
        "unseen_accuracy": arch,
        "regret_pp": (top - arch[chosen]) * 100,
        "regret_best_val_pp": (top - arch[best]) * 100,
        "old_rule_chose": old,
        "regret_old_rule_pp": (top - arch[old]) * 100,
        "smaller_chosen": chosen != best,
        "params_saved": params[best] - params[chosen],
        "params_ratio": params[best] / params[chosen],
        "covered_trainings": covered_trainings,
        "covered_models": covered_models,
        "covered_pairs": covered_pairs,
        # the closest smaller model's 95% interval on its difference to the best, and its decision bound
        "deciding_width_pp": (deciding["diff_ci"]["high"] - deciding["diff_ci"]["low"]) * 100 if deciding else None,
        "deciding_bound_pp": deciding["lower_bound"] * 100 if deciding and deciding["lower_bound"] else None,
    }


def _key(m: dict, t: dict) -> tuple[str, int, int]:
    return m["name"], t["seed"], t.get("split", 1)


def _inside(interval: dict, value: float) -> bool:
    return interval["low"] <= value <= interval["high"]


def _old_rule(run_dir: Path, run: dict) -> str:
    """What the rule before the margin rule would have chosen on the same validation predictions: the fewest
    parameters among the models not significantly below the best (exact McNemar on seed-averaged
    correctness, Holm-adjusted, alpha 0.05)."""
    import pandas as pd

    from job.stats.compare import agreement, holm, mcnemar_p

    frame = pd.read_csv(run_dir / "val_predictions.csv")
    y = frame["true_label"].to_numpy()
    share = {}
    for m in run["models"]:
        first = [t for t in m["trainings"] if t.get("split", 1) == 1]  # val_predictions.csv is split 1's
        tags = ["" if t["seed"] == run["seed"] else f"_seed{t['seed']}" for t in first]
        share[m["name"]] = np.mean([frame[f"{m['slug']}{tag}_pred"].to_numpy() == y for tag in tags], axis=0)
    acc = {name: float(c.mean()) for name, c in share.items()}
    best = max(share, key=lambda n: acc[n])
    others = [n for n in share if n != best]
    p = [mcnemar_p(agreement(share[best], share[n])) for n in others]
    below = {n for n, q in zip(others, holm(p), strict=True) if q < 0.05 and acc[n] < acc[best]}
    params = {m["name"]: m["params"] for m in run["models"]}
    return min((n for n in share if n not in below), key=lambda n: (params[n], -acc[n]))


def _print_run(r: dict) -> None:
    smaller = f"yes, {r['params_saved']:,} params saved ({r['params_ratio']:.1f}x)" if r["smaller_chosen"] else "no"
    took = f"{r['seconds']:.0f} s" if r["seconds"] is not None else "reused"
    print(f"seed {r['seed']:>2}: chosen {r['chosen']} (best on val {r['best_on_validation']}, on unseen "
          f"{r['best_unseen']}); regret {r['regret_pp']:.2f} pp, best-val regret {r['regret_best_val_pp']:.2f} pp; "
          f"smaller chosen: {smaller}; old rule: {r['old_rule_chose']} ({r['regret_old_rule_pp']:.2f} pp); "
          f"intervals covered {sum(r['covered_trainings'])}/{len(r['covered_trainings'])} "
          f"trainings, {sum(r['covered_pairs'])}/{len(r['covered_pairs'])} pairs; {took}", flush=True)  # fmt: skip


def _summary(rows: list[dict], args) -> dict:
    regret = [r["regret_pp"] for r in rows]
    best_val = [r["regret_best_val_pp"] for r in rows]
    margin = rows and json.loads((Path(rows[0]["run_dir"]) / "run.json").read_text())["choice"]["margin_pp"]
    trainings = [c for r in rows for c in r["covered_trainings"]]
    per_model = [c for r in rows for c in r["covered_models"]]
    pairs = [c for r in rows for c in r["covered_pairs"]]
    smaller = [r for r in rows if r["smaller_chosen"]]
    seconds = [r["seconds"] for r in rows if r["seconds"] is not None]
    return {
        "sample": args.sample,
        "repeats": args.repeats,
        "splits": args.splits,
        "runs": len(rows),
        "margin_pp": margin,
        "val_rows": rows[0]["val_rows"] if rows else None,
        "unseen_rows_mean": float(np.mean([r["unseen_rows"] for r in rows])),
        "mean_regret_pp": float(np.mean(regret)),
        "max_regret_pp": float(np.max(regret)),
        "mean_regret_best_val_pp": float(np.mean(best_val)),
        "max_regret_best_val_pp": float(np.max(best_val)),
        "runs_regret_above_margin": sum(r > margin for r in regret),
        "mean_regret_old_rule_pp": float(np.mean([r["regret_old_rule_pp"] for r in rows])),
        "max_regret_old_rule_pp": float(np.max([r["regret_old_rule_pp"] for r in rows])),
        "old_rule_smaller_chosen": sum(r["old_rule_chose"] != r["best_on_validation"] for r in rows),
        "smaller_chosen": len(smaller),
        "chosen": {name: sum(r["chosen"] == name for r in rows) for name in sorted({r["chosen"] for r in rows})},
        "params_saved_when_smaller_median": float(np.median([r["params_saved"] for r in smaller])) if smaller else 0,
        "params_ratio_when_smaller_median": float(np.median([r["params_ratio"] for r in smaller])) if smaller else 1,
        "coverage_trainings": f"{sum(trainings)}/{len(trainings)} ({np.mean(trainings):.1%})",
        "coverage_models": f"{sum(per_model)}/{len(per_model)} ({np.mean(per_model):.1%})",
        "coverage_pairs": f"{sum(pairs)}/{len(pairs)} ({np.mean(pairs):.1%})",
        "seconds_per_run_median": float(np.median(seconds)) if seconds else None,
        "deciding_width_pp_median": _median([r["deciding_width_pp"] for r in rows]),
        "deciding_bound_pp_median": _median([r["deciding_bound_pp"] for r in rows]),
    }


def _median(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


if __name__ == "__main__":
    main()
