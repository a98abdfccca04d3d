"""One straight pipeline: RunConfig in, a complete run directory out.

load + validate data -> preflight -> split -> for each spec: train, evaluate, save
-> RunResult -> run.json + CSVs + images -> report.html -> move into place.

The run is built in `<out>/<run-id>.partial/` and renamed to `<out>/<run-id>/`
only once complete, so nothing that looks finished is ever half-written. An
interrupted `.partial` directory is what `job run --resume` continues.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from job.config import RunConfig
from job.data import Dataset, load_dataset, parse_image_shape, stratified_sample, stratified_split
from job.environment import choose_policy, detect_device, device_dict, select_backend, versions
from job.evaluate import choose_model, confusion_matrix, per_class_metrics
from job.result import (
    ModelResult,
    RunResult,
    misclassified_table,
    read_split_csv,
    write_history_csv,
    write_images,
    write_predictions_csv,
    write_run_json,
    write_split_csv,
)
from job.specs import ModelSpec, select_specs

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
SAMPLES_PER_CLASS = 8  # digits per class in the report's sample strip
MIN_FREE_BYTES = 64 * 1024 * 1024


class RunError(Exception):
    """A problem with the run's setup (output folder, resume directory): exit 2, one line."""


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def load_for(config: RunConfig) -> Dataset:
    return load_dataset(
        config.data,
        image_shape=parse_image_shape(config.image_shape),
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


def run(config: RunConfig, resume: Path | None = None) -> tuple[RunResult, Path]:
    """Train every selected spec and write the complete run directory; returns it."""
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    if resume is not None:
        config, run_id, work = _open_resume(resume)
    specs = select_specs(config.models)
    dataset = load_for(config)
    if resume is not None:
        _check_same_data(work, dataset)
    else:
        out = Path(config.out)
        preflight(out, specs, dataset)
        run_id = new_run_id()
        work = out / f"{run_id}{PARTIAL_SUFFIX}"
        work.mkdir()
    log.info("run %s: %s, %d rows, %d classes -> %s", run_id, dataset.source, dataset.rows, dataset.n_classes, work)

    try:
        return _run_in(config, specs, dataset, run_id, work, started, t_start, resumed=resume is not None)
    except BaseException:
        if (work / "config.json").exists():
            log.error("run %s stopped; continue it with: job run --resume %s", run_id, work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        raise


def _open_resume(path: Path) -> tuple[RunConfig, str, Path]:
    if not (path / "config.json").exists():
        if (path / "run.json").exists():
            raise RunError(f"--resume {path}: this run is already complete; start a new one with job run")
        raise RunError(
            f"--resume {path}: not an interrupted run (no config.json); pass the <run-id>{PARTIAL_SUFFIX} folder"
        )
    saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
    run_id = saved["run_id"]
    return RunConfig.from_dict(saved["config"]), run_id, path


def _check_same_data(work: Path, dataset: Dataset) -> None:
    saved = json.loads((work / "config.json").read_text(encoding="utf-8"))
    if saved["sha256"] != dataset.sha256:
        raise RunError(
            f"--resume {work}: the data {dataset.source} changed since the run started (sha256 differs); "
            "restore the original file or start a new run"
        )


def _run_in(
    config: RunConfig,
    specs: list[ModelSpec],
    dataset: Dataset,
    run_id: str,
    work: Path,
    started: datetime,
    t_start: float,
    resumed: bool,
) -> tuple[RunResult, Path]:
    backend = select_backend(config.backend)
    rows = np.arange(dataset.rows)
    y_all = dataset.y
    if config.sample is not None:
        rows = stratified_sample(y_all, config.sample, config.seed)
    if resumed:
        split = read_split_csv(work)
    else:
        local = stratified_split(y_all[rows], config.seed)
        from job.data import Split

        split = Split(train=rows[local.train], val=rows[local.val], test=rows[local.test])
        write_split_csv(work, split)
        (work / "config.json").write_text(
            json.dumps(
                {
                    "run_id": run_id,
                    "config": config.to_dict(),
                    "sha256": dataset.sha256,
                    "started": started.isoformat(),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    sizes = split.sizes()
    log.info(
        "split: train %d, val %d, test %d (stratified, seed %d)",
        sizes["train"],
        sizes["val"],
        sizes["test"],
        config.seed,
    )

    # Keras is imported only now: check-data and report never pay for it.
    from job import train as training

    device = detect_device(backend)
    policy = choose_policy(config.precision, device)
    state = training.configure(policy, config.seed, config.deterministic)
    log.info("device: %s; precision policy %s; backend %s", device.describe(), policy, backend)

    x, y, n_classes = dataset.x, dataset.y, dataset.n_classes
    arrays = {
        "x_train": x[split.train],
        "y_train": y[split.train],
        "x_val": x[split.val],
        "y_val": y[split.val],
    }  # fancy indexing copies uint8 rows only: no float copy of the data anywhere
    x_test, y_test = x[split.test], y[split.test]
    settings = training.TrainSettings(
        policy=policy,
        steps_per_execution=config.steps_per_execution,
        epochs_override=config.epochs,
    )
    progress = work / "progress"
    progress.mkdir(exist_ok=True)
    (work / "models").mkdir(exist_ok=True)

    results: list[ModelResult] = []
    probas: dict[str, np.ndarray] = {}
    for i, spec in enumerate(specs, start=1):
        done = progress / f"{spec.slug}.done.json"
        if done.exists():
            log.info("%s: finished before the interruption; not retrained", spec.name)
            result = ModelResult(**json.loads(done.read_text(encoding="utf-8")))
            if result.status == "ok":
                probas[spec.name] = np.load(progress / f"{spec.slug}.proba.npy")
            results.append(result)
            continue
        outcome = training.train_spec(spec, arrays, n_classes, settings, progress, f"{i}/{len(specs)}")
        result, proba = _evaluate(spec, outcome, x_test, y_test, n_classes, sizes["train"], training)
        if proba is not None:
            outcome.model.save(work / "models" / f"{spec.slug}.keras")
            np.save(progress / f"{spec.slug}.proba.npy", proba)
            probas[spec.name] = proba
        done.write_text(json.dumps(_jsonable(asdict(result))), encoding="utf-8")
        results.append(result)
        log.info(
            "%s: %s; best epoch %s, val_acc %s, test_acc %s, fit %.1fs",
            spec.name,
            result.status,
            result.best_epoch,
            _f4(result.val_accuracy),
            _f4(result.test_accuracy),
            result.train_seconds,
        )

    chosen, reason = choose_model([asdict(r) for r in results])
    log.info("chosen: %s (%s)", chosen, reason)
    slugs = {r.name: r.slug for r in results}
    test_rows = split.test
    if probas:
        write_predictions_csv(work, test_rows, y_test, probas, slugs)
    if chosen is not None:
        misclassified_table(test_rows, y_test, probas, chosen, slugs).to_csv(work / "misclassified.csv", index=False)
    samples, sample_labels = _samples(x[split.train], y[split.train], n_classes, config.seed)
    h, w = dataset.image_shape
    write_images(work, x_test.reshape(-1, h, w), samples.reshape(-1, h, w), sample_labels)
    write_history_csv(work, results)

    finished = datetime.now(timezone.utc)
    saved = json.loads((work / "config.json").read_text(encoding="utf-8"))
    total = time.perf_counter() - t_start
    if resumed:  # wall time from the first start, less nothing: the user waited for it all
        total = (finished - datetime.fromisoformat(saved["started"])).total_seconds()
    data_summary = dataset.summary() | {"split": sizes, "sampled_rows": int(sum(sizes.values()))}
    result = RunResult(
        run_id=run_id,
        config=config.to_dict(),
        command=config.command_line(backend),
        data=data_summary,
        split=sizes,
        precision={"requested": config.precision, "policy": policy, "loss_scaling": state["loss_scaling"]},
        environment={"device": device_dict(device), "versions": versions(backend), "backend": backend},
        deterministic=state["deterministic"],
        seed=config.seed,
        started=saved["started"],
        finished=finished.isoformat(),
        total_seconds=total,
        models=results,
        chosen_model=chosen,
        chosen_reason=reason,
        failed_models=[r.name for r in results if r.status != "ok"],
    )
    write_run_json(work, result)

    from job.report.render import write_report

    write_report(work)
    final = work.parent / run_id
    work.rename(final)  # same filesystem: atomic; the finished run appears whole
    # Resume state goes only after the rename: a kill before it leaves a resumable .partial.
    shutil.rmtree(final / "progress", ignore_errors=True)
    (final / "config.json").unlink(missing_ok=True)
    log.info("run %s complete: %s", run_id, final / "report.html")
    return result, final


def _f4(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _jsonable(value):
    from job.result import _clean

    return _clean(value)


def _samples(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == k))[:SAMPLES_PER_CLASS] for k in range(n_classes)]
    idx = np.concatenate(picks)
    return x[idx], y[idx]


def _evaluate(spec, outcome, x_test, y_test, n_classes, n_train, training) -> tuple[ModelResult, np.ndarray | None]:
    records = outcome.records
    model = outcome.model
    history = {k: [r.get(k) for r in records] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    best = next((r for r in records if r["epoch"] == outcome.best_epoch), None)
    steady = training.steady_epoch_seconds(records)
    status = "failed" if outcome.failure or best is None else "ok"
    proba = None
    test_loss = test_acc = None
    confusion = None
    per_class: list[dict] = []
    if status == "ok":
        test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=2048, verbose=0)
        proba = np.asarray(model.predict(x_test, batch_size=2048, verbose=0), dtype=np.float32)
        cm = confusion_matrix(y_test, proba.argmax(axis=1), n_classes)
        confusion = cm.tolist()
        per_class = per_class_metrics(cm)
    result = ModelResult(
        name=spec.name,
        key=spec.key,
        slug=spec.slug,
        hidden=list(spec.hidden),
        activation=spec.activation,
        initializer=spec.initializer,
        params=training.dense_params(model),
        layers=spec.layer_count(),
        architecture=spec.architecture(int(x_test.shape[1]), n_classes),
        epochs_planned=outcome.epochs_planned,
        epochs_run=len(records),
        status=status,
        failure=outcome.failure,
        best_epoch=outcome.best_epoch,
        loss=best and best["loss"],
        accuracy=best and best["accuracy"],
        val_loss=best and best["val_loss"],
        val_accuracy=best and best["val_accuracy"],
        test_loss=None if test_loss is None else float(test_loss),
        test_accuracy=None if test_acc is None else float(test_acc),
        history=history,
        epoch_seconds=[r["seconds"] for r in records],
        epoch_train_seconds=[r["train_seconds"] for r in records],
        epoch_val_seconds=[r["val_seconds"] for r in records],
        compile_epochs=[r["epoch"] for r in records if r.get("compile")],
        first_epoch_seconds=records[0]["seconds"] if records else None,
        steady_epoch_seconds=steady,
        train_seconds=outcome.fit_seconds,
        samples_per_second=_throughput(records, n_train),
        stopped_early=outcome.stopped_early,
        confusion=confusion,
        per_class=per_class,
    )
    return result, proba


def _throughput(records: list[dict], n_train: int) -> float | None:
    steady = [r["train_seconds"] for r in records if not r.get("compile")]
    if not steady:
        steady = [r["train_seconds"] for r in records]
    if not steady or sum(steady) <= 0:
        return None
    return n_train * len(steady) / sum(steady)
