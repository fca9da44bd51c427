"""One seed of the fault suite from start to report: `run_seed(directory, ChaosConfig)`.

Order: start the cluster (ZooKeeper x3, nodes, APIs; cluster defaults with a short fence
timeout), wait until every node is ready, define the VMs, then run the client stream and
the seeded fault schedule together; stop the stream once the schedule is done, heal
(every process back, every node readied through the API, itself recorded as requests),
wait until the cluster converges (or `settle_timeout` passes), then gather the evidence
(the recorder's runs, the requests, the ZooKeeper snapshot, deaths, fences, exits) and
check it. Everything started is stopped before it returns, whatever happened; the
evidence, requests, faults and report are left in the directory (evidence.json,
ops.jsonl, faults.json, report.txt) beside the processes' logs.

`hypervisor="qemu"` runs the same on real QEMU hosts (tests/support/chaos/qemu.py): a
handful of QEMU guests, and the history from the hostwatch process (`HostwatchRecorder`)
instead of the nodes' event logs. Called by tests/e2e/test_chaos.py,
tests/e2e/test_chaos_qemu.py and bench/chaos.py.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ctl.dev.qemu import QemuHosts
from tests.support.chaos import checker
from tests.support.chaos.checker import CheckResult
from tests.support.chaos.cluster import ChaosCluster
from tests.support.chaos.faults import Injector, Timing, schedule
from tests.support.chaos.model import ZVM, Evidence, Exit, Fault, Op, Snapshot, ZNode
from tests.support.chaos.recorder import EventLogRecorder, HostwatchRecorder, RunSource
from tests.support.chaos.report import first_violation, herd_events_about, render
from tests.support.chaos.workload import Workload, WorkloadConfig
from tests.support.history import Run
from tests.support.waits import poll_until


@dataclass(frozen=True)
class ChaosConfig:
    seed: int
    duration: float = 40.0  # seconds of client stream and faults (the schedule may run over)
    nodes: int = 3
    apis: int = 2
    vms: int = 60
    workers: int = 3
    rate: float = 6.0
    zk_timeout: float = 3.0
    fence_timeout: float = 2.0
    settle_timeout: float = 60.0
    cover: bool = True  # every kind of fault at least once
    hypervisor: str = "test"  # "test": libvirt's test driver; "qemu": real QEMU hosts


@dataclass
class SeedResult:
    config: ChaosConfig
    origin: float  # when the stream started (report times are relative to it)
    faults: list[Fault]
    ops: list[Op]
    results: list[CheckResult]
    run_count: int
    run_ends: dict[str, int]
    excerpt: list[str]
    herd_events: list[str] = field(default_factory=list)  # Herd's own log on the violation
    timings: dict[str, float] = field(default_factory=dict)
    harness_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and not self.harness_errors


def cluster_defaults(config: ChaosConfig) -> dict[str, object]:
    return {"selector": "mem", "shutdownTimeout": 180, "fenceTimeout": config.fence_timeout,
            "maintenance": False}


def _nodes_up(cluster: ChaosCluster, *, ready: bool) -> bool:
    snap = cluster.snapshot()
    for name in cluster.node_names:
        node = snap.nodes.get(name)
        status = checker.doc(node.status) if node else {}
        if node is None or not node.alive or status.get("daemonState") != "run":
            return False
        if ready and status.get("domainState") != "ready":
            return False
    return True


def _heal(cluster: ChaosCluster) -> None:
    """Every process back: ZooKeeper members, paused or dead nodes, API servers."""
    dead = [i for i, m in enumerate(cluster.zk.members) if not m.running]
    if dead:
        cluster.zk.restart_members(*dead)
    for name in cluster.node_names:
        cluster.heal_node(name)
    for index in range(len(cluster.api_ports)):
        cluster.start_api(index)


def evidence(cluster: ChaosCluster, source: RunSource, *, ops: list[Op],
             healed: float) -> Evidence:
    return Evidence(runs=source.runs(), ops=ops, snapshot=cluster.snapshot(),
                    deaths=cluster.deaths(), fences=cluster.fenced_times(),
                    exits=cluster.exit_records(), stuck=list(cluster.stuck), healed=healed,
                    settled=time.time())


class Settling:
    """Whether the cluster has converged: every VM desired running runs where it is placed,
    no autorestart is left, and nothing (placements, states, runs) changed for `quiet`
    seconds — one good look is not enough while the primary still acts on the heal."""

    def __init__(self, cluster: ChaosCluster, source: RunSource, *, ops: list[Op],
                 quiet: float = 3.0) -> None:
        self.cluster, self.source, self.ops, self.quiet = cluster, source, ops, quiet
        self._last: object = None
        self._since = 0.0

    def __call__(self) -> bool:
        ev = evidence(self.cluster, self.source, ops=self.ops, healed=0.0)
        converged = not (checker.desired_running(ev)[1] or checker.autorestart(ev)[1])
        now = time.monotonic()
        shape = (sorted((n, checker.doc(v.placement).get("node"),
                         checker.doc(v.status).get("state")) for n, v in ev.snapshot.vms.items()),
                 sorted((r.vm, r.node, r.start) for r in ev.runs if r.end == float("inf")))
        if not converged or shape != self._last:
            self._last, self._since = shape, now
            return False
        return now - self._since >= self.quiet


class Phases:
    """Wall-clock seconds per phase, for the report."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = now - self._t
        self._t = now


def _stream(cluster: ChaosCluster, workload: Workload, *, config: ChaosConfig) -> Injector:
    plan = schedule(config.seed, duration=config.duration, nodes=cluster.node_names,
                    apis=config.apis, cover=config.cover,
                    timing=Timing(config.zk_timeout, config.fence_timeout))
    injector = Injector(cluster, workload, plan=plan, seed=config.seed)
    stop = threading.Event()
    workload.start(stop)
    injector.start()
    try:
        injector.join(timeout=config.duration * 4 + 120)
    finally:
        injector.stop()
        stop.set()
        workload.join()
        injector.join(timeout=120)
    return injector


def _setup(directory: Path, config: ChaosConfig) -> tuple[ChaosCluster, RunSource, Workload]:
    """The cluster (on test-driver nodes or QEMU hosts), its history source, the workload."""
    names = tuple(f"hv{i}" for i in range(1, config.nodes + 1))
    hosts = QemuHosts(directory / "hosts", names) if config.hypervisor == "qemu" else None
    cluster = ChaosCluster(directory, nodes=config.nodes, apis=config.apis,
                           zk_timeout=config.zk_timeout, hosts=hosts)
    source: RunSource = (EventLogRecorder(cluster.local.event_logs, cluster.deaths)
                         if cluster.qemu is None else
                         HostwatchRecorder.from_file(cluster.qemu.history, deaths=cluster.deaths))
    workload = Workload(cluster, WorkloadConfig(vms=config.vms, workers=config.workers,
                                                rate=config.rate, guest=config.hypervisor),
                        seed=config.seed)
    return cluster, source, workload


def run_seed(directory: Path, config: ChaosConfig) -> SeedResult:
    cluster, source, workload = _setup(directory, config)
    phases = Phases()
    try:
        cluster.start(config=cluster_defaults(config))
        poll_until(lambda: _nodes_up(cluster, ready=True), timeout=60, interval=0.3,
                   what="every node running and ready")
        workload.define_all()
        phases.done("setup")
        origin = time.time()
        injector = _stream(cluster, workload, config=config)
        phases.done("stream")
        _heal(cluster)
        poll_until(lambda: _nodes_up(cluster, ready=False), timeout=90, interval=0.5,
                   what="every node back after the faults")
        workload.ready_all(deadline=time.monotonic() + 60,
                           on_fail=lambda _op: threading.Event().wait(1.0))
        healed = time.time()
        phases.done("heal")
        try:  # the primary acts on the readies (returns, autorestarts), then it all settles
            poll_until(lambda: _nodes_up(cluster, ready=True), timeout=config.settle_timeout,
                       interval=0.5, what="every node ready")
            poll_until(Settling(cluster, source, ops=workload.log.ops),
                       timeout=config.settle_timeout, interval=1.0, what="convergence")
        except AssertionError:
            pass  # the checks say what did not converge
        phases.done("settle")
        if cluster.qemu is not None and cluster.qemu.watch is not None:
            cluster.qemu.watch.sync()  # every event up to now is in the history
        ev = evidence(cluster, source, ops=workload.log.ops, healed=healed)
        results = checker.check(ev)
    finally:
        cluster.stop()
    phases.done("stop")
    result = _result(config, origin=origin, injector=injector, ev=ev, results=results,
                     source=source, phases=phases)
    _dump(directory, result, ev=ev)
    return result


def _dump(directory: Path, result: SeedResult, *, ev: Evidence) -> None:
    """The raw record beside the logs, for a post-mortem: the evidence (requests, runs,
    the snapshot...), the faults, the report."""
    (directory / "evidence.json").write_text(json.dumps(
        dataclasses.asdict(ev), default=lambda x: None if x != x else str(x)))
    with open(directory / "ops.jsonl", "w") as f:
        for op in result.ops:
            f.write(json.dumps(dataclasses.asdict(op)) + "\n")
    (directory / "faults.json").write_text(json.dumps(
        [dataclasses.asdict(fault) for fault in result.faults], indent=1))
    (directory / "report.txt").write_text(render(result) + "\n")


def _result(config: ChaosConfig, *, origin: float, injector: Injector, ev: Evidence,
            results: list[CheckResult], source: RunSource, phases: Phases) -> SeedResult:
    first = first_violation(results)
    excerpt = source.excerpt(first.subject, first.at, origin=origin) if first else []
    said = herd_events_about(ev.snapshot.events, first.subject, origin=origin) if first else []
    ends = Counter(r.cause or "still running" for r in ev.runs)
    return SeedResult(config, origin, injector.faults, ev.ops, results, len(ev.runs),
                      dict(ends), excerpt, said, phases.timings, list(injector.errors))


def load_evidence(path: Path) -> Evidence:
    """The evidence a run left (`evidence.json`), to check again after a checker change."""
    raw = json.loads(path.read_text())
    snap = raw["snapshot"]
    return Evidence(
        runs=[Run(**r) for r in raw["runs"]], ops=[Op(**o) for o in raw["ops"]],
        snapshot=Snapshot({k: ZVM(**v) for k, v in snap["vms"].items()},
                          {k: ZNode(**n) for k, n in snap["nodes"].items()}, snap["taken"],
                          snap.get("events", [])),
        deaths=raw["deaths"], fences=raw["fences"], exits=[Exit(**e) for e in raw["exits"]],
        stuck=[(p, t) for p, t in raw.get("stuck", [])], healed=raw["healed"],
        settled=raw["settled"])
