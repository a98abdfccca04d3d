"""The Ray driver's decisions against a simulated cluster (no Ray process, fast tier): which training starts
when, when the driver may use spare capacity, and which nodes are refused for their versions."""

from __future__ import annotations

import itertools
import os
import re
import socket
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("ray.exceptions")

from job.executors.ray import RayError, RayExecutor, versions_here  # noqa: E402
from job.rundir.resume import TrainingKey  # noqa: E402
from job.specs import ModelSpec  # noqa: E402
from job.training.inputs import DevSplits, Inputs, TrainingTask, TrainSettings, expected_cost  # noqa: E402


class SimulatedCluster:
    """`slots` workers taking tasks first come, first served, each busy for its task's expected cost."""

    def __init__(self, slots: int, inputs: Inputs):
        self.slots, self.inputs, self.clock = slots, inputs, 0.0
        self.queue: list[tuple[str, TrainingTask]] = []
        self.running: dict[str, tuple[float, TrainingTask]] = {}
        self.started: list[str] = []  # task names in the order they began
        self.finished: list[str] = []  # task positions ("2/3") in the order they ended
        self.log: list[str] = []  # "start X", "done X", "spare": what happened, in order
        self._ids = itertools.count()

    # the part of Ray's API the executor uses
    def put(self, value):
        return "arrays"

    def remote(self, fn):
        return SimpleNamespace(options=lambda **kw: SimpleNamespace(remote=self._submit))

    def nodes(self):
        return [{"Alive": True}]

    def wait(self, refs, num_returns=1):
        ref = min(self.running, key=lambda r: self.running[r][0])
        self.clock, task = self.running.pop(ref)
        self.log.append(f"done {task.spec.name}")
        self.finished.append(task.position)
        self._start_queued()
        return [ref], [r for r in refs if r != ref]

    def get(self, ref):
        return [SimpleNamespace(placement=None)]

    def _submit(self, task, arrays, settings):
        ref = f"ref{next(self._ids)}"
        self.queue.append((ref, task))
        self._start_queued()
        return ref

    def _start_queued(self):
        while self.queue and len(self.running) < self.slots:
            ref, task = self.queue.pop(0)
            self.running[ref] = (self.clock + expected_cost(task, self.inputs), task)
            self.started.append(task.spec.name)
            self.log.append(f"start {task.spec.name}")


def _inputs() -> Inputs:
    x, y = np.zeros((4, 10), np.uint8), np.zeros(4, np.int64)
    every = np.arange(y.size)
    return Inputs(DevSplits(x, y, ((every, every),), every, 3), TrainSettings(), checkpoint=lambda key: None)


def _tasks(widths: list[int]) -> list[TrainingTask]:
    specs = [ModelSpec(str(i), f"w{w}", (w,), epochs=10) for i, w in enumerate(widths)]
    return [TrainingTask(s, TrainingKey(s.slug, 0), f"{i}/{len(specs)}") for i, s in enumerate(specs, start=1)]


def _fan_out(monkeypatch, widths: list[int], slots: int):
    executor = RayExecutor(None, 1, 0.0, "tensorflow")
    monkeypatch.setitem(sys.modules, "ray", StartingRay(cpus=slots))
    executor.start("tensorflow", "auto", True, tasks=len(widths))  # finds how many run at once
    inputs = _inputs()
    cluster = SimulatedCluster(slots, inputs)
    monkeypatch.setitem(sys.modules, "ray", cluster)  # run() imports ray: it gets the simulation
    finished = []
    executor.run(_tasks(widths), inputs, lambda task, result: finished.append(task.spec.name),
                 spare=lambda: cluster.log.append("spare"))  # fmt: skip
    return cluster, finished


def _in_order(costs: list[int], slots: int) -> float:
    """When the last training ends if they start in the order given, each on the first free slot."""
    free = [0.0] * slots
    for cost in costs:
        free[free.index(min(free))] += cost
    return max(free)


def test_the_longest_trainings_start_first_so_none_runs_alone_at_the_end(monkeypatch):
    widths = [8, 16, 32, 64, 128, 512]  # family order: the seed's models grow, its widest comes last
    cluster, finished = _fan_out(monkeypatch, widths, slots=2)
    assert cluster.started == ["w512", "w128", "w64", "w32", "w16", "w8"]
    assert sorted(finished) == sorted(cluster.started)  # every training recorded once
    costs = [expected_cost(t, cluster.inputs) for t in _tasks(widths)]
    assert cluster.clock == max(costs)  # the least possible: the widest runs while the other slot does the rest
    assert _in_order(costs, 2) > 1.1 * cluster.clock  # in family order it would start last and run alone


def test_equal_trainings_keep_their_order(monkeypatch):
    cluster, _ = _fan_out(monkeypatch, [16, 16, 16], slots=1)
    assert cluster.finished == ["1/3", "2/3", "3/3"]


def test_spare_is_offered_once_when_a_slot_has_nothing_left(monkeypatch):
    cluster, _ = _fan_out(monkeypatch, [10, 20, 30, 40, 50], slots=2)
    assert cluster.log.count("spare") == 1
    before, after = cluster.log[: cluster.log.index("spare")], cluster.log[cluster.log.index("spare") + 1 :]
    assert sum(e.startswith("start") for e in before) == 5  # every training had begun
    assert after == ["done w10"]  # one still running, the other slot idle: not sooner, not later


def test_spare_is_offered_at_once_when_fewer_trainings_than_slots(monkeypatch):
    cluster, _ = _fan_out(monkeypatch, [10], slots=2)
    assert cluster.log == ["start w10", "spare", "done w10"]
    cluster, _ = _fan_out(monkeypatch, [10], slots=1)
    assert cluster.log == ["start w10", "done w10"]  # no slot was ever free


class VersionedNodes:
    """Nodes that answer the version probe with what they have installed."""

    def __init__(self, installed: dict[str, dict]):
        self.installed = installed

    def remote(self, **resources):
        return lambda fn: SimpleNamespace(options=self._on_node)

    def _on_node(self, scheduling_strategy):
        return SimpleNamespace(remote=lambda backend: self.installed[scheduling_strategy.node_id])

    def get(self, refs, timeout=None):
        return list(refs)


def _nodes(*ids: str) -> list[dict]:  # ids in hex, as Ray checks
    return [{"NodeID": i * 56, "NodeManagerAddress": f"10.0.0.{n}"} for n, i in enumerate(ids, start=1)]


def test_a_node_with_other_versions_is_refused_by_name_before_any_training():
    mine = versions_here("tensorflow")
    theirs = mine | {"keras": "3.0.0"}
    executor = RayExecutor("10.0.0.1:6379", 1, 0.0, "tensorflow")
    executor._check_versions(VersionedNodes({"a" * 56: mine, "b" * 56: mine}), _nodes("a", "b"))  # all alike: passes
    with pytest.raises(RayError, match=r"Ray node 10\.0\.0\.2 \(bbbbbbbb\) has .*'keras': '3\.0\.0'.*install the same"):
        executor._check_versions(VersionedNodes({"a" * 56: mine, "b" * 56: theirs}), _nodes("a", "b"))


class StartingRay:
    """Enough of Ray for `RayExecutor.start`: records how it was started and which tasks were sent."""

    def __init__(self, cpus: int = 2):
        self.initialized, self.init_kwargs, self.sent, self.cpus = False, None, [], float(cpus)

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.initialized, self.init_kwargs = True, kwargs
        self.env_at_init = {name: os.environ.get(name) for name in ("KERAS_BACKEND", "TF_NUM_INTRAOP_THREADS")}

    def nodes(self):
        return [{"Alive": True, "NodeID": "c" * 56, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": self.cpus}}]

    def cluster_resources(self):
        return {"CPU": self.cpus}

    def remote(self, *args, **kwargs):
        fn = args[0] if args else None
        if fn is None:  # ray.remote(num_cpus=0)(fn)
            return lambda f: self._task(f)
        return self._task(fn)

    def _task(self, fn):
        def send(*a, **kw):
            self.sent.append(fn.__name__)
            return fn.__name__

        return SimpleNamespace(options=lambda **kw: SimpleNamespace(remote=send), remote=send)

    def get(self, refs, timeout=None):
        return [versions_here("tensorflow") for _ in refs]


@pytest.mark.parametrize("address", [None, "10.0.0.1:6379"])
def test_a_ray_started_for_the_run_is_new_and_needs_no_version_check(monkeypatch, address):
    fake = StartingRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the driver's own, put back after
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    RayExecutor(address, 1, 0.0, "tensorflow").start("tensorflow", "auto", True, tasks=4)
    wanted = {"KERAS_BACKEND": "tensorflow", "TF_NUM_INTRAOP_THREADS": "1"}
    if address is None:  # never a cluster some `ray start` left on this machine, which might run other versions
        assert fake.init_kwargs["address"] == "local"
        assert fake.sent == ["runtime_here", "runtime_here"]  # one probe per slot, no version probe
        assert "runtime_env" not in fake.init_kwargs and fake.env_at_init == wanted  # its workers inherit it
    else:
        assert fake.init_kwargs["address"] == address
        assert fake.sent == ["versions_here", "runtime_here", "runtime_here"]
        assert {k: fake.init_kwargs["runtime_env"]["env_vars"][k] for k in wanted} == wanted
    assert os.environ["KERAS_BACKEND"] == "jax" and "TF_NUM_INTRAOP_THREADS" not in os.environ


def test_a_ray_address_where_nothing_answers_is_refused_within_the_deadline(tmp_path, monkeypatch, small_csv):
    """Ray's own connect retries for minutes and holds SIGTERM: the job gives up after CONNECT_DEADLINE_S."""
    import time

    from click.testing import CliRunner

    from job.cli import main
    from job.executors import ray as executor

    monkeypatch.setattr(executor, "CONNECT_DEADLINE_S", 1.0)
    out = tmp_path / "out"
    started = time.monotonic()
    args = ["run", "--data", str(small_csv), "--executor", "ray", "--ray-address", "127.0.0.1:1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "--ray-address 127.0.0.1:1: nothing answers there within 1 s" in line and "Traceback" not in result.stderr
    assert time.monotonic() - started < 20 and not list(out.glob("*"))


def test_ray_init_keeps_the_jobs_sigterm_handler():
    """ray.init installs a SIGTERM handler that exits 15; while it runs, the job's stays (exit 143)."""
    import signal
    from types import SimpleNamespace

    from job.executors.ray import RayExecutor

    seen = []

    def init(**kwargs):  # what ray.init does to SIGTERM, then what a stop during it would meet
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        seen.append(signal.getsignal(signal.SIGTERM))

    def ours(signum, frame):
        raise KeyboardInterrupt

    fake = SimpleNamespace(is_initialized=lambda: False, init=init)
    previous = signal.signal(signal.SIGTERM, ours)
    try:
        assert RayExecutor(None, 1, 0, "jax")._connect(fake) is True
        assert seen == [ours] and signal.getsignal(signal.SIGTERM) is ours
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # after it, setting a handler works again
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize(
    ("code", "wording"),
    [
        (socket.EAI_AGAIN, "the name server did not answer for head.example (a temporary failure)"),
        (socket.EAI_NONAME, "no such host; check the address"),
        (socket.EAI_FAIL, "cannot resolve head.example"),
    ],
)
def test_a_name_that_does_not_resolve_is_worded_for_its_cause(monkeypatch, code, wording):
    from job.executors import ray as executor

    def fail(*args, **kwargs):
        raise socket.gaierror(code, "resolver says no")

    monkeypatch.setattr(executor.socket, "create_connection", fail)
    with pytest.raises(executor.RayError, match=re.escape(f"--ray-address head.example:6379: {wording}")):
        executor.reachable("head.example:6379", deadline=1.0)


def test_a_port_that_accepts_but_is_not_ray_ends_in_one_line_and_exit_2(capsys):
    """Something listens, so `reachable` passes; ray.init would then retry in native code. The watchdog
    gives up after the deadline with one line and exit 2, even while the body is blocked."""
    import threading
    import time

    from job.executors.ray import _answer_within

    exited = []
    stopped = threading.Event()

    def exit_now(code):
        exited.append(code)
        stopped.set()

    started = time.monotonic()
    with _answer_within("127.0.0.1:8080", 0.3, exit_now=exit_now):
        stopped.wait(10)  # a ray.init that never returns
    assert exited == [2] and time.monotonic() - started < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --ray-address 127.0.0.1:8080: something listens there")
    with _answer_within("127.0.0.1:8080", 0.3, exit_now=exit_now):
        pass  # Ray answered in time: the watchdog stands down
    time.sleep(0.5)
    assert exited == [2]
