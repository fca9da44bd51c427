"""The primary's controllers with three coordinator daemons on test-driver nodes: placement,
flush and ready with limits and autorestart, spreading, fencing and recovery, failover.

A "crash" closes a daemon's libvirt connection (its test-driver guests vanish, like a
power-off) and ends its ZooKeeper session without the clean stop; the fence agent is a
`command` that records the node it fenced (exit 0) or fails (exit 1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from reconciler.config import NodeConfig
from reconciler.libvirt.adapter import LibvirtHypervisor
from store import election, events, txn, vms
from store.client import Store
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file
from tests.support.waits import wait_children, wait_doc

NAMES = ("hv1", "hv2", "hv3")


def fence_script(tmp_path: Path, *, ok: bool) -> str:
    script = tmp_path / ("fence-ok" if ok else "fence-fail")
    script.write_text(f"#!/bin/sh\necho \"$HERD_NODE\" >> {tmp_path}/fenced\n"
                      f"exit {0 if ok else 1}\n")
    script.chmod(0o755)
    return str(script)


async def make_cluster(zk_hosts: str, zk_root: str, tmp_path: Path, store: Store, *,
                       fence_ok: bool = True,
                       hypervisor: type[LibvirtHypervisor] = LibvirtHypervisor) -> list[Daemon]:
    store.update(store.paths.config, lambda d: {**d, "fenceTimeout": 1.0})
    base = NodeConfig(name="hv1", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=4.0,
                      libvirt_uri="", coordinator=True, address=None,
                      initial_domain_state="ready", status_interval=0.5,
                      resync_interval=30.0, workers=4, log_level="INFO",
                      fence={"default": {"agent": "command",
                                         "command": fence_script(tmp_path, ok=fence_ok)}})
    members = [Daemon(replace(base, name=n, libvirt_uri=write_node_file(tmp_path, n)))
               for n in NAMES]
    for m in members:
        m.hv = hypervisor(m.config.libvirt_uri)  # the shared connection, of that class
        await m.start()
    return members


@pytest.fixture
async def cluster(zk_hosts: str, zk_root: str, tmp_path: Path,
                  store: Store) -> AsyncIterator[list[Daemon]]:
    members = await make_cluster(zk_hosts, zk_root, tmp_path, store)
    yield members
    for m in members:
        await m.stop()
        await m.close()


def define(store: Store, name: str, *, node: str | None = None, limits: tuple[str, ...] = (),
           autorestart: bool = False, selector: str = "none", memory_mib: int = 512) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": "running", "node": node, "shutdownTimeout": 5,
                   "meta": {"limits": list(limits), "selector": selector,
                            "autorestart": autorestart, "migrationMethod": "any"},
                   "xml": simple_domain_xml(name, memory_mib=memory_mib)}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def set_node(store: Store, node: str, domain_state: str) -> None:
    store.update(store.paths.node(node), lambda d: {**d, "spec": {**d["spec"],
                                                                   "domainState": domain_state}})


def running_on(node: str | None = None) -> Callable[[dict[str, Any] | None], bool]:
    return lambda d: bool(d and d["state"] == "running" and d["node"] is not None
                          and (node is None or d["node"] == node))


def mem_alloc_is(mib: int) -> Callable[[dict[str, Any] | None], bool]:
    return lambda d: bool(d and d["resources"]["memAlloc"] == mib)


async def node_state(store: Store, node: str, state: str, timeout: float = 20) -> None:
    await wait_doc(store, store.paths.node_status(node),
                   lambda d: bool(d and d.get("domainState") == state), timeout=timeout)


async def test_an_unplaced_vm_is_scheduled_by_its_selector(cluster: list[Daemon],
                                                           store: Store) -> None:
    define(store, "busy1", node="hv1", memory_mib=8192)
    define(store, "busy2", node="hv2", memory_mib=4096)
    await wait_doc(store, store.paths.vm_status("busy1"), running_on("hv1"))
    await wait_doc(store, store.paths.vm_status("busy2"), running_on("hv2"))
    for node, alloc in (("hv1", 8192), ("hv2", 4096)):  # the scheduler reads these figures
        await wait_doc(store, store.paths.node_status(node), mem_alloc_is(alloc))
    define(store, "free", selector="mem")
    await wait_doc(store, store.paths.vm_status("free"), running_on("hv3"))
    assert election.primary(store) in NAMES


async def test_flush_moves_stops_and_ready_brings_back(cluster: list[Daemon],
                                                       store: Store) -> None:
    define(store, "any", node="hv1")
    define(store, "pinned-auto", node="hv1", limits=("hv1",), autorestart=True)
    define(store, "pinned", node="hv1", limits=("hv1",))
    for name in ("any", "pinned-auto", "pinned"):
        await wait_doc(store, store.paths.vm_status(name), running_on("hv1"))
    set_node(store, "hv1", "flushed")
    await node_state(store, "hv1", "flushed")
    # Flushed means nothing runs on hv1 any more (the moved VM may still be in transit).
    for name in ("any", "pinned-auto", "pinned"):
        assert store.get(store.paths.vm_status(name)).doc["node"] != "hv1"
        owner = store.exists(store.paths.vm_owner(name))
        assert owner is None or store.get(store.paths.vm_owner(name)).doc["node"] != "hv1"
    await wait_doc(store, store.paths.vm_status("any"), running_on())
    assert store.get(store.paths.vm_placement("any")).doc["lastNode"] == "hv1"
    auto = store.get(store.paths.vm_placement("pinned-auto")).doc
    assert auto["autorestartPending"] is True and auto["home"] == "hv1"
    assert store.get(store.paths.vm_status("pinned-auto")).doc["state"] == "stopped"
    assert store.get(store.paths.vm_placement("pinned")).doc["autorestartPending"] is False
    assert store.get(store.paths.vm("pinned")).doc["spec"]["state"] == "stopped"

    set_node(store, "hv1", "ready")
    await node_state(store, "hv1", "ready")
    await wait_doc(store, store.paths.vm_status("any"), running_on("hv1"))
    await wait_doc(store, store.paths.vm_status("pinned-auto"), running_on("hv1"))
    assert store.get(store.paths.vm_status("pinned")).doc["state"] == "stopped"


async def test_a_big_flush_spreads_over_the_other_nodes(cluster: list[Daemon],
                                                        store: Store) -> None:
    names = [f"vm{i:02d}" for i in range(30)]
    for name in names:
        define(store, name, node="hv1", selector="vms", memory_mib=64)
    for name in names:
        await wait_doc(store, store.paths.vm_status(name), running_on("hv1"), timeout=30)
    set_node(store, "hv1", "flushed")
    await node_state(store, "hv1", "flushed", timeout=60)
    for name in names:
        await wait_doc(store, store.paths.vm_status(name), running_on(), timeout=30)
    nodes = [store.get(store.paths.vm_placement(n)).doc["node"] for n in names]
    assert nodes.count("hv2") == 15 and nodes.count("hv3") == 15


async def test_a_crashed_node_is_fenced_and_its_vms_recovered(
        cluster: list[Daemon], store: Store, tmp_path: Path) -> None:
    # A node that is not the primary (the failover test covers a primary crash).
    victim = next(m for m in cluster if m.config.name != election.primary(store))
    dead = victim.config.name
    others = tuple(n for n in NAMES if n != dead)
    define(store, "web", node=dead)
    define(store, "pinned-auto", node=dead, limits=(dead,), autorestart=True)
    for name in ("web", "pinned-auto"):
        await wait_doc(store, store.paths.vm_status(name), running_on(dead))
    fences = fence_count(store, dead, "done")
    await victim.crash()
    await wait_doc(store, store.paths.vm_status("web"),
                   lambda d: bool(d and d["state"] == "running" and d["node"] in others),
                   timeout=30)
    assert (tmp_path / "fenced").read_text().split() == [dead]
    assert fence_count(store, dead, "done") == fences + 1  # herd-node's herd_fences_total
    status = store.get(store.paths.node_status(dead)).doc
    assert status["daemonState"] == "fenced" and status["domainState"] == "flushed"
    pending = store.get(store.paths.vm_placement("pinned-auto")).doc
    assert pending["autorestartPending"] is True and pending["home"] == dead
    left = await wait_doc(store, store.paths.vm_status("pinned-auto"),
                          lambda d: bool(d and d["state"] == "stopped"))
    assert left is not None and left["reason"] == f"{dead} was fenced"
    assert [e["kind"] for e in events.recent(store) if e.get("node") == dead] == \
        ["fenced", "stopped", "recovered"]  # stopped: pinned-auto had nowhere else to go


async def test_a_failed_fence_recovers_nothing(zk_hosts: str, zk_root: str, tmp_path: Path,
                                               store: Store) -> None:
    members = await make_cluster(zk_hosts, zk_root, tmp_path, store, fence_ok=False)
    try:
        victim = next(m for m in members if m.config.name != election.primary(store))
        define(store, "web", node=victim.config.name)
        await wait_doc(store, store.paths.vm_status("web"), running_on(victim.config.name))
        fences = fence_count(store, victim.config.name, "failed")
        await victim.crash()
        await wait_doc(store, store.paths.vm_status("web"),
                       lambda d: bool(d and d["state"] == "unknown"), timeout=30)
        found = await _event(store, "fence-failed")
        assert found["node"] == victim.config.name
        assert fence_count(store, victim.config.name, "failed") == fences + 1
        assert store.get(store.paths.vm_placement("web")).doc["node"] == victim.config.name
    finally:
        for m in members:
            await m.stop()
            await m.close()


def fence_count(store: Store, target: str, result: str) -> float:
    """herd_fences_total of the primary (the daemons run in this process)."""
    labels = {"node": str(election.primary(store)), "target": target, "result": result}
    return REGISTRY.get_sample_value("herd_fences_total", labels) or 0.0


async def _event(store: Store, kind: str) -> dict[str, Any]:
    def find(_names: list[str]) -> dict[str, Any] | None:
        return next((e for e in events.recent(store) if e["kind"] == kind), None)
    found: dict[str, Any] = await wait_children(store, store.paths.events, find, timeout=30)
    return found


async def test_a_new_primary_takes_over_and_acts(cluster: list[Daemon], store: Store) -> None:
    first = election.primary(store)
    leader = next(m for m in cluster if m.config.name == first)
    await leader.stop()  # a clean stop releases the election at once
    await leader.close()
    await _primary_changes(store, first)
    define(store, "after")
    await wait_doc(store, store.paths.vm_status("after"), running_on(), timeout=30)
    assert store.get(store.paths.vm_placement("after")).doc["node"] != first


async def _primary_changes(store: Store, old: str | None) -> str:
    def changed(_names: list[str]) -> str | None:
        now = election.primary(store)
        return now if now is not None and now != old else None
    new: str = await wait_children(store, store.paths.election, changed, timeout=30)
    return new
