"""Which trainings share a pack (`--pack`), as Keras-free data: the setting resolved once, and the layout.

`resolve` turns `--pack` into the per-model most-members the run will use, spelled so that the reproduce line and
a resume read it back (`spelled`): "off", "N", or "model_1=5,model_2=5". `layout` cuts each model's trainings, in
the run's order, into packs of at most that many, as even as they can be (7 at most 5: 4 and 3). A pack of one is a
separate training, exactly today's path.

`auto`, measured with `bench/bench_pack.py` (docs/benchmarks.md):
- on a GPU, every model is packed, at most `AUTO_MOST` a pack: a step there is bounded by kernel launches;
- on a CPU, a model is packed only when its weights are few (`AUTO_MOST_PARAMS`) and it has at least 3 trainings: its
  step is then dispatch and framework overhead, which packing pays once; a wide model's step is arithmetic, which
  packing does not shrink, and a pack of 2 did not pay. Under JAX, whose separate step is already lean, only a
  model of at least 4 hidden layers (the seed's Model 2, not Model 1) gained.
Under mixed_float16 nothing is packed: Keras's LossScaleOptimizer checks every member's gradients at once, so one
member's overflow would skip every member's step (`pack_allowed`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from job.config import parse_pack
from job.rundir.resume import TrainingKey
from job.specs import ModelSpec

log = logging.getLogger(__name__)

AUTO_MOST = 10  # members a pack under auto
AUTO_MOST_PARAMS = 100_000  # on a CPU, auto packs models with at most this many weights
AUTO_FEWEST_CPU = 3  # on a CPU, auto packs a model only with at least this many trainings (a pack of 2 did not pay)
AUTO_FEWEST_LAYERS_JAX = 4  # on a CPU under JAX, only models this deep: a shallow one's step is already arithmetic


def pack_allowed(policy: str) -> bool:
    """Packing runs only where no loss scaling does: float32 and mixed_bfloat16, not mixed_float16."""
    return policy != "mixed_float16"


@dataclass(frozen=True)
class Where:
    """What `auto` decides by: the data's shape, the trainings of each model, and the device that trains."""

    features: int
    classes: int
    per_model: int  # trainings of each model: seeds x splits
    accelerator: bool  # a GPU trains
    policy: str
    backend: str = "tensorflow"


def resolve(setting: str, specs: tuple[ModelSpec, ...], where: Where) -> str:
    """`--pack` as this run will train it, spelled for run.json and the reproduce line."""
    wanted = parse_pack(setting)
    if not pack_allowed(where.policy) and wanted == "auto":
        log.info("--pack auto: nothing packed under %s (one loss scale would skip every member's step)", where.policy)
        return "off"
    if not pack_allowed(where.policy) and wanted != "off":
        log.warning(
            "--pack %s: not packed under %s (one loss scale would skip every member's step)", setting, where.policy
        )
        return "off"
    if wanted == "auto":
        return spelled({s.slug: min(AUTO_MOST, where.per_model) if _pays(s, where) else 1 for s in specs})
    return spelled({slug: min(n, where.per_model) for slug, n in sizes_of(setting, specs).items()})


def _pays(spec: ModelSpec, where: Where) -> bool:
    if where.accelerator:
        return where.per_model >= 2
    small = spec.param_count(where.features, where.classes) <= AUTO_MOST_PARAMS
    deep = where.backend != "jax" or len(spec.hidden) >= AUTO_FEWEST_LAYERS_JAX
    return small and deep and where.per_model >= AUTO_FEWEST_CPU


def sizes_of(setting: str, specs: tuple[ModelSpec, ...]) -> dict[str, int]:
    """Most members a pack, per model slug, from a resolved setting ("auto" must be resolved first)."""
    wanted = parse_pack(setting)
    if wanted == "auto":
        raise ValueError("--pack auto is resolved on the device that trains; call resolve() first")
    if isinstance(wanted, dict):
        unknown = sorted(set(wanted) - {s.slug for s in specs})
        if unknown:
            known = ", ".join(s.slug for s in specs)
            raise ValueError(f"--pack {setting}: no model {', '.join(unknown)} in this run; use its slug ({known})")
        return {s.slug: wanted.get(s.slug, 1) for s in specs}
    most = 1 if wanted == "off" else int(wanted)
    return {s.slug: most for s in specs}


def spelled(sizes: dict[str, int]) -> str:
    values = set(sizes.values())
    if values <= {1}:
        return "off"
    if len(values) == 1:
        return str(values.pop())
    return ",".join(f"{slug}={n}" for slug, n in sizes.items())


def layout(keys: list[TrainingKey], sizes: dict[str, int]) -> list[tuple[TrainingKey, ...]]:
    """Each model's trainings, in the run's order, in packs of at most `sizes[slug]`, as even as they can be."""
    units: list[tuple[TrainingKey, ...]] = []
    for slug in dict.fromkeys(k.slug for k in keys):
        mine = [k for k in keys if k.slug == slug]
        count = math.ceil(len(mine) / max(1, sizes.get(slug, 1)))
        size, extra = divmod(len(mine), count)
        start = 0
        for j in range(count):
            end = start + size + (1 if j < extra else 0)
            units.append(tuple(mine[start:end]))
            start = end
    return units


def pack_name(members: tuple[TrainingKey, ...], index: int) -> str:
    """A pack's checkpoint folder and its name in run.json: `<slug>-pack<index>`."""
    return f"{members[0].slug}-pack{index}"
