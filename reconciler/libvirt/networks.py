"""The blocking libvirt network verbs behind `reconciler.network.libvirtnet.LibvirtNetworks`.

Each function takes the node's `Connection` (the one `LibvirtHypervisor` uses) and runs in
a worker thread. Herd's networks are bridge mode on a bridge that exists already
(`<forward mode='bridge'/><bridge name=.../>`), with a UUID derived from the name
(`statemachine.netplan.libvirt_uuid`), which is how they are told from the operator's.
Idempotent: starting an active network, undefining an absent one are no-ops. Every libvirt
failure comes out as `HypervisorError`.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import libvirt
from defusedxml import ElementTree

from reconciler.libvirt.connection import Connection, libvirt_call
from statemachine.netplan import LibvirtNet, libvirt_uuid


def network_xml(name: str, bridge: str) -> str:
    """The definition of Herd's libvirt network `name` on `bridge`."""
    return (f"<network><name>{escape(name)}</name><uuid>{libvirt_uuid(name)}</uuid>"
            f"<forward mode='bridge'/><bridge name={quoteattr(bridge)}/></network>")


def list_networks(c: Connection) -> dict[str, LibvirtNet]:
    """Every libvirt network of the node, active or only defined, by name."""
    with libvirt_call(f"cannot list networks on {c.uri}"):
        found = [_describe(net) for net in c.get().listAllNetworks()]
    return {net.name: net for net in found}


def _describe(net: libvirt.virNetwork) -> LibvirtNet:
    root = ElementTree.fromstring(net.XMLDesc(0))
    forward, bridge = root.find("forward"), root.find("bridge")
    return LibvirtNet(
        name=str(net.name()), uuid=str(net.UUIDString()),
        bridge=None if bridge is None else bridge.get("name"),
        forward=None if forward is None else forward.get("mode", "nat"),
        active=bool(net.isActive()), autostart=bool(net.autostart()),
        persistent=bool(net.isPersistent()))


def _find(c: Connection, name: str) -> libvirt.virNetwork | None:
    try:
        return c.get().networkLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return None
        raise


def define(c: Connection, name: str, *, bridge: str) -> None:
    """Define (or make persistent) Herd's network `name` on `bridge`."""
    with libvirt_call(f"cannot define network {name!r} on {c.uri}"):
        c.get().networkDefineXML(network_xml(name, bridge))


def start(c: Connection, name: str) -> None:
    """Start the network; an active one is left as it is."""
    with libvirt_call(f"cannot start network {name!r} on {c.uri}"):
        net = c.get().networkLookupByName(name)
        if not net.isActive():
            net.create()


def autostart(c: Connection, name: str) -> None:
    """Have libvirtd start the network when it starts."""
    with libvirt_call(f"cannot set autostart of network {name!r} on {c.uri}"):
        c.get().networkLookupByName(name).setAutostart(1)


def undefine(c: Connection, name: str) -> None:
    """Stop the network if active and remove its definition; absent: no-op. The bridge
    stays (bridge mode: libvirt never made it)."""
    with libvirt_call(f"cannot remove network {name!r} on {c.uri}"):
        net = _find(c, name)
        if net is None:
            return
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()
