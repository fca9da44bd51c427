"""The fault suite's workload: VMs defined through the API, then a stream of changes from a
few client threads, every request recorded with its result (`model.Op`).

The VMs (seeded): test-driver domains of 128-512 MiB; limits empty, two nodes or one node;
every selector; autorestart on about half; about a fifth are stubborn guests that ignore
ACPI (`on_poweroff restart`, short shutdownTimeout), so shutdowns and migrations by
shutdown take seconds and can be caught half-way. On real QEMU hosts (`guest="qemu"`)
every VM is `ctl.dev.guest.guest_xml` (32 MiB, SeaBIOS: stubborn, a 2-5 s
shutdownTimeout) with migrationMethod mostly live or any (real live migrations).
The stream: start, shutdown, stop, restart, migrate, move, unmigrate, metadata edits,
rename, and flush/ready of nodes, to a random API server. Requests on one VM never overlap
(a lock per VM, `Slot`), so the order of a VM's requests is the order of their sequence
numbers. Metadata edits only widen the limits (a narrower limit would leave a running VM
outside it, which Herd allows); a flushed node is readied again by a later request. An
answer 2xx is `ok`, 4xx or a refused connection `refused` (nothing was written), anything
else (no answer, 5xx) `unknown`.
Used by tests/support/chaos/run.py and faults.py (which borrows VMs for its mid-shutdown and
mid-migration faults).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ctl.client import ApiError, Client, Unreachable
from ctl.dev.guest import guest_xml, kvm_usable
from tests.support.chaos.cluster import ChaosCluster
from tests.support.chaos.model import OK, REFUSED, UNKNOWN, Op
from tests.support.libvirt_nodes import simple_domain_xml
from vocabulary import Selector

SELECTORS = tuple(s.value for s in Selector)
QEMU_METHODS = ("live", "any", "any", "live", "shutdown")  # drawn per VM on QEMU hosts
VERBS = {"start": 14, "shutdown": 9, "stop": 6, "restart": 6, "migrate": 12, "move": 4,
         "unmigrate": 5, "meta": 12, "rename": 4, "flush": 2, "ready": 4}


@dataclass
class Slot:
    """One VM across renames; `lock` serializes its requests."""

    index: int
    name: str
    stubborn: bool
    renames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    lost: bool = False  # its name is uncertain (a rename without an answer): left alone


@dataclass(frozen=True)
class WorkloadConfig:
    vms: int = 60
    workers: int = 3
    rate: float = 6.0  # requests per second, all workers together
    timeout: float = 10.0  # per request
    guest: str = "test"  # "test": test-driver domains; "qemu": ctl.dev.guest.guest_xml


class OpLog:
    """Thread-safe record of every request."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def call(self, client: Client, path: str, *, method: str = "POST", body: Any = None,
             slot: Slot | None = None, node: str | None = None, verb: str,
             args: dict[str, Any] | None = None) -> Op:
        with self._lock:
            seq = next(self._seq)
        sent = time.time()
        outcome, detail, answer = _send(client, path, method=method, body=body)
        op = Op(seq, slot.index if slot else None, slot.name if slot else None, node, verb,
                dict(args or {}), sent, time.time(), outcome, detail, answer)
        with self._lock:
            self.ops.append(op)
        return op


def _send(client: Client, path: str, *, method: str,
          body: Any) -> tuple[str, str, dict[str, Any]]:
    try:
        answer = client.call(method, path, body=body)
    except ApiError as e:
        return (REFUSED if e.status < 500 else UNKNOWN), f"{e.status} {e.code}: {e.message}", {}
    except Unreachable as e:
        refused = "refused" in str(e).lower()  # never sent: nothing was written
        return (REFUSED if refused else UNKNOWN), str(e), {}
    return OK, "", _essentials(answer)


def _essentials(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        return {}
    meta, spec = answer.get("metadata") or {}, answer.get("spec") or {}
    out = {"generation": answer.get("generation", meta.get("generation")),
           "restartRequest": answer.get("restartRequest"),
           "state": answer.get("desired", spec.get("state"))}  # desired, as the answer saw it
    return {k: v for k, v in out.items() if v is not None}


class Workload:
    """The VMs and the client stream of one seed."""

    def __init__(self, cluster: ChaosCluster, config: WorkloadConfig, *, seed: int) -> None:
        self.cluster = cluster
        self.config = config
        self.seed = seed
        self.log = OpLog()
        self.slots: list[Slot] = []
        self.flushed: set[str] = set()
        self._node_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._kvm = kvm_usable() if config.guest == "qemu" else False

    def client(self, rng: random.Random) -> Client:
        index = rng.randrange(len(self.cluster.api_ports))
        return self.cluster.client(index, timeout=self.config.timeout)

    # --- the VMs -----------------------------------------------------------------------------

    def vm_request(self, rng: random.Random, index: int) -> tuple[Slot, dict[str, Any]]:
        nodes = list(self.cluster.node_names)
        name, stubborn = f"vm{index:03d}", rng.random() < 0.2
        shape = rng.random()
        limits = [] if shape < 0.5 else sorted(rng.sample(nodes, 2 if shape < 0.8 else 1))
        xml, method = self._guest(rng, name, stubborn=stubborn)
        stubborn = stubborn or self.config.guest == "qemu"  # SeaBIOS ignores ACPI
        body = {"xml": xml, "limits": limits, "selector": rng.choice(SELECTORS),
                "autorestart": rng.random() < 0.5, "migration_method": method,
                "shutdown_timeout": rng.randint(2, 5) if stubborn else 10,
                "state": "running" if rng.random() < 0.9 else "stopped"}
        return Slot(index, name, stubborn), body

    def _guest(self, rng: random.Random, name: str, *, stubborn: bool) -> tuple[str, str]:
        """The domain XML and migration method of a new VM."""
        if self.config.guest == "qemu":
            return guest_xml(name, kvm=self._kvm), rng.choice(QEMU_METHODS)
        xml = simple_domain_xml(name, memory_mib=rng.choice((128, 256, 512)),
                                vcpus=rng.choice((1, 1, 2)),
                                on_poweroff="restart" if stubborn else None)
        return xml, "any"

    def define_all(self) -> None:
        """Define every VM (before any fault): each must be acknowledged."""
        rng = random.Random(f"{self.seed}/define")
        client = self.cluster.client(0, timeout=30)
        for index in range(self.config.vms):
            slot, body = self.vm_request(rng, index)
            args = {"limits": body["limits"], "selector": body["selector"],
                    "autorestart": body["autorestart"],
                    "shutdownTimeout": body["shutdown_timeout"], "state": body["state"]}
            op = self.log.call(client, "/vm", body=body, slot=slot, verb="define",
                               args=args)
            if op.outcome != OK:
                raise RuntimeError(f"defining {slot.name} failed: {op.detail}")
            self.slots.append(slot)

    # --- the stream --------------------------------------------------------------------------

    def start(self, stop: threading.Event) -> None:
        for k in range(self.config.workers):
            thread = threading.Thread(target=self._worker, args=(k, stop), daemon=True,
                                      name=f"client-{k}")
            self._threads.append(thread)
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=2 * self.config.timeout + 10)

    def _worker(self, k: int, stop: threading.Event) -> None:
        rng = random.Random(f"{self.seed}/client/{k}")
        pace = self.config.rate / self.config.workers
        verbs, weights = list(VERBS), list(VERBS.values())
        while not stop.wait(rng.expovariate(pace)):
            verb = rng.choices(verbs, weights)[0]
            if verb in ("flush", "ready"):
                self._node_op(rng, verb)
                continue
            slot = rng.choice(self.slots)
            if slot.lost or not slot.lock.acquire(blocking=False):
                continue
            try:
                self.vm_op(rng, slot, verb=verb)
            finally:
                slot.lock.release()

    @staticmethod
    def borrow(slot: Slot) -> Slot | None:
        """The slot, locked for the caller (None when busy or its name is uncertain)."""
        if slot.lost or not slot.lock.acquire(blocking=False):
            return None
        return slot

    def vm_op(self, rng: random.Random, slot: Slot, *, verb: str) -> Op:
        """One request on a VM the caller holds the lock of."""
        client, path = self.client(rng), f"/vm/{slot.name}"
        if verb in ("start", "shutdown", "stop", "restart"):
            return self.log.call(client, f"{path}/state", body={"state": verb},
                                 slot=slot, verb=verb)
        if verb in ("migrate", "move", "unmigrate"):
            return self._node_verb(rng, slot, client=client, verb=verb)
        if verb == "meta":
            return self._meta(rng, slot, client=client)
        return self._rename(client, slot)

    def _node_verb(self, rng: random.Random, slot: Slot, *, client: Client, verb: str) -> Op:
        body: dict[str, Any] = {"action": verb}
        if verb != "unmigrate" and rng.random() < 0.5:
            body["node"] = rng.choice(self.cluster.node_names)
        return self.log.call(client, f"/vm/{slot.name}/node", body=body, slot=slot,
                             verb=verb, args={"node": body.get("node")},
                             node=body.get("node"))

    def _meta(self, rng: random.Random, slot: Slot, *, client: Client) -> Op:
        """Widen the limits (add a node, or lift them), or change another field."""
        choice = rng.randrange(4)
        args: dict[str, Any]
        if choice == 0:
            current = client_limits(client, slot.name)
            if current is None:
                return self.log.call(client, f"/vm/{slot.name}/meta", method="GET",
                                     slot=slot, verb="read")
            extra = rng.choice(self.cluster.node_names)
            args = {"limits": sorted({*current, extra}) if current and rng.random() < 0.7
                    else []}
        elif choice == 1:
            args = {"selector": rng.choice(SELECTORS)}
        elif choice == 2:
            args = {"autorestart": rng.random() < 0.5}
        else:
            args = {"shutdownTimeout": rng.randint(2, 5) if slot.stubborn else 10}
        body = {("shutdown_timeout" if k == "shutdownTimeout" else k): v for k, v in args.items()}
        return self.log.call(client, f"/vm/{slot.name}/meta", body=body, slot=slot,
                             verb="meta", args=args)

    def _rename(self, client: Client, slot: Slot) -> Op:
        base = f"vm{slot.index:03d}"
        new = f"{base}-r{slot.renames + 1}"
        op = self.log.call(client, f"/vm/{slot.name}/rename", body={"new_name": new},
                           slot=slot, verb="rename", args={"new_name": new})
        if op.outcome == OK:
            slot.name, slot.renames = new, slot.renames + 1
        elif op.outcome == UNKNOWN:
            slot.lost = True
        return op

    def _node_op(self, rng: random.Random, verb: str) -> None:
        with self._node_lock:
            if verb == "flush" and self.flushed:
                return  # one flushed node at a time: the others keep room for its VMs
            pool = sorted(self.flushed) if verb == "ready" else list(self.cluster.node_names)
            if not pool:
                return
            node = rng.choice(pool)
            op = self.node_request(self.client(rng), node, verb=verb)
            if op.outcome == OK:
                (self.flushed.add if verb == "flush" else self.flushed.discard)(node)

    def node_request(self, client: Client, node: str, *, verb: str) -> Op:
        return self.log.call(client, f"/node/{node}/domain-state",
                             body={"state": verb}, node=node, verb=verb)

    def ready_all(self, *, deadline: float, on_fail: Callable[[Op], object]) -> None:
        """Ready every node (after the faults), again until acknowledged or the deadline."""
        rng = random.Random(f"{self.seed}/heal")
        for node in self.cluster.node_names:
            while True:
                op = self.node_request(self.client(rng), node, verb="ready")
                if op.outcome == OK or time.monotonic() > deadline:
                    break
                on_fail(op)
        self.flushed.clear()


def client_limits(client: Client, name: str) -> list[str] | None:
    try:
        limits = client.get(f"/vm/{name}/meta").get("limits")
    except (ApiError, Unreachable):
        return None
    return list(limits or [])
