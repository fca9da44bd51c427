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
from reconciler.vm.view import MigrationLimits, View
from statemachine import Desired, Observed, Recorded
from statemachine.nodeplan import Owner, Situation, Where
from store.client import Store, Versioned
from store.codec import Doc
from store.informer import Informer
from vocabulary import UP_RUN_STATES as UP
from vocabulary import RunState, VMState

STATES = frozenset(s.value for s in VMState)


@dataclass(frozen=True)
class Observation:
    """One reconcile's reading of one VM: ZooKeeper, libvirt, and this node's jobs."""

    node: str  # this node
    view: View
    domain: DomainInfo | None
    situation: Situation

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def target(self) -> str | None:
        """The node the VM is placed on."""
        node = self.view.placement.get("node")
        return node if isinstance(node, str) else None

    @property
    def migration(self) -> Doc:
        """`status.migration` (empty when none is recorded)."""
        doc = self.view.status.doc.get("migration") if self.view.status else None
        return doc if isinstance(doc, dict) else {}


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

    def view(self, name: str) -> View:
        p = self.store.paths
        placement = self.vms.get(p.vm_placement(name))
        return View(name, self.vms.get(p.vm(name)), placement.doc if placement else {},
                    self._newest(name, self.vms.get(p.vm_status(name))),
                    self.vms.get(p.vm_owner(name)))

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
        view = self.view(name)
        if view.exists:
            self.known.add(name)
        domain = await self.hv.domain(name) if view.exists or name in self.known else None
        out = await self._migrating_out(view, domain)
        return Observation(self.node, view, domain, self.situation(view, domain,
                                                                   migrating_out=out))

    async def _migrating_out(self, view: View, domain: DomainInfo | None) -> bool:
        """An outgoing migration job of the domain runs here (say, one this daemon started
        before it restarted): only where live migration exists and the VM is placed away."""
        if (domain is None or domain.state not in UP or not self.hv.live_migration_supported
                or view.placement.get("node") in (None, self.node)):
            return False
        return await self.hv.migrating_out(view.name)

    def situation(self, view: View, domain: DomainInfo | None, *,
                  migrating_out: bool = False) -> Situation:
        status = view.status.doc if view.status else {}
        moving = status.get("migration") or {}
        target = view.placement.get("node")
        ours_moving = moving.get("source") == self.node and moving.get("target") == target
        return Situation(
            desired=self.desired(view), recorded=self.recorded(view),
            observed=Observed(domain=domain.state if domain else RunState.ABSENT,
                              migrating_out=migrating_out),
            owner=self.owner(view.owner), status_node=self.where(status.get("node")),
            known=view.name in self.known,
            migrating_in=domain is not None and domain.migrating_in,
            left_here=moving.get("source") == self.node and bool(moving.get("handedOver")),
            live_failed=moving.get("target") == target and bool(moving.get("liveFailed")),
            live_underway=ours_moving and moving.get("method") == "live"
            and not moving.get("liveFailed") and not moving.get("handedOver"),
            outbound=len(self.outbound - {view.name}), slot_limit=self.limits.concurrency)

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

    def desired(self, view: View) -> Desired:
        spec = view.spec_doc
        meta = spec.get("meta", {})
        timeout = spec.get("shutdownTimeout") or self.cluster_default("shutdownTimeout", 180)
        return Desired(
            target=spec.get("state", "stopped"),
            stop_mode=spec.get("stopMode", "graceful"),
            restart_request=int(spec.get("restartRequest", 0)),
            placed_here=view.placement.get("node") == self.node,
            migration_method=meta.get("migrationMethod", "any"),
            live_supported=self.hv.live_migration_supported,
            shutdown_timeout=float(timeout),
            exists=view.exists,
        )

    @staticmethod
    def recorded(view: View) -> Recorded:
        doc = view.status.doc if view.status else {}
        state = doc.get("state", "stopped")
        return Recorded(state=VMState(state) if state in STATES else VMState.UNKNOWN,
                        shutdown_deadline=doc.get("shutdownDeadline"),
                        observed_restart=int(doc.get("observedRestart", 0)),
                        since=float(doc.get("since", 0.0)))
