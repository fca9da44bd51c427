"""The faults of the fault suite: a seeded random schedule (`schedule`) and the injector
that carries it out against a `ChaosCluster` (`Injector`).

Kinds (`KINDS`): kill -9 of a node daemon, restarted after a while (on test-driver nodes a
host death: the fence agent may kill the restarted process too, and the cluster reboots
whatever the fence agent killed); SIGSTOP/SIGCONT of a node daemon, shorter than the
session timeout or long enough to be fenced; kill -9 of a ZooKeeper member and its
restart; all of ZooKeeper killed for longer than the session timeout, then restarted; kill
-9 of an API server and its restart; a graceful restart (SIGTERM) of a node daemon; and
the same restart while a stubborn VM of that node is shutting down, or while one is
migrating away from it (the VM borrowed from the workload, so requests on it never
overlap). With `cover`, every kind comes once (in a seeded order) before random ones.
On QEMU hosts the same kinds apply, but a daemon's end (kill -9, SIGTERM) is no host
death: its guests keep running; only the fence agent's power-off kills them (then the
host is booted again before its daemon starts), and a mid-migration restart interrupts a
real live migration. The schedule is a pure function of the seed; the interleaving with
the cluster is not.
Faults run one after another; each ends healed (processes back), though its effects (a
fence, a re-election) may still be under way when the next starts. Used by run.py.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from ctl.client import ApiError, Unreachable
from tests.support.chaos.cluster import ChaosCluster
from tests.support.chaos.model import Fault
from tests.support.chaos.workload import Slot, Workload

MID_TRIES = 4  # VMs asked before a mid-shutdown/mid-migration restart gives up on one
KINDS = ("node-kill", "node-pause", "zk-member", "zk-outage", "api-kill", "node-restart",
         "node-restart-mid-shutdown", "node-restart-mid-migration")


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the stream started
    kind: str
    target: str  # a node, "zk<i>", "api<i>", or "" (chosen when it happens)
    duration: float


@dataclass(frozen=True)
class Timing:
    """The cluster's timeouts the durations are drawn against."""

    zk_timeout: float
    fence_timeout: float
    gap: tuple[float, float] = (1.0, 3.0)


def _draw(rng: random.Random, kind: str, *, t: Timing, nodes: tuple[str, ...],
          apis: int) -> tuple[str, float]:
    if kind == "node-kill":
        return rng.choice(nodes), rng.uniform(1.0, 5.0)
    if kind == "node-pause":
        fenced = t.zk_timeout + t.fence_timeout + 2.0
        return rng.choice(nodes), (rng.uniform(0.5, t.zk_timeout * 0.6) if rng.random() < 0.5
                                   else rng.uniform(fenced, fenced + 2.0))
    if kind == "zk-member":
        return f"zk{rng.randrange(3)}", rng.uniform(1.0, 5.0)
    if kind == "zk-outage":
        return "zk", rng.uniform(t.zk_timeout * 1.5, t.zk_timeout * 2.0 + 1.0)
    if kind == "api-kill":
        return f"api{rng.randrange(apis)}", rng.uniform(0.3, 2.0)
    if kind == "node-restart":
        return rng.choice(nodes), 0.0
    return "", 0.0  # mid-shutdown / mid-migration: the VM decides the node


def schedule(seed: int, *, duration: float, nodes: tuple[str, ...], apis: int,
             timing: Timing, cover: bool = True) -> list[Planned]:
    """Faults from about 2 s in until `duration` (every kind once first, with `cover`)."""
    rng = random.Random(f"{seed}/faults")
    first = list(KINDS) if cover else []
    rng.shuffle(first)
    out, at = [], rng.uniform(1.0, 3.0)
    while at < duration or first:
        kind = first.pop() if first else rng.choice(KINDS)
        target, length = _draw(rng, kind, t=timing, nodes=nodes, apis=apis)
        out.append(Planned(round(at, 2), kind, target, round(length, 2)))
        at += length + rng.uniform(*timing.gap)
    return out


class Injector:
    """Carries out a schedule in a thread of its own; `faults` records what happened."""

    def __init__(self, cluster: ChaosCluster, workload: Workload, *, plan: list[Planned],
                 seed: int) -> None:
        self.cluster = cluster
        self.workload = workload
        self.plan = plan
        self.rng = random.Random(f"{seed}/inject")
        self.faults: list[Fault] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="injector")
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        origin = time.monotonic()
        for planned in self.plan:
            if self._stop.wait(max(0.0, origin + planned.at - time.monotonic())):
                return
            start = time.time()
            try:
                target, note = self._inject(planned)
            except Exception as e:  # a harness failure is reported, never hidden
                target, note = planned.target, f"harness error: {e!r}"
                self.errors.append(f"{planned.kind}: {e!r}")
            self.faults.append(Fault(planned.kind, target, start, time.time(), note))

    def _hold(self, seconds: float) -> None:
        self._stop.wait(seconds)  # the fault lasts this long (ended early on stop)

    def _inject(self, p: Planned) -> tuple[str, str]:
        if p.kind == "node-kill":
            return self._node_kill(p)
        if p.kind == "node-pause":
            return self._node_pause(p)
        if p.kind == "zk-member":
            index = int(p.target[2:])
            self.cluster.zk.kill(index)
            self._hold(p.duration)
            self.cluster.zk.restart_members(index)
            return p.target, f"down {p.duration:.1f}s"
        if p.kind == "zk-outage":
            for index in range(3):
                self.cluster.zk.kill(index)
            self._hold(p.duration)
            self.cluster.zk.restart_members(0, 1, 2)
            return "zk", f"all down {p.duration:.1f}s"
        if p.kind == "api-kill":
            index = int(p.target[3:])
            self.cluster.kill_api(index)
            self._hold(p.duration)
            self.cluster.start_api(index)
            return p.target, f"down {p.duration:.1f}s"
        if p.kind == "node-restart":
            self.cluster.restart_node(p.target)
            return p.target, "SIGTERM, started again"
        return self._mid(p.kind)

    def _node_kill(self, p: Planned) -> tuple[str, str]:
        self.cluster.signal_node(p.target, signal.SIGKILL)
        self.cluster.local.reap(p.target)
        self.workload.flushed.add(p.target)  # fenced: an operator readies it later
        self._hold(p.duration)
        if not self.cluster.node_running(p.target):
            self.cluster.start_node(p.target)
        return p.target, f"kill -9, started again after {p.duration:.1f}s"

    def _node_pause(self, p: Planned) -> tuple[str, str]:
        paused = self.cluster.local.procs[p.target]
        self.cluster.signal_node(p.target, signal.SIGSTOP)
        self._hold(p.duration)
        self.cluster.signal_node(p.target, signal.SIGCONT)
        # Fenced: the paused process is gone (and may have been started again already).
        fenced = paused.poll() is not None
        if fenced:
            self.workload.flushed.add(p.target)
        return p.target, f"SIGSTOP {p.duration:.1f}s" + (", fenced" if fenced else "")

    # --- restarts while a VM is half-way ---------------------------------------------------

    def _mid(self, kind: str) -> tuple[str, str]:
        """A stubborn VM asked to shut down (or to move: a migration by shutdown on test-
        driver nodes) and its node restarted while that is under way."""
        verb, wait_for = (("shutdown", "shutting-down") if kind.endswith("shutdown")
                          else ("move", "migrating"))
        for slot, node in self._running(stubborn=True)[:MID_TRIES]:
            if self.workload.borrow(slot) is None:
                continue
            try:
                op = self.workload.vm_op(self.rng, slot, verb=verb)
                if op.outcome != "ok":
                    continue
                reached = self._reached(slot.name, wait_for)
                self.cluster.restart_node(node)
            finally:
                slot.lock.release()
            return node, f"{verb} {slot.name}, restarted while {reached or 'not yet ' + wait_for}"
        target = self.rng.choice(self.cluster.node_names)
        self.cluster.restart_node(target)
        return target, f"no stubborn VM could {verb}: a plain restart"

    def _running(self, *, stubborn: bool) -> list[tuple[Slot, str]]:
        """Running VMs (of the wanted kind) and their nodes, shuffled."""
        try:
            items = self.cluster.client(0).get("/vm", state="running").get("items", [])
        except (ApiError, Unreachable):
            return []
        slots = {s.name: s for s in self.workload.slots if s.stubborn == stubborn}
        found = [(slots[i["metadata"]["name"]], (i.get("status") or {}).get("node"))
                 for i in items if i["metadata"]["name"] in slots]
        self.rng.shuffle(found)
        return [(slot, node) for slot, node in found if node]

    def _reached(self, name: str, state: str, *, timeout: float = 5.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                now: dict[str, Any] = self.cluster.client(0).get(f"/vm/{name}/state")
            except (ApiError, Unreachable):
                now = {}
            if now.get("state") == state:
                return state
            self._hold(0.1)  # the API's state of one VM: looked at again shortly
        return None
