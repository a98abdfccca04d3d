"""The one owner of an interrupted run's state: every file in `<run-id>.partial/` that a resume reads.

    config.json                       the run's saved plan (`SavedConfig`): config, run id, hashes, start, policy
    split.csv                         the split (also a final artifact)
    split-<k>.csv                     split k's rows, from split 2 on (--splits)
    progress/<slug>-seed<n>[-split<k>]/  one folder per (model, seed, split) training, a `Checkpoint`:
        epochs.jsonl                  one EpochRecord per finished epoch, appended as it ends
        backup/                       the last finished epoch's weights and optimizer state, and a
                                      training_metadata.json that names them (written last)
        best.weights.h5               the weights of the best validation epoch so far
        done.json, *_proba.npy        written once the training is finished (done.json last)
    progress/<slug>-pack<i>/          one folder per pack of trainings (--pack), a `PackCheckpoint`; its
                                      members' done.json are still in their own training folders

The training unit gets a `Checkpoint` and knows nothing else of this layout; a remote worker
can hand it a worker-local folder instead.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from job.config import RunConfig
from job.errors import JobError
from job.result import EpochRecord, TrainingResult
from job.rundir.atomic import atomic_write_bytes, atomic_write_text, writing
from job.rundir.layout import RUN_ID, split_csv, split_suffix
from job.rundir.reader import read_split_csv
from job.rundir.typed_json import parse_as, to_jsonable
from job.rundir.writer import write_split_csv

log = logging.getLogger(__name__)

CONFIG_JSON = "config.json"
PROGRESS_DIR = "progress"
T = TypeVar("T")
LOCK_FILE = ".lock"  # flock'd for the life of the process that runs or resumes the run


class ResumeError(JobError):
    """Resume state that cannot be used: one line naming the file, exit 2."""


@dataclass(frozen=True)
class TrainingKey:
    """One training of a run: a model (by slug), a seed and a development split (1 unless --splits)."""

    slug: str
    seed: int
    split: int = 1

    @property
    def folder(self) -> str:
        """`<slug>-seed<n>`, and `-split<k>` after it from split 2 on (split 1's name is the one of old runs)."""
        return f"{self.slug}-seed{self.seed}{split_suffix(self.split)}"


def _epoch_log(
    path: Path,
    fix: str,
    parse: Callable[[int, str], T],
    dump: Callable[[int, T], str],
    backed_up: Callable[[], int],
) -> list[T]:
    """The entries of an epoch log, one a line, that the last backup covers (`backed_up()` epochs). A line written
    after that backup (a kill between the two) and a torn last line (a kill mid-write) are dropped and the file
    rewritten, so that epoch is redone; any other damaged line is a ResumeError that ends with `fix`."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries: list[T] = []
    for i, line in enumerate(lines):
        try:
            entries.append(parse(i, line))
        except (ValueError, KeyError, TypeError):
            if i == len(lines) - 1:
                break  # torn by a kill mid-write: that epoch is redone
            raise ResumeError(f"{path}: line {i + 1} is damaged; {fix}, then resume") from None
    done = backed_up()
    if len(entries) < done:
        raise ResumeError(f"{path}: {len(entries)} epochs logged but the backup is of epoch {done}; {fix}, then resume")
    if len(entries) != done or len(entries) != len(lines):
        entries = entries[:done]
        atomic_write_text(path, "".join(dump(epoch, e) + "\n" for epoch, e in enumerate(entries, start=1)))
    return entries


@dataclass(frozen=True)
class Checkpoint:
    """A training's own folder: its epoch log, its last epoch's backup and its best weights. `on_epoch`, if set, hears
    of each epoch as it is logged (TensorBoard); the training unit never knows who listens."""

    dir: Path
    on_epoch: Callable[[EpochRecord], None] | None = field(default=None, compare=False)

    @property
    def epochs_path(self) -> Path:
        return self.dir / "epochs.jsonl"

    @property
    def backup_dir(self) -> Path:
        return self.dir / "backup"

    @property
    def best_weights_path(self) -> Path:
        return self.dir / "best.weights.h5"

    def backup_weights_path(self, epochs_done: int) -> Path:
        """Each epoch's backup is a new file, so the one the metadata names is never half-replaced."""
        return self.backup_dir / f"epoch-{epochs_done}.weights.h5"

    def backup(self) -> tuple[int, Path | None]:
        """(epochs the last complete backup covers, its weights file); (0, None) before the first."""
        meta = self.backup_dir / "training_metadata.json"
        if not meta.exists():
            return 0, None
        try:
            raw = json.loads(meta.read_text(encoding="utf-8"))
            done, name = raw["epoch"], raw["weights"]
            if not isinstance(done, int) or isinstance(done, bool) or done < 0 or not isinstance(name, str):
                raise ValueError(raw)
        except (ValueError, KeyError, TypeError, OSError):
            raise ResumeError(
                f"{meta}: damaged; delete {self.dir} to retrain that model from its start, then resume"
            ) from None
        weights = self.backup_dir / Path(name).name
        if done and not weights.is_file():
            raise ResumeError(f"{weights}: missing; delete {self.dir} to retrain that model from its start")
        return done, weights if done else None

    def backup_seeds(self) -> list[list[int]] | None:
        """The dropout layers' random-stream states the last backup saved, in the model's order; None before the
        first backup and for a backup written before they were kept."""
        meta = self.backup_dir / "training_metadata.json"
        if not meta.exists():
            return None
        try:
            seeds = json.loads(meta.read_text(encoding="utf-8")).get("seeds")
            ok = seeds is None or (
                isinstance(seeds, list) and all(isinstance(v, list) and all(type(x) is int for x in v) for v in seeds)
            )
            if not ok:
                raise ValueError(seeds)
        except (ValueError, AttributeError, OSError):
            raise ResumeError(
                f"{meta}: damaged; delete {self.dir} to retrain that model from its start, then resume"
            ) from None
        return seeds

    def commit_backup(self, epochs_done: int, seeds: list[list[int]] | None = None) -> None:
        """Point the metadata at the weights just written (atomically), with the dropout layers' random-stream
        states (`seeds`, which a Keras weights file leaves out), then drop the older files."""
        current = self.backup_weights_path(epochs_done)
        meta: dict = {"epoch": epochs_done, "weights": current.name}
        if seeds:
            meta["seeds"] = seeds
        atomic_write_text(self.backup_dir / "training_metadata.json", json.dumps(meta))
        for old in self.backup_dir.glob("epoch-*.weights.h5"):
            if old != current:
                old.unlink(missing_ok=True)

    def append(self, record: EpochRecord) -> None:
        with writing(self.epochs_path), self.epochs_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(to_jsonable(record)) + "\n")
            fh.flush()
        if self.on_epoch is not None:
            self.on_epoch(record)

    def prior_records(self) -> list[EpochRecord]:
        """Epoch records the last backup covers. A record written after the last backup (a kill between
        the two) and a torn last line (a kill mid-write) are dropped, so that epoch is redone."""
        return _epoch_log(
            self.epochs_path,
            f"delete {self.dir} to retrain that model from its start",
            lambda i, line: parse_as(EpochRecord, json.loads(line)),
            lambda epoch, record: json.dumps(to_jsonable(record)),
            lambda: self.backup()[0],
        )


@dataclass(frozen=True)
class PackCheckpoint:
    """A pack's own folder (`progress/<slug>-pack<i>/`): it checkpoints as one unit.

        epochs.jsonl            one line per finished epoch: every member's EpochRecord, null after it ended
        backup/                 the whole packed model and optimizer after the last finished epoch (as a Checkpoint's)
        best-<k>.npz            member k's dense weights at its best validation epoch so far

    `listeners[k]`, if set, hears member k's records as they are logged (TensorBoard)."""

    dir: Path
    listeners: tuple[Callable[[EpochRecord], None] | None, ...] = field(default=(), compare=False)

    @property
    def unit(self) -> Checkpoint:
        """The backup half, which is a single training's."""
        return Checkpoint(self.dir)

    @property
    def epochs_path(self) -> Path:
        return self.dir / "epochs.jsonl"

    def best_path(self, member: int) -> Path:
        return self.dir / f"best-{member}.npz"

    def save_best(self, member: int, weights: list[np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, *weights)
        atomic_write_bytes(self.best_path(member), buffer.getvalue())  # a kill mid-write leaves the last best whole

    def best(self, member: int) -> list[np.ndarray] | None:
        path = self.best_path(member)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                return [saved[f"arr_{i}"] for i in range(len(saved.files))]
        except (ValueError, OSError, KeyError) as exc:
            raise ResumeError(
                f"{path}: damaged ({type(exc).__name__}); delete {self.dir} to retrain that pack from its start"
            ) from None

    def append(self, epoch: int, line: list[EpochRecord | None]) -> None:
        with writing(self.epochs_path), self.epochs_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"epoch": epoch, "members": [to_jsonable(r) for r in line]}) + "\n")
            fh.flush()
        for record, listener in zip(line, self.listeners, strict=False):
            if record is not None and listener is not None:
                listener(record)

    def prior(self, members: int) -> list[list[EpochRecord | None]]:
        """The `members` records of every epoch the last backup covers; later lines (a kill between a line and its
        backup) and a torn last line are dropped, so that epoch is redone."""

        def parse(i: int, line: str) -> list[EpochRecord | None]:
            raw = json.loads(line)
            if raw["epoch"] != i + 1 or not isinstance(raw["members"], list) or len(raw["members"]) != members:
                raise ValueError(raw)
            return [None if r is None else parse_as(EpochRecord, r) for r in raw["members"]]

        return _epoch_log(
            self.epochs_path,
            f"delete {self.dir} to retrain that pack from its start",
            parse,
            lambda epoch, line: json.dumps({"epoch": epoch, "members": [to_jsonable(r) for r in line]}),
            lambda: self.unit.backup()[0],
        )


@dataclass(frozen=True)
class SavedConfig:
    run_id: str
    config: RunConfig
    sha256: str  # the data's
    started: str
    family_sha256: str = ""  # the family file's (copied into the run folder as family.toml)
    policy: str = ""  # the precision policy --precision resolved to; a resume keeps it, wherever it runs


def lock(work: Path) -> int:
    """An exclusive flock on `work/.lock`, held until this process exits (even by SIGKILL: the kernel
    drops it). The holder's pid and host go in the file, so a second process can say who has it."""
    try:
        fd = os.open(work / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ResumeError(
            f"{work}: cannot open its lock file ({exc.strerror}); the run folder must be writable to run or resume"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        raise ResumeError(f"{work}: in use by {holder}; wait for it to finish or stop it, then resume") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}".encode(), 0)
    return fd


class RunState:
    """One `.partial` run folder, locked to this process: what is finished in it, and its lock. The run's
    settings are in `job.plan.RunPlan`, read back from the folder's saved config on resume."""

    def __init__(self, work: Path, lock_fd: int):
        self.work = work
        self.lock_fd = lock_fd  # kept open: closing it would release the lock

    @classmethod
    def create(cls, work: Path, saved: SavedConfig) -> RunState:
        fd = lock(work)
        (work / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_text(work / CONFIG_JSON, json.dumps(to_jsonable(saved), indent=2))
        return cls(work, fd)

    @classmethod
    def open(cls, work: Path) -> tuple[RunState, SavedConfig]:
        """The interrupted run in `work`, locked, and the config it saved when it started."""
        path = work / CONFIG_JSON
        if not path.exists():
            if (work / "run.json").exists():
                raise ResumeError(f"--resume {work}: this run is already complete; start a new one with job run")
            raise ResumeError(f"--resume {work}: not an interrupted run (no {CONFIG_JSON}); pass the .partial folder")
        if work.resolve() == Path.cwd().resolve():
            raise ResumeError(
                f"--resume {work}: that is the current folder, which the finished run is renamed from; "
                "cd to its parent and pass the folder's name"
            )
        fd = lock(work)
        try:
            saved = parse_as(SavedConfig, json.loads(path.read_text(encoding="utf-8")))
            if not RUN_ID.fullmatch(saved.run_id):
                raise ValueError(f"run_id {saved.run_id!r} is not a run id")
        except (ValueError, OSError) as exc:
            os.close(fd)
            raise ResumeError(f"{path}: damaged ({exc}); this run cannot be resumed, start a new one") from None
        final = work.parent / saved.run_id
        if final.exists():
            os.close(fd)
            raise ResumeError(
                f"--resume {work}: {final} already exists, so the finished run could not take its name; "
                "move that folder away, then resume"
            )
        (work / PROGRESS_DIR).mkdir(exist_ok=True)
        return cls(work, fd), saved

    def save_split(self, train: np.ndarray, val: np.ndarray, test: np.ndarray, split: int = 1) -> None:
        write_split_csv(self.work / split_csv(split), train, val, test)

    def has_split(self, split: int = 1) -> bool:
        return (self.work / split_csv(split)).exists()

    def load_split(self, n_rows: int, split: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The saved split, checked against the data: whole row numbers in range, each row in one part."""
        path = self.work / split_csv(split)
        try:
            parts = read_split_csv(path)
            rows = np.concatenate(parts)
            if rows.dtype.kind not in "iu" or rows.size == 0 or rows.min() < 0 or rows.max() >= n_rows:
                raise ValueError("row numbers out of range")
            if np.unique(rows).size != rows.size or any(p.size == 0 for p in parts):
                raise ValueError("a row in two parts, or an empty part")
            return parts
        except Exception as exc:  # missing, truncated or edited: pandas raises several kinds
            raise ResumeError(f"{path}: unusable ({type(exc).__name__}: {exc}); delete it and resume") from None

    def checkpoint(self, key: TrainingKey, listener: Callable[[EpochRecord], None] | None = None) -> Checkpoint:
        """The training's own folder; `listener` hears each epoch as it is logged (TensorBoard)."""
        folder = self.work / PROGRESS_DIR / key.folder
        folder.mkdir(exist_ok=True)
        return Checkpoint(folder, listener)

    def pack_checkpoint(
        self, name: str, listeners: tuple[Callable[[EpochRecord], None] | None, ...] = ()
    ) -> PackCheckpoint:
        """A pack's own folder, `progress/<name>/`; `listeners` hear each member's epochs (TensorBoard)."""
        folder = self.work / PROGRESS_DIR / name
        folder.mkdir(exist_ok=True)
        return PackCheckpoint(folder, listeners)

    def _done_path(self, key: TrainingKey) -> Path:
        return self.work / PROGRESS_DIR / key.folder / "done.json"

    def is_done(self, key: TrainingKey) -> bool:
        return self._done_path(key).exists()

    def mark_done(self, key: TrainingKey, result: TrainingResult) -> None:
        """Probabilities first, the done marker last: a kill in between retrains, never half-loads."""
        folder = self.checkpoint(key).dir
        for part in ("val_proba", "test_proba"):
            if getattr(result, part) is not None:
                with writing(folder / f"{part}.npy"):
                    np.save(folder / f"{part}.npy", getattr(result, part))
        atomic_write_text(self._done_path(key), json.dumps(to_jsonable(result.summary())))

    def load_done(self, key: TrainingKey) -> TrainingResult:
        path = self._done_path(key)
        try:
            result = parse_as(TrainingResult, json.loads(path.read_text(encoding="utf-8")))
            if result.best_epoch is not None and result.failure is None:
                result.val_proba = np.load(path.parent / "val_proba.npy", allow_pickle=False)
                result.test_proba = np.load(path.parent / "test_proba.npy", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ResumeError(
                f"{path.parent}: finished-training state is damaged ({type(exc).__name__}); delete that folder "
                "to retrain it, then resume"
            ) from None
        return result

    def cleanup(self, final: Path) -> None:
        """After the final rename: the resume state goes; the run directory stays. The lock goes last."""
        shutil.rmtree(final / PROGRESS_DIR, ignore_errors=True)
        (final / CONFIG_JSON).unlink(missing_ok=True)
        (final / LOCK_FILE).unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        """Give up the lock (process exit does the same); safe to call twice."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1
