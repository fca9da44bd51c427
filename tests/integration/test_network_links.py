"""Client networks on real links: `NetworkReconciler` with `Links` in network namespaces
and `LibvirtNetworks` on libvirt's test driver.

The lab (`tests.support.nodelab`, one per test, deleted in teardown whatever happens): three
"node" namespaces, each with a veth `u0` (10.77.0.N/24, MTU 1500) on a bridge in a
"switch" namespace: the underlay. Each node has a libvirt of its own (a test-driver node
file). Guests are namespaces with a veth on a Herd bridge; they reach each other across
the VXLAN (an ICMP echo from inside the guest; this machine has no `ping`). Checked on
the world itself: `ip -j -d link show`, `bridge -j fdb show`, what libvirt lists.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt
import pytest

from reconciler.libvirt.adapter import LibvirtHypervisor
from reconciler.network.libvirtnet import LibvirtNetworks
from reconciler.network.links import Links
from reconciler.network.netreconcile import BLOCKED_LOOK, NetworkReconciler
from statemachine.netplan import LinkSpec, libvirt_uuid
from tests.support.libvirt_nodes import write_node_file
from tests.support.nodelab import ADDRESS, NODES, Lab, lab, sh
from vocabulary import NetworkKind

__all__ = ["lab"]  # the fixture, used by name


@pytest.fixture
async def hypervisors(tmp_path: Path) -> AsyncIterator[dict[str, LibvirtHypervisor]]:
    """A libvirt of each node's own (test-driver node files: private state per connection)."""
    hvs = {node: LibvirtHypervisor(write_node_file(tmp_path, node, cpus=2, memory_mib=2048))
           for node in NODES}
    try:
        for hv in hvs.values():
            await hv.open()
        yield hvs
    finally:
        for hv in hvs.values():
            await hv.close()


@pytest.fixture
def nodes(lab: Lab, hypervisors: dict[str, LibvirtHypervisor]) -> dict[str, NetworkReconciler]:
    return {node: NetworkReconciler(Links(lab.ns(node)), LibvirtNetworks.of(hypervisors[node]))
            for node in NODES}


def managed(node: str, *, vni: int = 4242, peers: tuple[str, ...] = NODES,
            **changes: Any) -> LinkSpec:
    spec = LinkSpec(network="blue", kind=NetworkKind.MANAGED, vni=vni, local=ADDRESS[node],
                    peers=tuple(ADDRESS[p] for p in peers))
    return replace(spec, **changes)


def project(link: dict[str, Any]) -> tuple[Any, ...]:
    """What Herd could change of a link (not the timers `ip -d` shows)."""
    return tuple(link.get(key) for key in ("ifindex", "mtu", "flags", "master", "ifalias"))


def libvirt_networks(hv: LibvirtHypervisor) -> dict[str, libvirt.virNetwork]:
    return {str(n.name()): n for n in hv.connection.get().listAllNetworks()}


# --- managed ----------------------------------------------------------------------------------

async def test_managed_network_carries_guests_across_nodes(
        lab: Lab, nodes: dict[str, NetworkReconciler],
        hypervisors: dict[str, LibvirtHypervisor]) -> None:
    for node, reconciler in nodes.items():
        out = await reconciler.reconcile(managed(node))
        assert out.status.up and out.status.bridge == "hbr4242", out.status
    links = lab.links("a")
    vx, br = links["hvx4242"], links["hbr4242"]
    assert vx["linkinfo"]["info_data"] | {"id": 4242, "local": ADDRESS["a"], "port": 4789,
                                          "learning": True} == vx["linkinfo"]["info_data"]
    assert (vx["mtu"], br["mtu"], vx["master"], vx["ifalias"], br["ifalias"]) == (
        1450, 1450, "hbr4242", "herd:blue", "herd:blue")
    assert "UP" in vx["flags"] and "UP" in br["flags"]
    assert lab.flood("a", "hvx4242") == {ADDRESS["b"], ADDRESS["c"]}
    net = libvirt_networks(hypervisors["a"])["blue"]
    assert net.isActive() and net.autostart() and net.isPersistent()
    assert net.bridgeName() == "hbr4242" and net.UUIDString() == libvirt_uuid("blue")

    guest_a = lab.guest("a", "hbr4242", "192.168.77.1")
    lab.guest("b", "hbr4242", "192.168.77.2")
    assert await lab.ping(guest_a, "192.168.77.2")
    assert await lab.ping(guest_a, "192.168.77.2", size=1422)  # a full 1450-byte packet, DF
    again = await nodes["a"].reconcile(managed("a"))
    assert again.status.up and again.steps == ()  # level-triggered: nothing left to do


async def test_a_removed_peer_loses_its_flood_entry(
        lab: Lab, nodes: dict[str, NetworkReconciler]) -> None:
    for node, reconciler in nodes.items():
        assert (await reconciler.reconcile(managed(node))).status.up
    out = await nodes["a"].reconcile(managed("a", peers=("a", "b")))
    assert out.status.up and [s.action for s in out.steps] == ["remove-peer"]
    assert lab.flood("a", "hvx4242") == {ADDRESS["b"]}
    guest_a = lab.guest("a", "hbr4242", "192.168.77.1")
    lab.guest("b", "hbr4242", "192.168.77.2")
    lab.guest("c", "hbr4242", "192.168.77.3")
    assert await lab.ping(guest_a, "192.168.77.2")
    assert not await lab.ping(guest_a, "192.168.77.3")  # a's ARP is flooded to b only
    back = await nodes["a"].reconcile(managed("a"))
    assert [s.peer for s in back.steps] == [ADDRESS["c"]]
    assert lab.flood("a", "hvx4242") == {ADDRESS["b"], ADDRESS["c"]}
    # The failed resolution of .3 above may still be retrying (3 probes, then FAILED drops
    # what waits on it): start afresh, as what is tested is the flood, not ARP's timers.
    sh("ip", "-n", guest_a, "neigh", "flush", "all")
    assert await lab.ping(guest_a, "192.168.77.3")


async def test_too_big_an_mtu_is_a_reason_and_makes_nothing(
        lab: Lab, nodes: dict[str, NetworkReconciler],
        hypervisors: dict[str, LibvirtHypervisor]) -> None:
    out = await nodes["a"].reconcile(managed("a", mtu=1500))
    assert (out.status.up, out.status.reason) == (False, "mtu 1500 exceeds underlay u0's 1500 - 50")
    assert out.result.requeue_after == BLOCKED_LOOK and out.steps == ()
    assert not {"hvx4242", "hbr4242"} & lab.links("a").keys()
    assert "blue" not in libvirt_networks(hypervisors["a"])

    assert (await nodes["a"].reconcile(managed("a", mtu=1450))).status.up
    sh("ip", "-n", lab.ns("a"), "link", "set", "u0", "mtu", "1400")  # the underlay shrinks
    blocked = await nodes["a"].reconcile(managed("a", mtu=1450))
    assert blocked.status.reason == "mtu 1450 exceeds underlay u0's 1400 - 50"
    follows = await nodes["a"].reconcile(managed("a"))  # no MTU asked: the most that fits
    assert follows.status.up
    assert {lab.links("a")[d]["mtu"] for d in ("hvx4242", "hbr4242")} == {1350}


async def test_a_half_made_network_is_completed(
        lab: Lab, nodes: dict[str, NetworkReconciler]) -> None:
    ns = lab.ns("a")  # as a crash between creating and marking would leave it
    sh("ip", "-n", ns, "link", "add", "hvx4242", "type", "vxlan", "id", "4242", "dstport",
       "4789", "local", ADDRESS["a"], "nolearning")
    sh("ip", "-n", ns, "link", "add", "hbr4242", "type", "bridge")
    out = await nodes["a"].reconcile(managed("a"))
    assert out.status.up, out.status
    assert [s.rule for s in out.steps][:3] == ["port-claim", "bridge-claim", "port-wrong"]
    vx = lab.links("a")["hvx4242"]
    assert vx["linkinfo"]["info_data"]["learning"] is True and vx["ifalias"] == "herd:blue"
    assert lab.links("a")["hbr4242"]["ifalias"] == "herd:blue"


# --- bridged ----------------------------------------------------------------------------------

def vlan_supported(lab: Lab) -> bool:
    probe = subprocess.run(["ip", "-n", lab.ns("c"), "link", "add", "link", "u0", "probe",
                            "type", "vlan", "id", "4000"], capture_output=True, timeout=10)
    return probe.returncode == 0  # deleted with the namespace


async def test_bridged_vlan_on_the_device(lab: Lab, nodes: dict[str, NetworkReconciler]) -> None:
    spec = LinkSpec(network="red", kind=NetworkKind.BRIDGED, vlan=7, device="u0")
    if not vlan_supported(lab):  # this kernel has no 802.1Q: the reason says so
        out = await nodes["a"].reconcile(spec)
        assert out.status.reason.startswith("no VLAN support: "), out.status
        assert out.result.requeue_after == BLOCKED_LOOK
        assert not {"hvl7", "hbl7"} & lab.links("a").keys()  # nothing half-made
        return
    for node in ("a", "b"):
        assert (await nodes[node].reconcile(spec)).status.up
    vl = lab.links("a")["hvl7"]
    assert (vl["linkinfo"]["info_kind"], vl["linkinfo"]["info_data"]["id"], vl["link"],
            vl["master"], vl["mtu"]) == ("vlan", 7, "u0", "hbl7", 1500)
    guest_a = lab.guest("a", "hbl7", "192.168.78.1", mtu=1500)
    lab.guest("b", "hbl7", "192.168.78.2", mtu=1500)
    assert await lab.ping(guest_a, "192.168.78.2", size=1472)


async def test_an_existing_bridge_is_checked_never_changed(
        lab: Lab, nodes: dict[str, NetworkReconciler],
        hypervisors: dict[str, LibvirtHypervisor]) -> None:
    spec = LinkSpec(network="lab", kind=NetworkKind.BRIDGED, bridge="br-ops")
    missing = await nodes["a"].reconcile(spec)
    assert missing.status.reason == "bridge br-ops does not exist"
    sh("ip", "-n", lab.ns("a"), "link", "add", "br-ops", "type", "bridge")
    assert (await nodes["a"].reconcile(spec)).status.reason == "bridge br-ops is down"
    sh("ip", "-n", lab.ns("a"), "link", "set", "br-ops", "up")
    before = project(lab.links("a")["br-ops"])
    out = await nodes["a"].reconcile(spec)
    assert out.status.up and out.status.bridge == "br-ops"
    assert libvirt_networks(hypervisors["a"])["lab"].bridgeName() == "br-ops"
    await nodes["a"].remove("lab")
    assert "lab" not in libvirt_networks(hypervisors["a"])
    assert project(lab.links("a")["br-ops"]) == before  # the operator's bridge, untouched


# --- garbage collection -----------------------------------------------------------------------

async def test_collection_removes_only_herds_devices(
        lab: Lab, nodes: dict[str, NetworkReconciler],
        hypervisors: dict[str, LibvirtHypervisor]) -> None:
    ns, a = lab.ns("a"), nodes["a"]
    blue, green = managed("a", vni=4201), managed("a", vni=4202, network="green")
    for spec in (blue, green):
        assert (await a.reconcile(spec)).status.up
    sh("ip", "-n", ns, "link", "add", "hbr4203", "type", "bridge")  # Herd's name, no alias
    sh("ip", "-n", ns, "link", "add", "hbr42x", "type", "bridge")
    sh("ip", "-n", ns, "link", "set", "hbr42x", "alias", "herd:green")  # not Herd's name
    hypervisors["a"].connection.get().networkDefineXML(
        "<network><name>ops</name><forward mode='bridge'/><bridge name='hbr4203'/></network>")
    operators = {"hbr4203", "hbr42x"}

    cleanup = await a.collect([blue])
    assert cleanup.error == "" and len(cleanup.removed) == 3
    assert {"hvx4201", "hbr4201", *operators} <= lab.links("a").keys()
    assert not {"hvx4202", "hbr4202"} & lab.links("a").keys()
    assert libvirt_networks(hypervisors["a"]).keys() == {"blue", "ops"}

    await a.collect([])
    herds = {name for name in lab.links("a") if name.startswith(("hvx", "hbr"))}
    assert herds == operators and libvirt_networks(hypervisors["a"]).keys() == {"ops"}


async def test_the_libvirt_network_in_the_default_test_driver(lab: Lab) -> None:
    """On `test:///default` (one state for the whole process), seen by a connection of
    its own."""
    name = f"herd-{lab.prefix}"
    hv = LibvirtHypervisor("test:///default")
    await hv.open()
    other = libvirt.open("test:///default")
    try:
        reconciler = NetworkReconciler(Links(lab.ns("a")), LibvirtNetworks.of(hv))
        out = await reconciler.reconcile(managed("a", network=name))
        assert out.status.up
        net = other.networkLookupByName(name)
        assert (net.isActive(), net.autostart(), net.isPersistent()) == (1, 1, 1)
        assert "<forward mode='bridge'/>" in net.XMLDesc(0) and net.bridgeName() == "hbr4242"
        await reconciler.remove(name)
        assert name not in {n.name() for n in other.listAllNetworks()}
        assert "default" in {n.name() for n in other.listAllNetworks()}
    finally:
        for net in other.listAllNetworks():
            if net.name() == name:
                if net.isActive():
                    net.destroy()
                net.undefine()
        other.close()
        await hv.close()
