"""Faults on a cluster of real herd-node processes (test-driver nodes): kill -9 of a node,
a hung node (SIGSTOP), and the primary killed. Checked in ZooKeeper.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from store import election, txn, vms
from store.client import Store
from tests.support import history
from tests.support.cluster import LocalCluster
from tests.support.libvirt_nodes import simple_domain_xml
from tests.support.waits import wait_children, wait_doc


@pytest.fixture
def cluster(tmp_path: Path, zk_hosts: str, zk_root: str, store: Store) -> Iterator[LocalCluster]:
    store.update(store.paths.config, lambda d: {**d, "fenceTimeout": 2.0})
    c = LocalCluster(tmp_path, zk_hosts=zk_hosts, zk_root=zk_root)
    c.start_all()
    yield c
    c.stop_all()
    # Checked from the nodes' own libvirt event logs, not from Herd's status.
    runs = history.runs(history.load(c.event_logs()), c.deaths())
    assert runs, "the nodes recorded no libvirt events"
    assert not history.double_runs(runs), history.double_runs(runs)


async def all_running(store: Store, cluster: LocalCluster) -> None:
    for name in cluster.names:
        await wait_doc(store, store.paths.node_status(name),
                       lambda d: bool(d and d.get("daemonState") == "run"), timeout=30)


def define(store: Store, name: str, node: str, *, limits: tuple[str, ...] = (),
           autorestart: bool = False) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": "running", "node": node, "shutdownTimeout": 5,
                   "meta": {"limits": list(limits), "selector": "none",
                            "autorestart": autorestart, "migrationMethod": "any"},
                   "xml": simple_domain_xml(name)}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def running_on(*nodes: str) -> Callable[[dict[str, Any] | None], bool]:
    return lambda d: bool(d and d["state"] == "running" and d["node"] in nodes)


async def primary_not(store: Store, old: str | None) -> str:
    def changed(_names: list[str]) -> str | None:
        now = election.primary(store)
        return now if now is not None and now != old else None
    new: str = await wait_children(store, store.paths.election, changed, timeout=30)
    return new


def a_non_primary(store: Store, cluster: LocalCluster) -> str:
    leader = election.primary(store)
    return next(n for n in cluster.names if n != leader)


async def test_kill_9_of_a_node_recovers_its_vms_and_autorestart_brings_back_the_pinned(
        cluster: LocalCluster, store: Store) -> None:
    await all_running(store, cluster)
    victim = a_non_primary(store, cluster)
    others = tuple(n for n in cluster.names if n != victim)
    define(store, "web", victim)
    define(store, "pinned", victim, limits=(victim,), autorestart=True)
    for name in ("web", "pinned"):
        await wait_doc(store, store.paths.vm_status(name), running_on(victim), timeout=30)
    killed = time.monotonic()
    cluster.signal(victim, signal.SIGKILL)
    cluster.reap(victim)
    await wait_doc(store, store.paths.vm_status("web"), running_on(*others), timeout=40)
    recovered_in = time.monotonic() - killed
    assert cluster.fenced() == [victim]
    pending = store.get(store.paths.vm_placement("pinned")).doc
    assert pending["autorestartPending"] and pending["home"] == victim
    cluster.start(victim)  # the node comes back: flushed until readied
    await wait_doc(store, store.paths.node_status(victim),
                   lambda d: bool(d and d.get("daemonState") == "run"), timeout=30)
    store.update(store.paths.node(victim),
                 lambda d: {**d, "spec": {**d["spec"], "domainState": "ready"}})
    await wait_doc(store, store.paths.vm_status("pinned"), running_on(victim), timeout=30)
    assert recovered_in < 30, f"recovery took {recovered_in:.1f}s"


async def test_a_hung_node_is_fenced_and_recovered(cluster: LocalCluster, store: Store) -> None:
    await all_running(store, cluster)
    victim = a_non_primary(store, cluster)
    others = tuple(n for n in cluster.names if n != victim)
    define(store, "web", victim)
    await wait_doc(store, store.paths.vm_status("web"), running_on(victim), timeout=30)
    cluster.signal(victim, signal.SIGSTOP)  # hung, not dead: only the fence ends it
    await wait_doc(store, store.paths.vm_status("web"), running_on(*others), timeout=40)
    assert cluster.fenced() == [victim]
    assert cluster.reap(victim, timeout=10) == -signal.SIGKILL


async def test_the_primary_killed_is_replaced_and_nothing_is_lost(
        cluster: LocalCluster, store: Store) -> None:
    await all_running(store, cluster)
    leader = election.primary(store)
    assert leader is not None
    cluster.signal(leader, signal.SIGKILL)
    cluster.reap(leader)
    killed = time.monotonic()
    new = await primary_not(store, leader)
    assert new != leader
    assert time.monotonic() - killed < 15, "no new primary within the session timeout"
    others = tuple(n for n in cluster.names if n != leader)
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": "late", "generation": 1},
          "spec": {"state": "running", "node": None, "shutdownTimeout": 5,
                   "meta": {"limits": list(others), "selector": "none", "autorestart": False,
                            "migrationMethod": "any"}, "xml": simple_domain_xml("late")}}
    txn.commit(store, vms.define_ops(store.paths, vm))
    await wait_doc(store, store.paths.vm_status("late"), running_on(*others), timeout=30)
    # The dead primary is fenced like any failed node, once the new primary has been in
    # office for the fence timeout (it could not see heartbeats before).
    await wait_doc(store, store.paths.node_status(leader),
                   lambda d: bool(d and d.get("daemonState") == "fenced"), timeout=30)
    assert leader in cluster.fenced()
