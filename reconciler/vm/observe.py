"""Observe: what one reconcile of a VM knows, read once (`Observation`).

`Observer.observe(name)` reads the VM's spec, placement, status and owner from the watched
cache (or this node's own newer status write), the domain from libvirt (and whether an
outgoing migration job of it runs here), and this node's outgoing migrations in flight;
`Observation.situation` reduces all of it to the values `statemachine.nodeplan.plan_vm`
decides on. Nothing here writes. Called by `reconciler.vm.reconcile.VMReconciler`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.libvirt import DomainInfo, Hypervisor
from statemachine import Desired, Observed, Recorded
from statemachine.nodeplan import Owner, Situation, Where
from store.client import Store, Versioned
from store.informer import Informer
from store.model import VM, read_vm
from vocabulary import UP_RUN_STATES as UP
from vocabulary import MigrationMethod, RunState, VMState

STATES = frozenset(s.value for s in VMState)


@dataclass(frozen=True)
class MigrationLimits:
    """Outgoing live migrations at once per node, and the time one may take."""

    concurrency: int = 2
    timeout: float = 300.0


@dataclass(frozen=True)
class Observation:
    """One reconcile's reading of one VM: ZooKeeper, libvirt, and this node's jobs."""

    node: str  # this node
    vm: VM
    domain: DomainInfo | None
    situation: Situation

    @property
    def name(self) -> str:
        return self.vm.name

    @property
    def target(self) -> str | None:
        """The node the VM is placed on."""
        return self.vm.home



@dataclass
class Observer:
    """Reads one VM for the reconciler of `node`."""

    node: str
    store: Store
    vms: Informer
    hv: Hypervisor
    cluster_default: Callable[[str, Any], Any]
    limits: MigrationLimits
    clock: Callable[[], float] = time.time
    written: dict[str, Versioned] = field(default_factory=dict)  # our newest status writes
    # Names ZooKeeper has had while we watched: a domain whose name never appeared there
    # is not Herd's, and is left alone (reported), never destroyed.
    known: set[str] = field(default_factory=set)
    outbound: set[str] = field(default_factory=set)  # VMs migrating out of here now

    def read(self, name: str) -> VM:
        """The VM as the cache has it, with our own newer status write if the cache lags."""
        status = self.store.paths.vm_status(name)

        def get(path: str) -> Versioned | None:
            found = self.vms.get(path)
            return self._newest(name, found) if path == status else found
        return read_vm(name, get, self.store.paths)

    def _newest(self, name: str, cached: Versioned | None) -> Versioned | None:
        mine = self.written.get(name)
        if cached is None or mine is None:
            return cached
        return mine if mine.mzxid > cached.mzxid else cached

    def ours(self, owner: Versioned | None) -> bool:
        """The owner znode is this node's, created by this very session (while the client
        reconnects it has no session: then nothing is ours)."""
        if owner is None or owner.doc.get("node") != self.node:
            return False
        return self.store.session_owns(owner.stat)

    async def observe(self, name: str) -> Observation:
        vm = self.read(name)
        if vm.exists:
            self.known.add(name)
        domain = await self.hv.domain(name) if vm.exists or name in self.known else None
        out = await self._migrating_out(vm, domain)
        return Observation(self.node, vm, domain, self.situation(vm, domain,
                                                                   migrating_out=out))

    async def _migrating_out(self, vm: VM, domain: DomainInfo | None) -> bool:
        """An outgoing migration job of the domain runs here (say, one this daemon started
        before it restarted): only where live migration exists and the VM is placed away."""
        if (domain is None or domain.state not in UP or not self.hv.live_migration_supported
                or vm.home in (None, self.node)):
            return False
        return await self.hv.migrating_out(vm.name)

    def situation(self, vm: VM, domain: DomainInfo | None, *,
                  migrating_out: bool = False) -> Situation:
        moving = vm.migration
        ours = moving is not None and moving.source == self.node
        to_target = moving is not None and moving.target == vm.home
        return Situation(
            desired=self.desired(vm), recorded=self.recorded(vm),
            observed=Observed(domain=domain.state if domain else RunState.ABSENT,
                              migrating_out=migrating_out),
            owner=self.owner(vm.owner), status_node=self.where(vm.status_node),
            known=vm.name in self.known,
            migrating_in=domain is not None and domain.migrating_in,
            left_here=ours and moving is not None and moving.handed_over,
            live_failed=to_target and moving is not None and moving.live_failed,
            live_underway=ours and to_target and moving is not None
            and moving.method == MigrationMethod.LIVE
            and not moving.live_failed and not moving.handed_over,
            failed_for_good=vm.state == VMState.FAILED and vm.status_node == self.node
            and vm.failed_generation is not None and vm.failed_generation == vm.generation,
            outbound=len(self.outbound - {vm.name}), slot_limit=self.limits.concurrency)

    def owner(self, owner: Versioned | None) -> Owner:
        if owner is None:
            return Owner.NONE
        if owner.doc.get("node") != self.node:
            return Owner.OTHER
        return Owner.OURS if self.ours(owner) else Owner.STALE

    def where(self, node: object) -> Where:
        if node is None:
            return Where.NOBODY
        return Where.HERE if node == self.node else Where.ELSEWHERE

    def desired(self, vm: VM) -> Desired:
        timeout = vm.shutdown_timeout or self.cluster_default("shutdownTimeout", 180)
        return Desired(
            target=vm.want, stop_mode=vm.stop_mode, restart_request=vm.restart_request,
            placed_here=vm.home == self.node, migration_method=vm.migration_method,
            live_supported=self.hv.live_migration_supported,
            shutdown_timeout=float(timeout),
            exists=vm.exists,
        )

    @staticmethod
    def recorded(vm: VM) -> Recorded:
        doc, state = vm.status_doc, vm.state or VMState.STOPPED
        return Recorded(state=VMState(state) if state in STATES else VMState.UNKNOWN,
                        shutdown_deadline=doc.get("shutdownDeadline"),
                        observed_restart=vm.observed_restart,
                        since=float(doc.get("since", 0.0)))
