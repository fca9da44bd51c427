"""The typed Network (issue #14): what the node daemons, the primary's gateway and the
API's checks work with, read from a stored document (`schemas.network` validated it when
it was written). Codec only: no I/O. Used by `server` and `reconciler.network`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store.objects import generation
from vocabulary import AclDirection, NetworkKind


@dataclass(frozen=True)
class IPBlock:
    network: str  # CIDR
    gateway: str
    dhcp_start: str | None = None
    dhcp_end: str | None = None
    lease_time: int = 3600

    @property
    def prefix(self) -> int:
        return int(self.network.rsplit("/", 1)[1])


@dataclass(frozen=True)
class Reservation:
    mac: str
    ip: str
    hostname: str | None = None


@dataclass(frozen=True)
class AclRule:
    name: str
    direction: AclDirection
    order: int
    rule: str


@dataclass(frozen=True)
class Network:
    name: str
    kind: NetworkKind
    generation: int
    vni: int | None = None
    vlan: int | None = None
    bridge: str | None = None  # an existing bridge (bridged networks without a VLAN)
    mtu: int | None = None
    domain: str | None = None
    ipv4: IPBlock | None = None
    ipv6: IPBlock | None = None
    nameservers: tuple[str, ...] = ()
    nat: bool = False
    reservations: tuple[Reservation, ...] = ()
    acl: tuple[AclRule, ...] = ()

    @property
    def managed(self) -> bool:
        return self.kind == NetworkKind.MANAGED

    @property
    def has_gateway(self) -> bool:
        """A managed network with an address block: the primary is its gateway."""
        return self.managed and (self.ipv4 is not None or self.ipv6 is not None)


def _block(doc: Mapping[str, Any] | None) -> IPBlock | None:
    if not doc:
        return None
    dhcp = doc.get("dhcp") or {}
    return IPBlock(str(doc["network"]), str(doc["gateway"]), dhcp.get("start"),
                   dhcp.get("end"), int(dhcp.get("leaseTime", 3600)))


def read_network(name: str, doc: Mapping[str, Any]) -> Network:
    """The typed network of a stored document."""
    spec = doc.get("spec", {})
    return Network(
        name=name, kind=NetworkKind(spec["type"]), generation=generation(doc),
        vni=spec.get("vni"), vlan=spec.get("vlan"), bridge=spec.get("bridge"),
        mtu=spec.get("mtu"), domain=spec.get("domain"), ipv4=_block(spec.get("ipv4")),
        ipv6=_block(spec.get("ipv6")), nameservers=tuple(spec.get("nameservers") or ()),
        nat=bool(spec.get("nat")),
        reservations=tuple(Reservation(r["mac"], r["ip"], r.get("hostname"))
                           for r in spec.get("reservations") or ()),
        acl=tuple(AclRule(r["name"], AclDirection(r["direction"]), int(r.get("order", 1000)),
                          r["rule"]) for r in spec.get("acl") or ()))
