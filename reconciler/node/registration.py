"""Node registration and status: the node's own znodes in ZooKeeper.

- `/nodes/<name>`: the Node object, created on first registration (spec.domainState
  `flushed` unless configured `ready`); later written by the API only.
- `/nodes/<name>/alive`: ephemeral, present while this daemon's session lives. A stale one
  from a previous session of this node (a crashed daemon) is waited out, never deleted:
  ZooKeeper removes it when that session expires, so two daemons never act as one node.
- `/nodes/<name>/status`: daemonState (init -> run -> shutdown -> stop), domainState,
  resources, heartbeat, version, libvirt URI; written with a version check, and only when
  something changed (the heartbeat changes every interval).
Called by `reconciler.daemon`; blocking (run in threads).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.libvirt import Usage
from store import nodestatus
from store.client import Store
from store.codec import Doc
from store.errors import AlreadyExists, NotFound
from store.informer import Informer
from store.model import VM

log = logging.getLogger(__name__)

VERSION = "0.1.0"


@dataclass
class Resources:
    """What the node has and what its VMs take, in MiB and vCPUs."""

    mem_total: int
    mem_free: int
    mem_alloc: int
    mem_prov: int
    vcpu_total: int
    vcpu_alloc: int
    load: float
    vms: int

    def doc(self) -> Doc:
        return {"memTotal": self.mem_total, "memFree": self.mem_free,
                "memUsed": max(0, self.mem_total - self.mem_free), "memAlloc": self.mem_alloc,
                "memProv": self.mem_prov, "vcpuTotal": self.vcpu_total,
                "vcpuAlloc": self.vcpu_alloc, "load": round(self.load, 2), "vms": self.vms}


def measure(usage: Usage, provisioned_mib: int) -> Resources:
    info = usage.node
    return Resources(mem_total=info.mem_total_mib, mem_free=info.mem_free_mib,
                     mem_alloc=usage.memory_mib, mem_prov=provisioned_mib,
                     vcpu_total=info.cpus, vcpu_alloc=usage.vcpus, load=info.load,
                     vms=usage.running)


class ProvisionedMemory:
    """Memory of the VMs placed on this node, from their spec XML.

    The set of VMs placed here is kept up to date from placement changes (`placed`), so a
    total costs O(VMs on this node), not O(VMs in the cluster); each spec is parsed once
    per change of it.
    """

    def __init__(self, node: str, vms: Informer) -> None:
        self.node = node
        self.vms = vms
        self.local: set[str] = set()
        self._parsed: dict[str, tuple[int, int]] = {}  # name -> (spec mzxid, MiB)

    def rescan(self) -> None:
        p = self.vms.store.paths
        self.local = {n for n in self.vms.children(p.vms)
                      if (pl := self.vms.get(p.vm_placement(n))) is not None
                      and pl.doc.get("node") == self.node}

    def placed(self, name: str, node: str | None) -> None:
        if node == self.node:
            self.local.add(name)
        else:
            self.local.discard(name)
            self._parsed.pop(name, None)

    def total(self) -> int:
        p = self.vms.store.paths
        total = 0
        for name in list(self.local):
            spec = self.vms.get(p.vm(name))
            if spec is None:
                continue
            cached = self._parsed.get(name)
            if cached is None or cached[0] != spec.mzxid:
                cached = (spec.mzxid, VM(name, spec).needs.memory_mib)
                self._parsed[name] = cached
            total += cached[1]
        return total


class NodeRegistration:
    """Creates and maintains this node's znodes."""

    def __init__(self, store: Store, name: str, *, libvirt_uri: str, coordinator: bool,
                 initial_domain_state: str, address: str | None = None,
                 migration_uri: str | None = None) -> None:
        self.store = store
        self.name = name
        self.libvirt_uri = libvirt_uri
        self.coordinator = coordinator
        self.initial_domain_state = initial_domain_state
        self.address = address
        self.migration_uri = migration_uri
        self.endpoint: str | None = None  # the node endpoint's URL, once it serves
        self.daemon_state = "init"
        self._last: Doc | None = None
        self._lock = threading.Lock()
        # The networks' state here (`reconciler.network.nodenets`; none when not managed).
        self.networks: Callable[[], Doc] = dict
        self.pools: Callable[[], Doc] = dict  # `reconciler.storage.nodepools`
        # Whether this node's libvirt driver can migrate live (placement: moving a VM
        # with its local volumes needs it).
        self.live_migration: Callable[[], bool] = lambda: False
        # The watchdog this daemon pets (`reconciler.node.selffence`): {timeout, fresh} or None.
        self.watchdog: Callable[[], Doc | None] = lambda: None
        self.last_heartbeat = 0.0  # the heartbeat of the last status write that went through

    def register(self, *, timeout: float = 120.0) -> None:
        """Create the Node object if new, then `alive` (waiting out a stale one)."""
        p = self.store.paths
        node = {"apiVersion": "herd/v1", "kind": "Node", "metadata": {"name": self.name},
                "spec": {"domainState": self.initial_domain_state,
                         "coordinator": self.coordinator, "fence": "auto"}}
        try:
            self.store.create(p.node(self.name), node)
        except AlreadyExists:
            pass
        self.store.ensure(p.node_status(self.name))
        self._create_alive(timeout=timeout)

    def _create_alive(self, *, timeout: float) -> None:
        path = self.store.paths.node_alive(self.name)
        gone = threading.Event()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.store.create(path, {"pid": os.getpid(), "since": time.time()},
                                  ephemeral=True)
                return
            except AlreadyExists:
                pass
            gone.clear()
            stat = self.store.exists_watched(path, gone.set)
            if stat is None:
                continue
            if self.store.session_owns(stat):
                return  # ours: the session outlived a reconnect (issue #8, seed 6)
            log.warning("node %s is registered by another session; waiting for it to end",
                        self.name)
            if not gone.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"node {self.name} stays registered by another session "
                                   f"(another herd-node with this name?)")

    def deregister(self) -> None:
        try:
            self.store.delete(self.store.paths.node_alive(self.name))
        except NotFound:
            pass

    def status_doc(self, resources: Resources) -> Doc:
        return {"daemonState": self.daemon_state, "resources": resources.doc(),
                "version": VERSION, "libvirtUri": self.libvirt_uri, "address": self.address,
                "migrationUri": self.migration_uri, "networks": self.networks(),
                "pools": self.pools(), "liveMigration": self.live_migration(),
                "endpoint": self.endpoint, "watchdog": self.watchdog()}

    def publish(self, resources: Resources, *, initial_domain_state: Callable[[], str],
                heartbeat: bool) -> bool:
        """Write status if it changed (or for the heartbeat); True when written.

        `domainState` belongs to the primary's flush/ready controller once set; the node
        only seeds it (from its spec) when the status has none.
        """
        body = self.status_doc(resources)
        with self._lock:
            if body == self._last and not heartbeat:
                return False

            stamp = time.time()

            def modify(old: Doc) -> Doc:
                return nodestatus.reported(old, body, now=stamp,
                                           seed_domain_state=initial_domain_state())

            self.store.update(self.store.paths.node_status(self.name), modify)
            self._last = body
            self.last_heartbeat = stamp
        return True


def spec_domain_state(store: Store, nodes: Informer, name: str) -> str:
    """The domain state the node's spec asks for (`ready` or `flushed`)."""
    spec = nodes.get(store.paths.node(name))
    return str(spec.doc.get("spec", {}).get("domainState", "flushed")) if spec else "flushed"
