"""What herd-node reconciles, and when: the feed of the VM controller's queue.

A VM concerns this node when it is placed here, owned here, said by its status to be here,
or is a domain of this node's libvirt. `VMFeed` queues it on every cache change that
touches it (`on_vm_change`, the informer's thread: enqueue only), on every libvirt
lifecycle event (`on_domain_event`, on the loop), after each (re)sync of the cache, and on
a periodic full pass (`resyncer`: level-triggered). `adopt` is the start-up pass: every VM
that concerns the node, a running domain taken over (never restarted), a domain Herd never
knew left alone and reported. Made and driven by `reconciler.daemon.NodeDaemon`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from reconciler.libvirt import Hypervisor
from reconciler.libvirt.interface import DEFINED_UPDATED, EventKind
from reconciler.node.publisher import StatusPublisher
from reconciler.node.registration import ProvisionedMemory
from reconciler.runtime.controller import Controller
from reconciler.vm.reconcile import VMReconciler
from store import events
from store.client import Store
from store.informer import Change, Informer

log = logging.getLogger(__name__)
EventListener = Callable[[str, str, int], None]


class VMFeed:
    """Queues the VMs that concern one node (see the module docstring)."""

    def __init__(self, node: str, store: Store, *, vms: Informer, hv: Hypervisor,
                 reconciler: VMReconciler, queue: Controller, provisioned: ProvisionedMemory,
                 publisher: StatusPublisher, removed: Callable[[str], None],
                 resync_interval: float) -> None:
        self.node, self.store, self.vms, self.hv = node, store, vms, hv
        self.reconciler, self.queue, self.provisioned = reconciler, queue, provisioned
        self.publisher, self.removed = publisher, removed
        self.resync_interval = resync_interval
        self.local_domains: set[str] = set()
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the daemon runs
        # Called on the loop with every libvirt lifecycle event (name, kind, detail): for
        # history recorders, the shutdown policy and tests; must not block.
        self.event_listeners: list[EventListener] = []

    def soon(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on the daemon's loop (from a watch callback's thread)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn)

    def concerns_me(self, name: str) -> bool:
        p = self.store.paths
        return name in self.local_domains or any(
            doc is not None and doc.doc.get("node") == self.node
            for doc in (self.vms.get(p.vm_placement(name)), self.vms.get(p.vm_owner(name)),
                        self.vms.get(p.vm_status(name))))

    def on_vm_change(self, change: Change) -> None:
        """Informer thread: find the VM and hand it to the loop (enqueue only)."""
        parts = self.store.paths.split(change.path)
        if len(parts) < 2 or parts[0] != "vms":
            return
        name = parts[1]
        if self.reconciler.echo(name, parts[2] if len(parts) == 3 else "", change):
            return
        was_mine = any(v is not None and v.doc.get("node") == self.node
                       for v in (change.old, change.new))
        if was_mine or self.concerns_me(name):
            self.queue.enqueue(name)
        if len(parts) == 2 and change.new is None:
            self.soon(lambda: self.removed(name))
        if len(parts) == 3 and parts[2] == "placement":
            self.provisioned.placed(name, change.new.doc.get("node") if change.new else None)
            if was_mine:
                self.soon(self.publisher.changed)

    def on_domain_event(self, name: str, event: str, detail: int) -> None:
        """libvirt event (on the loop, through libvirtaio): queue the VM, refresh status.
        A definition replaced changes no state: not queued, or every failed start (which
        defines first) would wake the VM again at once, past its retry backoff."""
        if event == "undefined":
            self.local_domains.discard(name)
        else:
            self.local_domains.add(name)
        if not (event == EventKind.DEFINED and detail == DEFINED_UPDATED):
            self.queue.add(name)
        self.publisher.changed()
        for listener in list(self.event_listeners):
            listener(name, str(event), detail)

    def on_synced(self) -> None:
        """A (re)sync of the VM cache completed: a full level-triggered pass is due."""
        self.soon(self.resync_all)

    async def adopt(self) -> None:
        """Queue what concerns this node; report domains Herd does not know."""
        domains = await self.hv.list_domains()
        self.local_domains = set(domains)
        self.provisioned.rescan()
        for name in self.vms.children(self.store.paths.vms):
            self.reconciler.known.add(name)
        foreign = sorted(set(domains) - self.reconciler.known)
        for name in foreign:
            log.warning("domain %s is not managed by Herd; leaving it alone", name)
        if foreign:
            await asyncio.to_thread(
                events.record, self.store, "foreign-domains",
                f"{self.node} runs domains Herd does not manage: {', '.join(foreign)}",
                node=self.node)
        self.resync_all()

    def resync_all(self) -> None:
        names = set(self.vms.children(self.store.paths.vms)) | self.local_domains
        for name in sorted(names):
            if self.concerns_me(name):
                self.queue.add(name)

    async def resyncer(self) -> None:
        while True:
            await asyncio.sleep(self.resync_interval)  # the periodic full pass: a timer
            self.local_domains = set(await self.hv.list_domains())
            self.resync_all()
