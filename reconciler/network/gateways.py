"""`NodeGateways`: which node is the gateway of each managed network (issue #14).

The primary coordinator is the gateway of every managed network that has an IPv4 block
with a DHCP range and is up on it: it holds the network's address on the bridge, runs
its dnsmasq (`reconciler.network.gateway.Gateway`) and its firewall rules and NAT
(`reconciler.network.firewall`). Never two at once: the holder is
recorded in `<root>/networks/<net>/gateway` (`store.networks.take_gateway`), a znode
that outlives sessions, and a node takes it only when it is absent:
- a node that is not (or no longer) the primary stops its gateways, then removes its
  hold (version-checked); a daemon stopping does the same;
- a new primary waits while another node holds a gateway: while that node is alive it
  will let go; once it is dead, only its fence lets go for it (its status says
  `fenced`): a frozen primary may still answer DHCP until its power is cut.
Leases go to `<root>/networks/<net>/leases` as dnsmasq reports them, and a new holder's
dnsmasq starts from them. One work queue, one worker, a key per network; watch callbacks
only enqueue. Made by `reconciler.daemon` on coordinator nodes that manage networks.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.network.dnsmasq import AddressPlan, DhcpPool, GatewaySpec, Lease, Reservation
from reconciler.network.firewall import Firewall, FirewallError, ruleset
from reconciler.network.gateway import Gateway, GatewayState
from reconciler.network.leasechannel import LeaseAction, LeaseEvent
from reconciler.network.nodenets import NodeNetworks
from reconciler.runtime.controller import Controller
from reconciler.runtime.workqueue import Result
from statemachine.netplan import bridge_of
from store import networks
from store.client import Store, Versioned
from store.errors import AlreadyExists, NotFound, StoreError
from store.informer import Change, Informer
from store.netmodel import IPBlock, Network

log = logging.getLogger(__name__)

WAIT = 1.0  # seconds between looks while another node holds a gateway
LEASE_SCRIPT = str(Path(sys.executable).with_name("herd-dnsmasq-lease"))


def plan_of(block: IPBlock) -> AddressPlan:
    pool = (DhcpPool(block.dhcp_start, block.dhcp_end, block.lease_time)
            if block.dhcp_start and block.dhcp_end else None)
    return AddressPlan(block.network, block.gateway, pool)


def gateway_spec(net: Network, bridge: str, run_dir: str) -> GatewaySpec | None:
    """The gateway of `net` on its bridge, or None when it has none (no IPv4 range)."""
    if not net.managed or net.ipv4 is None or not net.ipv4.dhcp_start:
        return None
    return GatewaySpec(
        name=net.name, bridge=bridge, domain=net.domain or f"{net.name}.herd.internal",
        ipv4=plan_of(net.ipv4), ipv6=plan_of(net.ipv6) if net.ipv6 else None,
        run_dir=f"{run_dir}/networks/{net.name}", nameservers=net.nameservers,
        reservations=tuple(Reservation(r.mac, r.ip, r.hostname or _name_of(r.mac))
                           for r in net.reservations if ":" not in r.ip))


def _name_of(mac: str) -> str:
    """The DNS name of a reservation that gives none: `r-525400aabbcc`."""
    return "r-" + mac.replace(":", "")


@dataclass(frozen=True)
class GatewaySettings:
    node: str
    netns: str | None
    run_dir: str
    lease_script: str = LEASE_SCRIPT


class NodeGateways:
    """The gateways this node holds (see the module doc)."""

    def __init__(self, store: Store, settings: GatewaySettings, *, nets: NodeNetworks,
                 nodes: Informer, is_primary: Callable[[], bool]) -> None:
        self.store = store
        self.settings = settings
        self.nets = nets
        self.nodes = nodes
        self.is_primary = is_primary
        self.queue = Controller("gateway", self._reconcile, node=settings.node, workers=1)
        self.running: dict[str, Gateway] = {}
        self.firewall = Firewall(settings.netns)
        self.walls: dict[str, tuple[Network, str]] = {}  # applied: the network, its text

    async def start(self) -> None:
        self.queue.bind(asyncio.get_running_loop())
        self.nets.informer.subscribe(self._on_network)
        self.nodes.subscribe(self._on_node)
        self.queue.start()
        self.resync()

    def resync(self) -> None:
        """Every network again (any thread): a term began or ended, a node changed."""
        self.queue.enqueue(*self.nets.names())

    async def stop(self) -> None:
        """Every gateway of this node stopped and let go (the daemon is stopping)."""
        await self.queue.stop()
        for name in sorted(self.running):
            await self._release(name)

    def _on_node(self, change: Change) -> None:
        """A node came or went, or was fenced: a hold of its may now be taken over (not on
        every heartbeat: those change nothing here)."""
        parts = self.store.paths.split(change.path)
        fenced = any(v is not None and v.doc.get("daemonState") == "fenced"
                     for v in (change.old, change.new))
        if len(parts) == 2 or (len(parts) == 3 and (parts[2] == "alive" or fenced)):
            self.resync()

    def _on_network(self, change: Change) -> None:
        parts = self.store.paths.split(change.path)
        if len(parts) in (2, 3) and parts[0] == "networks" and (
                len(parts) == 2 or parts[2] == "gateway"):
            self.queue.enqueue(parts[1])

    # --- one network --------------------------------------------------------------------

    def _wanted(self, name: str) -> GatewaySpec | None:
        net = self.nets.network(name)
        up = self.nets.status.get(name)
        if net is None or up is None or not up.up or not self.is_primary():
            return None
        return gateway_spec(net, up.bridge or bridge_of(self.nets.spec_of(net)),
                            self.settings.run_dir)

    async def _reconcile(self, name: str) -> Result:
        spec = self._wanted(name)
        if spec is None:
            await self._release(name)
            return Result.done()
        hold = self.nets.informer.get(self.store.paths.network_gateway(name))
        holder = hold.doc.get("node") if hold is not None else None
        if holder is None:
            return await self._take(name)
        if holder != self.settings.node:
            return await self._wait_for(name, str(holder), hold)
        return await self._serve(name, spec)

    async def _take(self, name: str) -> Result:
        try:
            await asyncio.to_thread(networks.take_gateway, self.store, name, self.settings.node)
        except (AlreadyExists, NotFound):
            pass  # another took it, or the network went: the watch brings the key back
        return Result.after(WAIT)

    async def _wait_for(self, name: str, holder: str, hold: Versioned | None) -> Result:
        """Another node holds the gateway: wait for it to let go, or for its fence."""
        p = self.store.paths
        status = self.nodes.get(p.node_status(holder))
        fenced = status is not None and status.doc.get("daemonState") == "fenced"
        gone = self.nodes.get(p.node(holder)) is None
        if (fenced or gone) and hold is not None:
            log.warning("network %s: taking the gateway over from %s (%s)", name, holder,
                        "fenced" if fenced else "no longer a node")
            await asyncio.to_thread(networks.release_gateway, self.store, name,
                                    version=hold.version)
            return Result.after(0.0)
        return Result.after(WAIT)

    async def _serve(self, name: str, spec: GatewaySpec) -> Result:
        gateway = self.running.get(name)
        if gateway is None:
            gateway = self.running[name] = Gateway(
                spec, on_lease=self._on_lease, leases=lambda: self._leases(name),
                lease_script=self.settings.lease_script, netns=self.settings.netns)
            status = await gateway.start()
        else:
            status = await gateway.update(spec)
        state = str(status.state) + (f": {status.reason}" if status.reason else "")
        if status.state == GatewayState.RUNNING:
            state = await self._wall(name, spec.bridge) or state
        if self.nets.gateway.get(name) != state:
            self.nets.gateway[name] = state
            self.nets.changed()
        return Result.done() if state == "running" else Result.after(5.0)

    async def _wall(self, name: str, bridge: str) -> str | None:
        """The network's firewall and NAT in place; None, or why not."""
        net = self.nets.network(name)
        if net is None:
            return None
        text = ruleset(net, bridge)
        if self.walls.get(name, (None, ""))[1] == text:
            return None
        try:
            await self.firewall.apply(net, bridge)
        except FirewallError as e:
            log.warning("network %s: firewall not applied: %s", name, e)
            return f"running, firewall failed: {e}"
        self.walls[name] = (net, text)
        return None

    async def _release(self, name: str) -> None:
        wall = self.walls.pop(name, None)
        if wall is not None:
            try:
                await self.firewall.remove(wall[0])
            except FirewallError as e:
                log.warning("network %s: firewall not removed: %s", name, e)
        gateway = self.running.pop(name, None) or self._leftover(name)
        if gateway is not None:
            await gateway.stop()
            if self.nets.gateway.pop(name, None) is not None:
                self.nets.changed()
        hold = self.nets.informer.get(self.store.paths.network_gateway(name))
        if hold is not None and hold.doc.get("node") == self.settings.node:
            try:
                await asyncio.to_thread(networks.release_gateway, self.store, name,
                                        version=hold.version)
            except StoreError as e:
                log.warning("network %s: the gateway's hold stays for now: %s", name, e)

    def _leftover(self, name: str) -> Gateway | None:
        """A gateway an earlier daemon of this node left running (its pid file is there):
        a `Gateway` to stop it with, if the network still says how."""
        net = self.nets.network(name)
        spec = gateway_spec(net, bridge_of(self.nets.spec_of(net)), self.settings.run_dir) \
            if net is not None else None
        if spec is None or not Path(spec.pid_file).exists():
            return None
        return Gateway(spec, on_lease=self._on_lease, leases=lambda: self._leases(name),
                       lease_script=self.settings.lease_script, netns=self.settings.netns)

    # --- leases ---------------------------------------------------------------------------

    async def _on_lease(self, event: LeaseEvent) -> None:
        lease = event.lease
        if event.action == LeaseAction.DEL:
            await asyncio.to_thread(networks.drop_lease, self.store, event.network, lease.mac)
            return
        doc = networks.lease_doc(mac=lease.mac, ip=lease.ip, hostname=lease.hostname,
                                 expiry=float(lease.expiry))
        await asyncio.to_thread(networks.put_lease, self.store, event.network, doc)

    async def _leases(self, name: str) -> Sequence[Lease]:
        found = await asyncio.to_thread(networks.leases, self.store, name)
        return [Lease(str(d["mac"]), str(d["ip"]), d.get("hostname"), int(d["expiry"]))
                for d in found]
