"""The per-VM reconcile of the node daemon: make this node's libvirt match ZooKeeper.

`VMReconciler.reconcile(name)` is three steps, each in a module of its own:
- observe (`reconciler.vm.observe`): the VM's spec, placement, status and owner from the
  watched cache, its domain from libvirt, this node's migration jobs;
- plan (`statemachine.nodeplan.plan_vm`, pure): whether this node speaks for the VM, and
  ONE step with the owner znode change it needs;
- act (`reconciler.vm.act`): carry the step out, and write status once, version-checked,
  in one transaction with the owner change (`reconciler.vm.record`).
It never looks at what woke it, so running it again is always safe (level-triggered).

Who acts: the node the VM is placed on, or the node whose libvirt runs it (which then
migrates it out). Ownership guards against running twice: a node starts a VM only after
it created the ephemeral `/vms/<name>/owner`, waits while another session holds it, and
deletes it only once libvirt reports the domain off here. Called by the work queue of
`reconciler.daemon`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from reconciler.libvirt import Hypervisor
from reconciler.libvirt.connection import Connection
from reconciler.runtime.workqueue import Result
from reconciler.vm.act import Actuator
from reconciler.vm.fetch import DiskFetcher
from reconciler.vm.migration import Migrator
from reconciler.vm.observe import MigrationLimits, Observer
from reconciler.vm.record import StatusWriter
from statemachine.nodeplan import OWNER_WAIT, Gate, plan_vm
from store.client import Store
from store.informer import Change, Informer

__all__ = ["OWNER_WAIT", "MigrationLimits", "VMReconciler"]

log = logging.getLogger(__name__)


class VMReconciler:
    """Reconciles the VMs of one node; one instance per daemon."""

    def __init__(self, node: str, store: Store, *, vms: Informer, hypervisor: Hypervisor,
                 cluster_default: Callable[[str, Any], Any],
                 clock: Callable[[], float] = time.time,
                 wake: Callable[[str], None] = lambda _name: None,
                 migrations: MigrationLimits | None = None,
                 storage: Connection | None = None, console_log_dir: str | None = None,
                 departed: Callable[[str, str], None] = lambda _vm, _node: None) -> None:
        self.node = node
        self.store = store
        self.clock = clock
        limits = migrations or MigrationLimits()
        self.observer = Observer(node, store, vms, hypervisor, cluster_default, limits,
                                 clock=clock)
        self.writer = StatusWriter(self.observer, clock=clock)
        migrator = Migrator(self.writer, hypervisor, outbound=self.observer.outbound,
                            limits=limits, wake=wake, departed=departed)
        self.actuator = Actuator(self.writer, hypervisor, migrator=migrator,
                                 fetcher=DiskFetcher(self.writer, storage),
                                 console_log_dir=console_log_dir, departed=departed)

    @property
    def known(self) -> set[str]:
        """Names ZooKeeper has had while this daemon watched (see `Observer.known`)."""
        return self.observer.known

    async def reconcile(self, name: str) -> Result:
        observation = await self.observer.observe(name)
        plan = plan_vm(observation.situation, now=self.clock())
        if plan.gate != Gate.STEP:
            log.debug("%s: %s (%s)", name, plan.gate, plan.rule)
        result = await self.actuator.carry_out(observation, plan)
        if plan.gate == Gate.TIDY and not observation.vm.exists:
            self.forget(name)
        return result

    def echo(self, name: str, child: str, change: Change) -> bool:
        """True for a change this reconciler made itself (nothing new to reconcile): the
        status it wrote last, or the owner znode its own session created or deleted."""
        if child == "status" and change.new is not None:
            mine = self.observer.written.get(name)
            return mine is not None and mine.mzxid == change.new.mzxid
        if child == "owner":
            owner = change.new or change.old
            return owner is not None and self.store.session_owns(owner.stat)
        return False

    def forget(self, name: str) -> None:
        """The VM and its domain are gone: drop what we remembered of it."""
        self.observer.written.pop(name, None)
        self.observer.known.discard(name)
