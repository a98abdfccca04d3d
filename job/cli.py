"""The `job` command: a thin click layer over the library. Options map onto RunConfig."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from job.config import RunConfig
from job.errors import JobError
from job.options import EXIT_BAD_INPUT, BadInput, data_options, run_options

EXIT_MODEL_FAILED = 3  # the run finished, but at least one model diverged
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(BaseException):
    """SIGTERM (docker stop, a scheduler's preemption) raised in the main thread."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("absl", "tensorflow", "jax", "matplotlib", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)  # retracing notes etc. are not the user's problem


class JobGroup(click.Group):
    """Every usage error (a bad option value, an unknown option) is one line on stderr and exit 2."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "job"
            click.echo(f"error: {exc.format_message()} (see {command} --help)", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(EXIT_SIGINT)


@click.group(cls=JobGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Train a family of Keras MLPs, compare them honestly, and write a report."""
    _setup_logging(verbose)


@main.command()
@run_options
@click.option(
    "--resume",
    "resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue an interrupted run from its <run-id>.partial folder.",
)
def run(resume: Path | None, **options) -> None:
    """Train the models and write the run directory and report."""
    config = RunConfig(**options)
    try:
        config.check()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    operational = _resume_overrides(resume, options) if resume is not None else {}
    if config.cpus_per_task:  # before any numeric library starts its thread pools
        from job.executors.base import thread_env

        os.environ.update(thread_env(config.cpus_per_task))
    from job import pipeline  # imports no Keras: `job.plan.resolve` picks the backend first

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result, run_dir = pipeline.run(config, resume=resume, overrides=operational)
    except JobError as exc:
        raise BadInput.of(exc) from None
    except KeyboardInterrupt as exc:
        click.echo(f"interrupted (SIGINT); {_after_stop(exc)}", err=True)
        _exit_stopped(EXIT_SIGINT)
    except Terminated as exc:
        click.echo(f"terminated (SIGTERM); {_after_stop(exc)}", err=True)
        _exit_stopped(EXIT_SIGTERM)
    click.echo(str(run_dir / "report.html"))
    if result.failed_models:
        click.echo(f"error: {', '.join(result.failed_models)} failed; see run.json and the report", err=True)
        sys.exit(EXIT_MODEL_FAILED)


def _exit_stopped(code: int) -> None:
    """Exit after a stop. Where Ray was started and not yet shut down, a stop that landed inside ray.init leaves
    its C++ core worker half made, and the interpreter's exit (Ray's atexit shutdown, its static destructors) can
    abort (exit 134) after the job's line: so leave at once. What the job wrote is already closed, and the Ray
    processes it started share this process's fate (Ray starts them to die with it)."""
    if not getattr(sys.modules.get("job.executors.ray"), "ray_unsettled", False):
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _after_stop(exc: BaseException) -> str:
    if getattr(exc, "resumable", True):
        return "the partial run can be resumed with --resume"
    return "stopped before the run folder was made; nothing was written"


def _resume_overrides(resume: Path, options: dict) -> dict:
    """With --resume, options that define the experiment are refused; operational ones are applied."""
    ctx = click.get_current_context()
    # Only what was typed: an environment default (JOB_OUT in the image, RAY_ADDRESS) is not a request.
    given = [n for n in options if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE]
    fixed = [n for n in given if n not in RunConfig.operational_fields()]
    if fixed:
        flags = ", ".join(RunConfig.flag_as_typed(n, options[n]) for n in fixed)
        raise BadInput(
            f"--resume {resume}: {flags} would change the experiment of a run already under way; "
            "drop it (the run keeps its own settings) or start a new run"
        )
    return {n: options[n] for n in given}


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the report here instead of RUN_DIR/report.html (for a read-only run directory).",
)
def report(run_dir: Path, output: Path | None) -> None:
    """Render RUN_DIR/report.html from the run directory alone (no TensorFlow)."""
    from job.report.render import write_report

    try:
        path = write_report(run_dir, output)
    except JobError as exc:
        raise BadInput.of(exc) from None
    click.echo(str(path))


@main.command("check-data")
@click.argument("path", required=False)
@data_options
def check_data(path: str | None, image_shape: tuple[int, int] | None, label_column: str, allow_pickle: bool) -> None:
    """Validate PATH (default: the embedded digits) and print a summary."""
    from job.data.load import load_dataset

    try:
        ds = load_dataset(path, image_shape=image_shape, allow_pickle=allow_pickle, label_column=label_column)
    except JobError as exc:
        raise BadInput.of(exc) from None
    s = ds.summary()
    click.echo(f"source:  {s['source']} ({s['kind']})")
    click.echo(f"sha256:  {s['sha256']}")
    click.echo(f"rows:    {s['rows']}")
    click.echo(f"classes: {s['classes']}  image {s['image_shape'][0]}x{s['image_shape'][1]}")
    click.echo("per label: " + ", ".join(f"{k}: {v}" for k, v in s["label_counts"].items()))
    click.echo(f"pixels:  {s['pixel_min']}..{s['pixel_max']} (valid range 0..255)")
    if s["ignored_columns"]:
        click.echo("ignored columns: " + ", ".join(s["ignored_columns"]))


@main.command()
@click.option("--spec-file", default=None, help="A TOML file of model variants; default: the seed's four models.")
def models(spec_file: str | None) -> None:
    """List the family's models (`--models` takes their positions or names, `--pack SLUG=N` their slugs)."""
    from job.family import load_family

    try:
        specs = load_family(spec_file).specs
    except JobError as exc:
        raise BadInput.of(exc) from None
    width = max(9, *(len(s.name) + 2 for s in specs))
    slugs = max(9, *(len(s.slug) + 2 for s in specs))  # --pack SLUG=N names a model by its slug
    counts = max(11, *(len(f"{s.param_count():,}") + 2 for s in specs))  # 100 M and more stay in their column
    click.echo(
        f"{'key':<4}{'name':<{width}}{'slug':<{slugs}}{'hidden units':<42}{'epochs':>7}{'params':>{counts}}  settings"
    )
    for s in specs:
        hidden = "[" + ", ".join(map(str, s.hidden)) + "]"
        settings = f"{s.activation}/{s.initializer}, {s.optimizer} lr {s.learning_rate:g}, batch {s.batch_size}"
        settings += f", dropout {s.dropout:g}" if s.dropout else ""
        row = f"{s.key:<4}{s.name:<{width}}{s.slug:<{slugs}}{hidden:<42}{s.epochs:>7}{s.param_count():>{counts},}"
        click.echo(f"{row}  {settings}")


@main.group()
def export() -> None:
    """Export a finished run directory to an experiment tracker."""


@export.command("mlflow")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's own)."
)
@click.option("--experiment", default="keras-batch-job", show_default=True, help="MLflow experiment; made if missing.")
def export_mlflow(run_dir: Path, tracking_uri: str | None, experiment: str) -> None:
    """Log RUN_DIR to MLflow: a parent run, a nested run per training; a second export adds nothing."""
    from job.tracking.mlflow import export_run

    if not experiment.strip():
        raise BadInput("--experiment is empty; give a name or leave the option out")
    quiet = None if logging.getLogger().isEnabledFor(logging.DEBUG) else logging.ERROR
    if quiet:  # MLflow's, alembic's and urllib3's notes (retries, migrations) are not the user's problem
        for noisy in ("alembic", "urllib3", "botocore"):
            logging.getLogger(noisy).setLevel(quiet)
    try:
        exported = export_run(run_dir, tracking_uri, experiment, quiet)
    except JobError as exc:
        raise BadInput.of(exc) from None
    for parent in exported.replaced:
        click.echo(f"deleted an interrupted export of {exported.run_id} (parent run {parent}) and redid it", err=True)
    click.echo(exported.line())
