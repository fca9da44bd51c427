"""herd-node's network controller end to end (issue #14): two node daemons, each with its
links in a network namespace of its own (the lab of `test_network_links`: an underlay
`u0` per node on one switch) and libvirt's test driver, against a real ZooKeeper. A
managed network written to ZooKeeper comes up on both nodes — bridge, VXLAN with the other
node as its flood peer, libvirt's bridge-mode network — and each node's status says so;
guests on the two nodes reach each other; a network the node cannot make is reported down
with its reason; a network removed from the cluster is removed from the nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import NodeConfig
from reconciler.libvirt.networks import list_networks
from store import networks
from store.client import Store
from store.objects import new_object
from tests.support.daemons import RunningDaemon
from tests.support.libvirt_nodes import write_node_file
from tests.support.nodelab import ADDRESS, Lab, lab
from tests.support.waits import wait_doc

__all__ = ["lab"]  # the fixture, used by name

VNI = 4343
BRIDGE = f"hbr{VNI}"


def network_doc(name: str = "blue", **spec: Any) -> dict[str, Any]:
    return new_object({"apiVersion": "herd/v1", "kind": "Network", "metadata": {"name": name},
                       "spec": {"type": "managed", "vni": VNI, **spec}})


def put_network(store: Store, name: str, doc: dict[str, Any] | None) -> None:
    seen = networks.read_all(store)
    current = seen.docs.get(name)
    if doc is None:
        ops = networks.delete_ops(store, name)
    elif current is None:
        ops = networks.create_ops(store, name, doc)
    else:
        ops = networks.replace_ops(store, name, doc, version=current.version)
    networks.commit_change(store, seen, ops)


@pytest.fixture
async def daemons(lab: Lab, zk_hosts: str, zk_root: str, store: Store,
                  tmp_path: Path) -> AsyncIterator[dict[str, RunningDaemon]]:
    running: dict[str, RunningDaemon] = {}
    try:
        for node in ("a", "b"):
            config = NodeConfig(
                name=f"hv-{node}", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=5.0,
                libvirt_uri=write_node_file(tmp_path, f"hv-{node}"), coordinator=False,
                address=ADDRESS[node], initial_domain_state="ready", status_interval=1.0,
                resync_interval=30.0, workers=2, log_level="INFO", networks=True,
                netns=lab.ns(node), bridge_device="u0", run_dir=str(tmp_path / node))
            running[node] = RunningDaemon(config)
            await running[node].start()
        yield running
    finally:
        for daemon in running.values():
            await daemon.stop()
            await daemon.close()


async def network_state(store: Store, node: str, name: str, *, up: bool | None,
                        timeout: float = 20) -> dict[str, Any] | None:
    """The node's status entry of network `name` once it is up / down / gone (None)."""
    def done(doc: dict[str, Any] | None) -> bool:
        entry = (doc or {}).get("networks", {}).get(name)
        return entry is None if up is None else bool(entry and entry["up"] == up)

    doc = await wait_doc(store, store.paths.node_status(f"hv-{node}"), done, timeout=timeout)
    entry: dict[str, Any] | None = (doc or {}).get("networks", {}).get(name)
    return entry


async def test_a_network_comes_up_on_every_node_and_goes_when_removed(
        daemons: dict[str, RunningDaemon], lab: Lab, store: Store) -> None:
    await asyncio.to_thread(put_network, store, "blue", network_doc())
    for node in ("a", "b"):
        entry = await network_state(store, node, "blue", up=True)
        assert entry == {"up": True, "reason": "", "bridge": BRIDGE}
        assert BRIDGE in lab.links(node)
        other = ADDRESS["b" if node == "a" else "a"]
        assert lab.flood(node, f"hvx{VNI}") == {other}  # the other node, not itself
        nets = await asyncio.to_thread(list_networks, daemons[node].hypervisor.connection)
        assert nets["blue"].active and nets["blue"].bridge == BRIDGE
    guest_a = lab.guest("a", BRIDGE, "192.168.43.1")
    lab.guest("b", BRIDGE, "192.168.43.2")
    assert await lab.ping(guest_a, "192.168.43.2")
    await asyncio.to_thread(put_network, store, "blue", None)
    for node in ("a", "b"):
        assert await network_state(store, node, "blue", up=None) is None
        assert BRIDGE not in lab.links(node) and f"hvx{VNI}" not in lab.links(node)


async def test_a_network_a_node_cannot_make_is_down_with_its_reason(
        daemons: dict[str, RunningDaemon], store: Store) -> None:
    await asyncio.to_thread(put_network, store, "jumbo", network_doc("jumbo", mtu=9000))
    entry = await network_state(store, "a", "jumbo", up=False)
    assert entry is not None and "mtu 9000 exceeds underlay" in entry["reason"]
    await asyncio.to_thread(put_network, store, "jumbo", network_doc("jumbo", mtu=1400))
    assert (await network_state(store, "a", "jumbo", up=True)) is not None

