"""The `job` command: a thin click layer over the library. Options map onto RunConfig."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from job.config import RunConfig
from job.environment import BACKENDS, PRECISIONS

EXIT_BAD_INPUT = 2  # bad data, bad options, unwritable output: fix the input, rerun
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


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Train a family of Keras MLPs, compare them honestly, and write a report."""
    _setup_logging(verbose)


@main.command()
@click.option(
    "--data",
    default=None,
    help="mnist5k (default, embedded), digits, mnist, fashion-mnist, or a CSV/Parquet/.npz file or idx directory.",
)
@click.option(
    "--models", default=None, help="Comma-separated model keys to run, e.g. 1,3 (default: all; see `job models`)."
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override every model's epochs (smoke runs).")
@click.option("--sample", type=click.IntRange(min=20), default=None, help="Train on a stratified subsample of N rows.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed for the split, the sample and Keras.")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="auto: mixed_float16 on GPUs with compute capability >= 7.0, else float32.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Keras backend (default: $KERAS_BACKEND, else tensorflow).",
)
@click.option("--out", default="reports", show_default=True, help="Parent folder; the run lands in OUT/<run-id>/.")
@click.option("--image-shape", default=None, help="HxW when the pixel count is not a square, e.g. 24x32.")
@click.option("--label-column", default="label", show_default=True, help="Name of the label column in CSV/Parquet.")
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Load a pickled DataFrame. Unpickling runs code from the file: only for files you trust.",
)
@click.option(
    "--steps-per-execution",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Training steps per compiled call; epoch metrics are unchanged.",
)
@click.option(
    "--deterministic/--no-deterministic",
    default=True,
    show_default=True,
    help="Enable op determinism (same seed, same numbers on CPU).",
)
@click.option(
    "--resume",
    "resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue an interrupted run from its <run-id>.partial folder.",
)
def run(resume: Path | None, **options) -> None:
    """Train the models and write the run directory and report."""
    from job.data import DataError
    from job.pipeline import RunError
    from job.specs import SpecError

    config = RunConfig(**options)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from job import pipeline

        result, run_dir = pipeline.run(config, resume=resume)
    except (DataError, RunError, SpecError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("interrupted (SIGINT); the partial run can be resumed with --resume", err=True)
        sys.exit(EXIT_SIGINT)
    except Terminated:
        click.echo("terminated (SIGTERM); the partial run can be resumed with --resume", err=True)
        sys.exit(EXIT_SIGTERM)
    click.echo(str(run_dir / "report.html"))
    if result.failed_models:
        click.echo(f"error: {', '.join(result.failed_models)} failed; see run.json and the report", err=True)
        sys.exit(EXIT_MODEL_FAILED)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Render RUN_DIR/report.html from the run directory alone (no TensorFlow)."""
    from job.report.render import ReportError, write_report

    try:
        path = write_report(run_dir)
    except ReportError as exc:
        _fail(str(exc))
    click.echo(str(path))


@main.command("check-data")
@click.argument("path", required=False)
@click.option("--image-shape", default=None, help="HxW when the pixel count is not a square.")
@click.option("--label-column", default="label", show_default=True, help="Name of the label column.")
@click.option("--allow-pickle", is_flag=True, help="Load a pickled DataFrame (runs code from the file).")
def check_data(path: str | None, image_shape: str | None, label_column: str, allow_pickle: bool) -> None:
    """Validate PATH (default: the embedded digits) and print a summary."""
    from job.data import DataError, load_dataset, parse_image_shape

    try:
        ds = load_dataset(
            path, image_shape=parse_image_shape(image_shape), allow_pickle=allow_pickle, label_column=label_column
        )
    except DataError as exc:
        _fail(str(exc))
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
def models() -> None:
    """List the model specs (`--models` takes their keys)."""
    from job.specs import SEED_SPECS

    click.echo(f"{'key':<4}{'name':<9}{'hidden units':<42}{'epochs':>7}{'params':>11}")
    for s in SEED_SPECS:
        hidden = ", ".join(map(str, s.hidden))
        click.echo(f"{s.key:<4}{s.name:<9}{'[' + hidden + ']':<42}{s.epochs:>7}{s.param_count():>11,}")
