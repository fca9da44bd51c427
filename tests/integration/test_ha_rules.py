"""Affinity rules in the primary's placement (issue #17), with three coordinator daemons
on test-driver nodes (`tests.integration.test_controllers`): an `apart` pair stays apart
through a flush and the return, a `together` pair moves as one, a strict rule that leaves
no node stops the VM with the rule in the reason, and a VM that only a strict rule keeps
from its node waits with the rule named; deleting the rule lets it run. Maintenance: a
node that dies meanwhile is neither fenced nor its VMs recovered until it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store import election, events
from store.client import Store
from tests.integration.test_controllers import (
    define,
    make_cluster,
    node_state,
    running_on,
    set_node,
)
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.waits import wait_children, wait_doc


@pytest.fixture
async def cluster(zk_hosts: str, zk_root: str, tmp_path: Path,
                  store: Store) -> AsyncIterator[list[Daemon]]:
    members = await make_cluster(zk_hosts, zk_root, tmp_path, store)
    yield members
    for m in members:
        await m.stop()
        await m.close()


def rule(store: Store, name: str, kind: str, *vms: str, strict: bool = True) -> None:
    store.create(store.paths.rule(name), {
        "apiVersion": "herd/v1", "kind": "Rule", "metadata": {"name": name, "generation": 1},
        "spec": {"kind": kind, "strict": strict, "vms": list(vms)}})


def node_of(store: Store, vm: str) -> str:
    return str(store.get(store.paths.vm_status(vm)).doc["node"])


async def test_an_apart_pair_stays_apart_through_a_flush(cluster: list[Daemon],
                                                         store: Store) -> None:
    rule(store, "ha", "apart", "a1", "a2")
    define(store, "a1", node="hv1")
    define(store, "a2", node="hv2")
    for vm, node in (("a1", "hv1"), ("a2", "hv2")):
        await wait_doc(store, store.paths.vm_status(vm), running_on(node))
    set_node(store, "hv1", "flushed")
    await node_state(store, "hv1", "flushed")
    await wait_doc(store, store.paths.vm_status("a1"), running_on("hv3"))  # not beside a2
    set_node(store, "hv1", "ready")
    await wait_doc(store, store.paths.vm_status("a1"), running_on("hv1"))
    assert node_of(store, "a2") == "hv2"


async def test_a_together_pair_moves_as_one(cluster: list[Daemon], store: Store) -> None:
    rule(store, "pair", "together", "t1", "t2")
    define(store, "t1", node="hv2")
    define(store, "t2", node="hv2")
    for vm in ("t1", "t2"):
        await wait_doc(store, store.paths.vm_status(vm), running_on("hv2"))
    set_node(store, "hv2", "flushed")
    await node_state(store, "hv2", "flushed")
    await wait_doc(store, store.paths.vm_status("t1"), running_on())
    await wait_doc(store, store.paths.vm_status("t2"), running_on())
    assert node_of(store, "t1") == node_of(store, "t2") != "hv2"


async def test_a_strict_rule_with_no_node_left_stops_or_holds_the_vm_and_says_why(
        cluster: list[Daemon], store: Store) -> None:
    rule(store, "two", "apart", "s1", "s2")
    define(store, "s1", node="hv1", limits=("hv1", "hv2"))
    define(store, "s2", node="hv2", limits=("hv1", "hv2"))
    for vm, node in (("s1", "hv1"), ("s2", "hv2")):
        await wait_doc(store, store.paths.vm_status(vm), running_on(node))
    set_node(store, "hv1", "flushed")
    await node_state(store, "hv1", "flushed")
    placement = store.get(store.paths.vm_placement("s1")).doc
    assert "strict rule 'two' keeps s1 apart from s2 (on hv2)" in placement["reason"]
    assert store.get(store.paths.vm("s1")).doc["spec"]["state"] == "stopped"

    rule(store, "solo", "apart", "w1", "s2")
    define(store, "w1", limits=("hv2",))
    await wait_doc(store, store.paths.vm_placement("w1"), lambda d: bool(
        d and d.get("reason") == "waiting: strict rule 'solo' keeps w1 apart from s2 (on hv2)"))
    store.delete(store.paths.rule("solo"))  # the primary looks again when a rule changes
    await wait_doc(store, store.paths.vm_status("w1"), running_on("hv2"))


async def test_maintenance_holds_fencing_until_it_ends(cluster: list[Daemon], store: Store,
                                                       tmp_path: Path) -> None:
    victim = next(m for m in cluster if m.config.name != election.primary(store))
    dead = victim.config.name
    define(store, "web", node=dead)
    await wait_doc(store, store.paths.vm_status("web"), running_on(dead))
    store.update(store.paths.config, lambda d: {**d, "maintenance": True})
    await victim.crash()
    await wait_children(store, store.paths.events, lambda _names: any(
        e["kind"] == "fence-held" and e.get("node") == dead
        for e in events.recent(store)) or None, timeout=30)
    assert not (tmp_path / "fenced").exists()
    assert store.get(store.paths.vm_placement("web")).doc["node"] == dead
    store.update(store.paths.config, lambda d: {**d, "maintenance": False})
    await wait_doc(store, store.paths.vm_status("web"),
                   lambda d: bool(d and d["state"] == "running" and d["node"] != dead),
                   timeout=30)
    assert (tmp_path / "fenced").read_text().split() == [dead]
