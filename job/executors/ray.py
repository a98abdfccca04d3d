"""Fan out on Ray: every (model, seed, split) training a Ray task, on one node or a cluster, one run directory.

The data goes into the object store once; each task trains in a worker-local checkpoint folder and
returns its typed `TrainingResult` (records, probabilities, the model as bytes), so the driver writes
the run directory and no shared filesystem is needed. Results are handled as they finish (`ray.wait`),
so a driver killed mid-run resumes without redoing finished trainings. A task lost with its worker or
node is started again elsewhere, from its start, and the retry is recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from job.environment import DEFAULT_BACKEND
from job.errors import JobError
from job.executors.base import Runtime, runtime_here, thread_env, visible_device
from job.result import TrainingResult
from job.training.inputs import DevSplits, Done, Inputs, PackTask, Spare, TrainSettings, Unit, expected_cost

log = logging.getLogger(__name__)

CONNECT_DEADLINE_S = 30.0  # --ray-address: how long to wait for anything to answer there
MAX_ATTEMPTS = 3  # a training whose worker or node dies starts over elsewhere, at most this often


# True from the moment this process calls ray.init until a ray.shutdown returns: a stop in between may leave
# Ray's C++ core worker half made, and the CLI then leaves without the interpreter's exit (which can abort).
ray_unsettled = False


class RayError(JobError):
    """The cluster cannot run this job (unreachable, mismatched versions): one line, exit 2."""


@contextlib.contextmanager
def signals_through():
    """A signal handler that raises inside Ray's C++ wait (SIGTERM, Ctrl-C) reaches Python as a SystemError
    caused by the handler's exception: raise that exception instead, so the job's exit codes hold."""
    try:
        yield
    except SystemError as exc:
        if isinstance(exc.__cause__, BaseException) and not isinstance(exc.__cause__, Exception):
            raise exc.__cause__ from None
        raise


def versions_here(backend: str) -> dict[str, str | None]:
    """What must match between the driver and every worker for results to be comparable."""
    from job.environment import installed_version as v

    backend_dist = v(backend) if backend in ("tensorflow", "jax") else None
    return {"keras-batch-job": v("keras-batch-job"), "keras": v("keras"), backend: backend_dist}


def train_remote(task: Unit, splits: DevSplits, settings: TrainSettings) -> list[TrainingResult]:
    """A Ray task's body: train in a worker-local folder and give everything back by value; a pack is one task,
    and its members' results come back together."""
    import socket
    import time

    import ray

    from job.executors.local import SplitRows, train_pack_task
    from job.result import Placement
    from job.rundir.resume import Checkpoint, PackCheckpoint
    from job.training.loop import train
    from job.training.model import configure

    started = time.time()
    configure(settings.policy, settings.deterministic)
    with tempfile.TemporaryDirectory(prefix="job-training-") as tmp:
        inputs = Inputs(splits, settings, lambda key: Checkpoint(Path(tmp)), lambda pack: PackCheckpoint(Path(tmp)))
        arrays = SplitRows(inputs)  # the worker copies its split's rows out of the shared object
        if isinstance(task, PackTask):
            results = train_pack_task(task, inputs, arrays)
        else:
            rows = arrays(task.key.split)
            results = [train(task.spec, task.key.seed, rows, settings, Checkpoint(Path(tmp)), task.position)]
    node = f"{socket.gethostname()} ({ray.get_runtime_context().get_node_id()[:8]})"
    placement = Placement("ray", node, visible_device(), started, time.time())
    for result in results:
        result.placement = placement
    return results


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """These environment variables set for the processes started inside the block, then put back as they were."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def reachable(address: str, deadline: float | None = None) -> None:
    """Something answers at `address` (host:port, or ray://host:port) within `deadline` seconds; RayError
    naming the address otherwise. Ray's own connect retries for minutes and holds SIGTERM meanwhile."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # Ray's own forms ("auto", a bare host): Ray resolves them
    deadline = CONNECT_DEADLINE_S if deadline is None else deadline
    stop = time.monotonic() + deadline
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.1, stop - time.monotonic())).close()
            return
        except socket.gaierror as exc:
            raise RayError(f"--ray-address {address}: {_resolve_failure(host, exc)}") from None
        except OSError as exc:
            if time.monotonic() >= stop:
                raise RayError(
                    f"--ray-address {address}: nothing answers there within {deadline:g} s ({exc.strerror or exc}); "
                    "check the address and that Ray runs there"
                ) from None
            time.sleep(min(1.0, max(0.0, stop - time.monotonic())))


def _resolve_failure(host: str, exc: socket.gaierror) -> str:
    """Why a host name did not resolve, worded for the case: no such name, or no name server answering."""
    if exc.errno == socket.EAI_AGAIN:
        return f"the name server did not answer for {host} (a temporary failure); retry, or give the head's IP address"
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return "no such host; check the address"
    return f"cannot resolve {host} ({exc.strerror or exc}); check the address, or give the head's IP address"


@contextlib.contextmanager
def _answer_within(address: str, seconds: float, exit_now=os._exit):
    """Something answered at `address`, but it may not be Ray (a web server, a port that accepts and is
    silent): ray.init then retries in native code for minutes and no Python handler runs. A watchdog
    thread says so in one line and ends the process with exit 2; nothing is written before Ray starts."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            sys.stderr.write(
                f"error: --ray-address {address}: something listens there but Ray did not answer within {seconds:g} s; "
                "check that the address is the Ray head's (its GCS port, 6379 unless `ray start` was told otherwise)\n"
            )
            sys.stderr.flush()
            exit_now(2)

    threading.Thread(target=watch, name="ray-connect-deadline", daemon=True).start()
    try:
        yield
    finally:
        done.set()


@contextlib.contextmanager
def _sigterm_kept():
    """While Ray starts, the job's SIGTERM handler stays (ray.init would install one that exits 15): a stop
    then comes out as the job's own, exit 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    install = signal.signal

    def keep_sigterm(signum, handler):
        return signal.getsignal(signum) if signum == signal.SIGTERM else install(signum, handler)

    signal.signal = keep_sigterm
    try:
        yield
    finally:
        signal.signal = install


def _shutdown(ray) -> None:
    global ray_unsettled
    try:
        ray.shutdown()
        ray_unsettled = False
    except Exception as exc:  # the run's results are written; a Ray that does not stop cleanly is only noted
        log.warning("ray: shutdown failed (%s: %s)", type(exc).__name__, exc)


class RayExecutor:
    """Trainings as Ray tasks with `num_cpus`/`num_gpus`; the driver records each as it returns."""

    def __init__(self, address: str | None, cpus_per_task: int | None, gpus_per_task: float | None, backend: str):
        self.address = address
        self.cpus = cpus_per_task or 1
        self.gpus = gpus_per_task
        self.backend = backend or os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
        self._started_here = False
        self._stopping: threading.Thread | None = None
        self._probes: list = []
        self._slots = 1  # trainings the cluster runs at once, as start() found it
        self.connect_deadline = CONNECT_DEADLINE_S  # from the first connection attempt to a joined Ray

    def start(self, backend: str, precision: str, deterministic: bool, tasks: int) -> None:
        """Join or start Ray, check every joined node's versions, then probe the runtime where trainings will run.

        The probe is a task with a training's resources, on as many workers as will train at once: each
        imports Keras and its backend there, so the trainings find them warm, and the first to answer
        says which device the trainings get and so which precision `auto` means (a KubeRay head without
        a GPU does not decide for its GPU workers). The driver itself never imports Keras."""
        import ray

        self.backend = backend
        joined = bool(self.address) or ray.is_initialized()
        self._started_here = self._connect(ray)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = self._gpus(ray)
        self._check_fits(nodes, gpus)
        if joined:  # a Ray started here runs this interpreter's packages: nothing to compare
            self._check_versions(ray, nodes)  # before the probes: a mismatch stops here
        probe = ray.remote(runtime_here).options(num_cpus=self.cpus, num_gpus=gpus, max_retries=2)
        self._slots = self._slots_now(ray, gpus)
        self._probes = [probe.remote(backend, precision, deterministic) for _ in range(min(tasks, self._slots))]

    def runtime(self) -> Runtime:
        """The first probe to answer; one lost with its node leaves the others (each is also retried)."""
        import ray
        from ray.exceptions import RayError as RaysError

        pending, failure = list(self._probes), None
        with signals_through():
            while pending:
                (ref,), pending = ray.wait(pending, num_returns=1)
                try:
                    return ray.get(ref)
                except RaysError as exc:
                    failure = exc
        why = str(failure).strip().splitlines()[-1][:200] if str(failure).strip() else ""
        fix = "check the backend's install there"
        raise RayError(f"Keras cannot start on a Ray worker ({type(failure).__name__}: {why}); {fix}")

    def close(self, wait: bool = True) -> None:
        """Stop the Ray this run started (a joined cluster is only left). With `wait=False` it stops in the
        background, so the driver's evaluation and report overlap it; the next close() waits for it."""
        if self._started_here:
            import ray

            self._stopping = threading.Thread(target=_shutdown, args=(ray,), name="ray-shutdown")
            self._stopping.start()
            self._started_here = False
        if wait and self._stopping is not None:
            self._stopping.join()
            self._stopping = None

    def run(self, tasks: Iterable[Unit], inputs: Inputs, done: Done, spare: Spare | None = None) -> None:
        """Longest first, so the trainings that start last are short and no worker waits long on one; `spare`
        is called once, when fewer trainings are left than run at once (a slot has nothing left to do)."""
        tasks = sorted(tasks, key=lambda task: -expected_cost(task, inputs))  # stable: equal costs keep their order
        if tasks:
            import ray

            with signals_through():
                self._fan_out(ray, tasks, inputs, done, spare)

    def _slots_now(self, ray, gpus: float) -> int:
        """How many trainings of `gpus` each can run at once on the cluster now, at least one."""
        resources = ray.cluster_resources()
        slots = resources.get("CPU", 0) // self.cpus
        if gpus > 0:
            slots = min(slots, resources.get("GPU", 0) // gpus)
        return int(max(1, slots))

    def _connect(self, ray) -> bool:
        """Join the cluster at `address`, or start a local Ray for this run; True if started here.

        Workers on a joined cluster get the backend and thread caps through `runtime_env`. A local Ray's
        workers inherit this process's environment instead, so it is set around `ray.init`: Ray starts
        workers as it starts, and with a `runtime_env` it could not hand them the probes and trainings but
        would start new ones first (docs/benchmarks.md has the cost).
        ray.init installs its own SIGTERM handler (exit 15); the job's (exit 143, the resume hint) is put back."""
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if ray.is_initialized():
            return False
        global ray_unsettled
        ray_unsettled = True
        main = threading.current_thread() is threading.main_thread()
        on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.address:
                started = time.monotonic()
                reachable(self.address, self.connect_deadline)
                left = max(5.0, self.connect_deadline - (time.monotonic() - started))
                with _answer_within(self.address, left), _sigterm_kept(), signals_through():
                    ray.init(address=self.address, runtime_env={"env_vars": self._worker_env()}, **quiet)
                return True
            with environment(self._worker_env()), _sigterm_kept(), signals_through():  # "local": a new Ray
                ray.init(address="local", include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray"
            fix = "check the address and that Ray runs there"
            raise RayError(f"--ray-address {where}: cannot connect ({exc}); {fix}") from None
        finally:
            if main and on_sigterm is not None:
                signal.signal(signal.SIGTERM, on_sigterm)
        return True

    def _worker_env(self) -> dict[str, str]:
        env = {"KERAS_BACKEND": self.backend, "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
        env |= {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # GPU shares
        return env | thread_env(self.cpus)

    def _check_versions(self, ray, nodes: list[dict]) -> None:
        """Every node's job, Keras and backend versions must be the driver's, before any training starts."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        mine = versions_here(self.backend)
        probe = ray.remote(num_cpus=0)(versions_here)
        refs = {
            f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})": probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(self.backend)
            for n in nodes
        }
        try:
            with signals_through():  # inside the try: `except Exception` below would take a signal's SystemError
                found = ray.get(list(refs.values()), timeout=300)
        except Exception as exc:  # a worker without this package fails to import it; Ray wraps that
            raise RayError(f"a Ray node cannot run this job ({type(exc).__name__}); install it on every node") from None
        for node, theirs in zip(refs, found, strict=True):
            if theirs != mine:
                raise RayError(f"Ray node {node} has {theirs}, this driver {mine}; install the same versions there")

    def _check_fits(self, nodes: list[dict], gpus: float) -> None:
        """A task no node can hold would wait forever: refuse it with the numbers instead."""
        if 0 < gpus < 0.01:
            raise RayError(f"--gpus-per-task {gpus}: use 0, or a share of at least 0.01")
        most_cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
        most_gpus = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
        if self.cpus > most_cpus or gpus > most_gpus:
            raise RayError(
                f"each training asks for {self.cpus} CPU and {gpus:g} GPU, but the largest Ray node has {most_cpus:g} "
                f"CPU and {most_gpus:g} GPU; lower --cpus-per-task or --gpus-per-task"
            )

    def _gpus(self, ray) -> float:
        if self.gpus is not None:
            return self.gpus
        return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0  # the cluster's, not this node's

    def _fan_out(self, ray, tasks: list[Unit], inputs: Inputs, done: Done, spare: Spare | None) -> None:
        from ray.exceptions import (
            NodeDiedError,
            ObjectLostError,
            OutOfMemoryError,
            OwnerDiedError,
            RayTaskError,
            WorkerCrashedError,
        )

        lost = (NodeDiedError, ObjectLostError, OutOfMemoryError, OwnerDiedError, WorkerCrashedError)
        arrays = ray.put(inputs.splits)  # once, never per task: every split's rows, each row once
        gpus = self._gpus(ray)
        remote = ray.remote(train_remote).options(num_cpus=self.cpus, num_gpus=gpus, max_retries=0)
        pending = {remote.remote(t, arrays, inputs.settings): (t, 1) for t in tasks}
        log.info(
            "ray: %d tasks (%d trainings), %d CPU and %g GPU each, on %d node(s)",
            len(tasks),
            sum(len(t.members) if isinstance(t, PackTask) else 1 for t in tasks),
            self.cpus,
            gpus,
            len([n for n in ray.nodes() if n.get("Alive")]),
        )
        while pending:
            if spare is not None and len(pending) < self._slots:  # a slot has nothing left to train
                spare()
                spare = None
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            task, attempt = pending.pop(ref)
            try:
                results = ray.get(ref)
            except RayTaskError as exc:  # the training itself raised: the same error would come again
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                raise RayError(
                    f"{task.label} failed on Ray: {type(cause).__name__}: "
                    f"{str(cause).splitlines()[0][:200] if str(cause) else ''}"
                ) from None
            except lost as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise RayError(f"{task.label}: lost {attempt} times ({exc})") from None
                log.warning(
                    "%s: its worker was lost (%s); starting it again elsewhere",
                    task.label,
                    type(exc).__name__,
                )
                pending[remote.remote(task, arrays, inputs.settings)] = (task, attempt + 1)
                continue
            _record(task, results, attempt, done)


def _record(task: Unit, results: list[TrainingResult], attempt: int, done: Done) -> None:
    """Every training the task gave back, to `done` as it came (a pack's members together), with the attempt."""
    members = list(task.members) if isinstance(task, PackTask) else [task]
    for member, result in zip(members, results, strict=True):
        if result.placement is not None:
            result.placement.attempts = attempt
        done(member, result)  # recorded: a driver stopped from here on keeps it
    if (p := results[0].placement) is not None:
        log.info(
            "ray: %s finished on %s (%s) in %.1fs%s",
            task.label,
            p.node,
            p.device,
            p.finished - p.started,
            f", attempt {attempt}" if attempt > 1 else "",
        )
