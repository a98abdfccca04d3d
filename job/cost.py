"""What a run will cost before it starts: peak memory and a rough time, from the family and the data's shape.

The estimate is arithmetic on counts, never a trial training: parameters from each spec's layer widths
on the data's real pixels and classes, optimizer state from its optimizer, the driver's held
probabilities from the split sizes. `docs/benchmarks.md` compares it with measured peaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from job.errors import JobError
from job.specs import ModelSpec
from job.stats.compare import BOOTSTRAP_RESAMPLES

GIB = 2**30
RUNTIME_BYTES = GIB  # Python, Keras and the backend, loaded, before any model (0.9 GB measured for a tiny model)
# per parameter while one training runs: float32 weights, gradients, the best epoch's weights file and the
# saved .keras bytes (weights and optimizer state again), and the initial kernels
WEIGHT_COPIES = 4  # weights, gradients, best-epoch weights, the saved model's weights
INITIAL_DRAW_BYTES = 8  # the kernels drawn before they are set in the model, with room (the float64 draw is chunked)
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1, "rmsprop": 2}  # float32 arrays the size of the weights
HELD_BYTES = 4  # float32 validation and test probabilities the driver keeps per training, per row and class
SCORING_COPIES = 3  # while one training is predicted and scored: Keras's batches joined, a float copy, the top two
RESAMPLES_BYTES = 4 * BOOTSTRAP_RESAMPLES  # the bootstrap's row counts: float32, one per row per resample
# time: the dense layers' arithmetic at the rate a 2-core CPU reached under Adam (docs/benchmarks.md), plus
# the per-step dispatch and a fixed cost per training (building, compiling, saving)
FLOPS_PER_SECOND = 40e9
SECONDS_PER_STEP = 3e-4
SECONDS_PER_TRAINING = 3.0
MANY_TRAININGS = 400  # above this, the start says how long it will take and how to make it shorter
LONG_RUN_SECONDS = 3600.0
CGROUP_FILES = (  # (limit, usage)
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
)
MEMINFO = "/proc/meminfo"


class CostError(JobError):
    """The run's estimated peak exceeds the memory available: refused before anything is written."""


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of the data and the split."""

    features: int
    classes: int
    rows: int  # all of the data, loaded
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class Estimate:
    """What a run will cost, estimated before it trains."""

    trainings: int  # models x seeds x splits
    peak_bytes: int  # the driver's resident peak: runtime, data, one training (local), held results
    training_bytes: int  # the largest single training's (or pack's, with --pack) share of it
    held_bytes: int  # what the driver keeps of every finished training until the statistics
    seconds: float  # rough, on a CPU like the one docs/benchmarks.md measured

    def describe(self) -> str:
        return (
            f"{self.trainings:,} training{'s' if self.trainings != 1 else ''}, "
            f"about {gb(self.peak_bytes)} peak memory and {duration(self.seconds)} on a 2-core CPU"
        )


def training_bytes(spec: ModelSpec, features: int, classes: int) -> int:
    """Peak bytes of one training of `spec`, beyond the runtime."""
    params = spec.param_count(features, classes)
    slots = OPTIMIZER_SLOTS.get(spec.optimizer, 2)
    per_param = 4 * (WEIGHT_COPIES + slots * 2) + INITIAL_DRAW_BYTES  # state lives once, and once more when saved
    widths = (features, *spec.hidden, classes)
    activations = 4 * 4 * spec.batch_size * sum(widths)  # forward values and their gradients, with room
    return params * per_param + activations


def pack_bytes(spec: ModelSpec, shape: Shape, members: int) -> int:
    """Peak bytes of one pack of `members` trainings (`--pack`): each member's share of a training, and the rows
    side by side as uint8: an epoch's gathered rows, their stack and its batches (training rows), the validation
    stack and its batches, and each member's own copy of its split's rows."""
    if members <= 1:
        return training_bytes(spec, shape.features, shape.classes)
    rows = 3 * shape.train + 2 * shape.val + (shape.train + shape.val + shape.test)
    return members * (training_bytes(spec, shape.features, shape.classes) + rows * shape.features)


def training_seconds(spec: ModelSpec, shape: Shape) -> float:
    params = spec.param_count(shape.features, shape.classes)
    steps = math.ceil(shape.train / spec.batch_size)
    flops = 6 * params * shape.train + 2 * params * (shape.val + shape.test)
    return SECONDS_PER_TRAINING + spec.epochs * (flops / FLOPS_PER_SECOND + steps * SECONDS_PER_STEP)


def estimate(
    specs: tuple[ModelSpec, ...], shape: Shape, seeds: int, local: bool, packs: dict[str, int] | None = None
) -> Estimate:
    """Peak memory and time of training every spec `seeds` times; `local` when the driver trains them
    itself (with Ray the trainings' memory is the workers'); `packs`: the most members of a pack, per model slug
    (`--pack`; none: every training alone). The time is the trainings' alone: packing only shortens it."""
    trainings = len(specs) * seeds
    sizes = packs or {}
    largest = max((pack_bytes(s, shape, min(seeds, sizes.get(s.slug, 1))) for s in specs), default=0)
    one = (shape.val + shape.test) * shape.classes * HELD_BYTES  # one training's probabilities
    held = trainings * one + (SCORING_COPIES * one if trainings else 0)
    data = 2 * shape.rows * shape.features  # uint8 pixels, and the split's copy of them
    resamples = RESAMPLES_BYTES * shape.test
    peak = RUNTIME_BYTES + data + held + resamples + (largest if local else 0)
    seconds = sum(training_seconds(s, shape) for s in specs) * seeds
    return Estimate(trainings, peak, largest, held, seconds)


def available_bytes() -> tuple[int, str] | None:
    """The memory this process may still use, and where that figure came from: the cgroup's limit less its
    use where a limit is set, else the kernel's MemAvailable; None where neither can be read."""
    cgroup = _cgroup_room()
    if cgroup is not None:
        return cgroup
    try:
        for line in Path(MEMINFO).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> tuple[int, str] | None:
    for limit_file, usage_file in CGROUP_FILES:
        try:
            text = Path(limit_file).read_text().strip()
            if text == "max" or int(text) >= 2**60:  # no limit (v1 writes a huge number)
                return None
            used = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        return max(int(text) - used, 0), f"the cgroup limit in {limit_file}"
    return None


def check(est: Estimate, max_memory_gb: float | None) -> None:
    """Refuse a run whose estimated peak exceeds `--max-memory`, or else the memory available."""
    if max_memory_gb is not None:
        limit, where = int(max_memory_gb * GIB), f"--max-memory {max_memory_gb:g}"
    else:
        room = available_bytes()
        if room is None:
            return
        limit, where = room[0], f"{gb(room[0])} available ({room[1]})"
    if est.peak_bytes > limit:
        raise CostError(
            f"the run needs about {gb(est.peak_bytes)} of memory ({gb(est.training_bytes)} for its largest "
            f"training or pack, {gb(est.held_bytes)} of held predictions), over {where}; use narrower or fewer hidden "
            "layers, fewer --repeats or --splits, a smaller --pack, or a --sample, or raise --max-memory on a machine "
            "that has it"
        )


def gb(n: int) -> str:
    return f"{n / GIB:.1f} GB" if n >= GIB // 10 else f"{n / 2**20:.0f} MB"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
