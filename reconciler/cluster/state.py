"""What the primary's controllers read: the caches of VMs, nodes, the cluster config and
the affinity rules, as `store.model` snapshots, with the nodes' figures from exact
accounting (`store.placement.account`) and the VMs' placements for the rules.
Made by `reconciler.daemon.NodeDaemon`; read by `reconciler.cluster.controllers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from store import clusterview
from store.affinity import Rule
from store.client import Store
from store.informer import Informer
from store.model import VM, Node, read_node, read_vm
from store.placement import NodeView, VMNeeds, account
from store.rules import read_rules


class ClusterState:
    """Read access to the caches, as `store.model` snapshots."""

    def __init__(self, store: Store, *, vms: Informer, nodes: Informer,
                 cluster: Informer, rules: Informer | None = None) -> None:
        self.store, self.vms, self.nodes, self.cluster = store, vms, nodes, cluster
        self.rules_cache = rules
        self._needs: dict[str, tuple[int, VMNeeds]] = {}
        # A VM's needs with what its volumes on local pools ask of placement (the nodes
        # they tie it to, the room to move them); set by the daemon when it keeps storage
        # (`store.placement.with_storage`).
        self.storage: Callable[[VMNeeds, str | None], VMNeeds] = lambda needs, _xml: needs

    def setting(self, key: str, default: Any) -> Any:
        doc = self.cluster.get(self.store.paths.config)
        return doc.doc.get(key, default) if doc else default

    def node_names(self) -> list[str]:
        return self.nodes.children(self.store.paths.nodes)

    def node(self, name: str) -> Node:
        return read_node(name, self.nodes.get, self.store.paths)

    def node_views(self) -> list[NodeView]:
        """The nodes as placement sees them, their figures from this cache's placements
        (exact accounting, `store.placement.account`)."""
        return account([self.node(n).view for n in self.node_names()],
                       clusterview.placements(self.all_vms(), self.needs))

    def rules(self) -> list[Rule]:
        cache = self.rules_cache
        if cache is None:
            return []
        path = self.store.paths.rule
        return read_rules(cache.children(self.store.paths.rules),
                          lambda name: found.doc if (found := cache.get(path(name))) else None)

    def where(self) -> dict[str, str]:
        """The node of every VM placed to run (what affinity rules look at)."""
        return clusterview.where(self.all_vms())

    def vm(self, name: str) -> VM | None:
        """The VM, when both its object and its placement are cached."""
        vm = read_vm(name, self.vms.get, self.store.paths)
        return vm if vm.exists and vm.placement is not None else None

    def all_vms(self) -> list[VM]:
        found = (self.vm(n) for n in self.vms.children(self.store.paths.vms))
        return [v for v in found if v is not None]

    def needs(self, vm: VM) -> VMNeeds:
        """`vm.needs`, parsed again only when the VM object changed (a pass over 1,000
        VMs must not parse 1,000 domain XMLs), with its storage as it is now (a live
        migration moves a volume, not the VM object)."""
        cached = self._needs.get(vm.name)
        if cached is None or cached[0] != vm.mzxid:
            cached = (vm.mzxid, vm.needs)
            self._needs[vm.name] = cached
        return self.storage(cached[1], vm.xml)
