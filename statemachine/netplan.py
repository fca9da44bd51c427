"""`plan_network` and `plan_removal`: the links of client networks on ONE node, pure.

Role: herd-node's network reconciler (`reconciler.network.netreconcile`) observes the
node's links (`ip -j -d addr show`, `bridge -j fdb show`) and libvirt's networks, and asks
for ONE step towards what a `LinkSpec` wants; it carries the step out and asks again
(level-triggered: the answer depends on the world only, never on what was done before).
- managed: a VXLAN `hvx<vni>` (learning, head-end replication: one all-zeros FDB entry per
  peer) enslaved to a bridge `hbr<vni>`, both at the network's MTU;
- bridged with a VLAN: a VLAN link `hvl<vlan>` on the node's device, in a bridge `hbl<vlan>`;
- bridged with an existing bridge: only checked (exists, is a bridge, is up);
- every kind: a persistent, autostarted, active libvirt network of the network's name in
  bridge mode on that bridge, its UUID derived from the name (`libvirt_uuid`: how Herd's
  libvirt networks are told from the operator's).
`ROWS` is the table: the first row whose condition holds decides; tests enumerate it.
`plan_removal` removes Herd's links (a Herd name AND the alias `herd:<network>`) and
Herd's libvirt networks that no wanted network keeps, one at a time. The values (spec,
observation, step, status) live in `statemachine.netdata` and are re-exported here;
docs/networks-node.md explains the choices. Pure: imports nothing of the project but
`statemachine.netdata` and `vocabulary`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from ipaddress import ip_address

from statemachine.netdata import (
    ALIAS_PREFIX,
    FINAL_ACTIONS,
    HERD_NAME,
    LIBVIRT_ACTIONS,
    VXLAN_OVERHEAD,
    VXLAN_OVERHEAD_V6,
    VXLAN_PORT,
    LibvirtNet,
    Link,
    LinkObservation,
    LinkSpec,
    NetAction,
    NetObserved,
    NetStep,
    NetworkUp,
    libvirt_uuid,
)
from vocabulary import NetworkKind

__all__ = [
    "ALIAS_PREFIX",
    "FINAL_ACTIONS",
    "HERD_NAME",
    "LIBVIRT_ACTIONS",
    "ROWS",
    "VXLAN_OVERHEAD",
    "VXLAN_OVERHEAD_V6",
    "VXLAN_PORT",
    "Ctx",
    "Keep",
    "LibvirtNet",
    "Link",
    "LinkObservation",
    "LinkSpec",
    "NetAction",
    "NetObserved",
    "NetStep",
    "NetworkUp",
    "bridge_of",
    "keep_all_but",
    "keep_for",
    "libvirt_uuid",
    "link_names",
    "plan_network",
    "plan_removal",
    "row",
    "status_of",
]


def link_names(spec: LinkSpec) -> tuple[str | None, str | None]:
    """The (port, bridge) links Herd makes for spec: the VXLAN or VLAN and its bridge;
    (None, None) for an existing bridge or an incomplete spec."""
    if spec.kind == NetworkKind.MANAGED and spec.vni is not None:
        return f"hvx{spec.vni}", f"hbr{spec.vni}"
    if spec.kind == NetworkKind.BRIDGED and spec.vlan is not None:
        return f"hvl{spec.vlan}", f"hbl{spec.vlan}"
    return None, None


def bridge_of(spec: LinkSpec) -> str:
    """The bridge guests of the network attach to on this node ("" if the spec has none)."""
    own = link_names(spec)[1]
    return own if own is not None else (spec.bridge or "")


def status_of(spec: LinkSpec, step: NetStep) -> NetworkUp:
    """The status of a network whose reconcile ended on `step` (DONE: up)."""
    up = step.action == NetAction.DONE
    return NetworkUp(network=spec.network, up=up, reason="" if up else step.reason,
                     bridge=bridge_of(spec))


# --- the context the table reads ------------------------------------------------------------

@dataclass(frozen=True)
class Ctx:
    """A spec against an observation, with what the rows ask precomputed."""

    spec: LinkSpec
    seen: NetObserved

    @cached_property
    def names(self) -> tuple[str | None, str | None]:
        return link_names(self.spec)

    @property
    def port(self) -> Link | None:
        return self._link(self.names[0])

    @property
    def own_bridge(self) -> Link | None:
        return self._link(self.names[1])

    @property
    def existing(self) -> Link | None:
        return self._link(self.spec.bridge) if self.names[1] is None else None

    @cached_property
    def underlay(self) -> Link | None:
        """managed: the device, else the link holding the local address; bridged: the device."""
        if self.spec.device is not None or self.spec.kind == NetworkKind.BRIDGED:
            return self._link(self.spec.device)
        return next((link for link in self.seen.links.links.values()
                     if self.local in link.addresses), None)

    @cached_property
    def mtu(self) -> int | None:
        """The MTU of Herd's links: asked, else the most the underlay allows."""
        if self.spec.mtu is not None:
            return self.spec.mtu
        return None if self.underlay is None else self.underlay.mtu - self.overhead

    @cached_property
    def peers(self) -> frozenset[str]:
        return frozenset(_canonical(p) for p in self.spec.peers) - {self.local}

    @property
    def flood(self) -> frozenset[str]:
        port = self.names[0]
        return self.seen.links.flood.get(port, frozenset()) if port else frozenset()

    @property
    def net(self) -> LibvirtNet | None:
        return self.seen.nets.get(self.spec.network)

    @property
    def overhead(self) -> int:
        """What encapsulation takes of the underlay's MTU (managed: VXLAN over IPv4 or 6)."""
        if self.spec.kind != NetworkKind.MANAGED:
            return 0
        return VXLAN_OVERHEAD_V6 if ":" in (self.spec.local or "") else VXLAN_OVERHEAD

    @cached_property
    def local(self) -> str:
        return _canonical(self.spec.local)

    def step(self, action: NetAction, device: str | None, *, vid: int | None = None,
             local: str | None = None, parent: str | None = None, master: str | None = None,
             mtu: int | None = None, peer: str | None = None, reason: str = "") -> NetStep:
        """A step of this spec's network (its rule is filled in by `plan_network`)."""
        return NetStep(action=action, network=self.spec.network, rule="", device=device or "",
                       vid=vid, local=local, parent=parent, master=master, mtu=mtu, peer=peer,
                       reason=reason)

    def _link(self, name: str | None) -> Link | None:
        return None if name is None else self.seen.links.links.get(name)


def _canonical(address: str | None) -> str:
    try:
        return ip_address(address or "").compressed
    except ValueError:
        return address or ""


# --- preconditions: reasons the network cannot be up here -----------------------------------

def _spec_problem(spec: LinkSpec) -> str | None:
    if spec.kind == NetworkKind.MANAGED:
        if spec.vni is None or spec.local is None:
            return "managed network without a vni or this node's underlay address"
        return _address_problem(spec.local, spec.peers)
    if spec.vlan is None and spec.bridge is None:
        return "bridged network without a vlan or a bridge"
    if spec.vlan is not None and spec.device is None:
        return f"vlan {spec.vlan} needs a bridge_device on this node"
    return None


def _address_problem(local: str, peers: Iterable[str]) -> str | None:
    try:
        family = ip_address(local).version
    except ValueError:
        return f"underlay address {local!r} is not an IP address"
    for peer in peers:
        try:
            if ip_address(peer).version != family:
                return f"peer {peer} is not IPv{family} like the local address {local}"
        except ValueError:
            return f"peer {peer!r} is not an IP address"
    return None


def _underlay_problem(c: Ctx) -> str | None:
    spec, under = c.spec, c.underlay
    if spec.device is not None and under is None:
        return f"device {spec.device} not found"
    if spec.kind == NetworkKind.MANAGED and not any(
            c.local in link.addresses for link in c.seen.links.links.values()):
        return f"local address {spec.local} is not on this node"
    if under is not None and not under.up:
        return f"device {under.name} is down"
    return None


def _mtu_problem(c: Ctx) -> str | None:
    under, mtu = c.underlay, c.spec.mtu
    if under is None or mtu is None or mtu <= under.mtu - c.overhead:
        return None
    if c.spec.kind == NetworkKind.MANAGED:
        return f"mtu {mtu} exceeds underlay {under.name}'s {under.mtu} - {c.overhead}"
    return f"mtu {mtu} exceeds device {under.name}'s {under.mtu}"


def _existing_problem(c: Ctx) -> str | None:
    name, link = c.spec.bridge, c.existing
    if link is None:
        return f"bridge {name} does not exist"
    if link.kind != "bridge":
        return f"{name} is not a bridge"
    return None if link.up else f"bridge {name} is down"


def _foreign(link: Link | None, c: Ctx, *, kind: str) -> str | None:
    """Why a link of Herd's name is not ours to use (another network's, or the operator's)."""
    if link is None or link.owner == c.spec.network:
        return None
    if link.owner is not None:
        return f"{link.name} belongs to Herd network {link.owner}"
    if link.alias or link.kind != kind:
        return f"{link.name} exists and is not Herd's"
    return None  # a link of the right kind and Herd's name, unmarked: ours, half-made


def _port_kind(c: Ctx) -> str:
    return "vxlan" if c.spec.kind == NetworkKind.MANAGED else "vlan"


def _port_wrong(c: Ctx) -> bool:
    """Our VXLAN/VLAN, with attributes only re-creating it changes."""
    link, spec = c.port, c.spec
    if link is None or link.owner != spec.network:
        return False
    if spec.kind == NetworkKind.BRIDGED:
        return (link.kind, link.vid, link.parent) != ("vlan", spec.vlan, spec.device)
    wanted = ("vxlan", spec.vni, c.local, VXLAN_PORT, True, spec.device)
    return (link.kind, link.vid, _canonical(link.local), link.port, link.learning,
            link.parent) != wanted


def _net_wrong(c: Ctx) -> bool:
    net = c.net
    return net is not None and net.herds and (net.forward, net.bridge) != (
        "bridge", bridge_of(c.spec))


# --- the table ------------------------------------------------------------------------------

def _blocked(reason: Callable[[Ctx], str | None]) -> Callable[[Ctx], NetStep]:
    return lambda c: c.step(NetAction.BLOCKED, None, reason=reason(c) or "")


def _create_port(c: Ctx) -> NetStep:
    if c.spec.kind == NetworkKind.MANAGED:
        return c.step(NetAction.CREATE_VXLAN, c.names[0], vid=c.spec.vni, local=c.spec.local,
                      parent=c.spec.device, mtu=c.mtu)
    return c.step(NetAction.CREATE_VLAN, c.names[0], vid=c.spec.vlan, parent=c.spec.device,
                  mtu=c.mtu)


def _managed(c: Ctx) -> bool:
    return c.spec.kind == NetworkKind.MANAGED


def _needs_existing(c: Ctx) -> bool:
    return c.names[1] is None


def _on_net(action: NetAction) -> Callable[[Ctx], NetStep]:
    return lambda c: c.step(action, bridge_of(c.spec))


Row = tuple[str, Callable[[Ctx], bool], Callable[[Ctx], NetStep]]

# The first row whose condition holds decides; the last always holds.
ROWS: tuple[Row, ...] = (
    ("spec-invalid", lambda c: _spec_problem(c.spec) is not None,
     _blocked(lambda c: _spec_problem(c.spec))),
    ("existing-bridge-unusable", lambda c: _needs_existing(c) and _existing_problem(c) is not None,
     _blocked(_existing_problem)),
    ("underlay-unusable", lambda c: not _needs_existing(c) and _underlay_problem(c) is not None,
     _blocked(_underlay_problem)),
    ("mtu-too-big", lambda c: not _needs_existing(c) and _mtu_problem(c) is not None,
     _blocked(_mtu_problem)),
    ("port-foreign", lambda c: _foreign(c.port, c, kind=_port_kind(c)) is not None,
     _blocked(lambda c: _foreign(c.port, c, kind=_port_kind(c)))),
    ("bridge-foreign", lambda c: _foreign(c.own_bridge, c, kind="bridge") is not None,
     _blocked(lambda c: _foreign(c.own_bridge, c, kind="bridge"))),
    ("net-foreign", lambda c: c.net is not None and not c.net.herds,
     _blocked(lambda c: f"libvirt network {c.spec.network} exists and is not Herd's")),
    ("port-claim", lambda c: c.port is not None and c.port.owner is None,
     lambda c: c.step(NetAction.CLAIM, c.names[0])),
    ("bridge-claim", lambda c: c.own_bridge is not None and c.own_bridge.owner is None,
     lambda c: c.step(NetAction.CLAIM, c.names[1])),
    ("port-wrong", _port_wrong, lambda c: c.step(NetAction.DELETE, c.names[0])),
    ("bridge-wrong", lambda c: c.own_bridge is not None and c.own_bridge.kind != "bridge",
     lambda c: c.step(NetAction.DELETE, c.names[1])),
    ("port-missing", lambda c: c.names[0] is not None and c.port is None, _create_port),
    ("bridge-missing", lambda c: c.names[1] is not None and c.own_bridge is None,
     lambda c: c.step(NetAction.CREATE_BRIDGE, c.names[1], mtu=c.mtu)),
    ("port-unenslaved", lambda c: c.port is not None and c.port.master != c.names[1],
     lambda c: c.step(NetAction.ENSLAVE, c.names[0], master=c.names[1])),
    ("port-mtu", lambda c: c.port is not None and c.port.mtu != c.mtu,
     lambda c: c.step(NetAction.SET_MTU, c.names[0], mtu=c.mtu)),
    ("bridge-mtu", lambda c: c.own_bridge is not None and c.own_bridge.mtu != c.mtu,
     lambda c: c.step(NetAction.SET_MTU, c.names[1], mtu=c.mtu)),
    ("port-down", lambda c: c.port is not None and not c.port.up,
     lambda c: c.step(NetAction.SET_UP, c.names[0])),
    ("bridge-down", lambda c: c.own_bridge is not None and not c.own_bridge.up,
     lambda c: c.step(NetAction.SET_UP, c.names[1])),
    ("peer-missing", lambda c: _managed(c) and bool(c.peers - c.flood),
     lambda c: c.step(NetAction.ADD_PEER, c.names[0], peer=min(c.peers - c.flood))),
    ("peer-stale", lambda c: _managed(c) and bool(c.flood - c.peers),
     lambda c: c.step(NetAction.REMOVE_PEER, c.names[0], peer=min(c.flood - c.peers))),
    ("net-wrong", _net_wrong, _on_net(NetAction.UNDEFINE_NET)),
    ("net-missing", lambda c: c.net is None or not c.net.persistent,
     _on_net(NetAction.DEFINE_NET)),
    ("net-inactive", lambda c: c.net is not None and not c.net.active,
     _on_net(NetAction.START_NET)),
    ("net-autostart", lambda c: c.net is not None and not c.net.autostart,
     _on_net(NetAction.AUTOSTART_NET)),
    ("done", lambda c: True, _on_net(NetAction.DONE)),
)  # fmt: skip


def row(spec: LinkSpec, observed: NetObserved) -> Row:
    """The row of `ROWS` that decides (spec, observed)."""
    c = Ctx(spec, observed)
    return next(r for r in ROWS if r[1](c))


def plan_network(spec: LinkSpec, observed: NetObserved) -> NetStep:
    """The ONE step towards what spec wants on this node (DONE, or BLOCKED with a reason)."""
    name, _, then = row(spec, observed)
    return replace(then(Ctx(spec, observed)), rule=name)


# --- garbage collection ---------------------------------------------------------------------

Keep = Mapping[str, frozenset[str]]  # wanted network -> the Herd links it keeps


def keep_for(specs: Iterable[LinkSpec]) -> Keep:
    """What the wanted networks keep: each its own links (and its libvirt network)."""
    return {s.network: frozenset(n for n in link_names(s) if n is not None) for s in specs}


def keep_all_but(network: str, observed: NetObserved) -> Keep:
    """Everything Herd has on the node but what belongs to `network`."""
    keep: dict[str, set[str]] = {n.name: set() for n in observed.nets.values()
                                 if n.herds and n.name != network}
    for link in observed.links.links.values():
        if link.herds and link.owner != network:
            keep.setdefault(link.owner or "", set()).add(link.name)
    return {name: frozenset(links) for name, links in keep.items()}


def plan_removal(keep: Keep, observed: NetObserved) -> NetStep:
    """ONE step removing what Herd made for networks that `keep` does not keep: libvirt
    networks first, then links (VXLAN/VLAN before bridges); DONE when nothing is left."""
    for net in sorted(observed.nets.values(), key=lambda n: n.name):
        if net.herds and net.name not in keep:
            return NetStep(action=NetAction.UNDEFINE_NET, network=net.name,
                           rule="net-unwanted", device=net.bridge or "")
    doomed = [link for link in observed.links.links.values() if link.herds
              and link.name not in keep.get(link.owner or "", frozenset())]
    if doomed:
        link = min(doomed, key=lambda k: (k.kind == "bridge", k.name))
        return NetStep(action=NetAction.DELETE, network=link.owner or "",
                       rule="link-unwanted", device=link.name)
    return NetStep(action=NetAction.DONE, network="", rule="nothing-unwanted")
