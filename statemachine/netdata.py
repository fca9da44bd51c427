"""The values of `statemachine.netplan`: a network's wanted links on one node (`LinkSpec`),
what the node has (`NetObserved`: links, VXLAN flood lists, libvirt networks), ONE step
(`NetStep`) and a network's status on the node (`NetworkUp`).

Made by herd-node (`reconciler.network`: the daemon builds `LinkSpec`s; `links` and
`libvirtnet` parse what the node reports into `NetObserved` and carry out `NetStep`s); read by
the planner. Pure: imports nothing of the project but `vocabulary`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from vocabulary import NetworkKind

VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
VXLAN_OVERHEAD_V6 = 70  # the same over IPv6 (a 40-byte header)
ALIAS_PREFIX = "herd:"
HERD_NAME = re.compile(r"^h(?:vx|br|vl|bl)[0-9]{1,8}$")  # the names Herd makes (<= 11 chars)
_LIBVIRT_UUIDS = uuid.UUID("7c1e8a52-3f4b-5d0e-9a61-4e2b8f0d6c3a")  # uuid5 namespace


class NetAction(StrEnum):
    """What one step does (the value is how logs name it)."""

    CREATE_VXLAN = "create-vxlan"
    CREATE_VLAN = "create-vlan"
    CREATE_BRIDGE = "create-bridge"
    CLAIM = "claim"  # set the alias herd:<network> on a Herd-named link left without one
    DELETE = "delete"  # delete a Herd link (wrong attributes, or no longer wanted)
    ENSLAVE = "enslave"
    SET_MTU = "set-mtu"
    SET_UP = "set-up"
    ADD_PEER = "add-peer"  # an all-zeros FDB entry to a peer's underlay address
    REMOVE_PEER = "remove-peer"
    DEFINE_NET = "define-net"  # libvirt: persistent bridge-mode network
    START_NET = "start-net"
    AUTOSTART_NET = "autostart-net"
    UNDEFINE_NET = "undefine-net"  # libvirt: stop (if active) and undefine
    DONE = "done"
    BLOCKED = "blocked"


LIBVIRT_ACTIONS = frozenset({NetAction.DEFINE_NET, NetAction.START_NET,
                             NetAction.AUTOSTART_NET, NetAction.UNDEFINE_NET})
FINAL_ACTIONS = frozenset({NetAction.DONE, NetAction.BLOCKED})


@dataclass(frozen=True, kw_only=True)
class LinkSpec:
    """What this node should have for one network (made by the daemon from the Network and
    the node's config): `local` is this node's underlay address, `peers` the other nodes'
    (this node's own address among them is ignored), `device` the underlay device (managed:
    optional, the VXLAN's `dev`) or the VLAN's parent (bridged: the node's bridge_device)."""

    network: str
    kind: NetworkKind
    vni: int | None = None
    vlan: int | None = None
    bridge: str | None = None  # bridged without vlan: the existing bridge
    mtu: int | None = None  # None: the underlay's (managed: minus the VXLAN overhead)
    local: str | None = None
    peers: tuple[str, ...] = ()
    device: str | None = None


@dataclass(frozen=True, kw_only=True)
class Link:
    """One link of the node, as `ip -j -d addr show` reports it."""

    name: str
    kind: str = ""  # linkinfo.info_kind: vxlan, vlan, bridge, veth... ("" for none)
    alias: str = ""  # ifalias
    mtu: int = 1500
    up: bool = False  # administratively up (the UP flag; a bridge without ports has no carrier)
    master: str | None = None
    parent: str | None = None  # vlan: the link it tags on; vxlan: its `dev`
    vid: int | None = None  # vxlan: the VNI; vlan: the VLAN id
    local: str | None = None  # vxlan
    port: int | None = None  # vxlan: the UDP destination port
    learning: bool | None = None  # vxlan
    addresses: tuple[str, ...] = ()

    @property
    def owner(self) -> str | None:
        """The Herd network this link belongs to, by its alias (None: not marked)."""
        return self.alias[len(ALIAS_PREFIX):] if self.alias.startswith(ALIAS_PREFIX) else None

    @property
    def herds(self) -> bool:
        """Made by Herd: a Herd name and a Herd alias (garbage collection needs both)."""
        return self.owner is not None and HERD_NAME.match(self.name) is not None


@dataclass(frozen=True, kw_only=True)
class LinkObservation:
    """The node's links by name, and each VXLAN's flood list (all-zeros FDB `dst`s)."""

    links: Mapping[str, Link] = field(default_factory=dict)
    flood: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LibvirtNet:
    """One libvirt network of the node."""

    name: str
    uuid: str
    bridge: str | None = None
    forward: str | None = None  # the forward mode ("bridge" for Herd's)
    active: bool = False
    autostart: bool = False
    persistent: bool = True

    @property
    def herds(self) -> bool:
        return self.uuid == libvirt_uuid(self.name)


@dataclass(frozen=True, kw_only=True)
class NetObserved:
    """What one reconcile decides on: the links and libvirt's networks (by name)."""

    links: LinkObservation = field(default_factory=LinkObservation)
    nets: Mapping[str, LibvirtNet] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NetStep:
    """ONE thing to do. `device` is the link acted on (libvirt steps: the bridge); `vid` the
    VNI or VLAN id, `parent` the underlay/VLAN parent, `master` the bridge to enslave to."""

    action: NetAction
    network: str
    rule: str  # the row of the table that decided (logs, tests)
    device: str = ""
    vid: int | None = None
    local: str | None = None
    parent: str | None = None
    master: str | None = None
    mtu: int | None = None
    peer: str | None = None
    reason: str = ""  # BLOCKED: why the network cannot be up on this node

    @property
    def final(self) -> bool:
        return self.action in FINAL_ACTIONS


@dataclass(frozen=True, kw_only=True)
class NetworkUp:
    """One network on this node, for the node's status: up, or why not; its bridge."""

    network: str
    up: bool
    reason: str = ""
    bridge: str = ""


def libvirt_uuid(network: str) -> str:
    """The UUID of Herd's libvirt network for `network` (how Herd's are recognised)."""
    return str(uuid.uuid5(_LIBVIRT_UUIDS, network))
