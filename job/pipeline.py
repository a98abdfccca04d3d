"""One straight pipeline: RunConfig in, a complete run directory out.

    load and validate -> split -> train all (through an executor) -> evaluate
    -> write artifacts -> render -> finalize

The run is built in `<out>/<run-id>.partial/` and renamed to `<out>/<run-id>/` only once
complete, so nothing that looks finished is ever half-written. An interrupted `.partial`
directory is what `job run --resume` continues; `job.resume.RunState` owns its state.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from job.config import RunConfig
from job.data import (
    BUILTIN_SOURCES,
    SPLIT_FRACTIONS,
    Dataset,
    duplicates_across,
    load_dataset,
    stratified_sample,
    stratified_split,
)
from job.environment import select_backend
from job.evaluate import evaluate_training, model_result
from job.executors.base import Executor, Runtime
from job.executors.local import LocalExecutor
from job.family import Family, load_family
from job.result import (
    DataSummary,
    DeviceRecord,
    EnvironmentInfo,
    FamilyInfo,
    ModelResult,
    PrecisionInfo,
    RunResult,
    SplitInfo,
    TrainingResult,
    Versions,
)
from job.rundir import atomic, layout, writer
from job.rundir.layout import FAMILY_FILE
from job.rundir.resume import ResumeError, RunState, SavedConfig, TrainingKey
from job.specs import ModelSpec, select_specs
from job.stats.choice import Choice, choose, with_test_cost
from job.stats.compare import Comparison, ModelPredictions, Resampler, compare
from job.training.inputs import Inputs, SplitArrays, TrainingTask, TrainSettings

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
SAMPLES_PER_CLASS = 8  # digits per class in the report's sample strip
MIN_FREE_BYTES = 64 * 1024 * 1024


class RunError(Exception):
    """A problem with the run's setup (output folder, resume directory): exit 2, one line."""


@dataclass(frozen=True)
class SplitRows:
    """Row indices into the dataset, per split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def info(self, seed: int, x: np.ndarray) -> SplitInfo:
        copies = duplicates_across(x, self)  # a test row seen in training flatters the test score
        return SplitInfo(self.train.size, self.val.size, self.test.size, list(SPLIT_FRACTIONS), seed, True, copies)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def load_for(config: RunConfig) -> Dataset:
    return load_dataset(
        config.data,
        image_shape=config.image_shape,
        allow_pickle=config.allow_pickle,
        label_column=config.label_column,
    )


def preflight(out: Path, specs: list[ModelSpec], dataset: Dataset) -> None:
    """Fail before training, not after an hour, if the run cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {out}: cannot create it ({exc.strerror}); choose a writable folder") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunError(
            f"--out {out}: not writable by this user (uid {os.getuid()}); "
            "choose a writable folder or fix its permissions"
        )
    probe = out / f".job-write-test-{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"x")
    except OSError as exc:
        raise RunError(f"--out {out}: cannot write there ({exc.strerror}); choose a writable folder") from None
    finally:
        probe.unlink(missing_ok=True)
    # models (weights + Adam moments in backups) and the test images, with a margin
    need = sum(s.param_count(dataset.x.shape[1], dataset.n_classes) * 4 * 4 for s in specs)
    need += dataset.x.nbytes // 4 + MIN_FREE_BYTES
    free = shutil.disk_usage(out).free
    if free < need:
        raise RunError(
            f"--out {out}: {free // 2**20} MiB free, the run needs about {need // 2**20} MiB; "
            "free space or choose another folder"
        )


def run(
    config: RunConfig,
    resume: Path | None = None,
    executor: Executor | None = None,
    overrides: dict | None = None,
) -> tuple[RunResult, Path]:
    """Train every selected spec and write the complete run directory; returns it.

    With `resume`, the run's saved config is used, with `overrides` of its operational fields."""
    t_start = time.perf_counter()
    state = RunState.open(resume) if resume is not None else None
    if state is not None:
        config = replace(state.saved.config, **(overrides or {}))
        state.saved = replace(state.saved, config=config)
    try:
        backend = select_backend(config.backend)  # before anything can import Keras, data loaders included
        config = config.with_backend(backend)
        family = _family(config, state)  # a bad family file fails before any data is read
        specs = select_specs(config.models, family.specs)
        dataset = load_for(config)
        if config.tensorboard:
            from job.tracking.tensorboard import require_writer

            require_writer()  # before anything is written
        if state is not None:
            _check_same_data(state, dataset)
        else:
            preflight(Path(config.out), specs, dataset)  # a bad --out is refused before Ray starts
        executor = _ready(executor, config, state, specs)
        runtime = _runtime(executor)  # a worker that cannot run Keras is refused before the run folder exists
        if state is None:
            state = _start(config, specs, dataset, family, runtime.policy)
    except BaseException as exc:
        _close(executor, state)  # a refusal: Ray stopped, the lock given back
        exc.resumable = resume is not None  # stopped before a new run folder existed: nothing to resume
        raise
    log.info("run %s: %s, %d rows, %d classes -> %s", state.saved.run_id, dataset.source, dataset.rows,
             dataset.n_classes, state.work)  # fmt: skip
    try:
        return _stages(state, specs, dataset, executor, runtime, t_start, resumed=resume is not None)
    except OSError as exc:
        if exc.errno not in atomic.DISK_FULL:
            raise
        raise RunError(
            f"disk full while writing {exc.filename or state.work}; free space and resume with: "
            f"job run --resume {state.work}"
        ) from None
    except BaseException:
        log.error("run %s stopped; continue it with: job run --resume %s", state.saved.run_id, state.work)
        raise
    finally:
        _close(executor, state)


def _ready(executor: Executor | None, config: RunConfig, state: RunState | None, specs: list[ModelSpec]) -> Executor:
    """The executor, started for the trainings still to run. With none left (a resume after training) no
    cluster is needed. On resume the precision is the one the run started with, wherever it continues."""
    keys = [TrainingKey(spec.slug, seed) for spec in specs for seed in config.seeds]
    left = sum(1 for key in keys if state is None or not state.is_done(key))
    executor = executor or (_executor(config) if left else LocalExecutor())
    precision = state.saved.policy if state is not None and state.saved.policy else config.precision
    try:
        executor.start(config.backend or "tensorflow", precision, config.deterministic, max(left, 1))
    except BaseException:
        executor.close()
        raise
    return executor


def _close(executor: Executor | None, state: RunState | None) -> None:
    try:
        if executor is not None:
            executor.close()
    finally:
        if state is not None:
            state.release()


def _executor(config: RunConfig) -> Executor:
    if config.executor == "ray":
        from job.executors.ray import RayExecutor

        return RayExecutor(config.ray_address, config.cpus_per_task, config.gpus_per_task, config.backend or "")
    return LocalExecutor()


def _family(config: RunConfig, state: RunState | None) -> Family:
    """The family file given (or the built-in one); on resume, the copy in the run folder, so an edited
    file cannot change an interrupted run."""
    if state is None:
        return load_family(config.spec_file)
    family = load_family(state.work / FAMILY_FILE)
    if family.sha256 != state.saved.family_sha256:
        raise ResumeError(f"{state.work / FAMILY_FILE}: changed since the run started; restore it or start a new run")
    return family


def _start(config: RunConfig, specs: list[ModelSpec], dataset: Dataset, family: Family, policy: str) -> RunState:
    if config.data and config.data not in BUILTIN_SOURCES:  # so a resume from another folder finds it
        config = replace(config, data=str(Path(config.data).resolve()))
    if config.spec_file:
        config = replace(config, spec_file=str(Path(config.spec_file).resolve()))
    # resolved once: --margin, else the family file's, else the default; saved, so a resume keeps it
    config = replace(config, margin=config.margin_pp(family.margin_pp))
    out = Path(config.out)
    preflight(out, specs, dataset)
    run_id = new_run_id()
    work = out / f"{run_id}{PARTIAL_SUFFIX}"
    work.mkdir()
    started = datetime.now(UTC).isoformat()
    atomic.atomic_write_text(work / FAMILY_FILE, family.text)
    return RunState.create(work, SavedConfig(run_id, config, dataset.sha256, started, family.sha256, policy))


def _check_same_data(state: RunState, dataset: Dataset) -> None:
    if state.saved.sha256 != dataset.sha256:
        raise ResumeError(
            f"--resume {state.work}: the data {dataset.source} changed since the run started (sha256 differs); "
            "restore the original file or start a new run"
        )


Trainings = dict[tuple[str, int], TrainingResult]  # by (model name, seed)


def _stages(
    state: RunState,
    specs: list[ModelSpec],
    dataset: Dataset,
    executor: Executor,
    runtime: Runtime,
    t_start: float,
    resumed: bool,
) -> tuple[RunResult, Path]:
    config = state.saved.config
    split = _split(state, dataset, resumed)
    arrays = _arrays(dataset, split)
    events = _events(state, specs) if config.tensorboard else None
    trainings = _train_all(state, specs, arrays, config, runtime, executor, events)
    executor.close(wait=False)  # nothing below trains: Ray stops while the driver evaluates and reports
    models, choice, comparison = _evaluate(specs, trainings, arrays, dataset, config)
    result = _result(state, dataset, split, runtime, models, choice, comparison, t_start, resumed)
    log.info("chosen: %s (%s)", result.chosen_model, result.chosen_reason)
    _write_artifacts(state.work, result, dataset, split, arrays, trainings)
    from job.report.render import write_report

    write_report(state.work)
    if events is not None:
        events.finish(state.work)  # inside the .partial: the rename carries the copy along
    return result, _finalize(state)


def _events(state: RunState, specs: list[ModelSpec]):
    """TensorBoard events: written live by the local executor through each checkpoint's listener."""
    from job.tracking.tensorboard import EpochEvents

    events = EpochEvents(state.work.parent, state.saved.run_id, {s.slug: s.learning_rate for s in specs})
    state.listener = events.listener
    return events


def _evaluate(
    specs: list[ModelSpec], trainings: Trainings, arrays: SplitArrays, dataset: Dataset, config: RunConfig
) -> tuple[list[ModelResult], Choice, Comparison]:
    """Metrics per training, summaries per model, the choice on validation and the comparison on test."""
    seeds = config.seeds
    resampler = Resampler(arrays.y_test.size)  # one draw of bootstrap rows for every model: paired intervals
    n_features, k = dataset.x.shape[1], dataset.n_classes
    models = []
    for spec in specs:
        metrics = [
            evaluate_training(trainings[spec.name, s], arrays.y_test, k, arrays.y_train.size, resampler)
            for s in seeds
        ]
        for t in metrics:
            log.info("%s seed %d: %s; best epoch %s, val_acc %s, test_acc %s, fit %.1fs", spec.name, t.seed,
                     t.status, t.best_epoch, _f4(t.val_accuracy), _f4(t.test_accuracy), t.train_seconds)  # fmt: skip
        params = trainings[spec.name, seeds[0]].params
        models.append(model_result(spec, metrics, params, n_features, k))
    ok = [
        ModelPredictions(
            m.name,
            m.params,
            [trainings[m.name, s].val_proba.argmax(axis=1) for s in seeds],
            [trainings[m.name, s].test_proba.argmax(axis=1) for s in seeds],
        )
        for m in models
        if m.status == "ok"
    ]
    choice = choose(arrays.y_val, ok, config.margin_pp(None))
    comparison = compare(arrays.y_test, ok, k, choice.chosen, resampler)
    return models, with_test_cost(choice, comparison), comparison


def _split(state: RunState, dataset: Dataset, resumed: bool) -> SplitRows:
    config = state.saved.config
    if resumed and state.has_split():
        return SplitRows(*state.load_split(dataset.rows))
    # the split is a function of the data (its hash was checked), the seed and the sample size
    rows = np.arange(dataset.rows)
    if config.sample is not None:
        rows = stratified_sample(dataset.y, config.sample, config.seed)
    local = stratified_split(dataset.y[rows], config.seed)
    split = SplitRows(train=rows[local.train], val=rows[local.val], test=rows[local.test])
    state.save_split(split.train, split.val, split.test)
    log.info("split: train %d, val %d, test %d (stratified, seed %d)", split.train.size, split.val.size,
             split.test.size, config.seed)  # fmt: skip
    return split


def _runtime(executor: Executor) -> Runtime:
    runtime = executor.runtime()
    log.info("device: %s; precision policy %s; backend %s", runtime.device.describe(), runtime.policy, runtime.backend)
    return runtime


def _arrays(dataset: Dataset, split: SplitRows) -> SplitArrays:
    x, y = dataset.x, dataset.y  # fancy indexing copies uint8 rows only: no float copy of the data anywhere
    return SplitArrays(
        x[split.train], y[split.train], x[split.val], y[split.val], x[split.test], y[split.test], dataset.n_classes
    )


def _train_all(
    state: RunState,
    specs: list[ModelSpec],
    arrays: SplitArrays,
    config: RunConfig,
    runtime: Runtime,
    executor: Executor,
    events=None,
) -> Trainings:
    """Every (model, seed) training: finished ones from the resume state, the rest through the executor."""
    results: Trainings = {}
    tasks = []
    pairs = [(spec, seed) for spec in specs for seed in config.seeds]
    for i, (spec, seed) in enumerate(pairs, start=1):
        key = TrainingKey(spec.slug, seed)
        if state.is_done(key):
            log.info("%s seed %d: finished before the interruption; not retrained", spec.name, seed)
            results[spec.name, seed] = state.load_done(key)
        else:
            tasks.append(TrainingTask(spec, key, f"{i}/{len(pairs)}"))
    (state.work / layout.MODELS_DIR).mkdir(exist_ok=True)

    def done(task: TrainingTask, result: TrainingResult) -> None:
        if result.model_bytes is not None:  # the model first, the done marker last
            path = layout.seed_model_path(state.work, task.spec.slug, task.key.seed)
            atomic.atomic_write_bytes(path, result.model_bytes)
        state.mark_done(task.key, result)
        results[task.spec.name, task.key.seed] = result
        if events is not None and not isinstance(executor, LocalExecutor):
            events.write_all(task.key, result)  # it ran elsewhere: its epochs arrive with it

    settings = TrainSettings(
        policy=runtime.policy,
        steps_per_execution=config.steps_per_execution,
        epochs_override=config.epochs,
        deterministic=config.deterministic,
    )
    warming: list[threading.Thread] = []
    try:
        executor.run(tasks, Inputs(arrays, settings, state.checkpoint), done, spare=lambda: warming.append(_warm()))
    finally:
        for thread in warming:
            thread.join()  # before this thread imports any of it: no two threads importing one module
    return results


# What evaluation, comparison and the report import on first use: about 3 s of CPU.
EVALUATION_IMPORTS = (
    "scipy.stats",
    "mlxtend.evaluate",
    "statsmodels.stats.multitest",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "job.report.render",
)


def _warm() -> threading.Thread:
    """Import what the stages after training need, in the background, while the last trainings run
    elsewhere: an executor that trains elsewhere offers this when a slot has nothing left to train."""

    def warm() -> None:
        for name in EVALUATION_IMPORTS:
            try:
                importlib.import_module(name)
            except Exception as exc:  # the stage that needs it raises it again, where it belongs
                log.debug("warming %s: %s", name, exc)

    thread = threading.Thread(target=warm, name="warm-evaluation")
    thread.start()
    return thread


def _result(
    state: RunState,
    dataset: Dataset,
    split: SplitRows,
    runtime: Runtime,
    models: list[ModelResult],
    choice: Choice,
    comparison: Comparison,
    t_start: float,
    resumed: bool,
) -> RunResult:
    config, saved = state.saved.config, state.saved
    finished = datetime.now(UTC)
    total = time.perf_counter() - t_start
    if resumed:  # wall time from the first start: the user waited for it all
        total = (finished - datetime.fromisoformat(saved.started)).total_seconds()
    summary = dataset.summary() | {"sampled_rows": int(split.train.size + split.val.size + split.test.size)}
    device = runtime.device
    return RunResult(
        schema_version=layout.SCHEMA_VERSION,
        run_id=saved.run_id,
        config=config,
        command=config.command_line(),
        data=DataSummary(**summary),
        split=split.info(config.seed, dataset.x),
        precision=PrecisionInfo(config.precision, runtime.policy, runtime.loss_scaling),
        environment=EnvironmentInfo(
            DeviceRecord(device.kind, device.name, device.compute_capability, device.describe()),
            Versions(**runtime.versions),
            runtime.backend,
        ),
        deterministic=runtime.deterministic,
        seed=config.seed,
        started=saved.started,
        finished=finished.isoformat(),
        total_seconds=total,
        models=models,
        chosen_model=choice.chosen,
        chosen_reason=choice.reason,
        failed_models=[m.name for m in models if m.status != "ok"],
        repeats=config.repeats,
        family=FamilyInfo(config.spec_file or "built-in", saved.family_sha256, FAMILY_FILE),
        choice=choice,
        comparison=comparison,
    )


def _write_artifacts(
    work: Path,
    result: RunResult,
    dataset: Dataset,
    split: SplitRows,
    arrays: SplitArrays,
    trainings: Trainings,
) -> None:
    ok = [m for m in result.models if m.status == "ok"]
    for split_name, rows, y, part in (("test", split.test, arrays.y_test, "test_proba"),
                                      ("val", split.val, arrays.y_val, "val_proba")):  # fmt: skip
        probas = {(m.slug, t.seed): getattr(trainings[m.name, t.seed], part) for m in ok for t in m.trainings}
        if probas:
            writer.write_predictions_csv(work, rows, y, probas, result.config.seed, split_name)
    first = {m.slug: trainings[m.name, m.first.seed].test_proba for m in ok}  # the first seed of each
    chosen = result.model(result.chosen_model)
    if chosen is not None:
        writer.write_misclassified_csv(work, split.test, arrays.y_test, first, chosen.slug)
    layout.keep_models(work, result.models)
    samples, sample_labels = _samples(arrays.x_train, arrays.y_train, dataset.n_classes, result.seed)
    h, w = dataset.image_shape
    writer.write_images(work, arrays.x_test.reshape(-1, h, w), samples.reshape(-1, h, w), sample_labels)
    writer.write_history_csv(work, result)
    writer.write_run(work, result)


def _finalize(state: RunState) -> Path:
    final = state.work.parent / state.saved.run_id
    state.work.rename(final)  # same filesystem: atomic; the finished run appears whole
    state.cleanup(final)  # resume state goes only after the rename: a kill before it leaves a resumable .partial
    log.info("run %s complete: %s", state.saved.run_id, final / "report.html")
    return final


def _f4(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _samples(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == k))[:SAMPLES_PER_CLASS] for k in range(n_classes)]
    idx = np.concatenate(picks)
    return x[idx], y[idx]
