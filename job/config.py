"""RunConfig: every knob of a run, declared once.

Each field carries its command-line flag and help in its metadata. The click options
(`job.options`), the reproduce line (`RunConfig.command_line`) and the run directory's
`config` all come from this one table, so a new option is one new field.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field, fields, replace
from typing import Any

from job.environment import BACKENDS, PRECISIONS

SEED_MAX = 2**32 - 1  # NumPy's and Keras's seed range
EXECUTORS = ("local", "ray")
INT32_MAX = 2**31 - 1  # Keras keeps steps_per_execution in an int32 variable
DEFAULT_MARGIN_PP = 1.0  # one point of accuracy: the seed's "same accuracy, fewer parameters", made checkable
MAX_MARGIN_PP = 100.0
MAX_SPLITS = 100
MAX_PACK = 64  # members of one pack: its batches are K times a training's
PACK_WORDS = ("off", "auto")


def _option(
    default: Any, flag: str, help: str, *, reproduce: bool = True, operational: bool = False, **click: Any
) -> Any:
    """A RunConfig field with its click option: `flag` may be a '--on/--off' pair for booleans.

    `reproduce`: part of the reproduce line. `operational`: how the run executes, not what it computes,
    so `--resume` applies a new value instead of refusing it."""
    meta = {"flag": flag, "help": help, "reproduce": reproduce, "operational": operational, "click": click}
    return field(default=default, metadata=meta)


def parse_image_shape(text: str | None) -> tuple[int, int] | None:
    """`--image-shape 28x28` -> (28, 28); None stays None. Raises ValueError with the fix."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise ValueError(f"--image-shape {text!r}: write it as HxW, for example 28x28")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class RunConfig:
    data: str | None = _option(
        None,
        "--data",
        "mnist5k (default, embedded), digits, mnist, fashion-mnist, or a CSV/Parquet/.npz file or idx directory.",
    )
    spec_file: str | None = _option(
        None, "--spec-file", "A TOML file of model variants (see examples/); default: the seed's four models."
    )
    models: str | None = _option(
        None,
        "--models",
        "Comma-separated positions or names of models to run, e.g. 1,3 (default: all; see `job models`).",
        nonempty=True,
    )
    epochs: int | None = _option(None, "--epochs", "Override every model's epochs (smoke runs).", min=1)
    sample: int | None = _option(None, "--sample", "Train on a stratified subsample of N rows.", min=20)
    seed: int = _option(42, "--seed", "Seed for the split, the sample and each training.", min=0, max=SEED_MAX)
    repeats: int = _option(
        1,
        "--repeats",
        "Train every model N times, with seeds SEED, SEED+1, ... on every split (for intervals and tests).",
        min=1,
        max=1000,
    )
    splits: int | None = _option(
        None,
        "--splits",
        "Development splits: every model trains on K splits, each with its own training and validation rows and the "
        "same test rows (default: the family file's `splits`, else 1).",
        min=1,
        max=MAX_SPLITS,
    )
    margin: float | None = _option(
        None,
        "--margin",
        "Validation accuracy, in percentage points, you would give up for a smaller model: it is chosen only if "
        "shown within MARGIN of the best (default: the family file's margin, else 1.0; 0: the best wins).",
        fmin=0.0,
        fmax=MAX_MARGIN_PP,
    )
    pack: str = _option(
        "auto",
        "--pack",
        "Train a model's trainings as packed programs of several at once: auto (where it pays on the device), off "
        "(each alone), N (at most N a pack), or per model, e.g. model_1=5,model_2=3. The layout is resolved once; "
        "run.json and the reproduce line record it.",
        nonempty=True,
    )
    precision: str = _option(
        "auto",
        "--precision",
        "auto: mixed_float16 on GPUs with compute capability >= 7.0, else float32.",
        choices=PRECISIONS,
    )
    backend: str | None = _option(
        None, "--backend", "Keras backend (default: $KERAS_BACKEND, else tensorflow).", choices=BACKENDS
    )
    out: str = _option(
        "reports",
        "--out",
        "Parent folder; the run lands in OUT/<run-id>/ (the image sets JOB_OUT=/reports).",
        reproduce=False,
        nonempty=True,
        envvar="JOB_OUT",
    )
    image_shape: tuple[int, int] | None = _option(
        None, "--image-shape", "HxW when the pixel count is not a square, e.g. 24x32."
    )
    label_column: str = _option("label", "--label-column", "Name of the label column in CSV/Parquet.")
    allow_pickle: bool = _option(
        False,
        "--allow-pickle",
        "Load a pickled DataFrame. Unpickling runs code from the file: only for files you trust.",
    )
    steps_per_execution: int = _option(
        32,
        "--steps-per-execution",
        "Training steps per compiled call (capped at the steps in an epoch); epoch metrics are unchanged.",
        min=1,
        max=INT32_MAX,
        operational=True,
    )
    deterministic: bool = _option(
        True, "--deterministic/--no-deterministic", "Enable op determinism (same seed, same numbers on CPU)."
    )
    executor: str = _option(
        "local",
        "--executor",
        "local: trainings one after another in this process; ray: each (model, seed, split) training a Ray task "
        "(a pack, one task).",
        reproduce=False,
        operational=True,
        choices=EXECUTORS,
    )
    ray_address: str | None = _option(
        None,
        "--ray-address",
        "Ray cluster to join (default: $RAY_ADDRESS; without it a local Ray starts and stops with the run).",
        reproduce=False,
        operational=True,
        envvar="RAY_ADDRESS",
    )
    gpus_per_task: float | None = _option(
        None,
        "--gpus-per-task",
        "GPUs per Ray training (default: 1 where the cluster has GPUs, else 0); 0.25 runs four per GPU.",
        reproduce=False,
        operational=True,
        fmin=0.0,
    )
    tensorboard: bool = _option(
        False,
        "--tensorboard",
        "Write TensorBoard scalars per epoch to OUT/tensorboard/<run-id>/ (and RUN_DIR/tensorboard/ at the end).",
        reproduce=False,
        operational=True,
    )
    max_memory: float | None = _option(
        None,
        "--max-memory",
        "Refuse the run, before anything is written, if its estimated peak memory exceeds GB "
        "(default: the memory available: the cgroup limit, else MemAvailable).",
        reproduce=False,
        operational=True,
        fmin=0.01,
        fmax=1e6,
    )
    cpus_per_task: int | None = _option(
        None,
        "--cpus-per-task",
        "CPU threads per training (TensorFlow, XLA and BLAS pools), local or Ray; default: the machine's.",
        operational=True,
        min=1,
        max=4096,
    )

    @property
    def seeds(self) -> list[int]:
        """One training per model per seed; the split always comes from `seed`."""
        return [self.seed + r for r in range(self.repeats)]

    @property
    def split_numbers(self) -> list[int]:
        """Split 1 is the seed's stratified split; 2..K re-partition its training and validation rows."""
        return list(range(1, (self.splits or 1) + 1))

    def margin_pp(self, family_margin: float | None) -> float:
        """The margin the choice uses: --margin, else the family file's `margin`, else the default."""
        if self.margin is not None:
            return self.margin
        return family_margin if family_margin is not None else DEFAULT_MARGIN_PP

    def check(self) -> None:
        """What click's per-option checks cannot see; ValueError says the fix."""
        if self.margin is not None and not math.isfinite(self.margin):
            raise ValueError(f"--margin {self.margin}: not a number; give percentage points from 0 to 100, e.g. 1.0")
        if self.max_memory is not None and not math.isfinite(self.max_memory):
            raise ValueError(f"--max-memory {self.max_memory}: not a number; give gigabytes, e.g. 8")
        parse_pack(self.pack)
        if self.seed + self.repeats - 1 > SEED_MAX:
            raise ValueError(
                f"--seed {self.seed} with --repeats {self.repeats} needs seeds up to {self.seed + self.repeats - 1}, "
                f"past {SEED_MAX}; lower --seed"
            )

    @staticmethod
    def flag_as_typed(name: str, value: Any) -> str:
        """The option as the user wrote it: `--no-deterministic` for deterministic=False."""
        flag = next(f.metadata["flag"] for f in fields(RunConfig) if f.name == name)
        return _flag_words(flag, value)[0] if "/" in flag else flag

    @staticmethod
    def operational_fields() -> tuple[str, ...]:
        return tuple(f.name for f in fields(RunConfig) if f.metadata["operational"])

    def with_backend(self, backend: str) -> RunConfig:
        return replace(self, backend=backend)

    def command_line(self) -> str:
        """The command that reproduces this run: every option that is not its default, plus
        the seed, precision, backend and resolved pack, which are always spelled out (defaults can change, and
        `--pack auto` resolves on the device that trains)."""
        parts = ["job", "run"]
        for f in fields(self):
            if not f.metadata.get("reproduce", True):
                continue
            value = getattr(self, f.name)
            always = f.name in ("seed", "precision", "backend", "pack") and value is not None
            if f.name == "splits":  # spelled out where given, unless 1 and no family file could say otherwise
                always = value is not None and (value != 1 or self.spec_file is not None)
                value = value if always else f.default
            if value == f.default and not always:
                continue
            parts += _flag_words(f.metadata["flag"], value)
        return shlex.join(parts)


def normal_pack(text: str) -> str:
    """`--pack` as one spelling: "off", "auto", "5", or "model_1=5,model_2=3" (ValueError as `parse_pack`)."""
    value = parse_pack(text)
    if isinstance(value, dict):
        return ",".join(f"{slug}={n}" for slug, n in value.items())
    return str(value)


def parse_pack(text: str) -> str | int | dict[str, int]:
    """`--pack`: "off", "auto", a most-members count N, or per model slug, "model_1=5,model_2=3". ValueError says
    the fix."""
    value = text.strip().lower()
    if value in PACK_WORDS:
        return value
    fix = f"give off, auto, a number of members from 1 to {MAX_PACK}, or per model, e.g. model_1=5,model_2=3"
    if value.isdigit():
        if not 1 <= int(value) <= MAX_PACK:
            raise ValueError(f"--pack {text}: {fix}")
        return int(value)
    sizes: dict[str, int] = {}
    for part in value.split(","):
        slug, eq, n = (p.strip() for p in part.partition("="))
        if not eq or not slug or not n.isdigit() or not 1 <= int(n) <= MAX_PACK or slug in sizes:
            raise ValueError(f"--pack {text}: {part.strip()!r} is not SLUG=N; {fix}")
        sizes[slug] = int(n)
    return sizes


def _flag_words(flag: str, value: Any) -> list[str]:
    if "/" in flag:  # a boolean pair such as --deterministic/--no-deterministic
        on, off = flag.split("/")
        return [on if value else off]
    if isinstance(value, bool):
        return [flag] if value else []
    if isinstance(value, tuple):
        return [flag, "x".join(map(str, value))]
    return [flag, str(value)]
