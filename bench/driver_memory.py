"""The driver's resident memory after each training: does it stay flat as trainings finish? (#25, item 5)

    .venv/bin/python bench/driver_memory.py                       # --models 1,2 --repeats 60 --sample 300 --epochs 1
    .venv/bin/python bench/driver_memory.py --repeats 15 --json   # a shorter run, figures as JSON

Runs `job run` as a child process and reads its VmRSS from /proc the moment the log shows a training's
last epoch ("epoch 1/1" at --epochs 1): by then the training before it has been predicted, written to the
run folder and released, so sample i holds every earlier training's leftovers. Prints every sample, and
the spread from the tenth training to the last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

LAST_EPOCH = re.compile(r" epoch (\d+)/\1 ")  # "model 1/2 (Model 1) epoch 1/1  loss ..."
FLAT_FROM = 10  # the first trainings warm up Keras's and TensorFlow's caches: flatness is judged from here


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def samples(repeats: int, models: str, out: Path) -> list[float]:
    """The driver's RSS in MB after each training of one run."""
    args = [sys.executable, "-m", "job", "run", "--models", models, "--repeats", str(repeats)]
    args += ["--sample", "300", "--epochs", "1", "--out", str(out)]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert child.stderr is not None
    found = []
    for line in child.stderr:
        if LAST_EPOCH.search(line):
            found.append(rss_mb(child.pid))
    if child.wait() != 0:
        raise SystemExit(f"job run exited {child.returncode}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--models", default="1,2")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found = samples(a.repeats, a.models, Path(tmp))
    later = found[FLAT_FROM - 1 :]
    figures = {
        "trainings": len(found),
        "first_mb": round(found[0], 1),
        "tenth_mb": round(later[0], 1) if later else None,
        "last_mb": round(found[-1], 1),
        "spread_from_tenth_mb": round(max(later) - min(later), 1) if later else None,
        "samples_mb": [round(v, 1) for v in found],
    }
    if a.json:
        print(json.dumps(figures))
        return
    print(" ".join(f"{v:.0f}" for v in found))
    print(
        f"{figures['trainings']} trainings: {figures['first_mb']} MB after the first, {figures['tenth_mb']} after the "
        f"tenth, {figures['last_mb']} after the last; spread from the tenth on {figures['spread_from_tenth_mb']} MB"
    )


if __name__ == "__main__":
    main()
