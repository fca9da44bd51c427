"""The gateway of a managed network follows the primary (issue #14): two coordinator node
daemons (hv-a, hv-b), each with its links in a namespace of its own (the lab of
`test_network_links`), libvirt's test driver and a real ZooKeeper; the primary runs the
network's dnsmasq on its bridge. A guest namespace plugged into the OTHER node's bridge
gets its reserved address and a lease over the VXLAN (a real DHCP exchange); the lease is
kept in ZooKeeper. When the primary stops, its gateway stops first and the new primary
takes it, restoring the leases (same address for the same MAC). When the primary
crashes, the new primary takes the gateway only after the fence (which here kills every
process in the crashed node's namespace, like pulling its plug). The network's NAT and
firewall rules apply at the gateway: a guest reaches beyond it only with NAT on, and not
where an `out` rule drops it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import NodeConfig
from store.client import Store
from tests.integration.test_node_networks import network_doc, put_network
from tests.support.daemons import RunningDaemon
from tests.support.dhcpclient import request_lease
from tests.support.libvirt_nodes import write_node_file
from tests.support.nodelab import ADDRESS, Lab, fence_agent, fenced, lab, sh
from tests.support.waits import wait_doc

__all__ = ["lab"]  # the fixture, used by name

NODES = ("a", "b")
VNI = 4343
RESERVED = ("52:54:00:45:00:01", "10.45.0.10")
DYNAMIC = "52:54:00:45:00:02"
IPV4 = {"network": "10.45.0.0/24", "gateway": "10.45.0.1",
        "dhcp": {"start": "10.45.0.100", "end": "10.45.0.150", "leaseTime": 600}}


@pytest.fixture
def run_root() -> Iterator[Path]:
    """The daemons' run directories: dnsmasq reads its reservation files after dropping
    root, so every parent must be searchable by `nobody` (pytest's tmp dirs are not)."""
    root = Path(tempfile.mkdtemp(prefix="herd-test-", dir="/run"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def config(lab: Lab, node: str, *, zk_hosts: str, zk_root: str, tmp_path: Path,
           run_root: Path) -> NodeConfig:
    return NodeConfig(
        name=f"hv-{node}", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=3.0,
        libvirt_uri=write_node_file(tmp_path, f"hv-{node}"), coordinator=True,
        address=ADDRESS[node], initial_domain_state="ready", status_interval=0.5,
        resync_interval=30.0, workers=2, log_level="INFO", networks=True,
        netns=lab.ns(node), bridge_device="u0", run_dir=str(run_root / node),
        fence={"default": {"agent": "command", "command": str(
            fence_agent(lab, NODES, tmp_path / "fence"))}})


@pytest.fixture
async def cluster(lab: Lab, zk_hosts: str, zk_root: str, store: Store, tmp_path: Path,
                  run_root: Path) -> AsyncIterator[dict[str, RunningDaemon]]:
    store.update(store.paths.config, lambda d: {**d, "fenceTimeout": 1.0})
    running: dict[str, RunningDaemon] = {}
    try:
        for node in NODES:
            running[node] = RunningDaemon(config(lab, node, zk_hosts=zk_hosts,
                                                 zk_root=zk_root, tmp_path=tmp_path,
                                                 run_root=run_root))
            await running[node].start()
        await asyncio.to_thread(put_network, store, "blue", network_doc(
            ipv4=IPV4, domain="blue.herd.internal",
            reservations=[{"mac": RESERVED[0], "ip": RESERVED[1], "hostname": "db1"}]))
        yield running
    finally:
        for daemon in running.values():
            if daemon.daemon is not None:
                await daemon.stop()
            await daemon.close()


async def gateway_on(store: Store, *, among: tuple[str, ...] = NODES,
                     timeout: float = 30) -> str:
    """The node (of `among`) whose status says it runs the gateway of `blue`."""
    found: list[str] = []

    async def watch(node: str) -> None:
        def running(doc: dict[str, Any] | None) -> bool:
            return bool((doc or {}).get("networks", {}).get("blue", {}).get("gateway")
                        == "running")
        await wait_doc(store, store.paths.node_status(f"hv-{node}"), running, timeout=timeout)
        found.append(node)

    tasks = [asyncio.create_task(watch(n)) for n in among]
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert found, "no node runs the gateway"
    return found[0]


async def lease(guest: str, mac: str, *, deadline: float = 20.0) -> tuple[str, float]:
    """Ask until answered (the gateway may be moving): the address and when (monotonic)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        answer = await request_lease(guest, mac, timeout=4.0)
        if answer is not None:
            return answer.ip, time.monotonic()
    raise AssertionError(f"no DHCP answer for {mac} in {deadline:.0f} s")


async def test_the_gateway_moves_with_the_primary_and_keeps_the_leases(
        cluster: dict[str, RunningDaemon], lab: Lab, store: Store) -> None:
    first = await gateway_on(store)
    other = "b" if first == "a" else "a"
    guest = lab.plug(other, f"hbr{VNI}")  # DHCP crosses the VXLAN to the primary's bridge
    assert (await lease(guest, RESERVED[0]))[0] == RESERVED[1]
    leased, _ = await lease(guest, DYNAMIC)
    assert leased.startswith("10.45.0.1")
    recorded = await wait_doc(store, store.paths.network_lease("blue", DYNAMIC),
                              lambda d: d is not None)  # the lease script runs after the ACK
    assert recorded is not None and recorded["ip"] == leased
    stopped = time.monotonic()
    await cluster[first].stop()  # a clean stop: its gateway goes first
    assert await gateway_on(store) == other
    again, answered = await lease(guest, DYNAMIC)
    assert again == leased  # the new primary's dnsmasq started from the recorded leases
    print(f"clean handover: DHCP answered {answered - stopped:.2f} s after the stop began")


async def test_a_crashed_primarys_gateway_is_taken_only_after_its_fence(
        cluster: dict[str, RunningDaemon], lab: Lab, store: Store, tmp_path: Path) -> None:
    first = await gateway_on(store)
    other = "b" if first == "a" else "a"
    guest = lab.plug(other, f"hbr{VNI}")
    leased, _ = await lease(guest, DYNAMIC)
    await cluster[first].crash()
    assert await gateway_on(store, among=(other,)) == other
    [(node, when)] = fenced(tmp_path / "fence")
    assert node == f"hv-{first}"
    hold = store.get(store.paths.network_gateway("blue")).doc
    assert hold["node"] == f"hv-{other}" and hold["since"] > when  # taken after the fence
    assert (await lease(guest, DYNAMIC))[0] == leased
    assert sh("ip", "netns", "pids", lab.ns(first)).split() == []  # nothing of it answers


async def test_nat_and_firewall_rules_apply_at_the_gateway(
        cluster: dict[str, RunningDaemon], lab: Lab, store: Store) -> None:
    first = await gateway_on(store)
    other = "b" if first == "a" else "a"
    guest = lab.guest(other, f"hbr{VNI}", "10.45.0.5")
    sh("ip", "-n", guest, "route", "add", "default", "via", "10.45.0.1")
    target = ADDRESS[other]  # beyond the gateway: the other node's underlay address
    assert not await lab.ping(guest, target)  # routed out, but nobody routes back: no NAT

    async def change(**spec: Any) -> None:
        doc = store.get(store.paths.network("blue")).doc
        generation = doc["metadata"]["generation"] + 1
        new = {**doc, "spec": {**doc["spec"], **spec},
               "metadata": {**doc["metadata"], "generation": generation}}
        await asyncio.to_thread(put_network, store, "blue", new)
        await until_table(lab, first, f"herd_{VNI}", spec)

    await change(nat=True)
    assert await lab.ping(guest, target)  # masqueraded to the gateway's underlay address
    await change(acl=[{"name": "no-b", "direction": "out", "order": 10,
                       "rule": f"ip daddr {target} drop"}])
    assert not await lab.ping(guest, target)
    await change(acl=[])
    assert await lab.ping(guest, target)


async def until_table(lab: Lab, node: str, table: str, spec: dict[str, Any],
                      *, timeout: float = 15.0) -> None:
    """The node's ruleset once it shows `spec`'s NAT and rules (the gateway applies them
    after it saw the change: nothing to watch from here but the ruleset itself)."""
    deadline = time.monotonic() + timeout
    while True:
        text = sh("ip", "netns", "exec", lab.ns(node), "nft", "list", "ruleset")
        rules = [r["rule"] for r in spec.get("acl", [])]
        wanted_nat = ("masquerade" in text) == bool(spec.get("nat", True))
        if table in text and wanted_nat and all(r in text for r in rules) and (
                "acl" not in spec or spec["acl"] or "drop" not in text):
            return
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.1)  # another process's ruleset: nothing to wait on
