"""Export a finished run directory to MLflow: one parent run for the job, a nested run per training
(model, seed, split).

Reads the run directory alone (`job.rundir.read_run`), so it needs no TensorFlow. mlflow is an optional extra,
imported only here and only when the export runs. It writes through `MlflowClient` with explicit run ids and
`log_batch`, never the fluent global API. Idempotent: the parent carries the job's run id (`job.run_id`) and, set
last, `job.export_complete`; a complete export is left alone, an interrupted one is deleted and redone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from job.errors import JobError
from job.result import ModelResult, RunResult, TrainingMetrics, training_label
from job.rundir.layout import PARTIAL_SUFFIX, RUN_JSON, model_path, seed_model_path
from job.rundir.reader import read_run
from job.rundir.resume import CONFIG_JSON

DEFAULT_EXPERIMENT = "keras-batch-job"
RUN_ID_TAG = "job.run_id"
COMPLETE_TAG = "job.export_complete"  # set last: a parent without it is an interrupted export
ROLE_TAG = "job.role"  # "job" on the parent, "training" on each nested run
PARENT_TAG = "mlflow.parentRunId"  # what makes a run nested in the MLflow UI
INSTALL_HINT = "pip install 'keras-batch-job[mlflow]'"
REPORT_HTML = "report.html"
# Conservative limits every MLflow server since 1.x stores (newer ones allow more).
MAX_TAG_VALUE = 5000
MAX_PARAM_VALUE = 500
MAX_PER_BATCH = 1000  # metrics per log_batch call
MAX_PARAMS_TAGS_PER_BATCH = 100
# A dead server fails fast: a refused connection in about a second, a silent host in about 20 s (< 30 s).
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # an int in MLflow
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
UNBOUNDED = ("log_artifact",)  # uploads of model files: as long as the link needs; requests' timeouts apply
CALL_DEADLINE_S = 30.0  # one tracking call, retries included: a server that trickles bytes is stopped here
UNREACHABLE = ("Max retries exceeded", "ConnectionError", "ConnectTimeout", "ReadTimeout", "Connection refused")
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
FINAL_KEYS = {  # metric name: TrainingMetrics field (best-epoch and test numbers)
    "best_epoch": "best_epoch",
    "epochs_run": "epochs_run",
    "best_loss": "loss",
    "best_accuracy": "accuracy",
    "best_val_loss": "val_loss",
    "best_val_accuracy": "val_accuracy",
    "test_loss": "test_loss",
    "test_accuracy": "test_accuracy",
    "macro_f1": "macro_f1",
    "train_seconds": "train_seconds",
    "first_epoch_seconds": "first_epoch_seconds",
    "steady_epoch_seconds": "steady_epoch_seconds",
    "samples_per_second": "samples_per_second",
}


class ExportError(JobError):
    """mlflow missing, or the tracking server unreachable or refusing: one line, exit 2."""


@dataclass
class Exported:
    """What an export did: the parent run, how many nested runs it holds, and whether it was there already."""

    run_id: str  # the job's
    parent_run_id: str
    trainings: int
    already: bool
    replaced: list[str]  # parent ids of interrupted exports deleted before this one
    tracking_uri: str
    experiment: str

    def line(self) -> str:
        where = f"MLflow {self.tracking_uri}, experiment '{self.experiment}'"
        if self.already:
            return f"{self.run_id} is already in {where} (parent run {self.parent_run_id}); nothing added"
        nested = f"{self.trainings} nested training runs"
        return f"exported {self.run_id} to {where}: parent run {self.parent_run_id}, {nested}"


def shown_uri(uri: str) -> str:
    """The URI without a password, for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


def _import_mlflow(log_level: int | None = None):
    """mlflow and its client, imported now; ExportError with the install line when it is missing.

    log_level: the level for MLflow's own loggers (it sets INFO on import), e.g. to keep its notes off stderr.
    """
    for key, value in HTTP_SETTINGS.items():  # read per request; the user's own settings win
        os.environ.setdefault(key, value)
    if log_level is not None:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", logging.getLevelName(log_level))
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ExportError(f"mlflow is not installed; {INSTALL_HINT}") from None
    if log_level is not None:
        logging.getLogger("mlflow").setLevel(log_level)
    return mlflow, MlflowClient


def export_run(
    run_dir: Path, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, log_level: int | None = None
) -> Exported:
    """Export RUN_DIR once; RunDirError for an unreadable run directory, ExportError for MLflow trouble."""
    if (Path(run_dir) / CONFIG_JSON).exists() or Path(run_dir).name.endswith(PARTIAL_SUFFIX):
        raise ExportError(
            f"{run_dir}: an interrupted run, not a finished one; finish it with job run --resume {run_dir}, "
            "then export the folder it is renamed to"
        )
    run = read_run(run_dir)
    mlflow, client_class = _import_mlflow(log_level)
    uri = tracking_uri or mlflow.get_tracking_uri()
    try:
        client = _Bounded(client_class(tracking_uri=uri), CALL_DEADLINE_S)
        return _export(client, Path(run_dir), run, uri, experiment)
    except _Stalled:
        raise ExportError(
            f"the MLflow tracking server at {shown_uri(uri)} gave no useful answer within {CALL_DEADLINE_S:g} s; "
            "check the server, then export again (an interrupted export is redone)"
        ) from None
    except ExportError:
        raise
    except Exception as exc:  # MlflowException, requests' errors, a bad store URI: all one line naming the URI
        raise ExportError(_failure(shown_uri(uri), exc)) from None


class _Stalled(BaseException):  # not an Exception: MLflow's own handlers must not swallow it
    pass


class _Bounded:
    """The client, each call bounded in wall time: a read timeout restarts with every byte a server trickles,
    so only a deadline on the whole call stops one that never finishes. In the main thread (SIGALRM); elsewhere
    the client as it is."""

    def __init__(self, client: Any, seconds: float):
        self._client, self._seconds = client, seconds

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method) or name in UNBOUNDED or threading.current_thread() is not threading.main_thread():
            return method

        def bounded(*args: Any, **kwargs: Any) -> Any:
            def stalled(signum: int, frame: Any) -> None:
                raise _Stalled()

            previous = signal.signal(signal.SIGALRM, stalled)
            outer, _ = signal.setitimer(signal.ITIMER_REAL, self._seconds)
            started = time.monotonic()
            try:
                return method(*args, **kwargs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                if outer:  # someone else's timer: put it back, less the time this call took
                    signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))

        return bounded


def _failure(uri: str, exc: Exception) -> str:
    """One line naming the URI; a server that does not answer is said plainly, not as urllib3's retry report."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if any(sign in text for sign in UNREACHABLE):
        return f"the MLflow tracking server at {uri} does not answer; start it, or check --tracking-uri"
    return f"cannot export to MLflow at {uri}: {text if len(text) <= 300 else text[:299] + '…'}"


def _export(client, run_dir: Path, run: RunResult, uri: str, experiment: str) -> Exported:
    experiment_id = _experiment_id(client, experiment)
    parents = _parents(client, experiment_id, run.run_id)
    done = [p for p in parents if p.data.tags.get(COMPLETE_TAG) == "true"]
    shown = shown_uri(uri)
    if done:
        return Exported(run.run_id, done[0].info.run_id, 0, True, [], shown, experiment)
    replaced = []
    for partial in parents:  # an interrupted export: remove it with its children, then redo it
        _delete_with_children(client, experiment_id, partial.info.run_id)
        replaced.append(partial.info.run_id)
    parent_id = _log_parent(client, experiment_id, run_dir, run)
    count = 0
    for model in run.models:
        for training in model.trainings:
            _log_training(client, _Parent(experiment_id, parent_id), run_dir, run, model, training)
            count += 1
    _terminate(client, parent_id, "FAILED" if run.failed_models else "FINISHED", _ms(run.finished))
    client.set_tag(parent_id, COMPLETE_TAG, "true")  # last: only now is the export whole
    return Exported(run.run_id, parent_id, count, False, replaced, shown, experiment)


def _terminate(client, run_id: str, status: str, end_time: int) -> None:
    """set_terminated, without the links MLflow 3 prints to stdout for an HTTP server (stdout is the summary line)."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status, end_time=end_time)


def _experiment_id(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name)
    if found.lifecycle_stage != "active":
        raise ExportError(f"MLflow experiment '{name}' is deleted; restore it or pass --experiment with another name")
    return found.experiment_id


def _search(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _parents(client, experiment_id: str, run_id: str) -> list:
    """Active runs tagged with this job run id that are not nested: earlier exports of this run."""
    tagged = _search(client, experiment_id, f"tags.`{RUN_ID_TAG}` = '{_quoted(run_id)}'")
    return [r for r in tagged if PARENT_TAG not in r.data.tags]


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _delete_with_children(client, experiment_id: str, parent_id: str) -> None:
    for child in _search(client, experiment_id, f"tags.`{PARENT_TAG}` = '{parent_id}'"):
        client.delete_run(child.info.run_id)
    client.delete_run(parent_id)


def _ms(iso: str | None) -> int:
    try:
        return int(datetime.fromisoformat(iso or "").timestamp() * 1000)
    except ValueError:
        return int(time.time() * 1000)


def _tag(value: object) -> str:
    return str(value)[:MAX_TAG_VALUE]


def _param(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:MAX_PARAM_VALUE]


def _parent_tags(run: RunResult) -> dict[str, str]:
    tags = {
        RUN_ID_TAG: run.run_id,
        ROLE_TAG: "job",
        "job.data_sha256": run.data.sha256,
        "job.data_source": run.data.source,
        "job.device": run.environment.device.description,
        "job.backend": run.environment.backend,
        "job.precision_policy": run.precision.policy,
        "job.chosen_model": run.chosen_model or "none",
        "job.chosen_reason": run.chosen_reason,
        "job.choice_rule": run.choice.rule,
        "job.repeats": str(run.repeats),
        "job.failed_models": ", ".join(run.failed_models),
        "job.command": run.command,
        "mlflow.note.content": f"`{run.command}`\n\n{run.chosen_reason}",
    }
    return {k: _tag(v) for k, v in tags.items()}


def _log_parent(client, experiment_id: str, run_dir: Path, run: RunResult) -> str:
    parent = client.create_run(experiment_id, start_time=_ms(run.started), tags=_parent_tags(run), run_name=run.run_id)
    parent_id = parent.info.run_id
    _log(client, parent_id, parent_params(run), parent_metrics(run, int(time.time() * 1000)))
    for name in (REPORT_HTML, RUN_JSON):
        if (run_dir / name).is_file():
            client.log_artifact(parent_id, str(run_dir / name))
    return parent_id


def parent_params(run: RunResult) -> dict[str, str]:
    """The parent run's params: every `job run` option that was set, the schema, determinism, the margin."""
    params = {f"config.{k}": _param(v) for k, v in asdict(run.config).items() if v is not None}
    params |= {"schema_version": str(run.schema_version), "deterministic": str(run.deterministic)}
    if run.choice.margin_pp is not None:  # the choice's margin, resolved (--margin, the family file, the default)
        params["choice.margin_pp"] = _param(run.choice.margin_pp)
    return params


def parent_metrics(run: RunResult, timestamp: int) -> list:
    """The parent run's metrics: the run's wall time and the chosen model's mean accuracies."""
    metrics = [_metric("total_seconds", run.total_seconds, timestamp, 0)]
    chosen = run.model(run.chosen_model)
    if chosen is not None:
        metrics += [
            _metric(f"chosen_{k}", getattr(chosen, k).mean, timestamp, 0) for k in ("val_accuracy", "test_accuracy")
        ]
    return [m for m in metrics if m is not None]


def _metric(key: str, value: float | int | None, timestamp: int, step: int):
    from mlflow.entities import Metric

    return None if value is None else Metric(key, float(value), timestamp, step)


def _log(client, run_id: str, params: dict[str, str], metrics: list) -> None:
    """log_batch within MLflow's per-call limits."""
    from mlflow.entities import Param

    for chunk in _chunks([Param(k, v) for k, v in params.items()], MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(metrics, MAX_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)


def training_params(model: ModelResult, training: TrainingMetrics) -> dict[str, str]:
    """A nested run's params: the model's settings and this training's seed and split (and pack, if packed)."""
    params = {
        "model": model.name,
        "model_key": model.key,
        "hidden": ",".join(map(str, model.hidden)),
        "activation": model.activation,
        "initializer": model.initializer,
        "optimizer": model.optimizer,
        "learning_rate": repr(model.learning_rate),
        "optimizer_args": model.optimizer_args,
        "dropout": repr(model.dropout),
        "batch_size": str(model.batch_size),
        "epochs": str(training.epochs_planned),
        "patience": str(model.patience),
        "monitor": model.monitor,
        "seed": str(training.seed),
        "split": str(training.split),
        "params": str(model.params),
    }
    if training.pack is not None:  # trained in a pack (--pack): its times are the pack's, shared out
        params |= {"pack": training.pack, "pack_size": str(training.pack_size)}
    return {k: _param(v) for k, v in params.items()}


def training_metrics(training: TrainingMetrics, timestamp: int) -> list:
    """Per-epoch metrics (step = epoch, 1-based; non-finite epochs skipped), then the final numbers at step 0.

    An epoch's metrics are stamped when it ended (the start plus the epoch times so far); the final ones at the end.
    """
    ends = [timestamp + int(1000 * sum(training.epoch_seconds[:n])) for n in range(1, training.epochs_run + 1)]
    metrics = []
    for key, values in zip(HISTORY_KEYS, training.history.lists(), strict=True):
        metrics += [_metric(key, v, ends[e - 1], e) for e, v in enumerate(values, 1)]
    metrics += [_metric("epoch_seconds", v, ends[e - 1], e) for e, v in enumerate(training.epoch_seconds, 1)]
    timestamp = ends[-1] if ends else timestamp
    metrics += [_metric(name, getattr(training, field), timestamp, 0) for name, field in FINAL_KEYS.items()]
    if training.test_accuracy_ci is not None:
        metrics += [_metric("test_accuracy_ci_low", training.test_accuracy_ci.low, timestamp, 0)]
        metrics += [_metric("test_accuracy_ci_high", training.test_accuracy_ci.high, timestamp, 0)]
    if training.calibration is not None:
        metrics += [_metric(k, getattr(training.calibration, k), timestamp, 0) for k in ("ece", "brier", "nll")]
    return [m for m in metrics if m is not None]


def model_files(run_dir: Path, model: ModelResult, training: TrainingMetrics) -> list[Path]:
    """The saved seed's model (split 1) is models/<slug>.keras, any other training's
    models/<slug>-seed<n>[-split<k>].keras; if present."""
    if _is_saved(model, training):
        path = model_path(run_dir, model.slug)
    else:
        path = seed_model_path(run_dir, model.slug, training.seed, training.split)
    return [path] if path.is_file() else []


class _Parent(NamedTuple):
    experiment_id: str
    run_id: str


def _log_training(client, parent: _Parent, run_dir: Path, run: RunResult, model, training) -> str:
    experiment_id, parent_id = parent
    placement = training.placement
    start = int(placement.started * 1000) if placement else _ms(run.started)
    tags = {
        PARENT_TAG: parent_id,
        RUN_ID_TAG: run.run_id,
        ROLE_TAG: "training",
        "job.model": model.name,
        "job.status": training.status,
        "job.saved_model": str(_is_saved(model, training)).lower(),
    }
    if training.failure is not None:
        tags["job.failure"] = f"epoch {training.failure.epoch}: {training.failure.reason}"
    tags = {k: _tag(v) for k, v in tags.items()}
    name = training_label(model.name, training.seed, training.split)
    nested = client.create_run(experiment_id, start_time=start, tags=tags, run_name=name)
    run_id = nested.info.run_id
    _log(client, run_id, training_params(model, training), training_metrics(training, start))
    for path in model_files(run_dir, model, training):
        client.log_artifact(run_id, str(path), artifact_path="models")
    end = int(placement.finished * 1000) if placement else _ms(run.finished)
    _terminate(client, run_id, "FINISHED" if training.status == "ok" else "FAILED", end)
    return run_id


def _is_saved(model: ModelResult, training: TrainingMetrics) -> bool:
    return training.seed == model.saved_seed and training.split == 1


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
