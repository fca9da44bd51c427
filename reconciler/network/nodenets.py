"""`NodeNetworks`: the cluster's networks on this node (issue #14), a controller beside the
VM controller of `reconciler.daemon`.

It watches `/networks` (its own informer) and the nodes (the VXLAN peers are the other
nodes' `address`es), and runs ONE work queue with one worker whose keys are the network
names plus `COLLECT`: a network's key reconciles its links and libvirt network here
(`NetworkReconciler.reconcile`, built from the Network, this node's config and the peers);
`COLLECT` removes what Herd made for networks the cluster no longer has (only once the
informer is in sync: an empty list would remove them all). One worker: a collection
never races a creation. Each outcome goes into `report()` (node status `networks`:
up or why not), and the status publisher is told.

Watch callbacks only enqueue. Made by `reconciler.daemon.NodeDaemon` when the node's
config has `networks: true`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.network.netreconcile import NetworkReconciler
from reconciler.runtime.watched import WatchedQueue
from reconciler.runtime.workqueue import Result
from statemachine.netplan import LinkSpec, NetworkUp
from store.client import Store
from store.codec import Doc
from store.informer import Change, Informer
from store.netmodel import Network, read_network

log = logging.getLogger(__name__)

COLLECT = "*collect*"  # not a network name (names have no '*')


@dataclass(frozen=True)
class NodeNetSettings:
    """What of the node's config the networks need."""

    name: str
    address: str | None  # the VXLAN's local address (the node's cluster address)
    device: str | None  # bridge_device: the VLAN parent / VXLAN underlay
    netns: str | None  # where the node's links live (dev clusters: a namespace per host)


class NodeNetworks:
    """The networks of one node (see the module doc)."""

    def __init__(self, store: Store, settings: NodeNetSettings, *, nodes: Informer,
                 reconciler: NetworkReconciler, changed: Callable[[], None]) -> None:
        self.store = store
        self.settings = settings
        self.nodes = nodes
        self.reconciler = reconciler
        self.changed = changed
        self.watch = WatchedQueue(store, store.paths.networks, name="network",
                                  node=settings.name, reconcile=self._reconcile)
        self.informer, self.queue = self.watch.informer, self.watch.queue
        self.status: dict[str, NetworkUp] = {}
        self.gateway: dict[str, str] = {}  # networks whose gateway runs here: its state
        self._peers: tuple[str, ...] = ()

    async def start(self) -> None:
        self.nodes.subscribe(self._on_node)
        await self.watch.start(self._on_network, self.resync)

    async def stop(self) -> None:
        await self.watch.stop()

    def resync(self) -> None:
        """Every network again, then a collection (any thread)."""
        self._peers = self._peer_addresses()
        self.queue.enqueue(*self.names(), COLLECT)

    # --- reads -------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.informer.children(self.store.paths.networks))

    def network(self, name: str) -> Network | None:
        found = self.informer.get(self.store.paths.network(name))
        return read_network(name, found.doc) if found is not None and found.doc else None

    def report(self) -> Doc:
        """Node status `networks`: each network's state here."""
        report: Doc = {name: {"up": s.up, "reason": s.reason, "bridge": s.bridge or None}
                       for name, s in sorted(self.status.items())}
        for name, state in self.gateway.items():
            if name in report:
                report[name]["gateway"] = state[:256]
        return report

    def spec_of(self, net: Network) -> LinkSpec:
        s = self.settings
        return LinkSpec(network=net.name, kind=net.kind, vni=net.vni, vlan=net.vlan,
                        bridge=net.bridge, mtu=net.mtu, local=s.address, device=s.device,
                        peers=self._peers if net.managed else ())

    def _peer_addresses(self) -> tuple[str, ...]:
        p = self.store.paths
        found = []
        for name in self.nodes.children(p.nodes):
            status = self.nodes.get(p.node_status(name))
            address = status.doc.get("address") if status is not None else None
            if name != self.settings.name and isinstance(address, str) and address:
                found.append(address.rsplit(":", 1)[0] if address.count(":") == 1 else address)
        return tuple(sorted(set(found)))

    # --- changes (informer threads: enqueue only) ---------------------------------------

    def _on_network(self, change: Change) -> None:
        parts = self.store.paths.split(change.path)
        if len(parts) == 2 and parts[0] == "networks":
            self.queue.enqueue(parts[1], COLLECT)

    def _on_node(self, change: Change) -> None:
        parts = self.store.paths.split(change.path)
        if len(parts) < 2 or parts[0] != "nodes" or parts[-1] not in ("status", parts[1]):
            return
        if len(parts) == 3 and change.old is not None and change.new is not None and \
                change.old.doc.get("address") == change.new.doc.get("address"):
            return  # a heartbeat: the peers are as they were (no scan of every node)
        peers = self._peer_addresses()
        if peers != self._peers:
            self._peers = peers
            self.queue.enqueue(*self.names())

    # --- one key -----------------------------------------------------------------------

    async def _reconcile(self, key: str) -> Result:
        if key == COLLECT:
            return await self._collect()
        net = self.network(key)
        if net is None:
            if self.status.pop(key, None) is not None:
                self.changed()
            return Result.done()
        outcome = await self.reconciler.reconcile(self.spec_of(net))
        if self.status.get(key) != outcome.status:
            self.status[key] = outcome.status
            self.changed()
        return outcome.result

    async def _collect(self) -> Result:
        if not self.informer.wait_synced(0):
            return Result.after(1.0)  # an empty list from a cache not in sync removes all
        specs = [self.spec_of(net) for name in self.names()
                 if (net := self.network(name)) is not None]
        cleanup = await self.reconciler.collect(specs)
        if cleanup.error:
            log.warning("network cleanup on %s: %s", self.settings.name, cleanup.error)
        return cleanup.result
