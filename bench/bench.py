"""Benchmark: the seed's protocol exactly as written against the job's training, same data, one run.

    python bench/bench.py --repeats 3

Each (backend, protocol) pair runs in its own subprocess (Keras fixes its backend at import),
interleaved per repeat so machine noise hits both sides alike. Data: Fashion-MNIST from
Debian's dataset-fashion-mnist at the seed's scale (40,320 rows -> 24,192 training rows).
Prints per model: seconds for each side (median over repeats), the ratio seed/job, and both
best validation accuracies (mean over repeats) with the job's gap to the seed in points, and
writes bench/results/bench.json. Repeat r uses seed --seed + r on both sides (the same rows
and split within a repeat), so the accuracies average as many draws as there are repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

FASHION = "/usr/share/datasets/fashion-mnist"
SEED_ROWS = 40_320  # the seed's DataFrame: 40,320 rows


def load_arrays(seed: int):
    import numpy as np

    from job.data.load import load_dataset
    from job.data.split import stratified_sample, stratified_split

    ds = load_dataset(FASHION)
    rows = stratified_sample(ds.y, SEED_ROWS, seed)
    split = stratified_split(ds.y[rows], seed)
    pick = {name: rows[getattr(split, name)] for name in ("train", "val")}
    return {
        "x_train": ds.x[pick["train"]],
        "y_train": ds.y[pick["train"]],
        "x_val": ds.x[pick["val"]],
        "y_val": ds.y[pick["val"]],
    }, np


def seed_protocol(spec, arrays, np, epochs):
    """The notebook's cell, line for line: float32 scaled inputs, Sequential, defaults, progress bar."""
    import contextlib
    import tempfile
    from timeit import default_timer as timer

    import keras

    class TimingCallback(keras.callbacks.Callback):
        def __init__(self):
            self.logs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.starttime = timer()

        def on_epoch_end(self, epoch, logs=None):
            self.logs.append(timer() - self.starttime)

    lo = arrays["x_train"].min(axis=0).astype("float32")
    rng = arrays["x_train"].max(axis=0).astype("float32") - lo
    rng[rng == 0] = 1
    x_train = (arrays["x_train"].astype("float32") - lo) / rng
    x_val = (arrays["x_val"].astype("float32") - lo) / rng
    with tempfile.TemporaryDirectory() as tmp:
        layers = [keras.Input(shape=(784,))]
        layers += [keras.layers.Dense(u, activation="selu", kernel_initializer="lecun_normal") for u in spec.hidden]
        layers += [keras.layers.Dense(10, activation="softmax")]
        model = keras.models.Sequential(layers)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(), metrics=["accuracy"])
        timing = TimingCallback()
        callbacks = [
            keras.callbacks.ModelCheckpoint(f"{tmp}/m.keras", save_best_only=True, monitor="val_accuracy"),
            timing,
            keras.callbacks.EarlyStopping(monitor="loss", patience=3),
        ]
        t0 = time.perf_counter()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the bar is drawn, not shown
            hist = model.fit(
                x_train,
                arrays["y_train"],
                epochs=epochs or spec.epochs,
                batch_size=32,
                validation_data=(x_val, arrays["y_val"]),
                callbacks=callbacks,
                verbose=1,
            )
        seconds = time.perf_counter() - t0  # fit() wall time, as for the job
    return seconds, max(hist.history["val_accuracy"])


def job_protocol(spec, arrays, np, epochs, steps_per_execution, seed):
    import tempfile
    from pathlib import Path

    from job.rundir.resume import Checkpoint
    from job.training.inputs import SplitArrays, TrainSettings
    from job.training.loop import train
    from job.training.model import configure

    configure("float32")
    settings = TrainSettings(steps_per_execution=steps_per_execution, epochs_override=epochs)
    # the bench scores validation only: the validation rows stand in for the test rows
    split = SplitArrays(
        arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"], arrays["x_val"], arrays["y_val"], 10
    )
    with tempfile.TemporaryDirectory() as tmp:
        outcome = train(spec, seed, split, settings, Checkpoint(Path(tmp)))
    best = max(r.val_accuracy for r in outcome.records if r.val_accuracy is not None)
    return outcome.fit_seconds, best  # wall time of the epochs: fit, validation, records and backups


def worker(args) -> None:
    import keras

    from job.family import seed_specs

    keras.utils.set_random_seed(args.seed)
    arrays, np = load_arrays(args.seed)
    out = {}
    for spec in seed_specs():
        if args.protocol == "seed":
            seconds, acc = seed_protocol(spec, arrays, np, args.epochs)
        else:
            seconds, acc = job_protocol(spec, arrays, np, args.epochs, args.steps_per_execution, args.seed)
        out[spec.name] = {"seconds": seconds, "val_accuracy": acc}
        keras.backend.clear_session()
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="override epochs (quick check); default: the seed's")
    p.add_argument("--steps-per-execution", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--backends", default="tensorflow,jax")
    p.add_argument("--worker", choices=["seed", "job"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.protocol = args.worker
        worker(args)
        return

    runs = [("tensorflow", "seed")] + [(b, "job") for b in args.backends.split(",")]
    results: dict[str, list[dict]] = {f"{b}/{proto}": [] for b, proto in runs}
    for rep in range(args.repeats):
        for backend, proto in runs:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                proto,
                "--seed",
                str(args.seed + rep),
                "--steps-per-execution",
                str(args.steps_per_execution),
            ]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            env = os.environ | {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{backend}/{proto} failed:\n{proc.stderr[-3000:]}")
            results[f"{backend}/{proto}"].append(json.loads(line[7:]))
            print(f"repeat {rep + 1}/{args.repeats} {backend}/{proto} done", file=sys.stderr, flush=True)

    names = list(results["tensorflow/seed"][0])
    med = {
        key: {
            n: {
                "seconds": statistics.median(r[n]["seconds"] for r in reps),
                "val_accuracy": statistics.mean(r[n]["val_accuracy"] for r in reps),
            }
            for n in names
        }
        for key, reps in results.items()
    }
    jobs = [k for k in med if k.endswith("/job")]
    lines = []
    header = "| model | seed protocol (TF) s | " + " | ".join(f"job {k.split('/')[0]} s | ratio" for k in jobs)
    header += " | val acc seed | " + " | ".join(f"val acc job {k.split('/')[0]} (gap pp)" for k in jobs) + " |"
    lines.append(header)
    lines.append("|" + "---|" * (header.count("|") - 1))
    for n in [*names, "total"]:

        def sec(key, n=n):
            return sum(med[key][m]["seconds"] for m in names) if n == "total" else med[key][n]["seconds"]

        base = sec("tensorflow/seed")
        cells = [n, f"{base:.1f}"]
        for key in jobs:
            cells += [f"{sec(key):.1f}", f"{base / sec(key):.2f}x"]
        if n == "total":
            cells += [""] * (1 + len(jobs))
        else:
            seed_acc = med["tensorflow/seed"][n]["val_accuracy"]
            cells.append(f"{seed_acc:.4f}")
            for key in jobs:
                acc = med[key][n]["val_accuracy"]
                cells.append(f"{acc:.4f} ({100 * (acc - seed_acc):+.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    print(
        f"seconds: median of {args.repeats}; val acc: mean of {args.repeats} "
        f"(seeds {args.seed}..{args.seed + args.repeats - 1})"
    )
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench.json").write_text(
        json.dumps({"args": vars(args), "runs": results, "median": med, "table": table}, indent=2)
    )


if __name__ == "__main__":
    main()
