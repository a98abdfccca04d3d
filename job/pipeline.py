"""One straight pipeline: a RunConfig in, a complete run directory out.

    resolve the plan -> split(s) -> train all (through an executor) -> evaluate -> assemble
    -> write the run directory -> render -> finalize

`job.plan.resolve` settles every setting once; each stage after it is a public function with typed inputs
and outputs, and `run_stages` chains them. The run is built in `<out>/<run-id>.partial/` and renamed to
`<out>/<run-id>/` only once complete, so nothing that looks finished is ever half-written. An interrupted
`.partial` folder is what `job run --resume` continues; `job.rundir.resume.RunState` holds its lock.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from job import cost
from job.config import RunConfig
from job.data.dataset import Dataset
from job.data.split import SPLIT_FRACTIONS, Split, duplicates_across, resplit, stratified_sample, stratified_split
from job.errors import JobError
from job.evaluate import evaluate_training, model_result
from job.executors.base import Executor, Runtime
from job.executors.local import LocalExecutor
from job.family import check_params
from job.plan import RunPlan, resolve
from job.report.format import fmt_count
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
    training_label,
)
from job.rundir import atomic, layout, writer
from job.rundir.layout import FAMILY_FILE
from job.rundir.resume import ResumeError, RunState, TrainingKey
from job.specs import ModelSpec
from job.stats.choice import Choice, choose_over_splits, with_test_cost
from job.stats.compare import Comparison, ModelPredictions, Resampler, compare
from job.stats.splits import Architectures, compare_architectures
from job.training import packing
from job.training.inputs import DevSplits, Inputs, PackTask, TrainingTask, TrainSettings, Unit

log = logging.getLogger(__name__)

SAMPLES_PER_CLASS = 8  # digits per class in the report's sample strip
MIN_FREE_BYTES = 64 * 1024 * 1024

Trainings = dict[tuple[str, int, int], TrainingResult]  # by (model name, seed, split)


class RunError(JobError):
    """A problem with the run's setup (output folder, resume directory): exit 2, one line."""


@dataclass(frozen=True)
class Evaluation:
    models: list[ModelResult]
    choice: Choice
    comparison: Comparison
    architectures: Architectures | None  # None when no model finished


def preflight(out: Path, specs: tuple[ModelSpec, ...], dataset: Dataset) -> None:
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


def budget(plan: RunPlan) -> cost.Estimate:
    """Every model's parameters on the data's real shape, and the run's peak memory against the budget
    (`--max-memory`, else what is available); logs the trainings and a time estimate."""
    dataset, config = plan.dataset, plan.config
    features, classes = int(dataset.x.shape[1]), dataset.n_classes
    check_params(plan.specs, config.spec_file or "the built-in family", features, classes)
    rows = min(config.sample or dataset.rows, dataset.rows)
    val, test = (round(rows * f) for f in SPLIT_FRACTIONS[1:])
    shape = cost.Shape(features, classes, dataset.rows, rows - val - test, val, test)
    per_model = len(config.seeds) * len(config.split_numbers)
    est = cost.estimate(plan.specs, shape, per_model, local=config.executor == "local", packs=_most_packed(plan))
    log.info("plan: %s", est.describe())
    if est.trainings > cost.MANY_TRAININGS or est.seconds > cost.LONG_RUN_SECONDS:
        log.warning(
            "%s trainings will take about %s here; fewer --repeats, --splits, --models or a --sample make it shorter, "
            "and --executor ray spreads it over a cluster",
            f"{est.trainings:,}",
            cost.duration(est.seconds),
        )
    cost.check(est, config.max_memory)
    return est


def _most_packed(plan: RunPlan) -> dict[str, int]:
    """The most members a pack of each model will have. `auto` is resolved on the device that trains, which is not
    known before the executor starts: until then it is estimated as a CPU in float32 would resolve it, and `run`
    checks the budget again once the device has resolved it."""
    if plan.config.pack == "auto":
        plan = plan.with_pack(False, "float32", plan.config.backend or "tensorflow")
    return packing.sizes_of(plan.config.pack, plan.specs)


def run(
    config: RunConfig,
    resume: Path | None = None,
    executor: Executor | None = None,
    overrides: dict | None = None,
) -> tuple[RunResult, Path]:
    """Train every selected spec and write the complete run directory; returns it.

    With `resume`, the run's saved config is used, with `overrides` of its operational fields."""
    t_start = time.perf_counter()
    state, saved = RunState.open(resume) if resume is not None else (None, None)
    try:
        plan = resolve(config, (resume, saved) if resume is not None and saved is not None else None, overrides)
        if plan.config.tensorboard:
            from job.tracking.tensorboard import require_writer

            require_writer()  # before anything is written
        estimate = budget(plan)  # a run that cannot fit in memory is refused before the run folder exists
        if state is None:
            preflight(Path(plan.config.out), plan.specs, plan.dataset)  # a bad --out is refused before Ray starts
        executor = start_executor(plan, state, executor)
        runtime = _runtime(executor)  # a worker that cannot run Keras is refused before the run folder exists
        if state is None:
            # --pack resolved on the device that trains, and saved so: a resume and the Ray workers reuse it
            assumed = _most_packed(plan)
            plan = plan.with_pack(runtime.device.kind == "GPU", runtime.policy, runtime.backend)
            if _most_packed(plan) != assumed:
                estimate = budget(plan)  # the device's own layout (a GPU packs more), checked before the folder
            state = open_run_folder(plan, runtime.policy)
    except BaseException as exc:
        _close(executor, state)  # a refusal: Ray stopped, the lock given back
        exc.resumable = resume is not None  # type: ignore[attr-defined]  # read by the CLI's last line
        raise
    dataset = plan.dataset
    log.info(
        "run %s: %s, %d rows, %d classes -> %s", plan.run_id, dataset.source, dataset.rows, dataset.n_classes, plan.work
    )
    try:
        return run_stages(plan, state, executor, runtime, t_start, estimate)
    except OSError as exc:  # a write that failed mid-run: one line, and the .partial to resume
        where = exc.filename or plan.work
        if exc.errno in atomic.DISK_FULL:
            fix, what = "free space", f"disk full while writing {where}"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix, what = "fix its permissions (or the folder's)", f"cannot write {where} ({exc.strerror})"
        else:  # EIO, a damaged weights file h5py cannot read, ...
            fix, what = "fix the cause", f"{where}: {exc.strerror or ' '.join(str(exc).split()) or type(exc).__name__}"
        raise RunError(f"{what}; {fix} and resume with: job run --resume {plan.work}") from None
    except BaseException:
        log.error("run %s stopped; continue it with: job run --resume %s", plan.run_id, plan.work)
        raise
    finally:
        _close(executor, state)


def start_executor(plan: RunPlan, state: RunState | None, executor: Executor | None = None) -> Executor:
    """The executor, started for the trainings still to run. With none left (a resume after training) no
    cluster is needed. On resume the precision is the one the run started with, wherever it continues."""
    left = sum(1 for key in plan.keys if state is None or not state.is_done(key))
    executor = executor or (_executor(plan.config) if left else LocalExecutor())
    config = plan.config
    try:
        executor.start(config.backend or "", plan.precision, config.deterministic, max(left, 1))
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


def open_run_folder(plan: RunPlan, policy: str) -> RunState:
    """The new run's `.partial` folder, locked, with the saved plan and the family file it trains."""
    plan.work.mkdir()
    atomic.atomic_write_text(plan.work / FAMILY_FILE, plan.family.text)
    return RunState.create(plan.work, plan.saved(policy))


def run_stages(
    plan: RunPlan,
    state: RunState,
    executor: Executor,
    runtime: Runtime,
    t_start: float,
    estimate: cost.Estimate | None = None,
) -> tuple[RunResult, Path]:
    """Every stage after the plan, in order; returns the result and the finished run directory."""
    rows = split(plan, state)
    splits = dev_splits(plan.dataset, rows)
    events = _events(plan) if plan.config.tensorboard else None
    trainings = train_all(plan, state, splits, runtime, executor, events)
    executor.close(wait=False)  # nothing below trains: Ray stops while the driver evaluates and reports
    evaluation = evaluate(plan, trainings, splits)
    result = assemble(plan, rows, runtime, evaluation, t_start, estimate)
    log.info("chosen: %s (%s)", result.chosen_model, result.chosen_reason)
    write_run_dir(plan.work, result, plan.dataset, rows, splits, trainings)
    from job.report.render import write_report

    write_report(plan.work)
    if events is not None:
        events.finish(plan.work)  # inside the .partial: the rename carries the copy along
    return result, finalize(plan, state)


def _events(plan: RunPlan):
    """TensorBoard events: written live by the local executor through each checkpoint's listener."""
    from job.tracking.tensorboard import EpochEvents

    return EpochEvents(plan.work.parent, plan.run_id, {s.slug: s.learning_rate for s in plan.specs})


def split(plan: RunPlan, state: RunState) -> list[Split]:
    """The rows of each development split, split 1 first: the saved ones on resume, else drawn from the seed and
    saved. Split 1 is the seed's stratified split; split k >= 2 keeps its test rows and re-partitions the rest
    (`job.data.split.resplit`)."""
    config, dataset = plan.config, plan.dataset
    numbers = config.split_numbers
    if plan.resumed and all(state.has_split(k) for k in numbers):
        return _same_rows([Split(*state.load_split(dataset.rows, k)) for k in numbers], plan.work)
    # the split is a function of the data (its hash was checked), the seed and the sample size
    rows = np.arange(dataset.rows)
    if config.sample is not None:
        rows = stratified_sample(dataset.y, config.sample, config.seed)
    y = dataset.y[rows]
    first = stratified_split(y, config.seed)
    out = []
    for k in numbers:
        local = first if k == 1 else resplit(y, first, config.seed, k)
        parts = Split(train=rows[local.train], val=rows[local.val], test=rows[local.test], fractions=local.fractions)
        state.save_split(parts.train, parts.val, parts.test, k)
        out.append(parts)
    log.info(
        "split: train %d, val %d, test %d (stratified, seed %d)%s",
        out[0].train.size,
        out[0].val.size,
        out[0].test.size,
        config.seed,
        f"; {len(out)} development splits, the same test rows" if len(out) > 1 else "",
    )
    return out


def _same_rows(rows: list[Split], work: Path) -> list[Split]:
    """Saved splits that a resume may use: every split has split 1's test rows and uses split 1's rows."""
    first = rows[0]
    used = np.sort(np.concatenate([first.train, first.val, first.test]))
    for k, part in enumerate(rows[1:], start=2):
        same_test = np.array_equal(np.sort(part.test), np.sort(first.test))
        if not same_test or not np.array_equal(np.sort(np.concatenate([part.train, part.val, part.test])), used):
            what = "test rows" if not same_test else "rows"
            raise ResumeError(
                f"{work / layout.split_csv(k)}: its {what} are not split 1's ({layout.SPLIT_CSV}); "
                "delete it and resume, and it is drawn again"
            )
    return rows


def dev_splits(dataset: Dataset, rows: list[Split]) -> DevSplits:
    """Every split's rows as positions in one array of the rows the run uses. Without --sample that array is
    the data itself (no copy); with it, the sampled rows are copied once. uint8 throughout: no float copy."""
    first = rows[0]
    used = np.concatenate([first.train, first.val, first.test])
    if used.size == dataset.rows:
        x, y = dataset.x, dataset.y
        where = lambda r: r  # noqa: E731
    else:
        used = np.sort(used)
        x, y = dataset.x[used], dataset.y[used]
        where = lambda r: np.searchsorted(used, r)  # noqa: E731
    parts = tuple((where(s.train), where(s.val)) for s in rows)
    return DevSplits(x, y, parts, where(first.test), dataset.n_classes)


def _runtime(executor: Executor) -> Runtime:
    runtime = executor.runtime()
    log.info("device: %s; precision policy %s; backend %s", runtime.device.describe(), runtime.policy, runtime.backend)
    return runtime


def _units(plan: RunPlan, state: RunState) -> tuple[Trainings, list[Unit], dict[str, int]]:
    """The run's layout (`plan.units`): finished trainings read back, the rest as tasks (a pack as one), and the
    number of packs per model slug."""
    results: Trainings = {}
    tasks: list[Unit] = []
    names = {spec.slug: spec for spec in plan.specs}
    position = {key: f"{i}/{len(plan.keys)}" for i, key in enumerate(plan.keys, start=1)}
    packs: dict[str, int] = {}
    for unit in plan.units:
        slug = unit[0].slug
        name = None
        if len(unit) > 1:
            packs[slug] = packs.get(slug, 0) + 1
            name = packing.pack_name(unit, packs[slug])
        members = tuple(TrainingTask(names[slug], key, position[key], name) for key in unit)
        if all(state.is_done(key) for key in unit):
            for task in members:
                log.info("%s: finished before the interruption; not retrained", task.label)
                results[task.spec.name, task.key.seed, task.key.split] = state.load_done(task.key)
        else:  # a pack trains whole, from its own checkpoint: a member done before a kill is done again, the same
            tasks.append(PackTask(name, members) if name is not None else members[0])
    return results, tasks, packs


def train_all(
    plan: RunPlan, state: RunState, splits: DevSplits, runtime: Runtime, executor: Executor, events=None
) -> Trainings:
    """Every (model, seed, split) training: finished ones from the resume state, the rest through the executor."""
    results, tasks, packs = _units(plan, state)
    (plan.work / layout.MODELS_DIR).mkdir(exist_ok=True)
    config = plan.config
    log.info(
        "%s: %s x %s%s; %d left to train",
        fmt_count(len(plan.keys), "training"),
        fmt_count(len(plan.specs), "model"),
        fmt_count(config.repeats, "seed"),
        f" x {fmt_count(len(config.split_numbers), 'split')}" if len(config.split_numbers) > 1 else "",
        sum(len(t.members) if isinstance(t, PackTask) else 1 for t in tasks),
    )
    if packs:
        log.info("packed: %s (--pack %s)", ", ".join(f"{n} of {slug}" for slug, n in packs.items()), config.pack)

    def done(task: TrainingTask, result: TrainingResult) -> None:
        if state.is_done(task.key):  # a pack redone for its other members: this one was recorded before the kill
            results[task.spec.name, task.key.seed, task.key.split] = state.load_done(task.key)
            return
        result.split = task.key.split  # the executor trained the task's split's rows
        result.pack = task.pack
        if result.model_bytes is not None:  # the model first, the done marker last
            path = layout.seed_model_path(plan.work, task.spec.slug, task.key.seed, task.key.split)
            atomic.atomic_write_bytes(path, result.model_bytes)
            result.model_bytes = None  # on disk now: the driver does not hold every model it has trained
        state.mark_done(task.key, result)
        results[task.spec.name, task.key.seed, task.key.split] = result
        if events is not None and not isinstance(executor, LocalExecutor):
            events.write_all(task.key, result)  # it ran elsewhere: its epochs arrive with it

    def checkpoint(key: TrainingKey):
        return state.checkpoint(key, events.listener(key) if events is not None else None)

    def pack_checkpoint(pack: PackTask):
        listeners = tuple(events.listener(m.key) if events is not None else None for m in pack.members)
        return state.pack_checkpoint(pack.name, listeners)

    settings = TrainSettings(
        policy=runtime.policy,
        steps_per_execution=config.steps_per_execution,
        epochs_override=config.epochs,
        deterministic=config.deterministic,
        jit_compile=jit_compile(runtime.backend, runtime.policy),
    )
    warming: list[threading.Thread] = []
    try:
        inputs = Inputs(splits, settings, checkpoint, pack_checkpoint)
        executor.run(tasks, inputs, done, spare=lambda: warming.append(_warm()))
    finally:
        for thread in warming:
            thread.join()  # before this thread imports any of it: no two threads importing one module
    return results


def jit_compile(backend: str, policy: str) -> bool | str:
    """Keras's "auto", except bfloat16 on TensorFlow: without XLA TensorFlow can place bfloat16 Dense matmuls on
    the CPU, silently (tensorflow#55738), so mixed_bfloat16 there always compiles with XLA."""
    return True if backend == "tensorflow" and policy == "mixed_bfloat16" else "auto"


def evaluate(plan: RunPlan, trainings: Trainings, splits: DevSplits) -> Evaluation:
    """Metrics per training, summaries per model, the choice on validation (over the splits), the comparison on
    test, and the architectures across splits and seeds."""
    seeds, numbers = plan.config.seeds, plan.config.split_numbers
    y_test = splits.y_test
    resampler = Resampler(y_test.size)  # one draw of bootstrap rows for every model: paired intervals
    n_features, k = plan.dataset.x.shape[1], plan.dataset.n_classes
    rows = (splits.n_train, splits.y_val(1).size, y_test.size)
    models = []
    for spec in plan.specs:
        metrics = [
            evaluate_training(trainings[spec.name, s, j], y_test, k, splits.n_train, resampler)
            for j in numbers
            for s in seeds
        ]
        for t in metrics:
            log.info(
                "%s: %s; best epoch %s, val_acc %s, test_acc %s, fit %.1fs",
                training_label(spec.name, t.seed, t.split),
                t.status,
                t.best_epoch,
                _f4(t.val_accuracy),
                _f4(t.test_accuracy),
                t.train_seconds,
            )
        params = trainings[spec.name, seeds[0], 1].params
        models.append(model_result(spec, metrics, params, n_features, k, rows))
    ok = [m for m in models if m.status == "ok"]
    per_split = [
        (splits.y_val(j), [_predictions(m, [trainings[m.name, s, j] for s in seeds]) for m in ok]) for j in numbers
    ]
    choice = choose_over_splits(per_split, plan.config.margin_pp(None), rows[1] / rows[0])
    every = [_predictions(m, [trainings[m.name, s, j] for j in numbers for s in seeds]) for m in ok]
    comparison = compare(y_test, every, k, choice.chosen, resampler)  # every split's trainings: one test split
    accuracies = {m.name: np.array([[_val(m, s, j) for s in seeds] for j in numbers]) for m in ok}
    architectures = compare_architectures(accuracies, rows[1], rows[0]) if ok else None
    return Evaluation(models, with_test_cost(choice, comparison), comparison, architectures)


def _val(model: ModelResult, seed: int, split: int) -> float:
    t = model.training(seed, split)
    if t is None or t.val_accuracy is None:
        raise ValueError(f"{model.name} seed {seed} split {split}: finished without a validation accuracy")
    return t.val_accuracy


def _predictions(model: ModelResult, trainings: list[TrainingResult]) -> ModelPredictions:
    """A finished model's predicted labels, seed by seed: every one of its trainings has probabilities."""
    val = [t.val_proba for t in trainings if t.val_proba is not None]
    test = [t.test_proba for t in trainings if t.test_proba is not None]
    return ModelPredictions(model.name, model.params, [p.argmax(axis=1) for p in val], [p.argmax(axis=1) for p in test])


# What evaluation, comparison and the report import on first use (seconds of CPU: worth warming).
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


def assemble(
    plan: RunPlan,
    rows: list[Split],
    runtime: Runtime,
    evaluation: Evaluation,
    t_start: float,
    estimate: cost.Estimate | None = None,
) -> RunResult:
    """Everything the run directory records, as one typed `RunResult`."""
    config, dataset, choice = plan.config, plan.dataset, evaluation.choice
    finished = datetime.now(UTC)
    total = time.perf_counter() - t_start
    if plan.resumed:  # wall time from the first start: the user waited for it all
        total = (finished - datetime.fromisoformat(plan.started)).total_seconds()
    first = rows[0]
    summary = dataset.summary() | {"sampled_rows": int(first.train.size + first.val.size + first.test.size)}
    device = runtime.device
    return RunResult(
        schema_version=layout.SCHEMA_VERSION,
        run_id=plan.run_id,
        config=config,
        command=config.command_line(),
        data=DataSummary(**summary),
        split=split_info(rows, config.seed, dataset.x),
        precision=PrecisionInfo(config.precision, runtime.policy, runtime.loss_scaling),
        environment=EnvironmentInfo(
            DeviceRecord(device.kind, device.name, device.compute_capability, device.describe()),
            Versions(**runtime.versions),  # type: ignore[arg-type]  # the keys are Versions' fields
            runtime.backend,
        ),
        deterministic=runtime.deterministic,
        seed=config.seed,
        started=plan.started,
        finished=finished.isoformat(),
        total_seconds=total,
        models=evaluation.models,
        failed_models=[m.name for m in evaluation.models if m.status != "ok"],
        repeats=config.repeats,
        family=FamilyInfo(config.spec_file or "built-in", plan.family.sha256, FAMILY_FILE),
        choice=choice,
        comparison=evaluation.comparison,
        splits=len(config.split_numbers),
        architectures=evaluation.architectures,
        estimate=estimate,
    )


def split_info(rows: list[Split], seed: int, x: np.ndarray) -> SplitInfo:
    """Split 1's sizes; the copies are the most of any split (a test row copied in one split's training rows
    flatters every test score of that split's trainings)."""
    copies = max(duplicates_across(x, part) for part in rows)
    first = rows[0]
    return SplitInfo(first.train.size, first.val.size, first.test.size, list(SPLIT_FRACTIONS), seed, True, copies)


def write_run_dir(
    work: Path, result: RunResult, dataset: Dataset, rows: list[Split], splits: DevSplits, trainings: Trainings
) -> None:
    """Every file of the run directory but the report: predictions, misclassified rows, models, images,
    history, and run.json last."""
    ok = [m for m in result.models if m.status == "ok"]
    first_seed = result.config.seed
    test = {(m.slug, t.seed, t.split): _proba(trainings[m.name, t.seed, t.split]) for m in ok for t in m.trainings}
    if test:
        writer.write_predictions_csv(work, rows[0].test, splits.y_test, test, first_seed)
    for j, part in enumerate(rows, start=1):
        val = {
            (m.slug, t.seed, j): _proba(trainings[m.name, t.seed, j], "val_proba")
            for m in ok
            for t in m.trainings
            if t.split == j
        }
        if val:
            name = layout.val_predictions_csv(j)
            writer.write_predictions_csv(work, part.val, splits.y_val(j), val, first_seed, name)
    first = {m.slug: _proba(trainings[m.name, m.first.seed, 1]) for m in ok}  # split 1's first seed of each
    chosen = result.model(result.chosen_model)
    if chosen is not None:
        writer.write_misclassified_csv(work, rows[0].test, splits.y_test, first, chosen.slug)
    layout.keep_models(work, result.models)
    arrays = splits.arrays(1)
    samples, sample_labels = _samples(arrays.x_train, arrays.y_train, dataset.n_classes, result.seed)
    h, w = dataset.image_shape
    writer.write_images(work, arrays.x_test.reshape(-1, h, w), samples.reshape(-1, h, w), sample_labels)
    writer.write_history_csv(work, result)
    writer.write_run(work, result)


def _proba(training: TrainingResult, part: str = "test_proba") -> np.ndarray:
    proba = getattr(training, part)
    if proba is None:
        raise ValueError(f"{training.name} seed {training.seed}: finished without {part}")
    return proba


def finalize(plan: RunPlan, state: RunState) -> Path:
    final = plan.work.parent / plan.run_id
    plan.work.rename(final)  # same filesystem: atomic; the finished run appears whole
    state.cleanup(final)  # resume state goes only after the rename: a kill before it leaves a resumable .partial
    log.info("run %s complete: %s", plan.run_id, final / "report.html")
    return final


def _f4(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _samples(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == k))[:SAMPLES_PER_CLASS] for k in range(n_classes)]
    idx = np.concatenate(picks)
    return x[idx], y[idx]
