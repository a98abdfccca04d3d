"""A run's settings resolved once: the options (or the interrupted run's saved ones) in, a frozen `RunPlan` out.

Everything the stages after it read is settled here, in one place:
- on resume, the saved config with the operational overrides applied (`--resume` refuses the others);
- the Keras backend, chosen before anything can import Keras, and saved, so a resume uses the same one;
- absolute paths for the data and the family file, so a resume from another folder finds them;
- the margin: `--margin`, else the family file's, else the default; the same for `--splits` (default 1);
- the family (on resume, the copy in the run folder, checked against its hash) and the selected specs;
- the data, loaded and hashed (on resume, checked against the hash the run started with);
- the run id, its `.partial` folder and the start time;
- the precision the executors start with (on resume, the policy the run started with).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from job.config import RunConfig, normal_pack, parse_pack
from job.data.builtin import BUILTIN_SOURCES
from job.data.dataset import Dataset
from job.data.load import load_dataset
from job.environment import select_backend
from job.family import Family, load_family
from job.rundir.layout import FAMILY_FILE, PARTIAL_SUFFIX
from job.rundir.resume import ResumeError, SavedConfig, TrainingKey
from job.specs import ModelSpec, SpecError, select_specs
from job.training import packing


@dataclass(frozen=True)
class RunPlan:
    config: RunConfig  # as the run folder saves it: backend chosen, paths absolute, margin settled
    run_id: str
    work: Path  # <out>/<run-id>.partial: made by `pipeline.open_run_folder`, or the one resumed
    started: str  # ISO 8601, UTC: when the run first started
    family: Family = field(repr=False)
    specs: tuple[ModelSpec, ...]
    dataset: Dataset = field(repr=False, compare=False)
    precision: str  # what the executors start with: on resume, the policy the run started with
    resumed: bool

    @property
    def keys(self) -> list[TrainingKey]:
        """Every training of the run, in the order the log numbers them: model by model, split by split, seed by
        seed (one split's trainings one after another: they read the same rows)."""
        config = self.config
        return [
            TrainingKey(spec.slug, seed, k)
            for spec in self.specs
            for k in config.split_numbers
            for seed in config.seeds
        ]

    @property
    def units(self) -> list[tuple[TrainingKey, ...]]:
        """The trainings as they train: packs of one model's trainings (`--pack`, resolved), singles alone."""
        return packing.layout(self.keys, packing.sizes_of(self.config.pack, self.specs))

    def with_pack(self, accelerator: bool, policy: str, backend: str) -> RunPlan:
        """`--pack` resolved on the device that trains (`auto` depends on it), once, for run.json and resumes."""
        features, classes = int(self.dataset.x.shape[1]), self.dataset.n_classes
        per_model = len(self.config.seeds) * len(self.config.split_numbers)
        where = packing.Where(features, classes, per_model, accelerator, policy, backend)
        pack = packing.resolve(self.config.pack, self.specs, where)
        return replace(self, config=replace(self.config, pack=pack))

    def saved(self, policy: str) -> SavedConfig:
        """What the run folder keeps so that a resume gets this same plan back."""
        return SavedConfig(self.run_id, self.config, self.dataset.sha256, self.started, self.family.sha256, policy)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def load_for(config: RunConfig) -> Dataset:
    return load_dataset(
        config.data,
        image_shape=config.image_shape,
        allow_pickle=config.allow_pickle,
        label_column=config.label_column,
    )


def resolve(
    config: RunConfig, resume: tuple[Path, SavedConfig] | None = None, overrides: dict | None = None
) -> RunPlan:
    """The plan of a new run from `config`, or of the interrupted run `resume` (its folder and saved config),
    with `overrides` of its operational fields. Refusals are one line: a bad family file before any data is
    read, changed data or family files of a resumed run."""
    work, saved = resume if resume is not None else (None, None)
    if saved is not None:
        config = replace(saved.config, **(overrides or {}))
        if parse_pack(config.pack) == "auto":  # a saved pack is always resolved: this folder is from before --pack
            config = replace(config, pack="off")  # whose trainings each ran alone
    config = config.with_backend(select_backend(config.backend))  # before anything can import Keras
    family = _family(config, work, saved)
    specs = tuple(select_specs(config.models, family.specs))
    if parse_pack(config.pack) != "auto":
        try:
            packing.sizes_of(config.pack, specs)  # a slug not in the run is refused before the data is read
        except ValueError as exc:
            raise SpecError(str(exc)) from None
    dataset = load_for(config)
    if work is not None and saved is not None:
        if saved.sha256 != dataset.sha256:
            raise ResumeError(
                f"--resume {work}: the data {dataset.source} changed since the run started (sha256 differs); "
                "restore the original file or start a new run"
            )
        policy = saved.policy or config.precision
        return RunPlan(config, saved.run_id, work, saved.started, family, specs, dataset, policy, resumed=True)
    run_id = new_run_id()
    return RunPlan(
        config=_absolute(config, family),
        run_id=run_id,
        work=Path(config.out) / f"{run_id}{PARTIAL_SUFFIX}",
        started=datetime.now(UTC).isoformat(),
        family=family,
        specs=specs,
        dataset=dataset,
        precision=config.precision,
        resumed=False,
    )


def _family(config: RunConfig, work: Path | None, saved: SavedConfig | None) -> Family:
    """The family file given (or the built-in one); on resume, the copy in the run folder, so an edited
    file cannot change an interrupted run."""
    if work is None or saved is None:
        return load_family(config.spec_file)
    family = load_family(work / FAMILY_FILE)
    if family.sha256 != saved.family_sha256:
        raise ResumeError(f"{work / FAMILY_FILE}: changed since the run started; restore it or start a new run")
    return family


def _absolute(config: RunConfig, family: Family) -> RunConfig:
    """Paths that a resume from another folder still finds, and the margin the choice will use."""
    if config.data and config.data not in BUILTIN_SOURCES:
        config = replace(config, data=str(Path(config.data).resolve()))
    if config.spec_file:
        config = replace(config, spec_file=str(Path(config.spec_file).resolve()))
    splits = config.splits if config.splits is not None else family.splits  # None: 1, as before --splits existed
    return replace(config, margin=config.margin_pp(family.margin_pp), splits=splits, pack=normal_pack(config.pack))
