"""The network interfaces of a domain XML (issue #14): which networks a VM names
(`<interface type='network'><source network='NAME'/>`) and which MAC addresses its NICs
have, and the XML with a MAC fixed on every NIC that has none (libvirt would otherwise
pick a new one on every host and start, which breaks DHCP reservations and leases).

When MACs are added the document is serialized again from its element tree: comments
go, the libvirt namespaces keep their usual prefixes. Pure; the parse is
`schemas.domainxml`'s (defused, depth-bounded). Used by `server` (define, modify,
replace, apply; the cluster's MAC index) and the primary's placement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element, register_namespace, tostring

from marshmallow import ValidationError

from schemas.domainxml import memoized, parse_domain_xml
from schemas.netaddr import normal_mac

NAMESPACES = {"qemu": "http://libvirt.org/schemas/domain/qemu/1.0",
              "lxc": "http://libvirt.org/schemas/domain/lxc/1.0",
              "xen": "http://libvirt.org/schemas/domain/xen/1.0"}
for _prefix, _uri in NAMESPACES.items():
    register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class Nic:
    index: int  # position among the domain's <interface> elements
    type: str
    network: str | None  # the network named by <source network=...> (type 'network')
    mac: str | None


def _interfaces(root: Element) -> list[Element]:
    devices = root.find("devices")
    return [] if devices is None else devices.findall("interface")


def _nic(index: int, element: Element) -> Nic:
    source = element.find("source")
    mac = element.find("mac")
    address = mac.get("address") if mac is not None else None
    if address is not None:
        try:
            address = normal_mac(address)
        except ValidationError as e:
            raise ValidationError(f"interface {index}: {e.messages[0]}") from None
    kind = element.get("type", "")
    network = source.get("network") if source is not None and kind == "network" else None
    return Nic(index, kind, network, address)


def _domain_nics(xml: str) -> tuple[Nic, ...]:
    if "<interface" not in xml:
        return ()
    return tuple(_nic(i, e) for i, e in enumerate(_interfaces(parse_domain_xml(xml))))


domain_nics = memoized(_domain_nics)


def networks_named(xml: str) -> tuple[str, ...]:
    """The networks the domain's NICs name, each once, in order."""
    return tuple(dict.fromkeys(n.network for n in domain_nics(xml) if n.network))


def macs_of(xml: str) -> tuple[str, ...]:
    return tuple(n.mac for n in domain_nics(xml) if n.mac is not None)


def with_macs(xml: str, macs: Sequence[str]) -> str:
    """`xml` with `macs` given, in order, to the NICs that have no MAC (as many as there
    are such NICs); unchanged when every NIC has one."""
    missing = [n.index for n in domain_nics(xml) if n.mac is None]
    if not missing:
        return xml
    if len(macs) < len(missing):
        raise ValueError(f"{len(missing)} NICs need a MAC, {len(macs)} given")
    root = parse_domain_xml(xml)
    interfaces = _interfaces(root)
    for index, mac in zip(missing, macs, strict=False):
        element = interfaces[index]
        fixed = Element("mac", {"address": mac})
        fixed.tail = element.text
        element.insert(0, fixed)
    return tostring(root, encoding="unicode")

