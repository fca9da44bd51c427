"""Two herd-node daemons on test-driver nodes: moving a VM between them.

The test driver cannot migrate, so a placement change is carried out as shutdown on the
source, release of ownership, and a cold start on the target; `live` is reported as
unsupported, never faked. A timeline of both nodes' libvirt lifecycle events shows that
the VM never runs on two nodes at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import NodeConfig
from reconciler.libvirt import RunState
from store import txn, vms
from store.client import Store
from tests.support import history
from tests.support.daemons import Listener
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file
from tests.support.waits import wait_doc

Events = list[dict[str, object]]


def recorder(events: Events, node: str) -> Listener:
    """Record a node's libvirt lifecycle events in the history checker's format."""
    def record(name: str, kind: str, detail: int) -> None:
        events.append({"t": time.time(), "node": node, "vm": name, "event": kind,
                       "detail": detail})
    return record


@pytest.fixture
async def cluster(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[
        tuple[Daemon, Daemon, Events]]:
    base = NodeConfig(name="hv1", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=5.0,
                      libvirt_uri="", coordinator=False, address=None,
                      initial_domain_state="ready", status_interval=1.0, resync_interval=30.0,
                      workers=4, log_level="INFO")
    events: Events = []
    nodes = [Daemon(replace(base, name=n, libvirt_uri=write_node_file(tmp_path, n)),
                    listeners=[recorder(events, n)]) for n in ("hv1", "hv2")]
    for n in nodes:
        await n.start()
    yield nodes[0], nodes[1], events
    for n in nodes:
        await n.stop()
        await n.close()


def define(store: Store, name: str, node: str, *, method: str = "any",
           stubborn: bool = False, timeout: int | None = None) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": "running", "node": node, "shutdownTimeout": timeout,
                   "meta": {"limits": [], "selector": "none", "autorestart": False,
                            "migrationMethod": method},
                   "xml": simple_domain_xml(name, on_poweroff="restart" if stubborn else None)}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def place(store: Store, name: str, node: str) -> None:
    def modify(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "node": node, "lastNode": doc.get("node"), "reason": "migrate"}
    store.update(store.paths.vm_placement(name), modify)


def status_is(state: str, node: str | None) -> Callable[[dict[str, Any] | None], bool]:
    return lambda d: bool(d and d["state"] == state and d["node"] == node)


def never_on_two(events: Events) -> None:
    assert not history.double_runs(history.runs(events, {})), events


async def test_a_placement_change_moves_the_vm_by_shutdown_and_start(
        cluster: tuple[Daemon, Daemon, Events], store: Store) -> None:
    hv1, hv2, events = cluster
    define(store, "vm1", "hv1")
    await wait_doc(store, store.paths.vm_status("vm1"), status_is("running", "hv1"))
    place(store, "vm1", "hv2")
    await wait_doc(store, store.paths.vm_status("vm1"), status_is("running", "hv2"))
    assert await hv2.hypervisor.domain("vm1") is not None
    assert (await hv2.hypervisor.domain("vm1")).state == RunState.RUNNING  # type: ignore[union-attr]
    assert await hv1.hypervisor.domain("vm1") is None  # released: undefined on the source
    owner = await wait_doc(store, store.paths.vm_owner("vm1"), lambda d: d is not None)
    assert owner == {"node": "hv2"}
    runs = sorted(history.runs(events, {}), key=lambda r: r.start)
    assert [r.node for r in runs if r.vm == "vm1"] == ["hv1", "hv2"]
    never_on_two(events)


async def test_the_target_waits_for_a_stubborn_source_shutdown(
        cluster: tuple[Daemon, Daemon, Events], store: Store) -> None:
    _hv1, hv2, events = cluster
    define(store, "stub", "hv1", stubborn=True, timeout=1)
    await wait_doc(store, store.paths.vm_status("stub"), status_is("running", "hv1"))
    place(store, "stub", "hv2")
    doc = await wait_doc(store, store.paths.vm_status("stub"),
                         lambda d: bool(d and d["state"] == "migrating"))
    assert doc is not None
    assert doc["migration"]["source"] == "hv1" and doc["migration"]["target"] == "hv2"
    assert doc["migration"]["method"] == "shutdown"
    # the target does not start it while hv1 owns it
    assert await hv2.hypervisor.domain("stub") is None
    await wait_doc(store, store.paths.vm_status("stub"), status_is("running", "hv2"),
                   timeout=15)
    never_on_two(events)


async def test_live_only_migration_is_refused_on_the_test_driver(
        cluster: tuple[Daemon, Daemon, Events], store: Store) -> None:
    hv1, hv2, _ = cluster
    define(store, "vm1", "hv1", method="live")
    await wait_doc(store, store.paths.vm_status("vm1"), status_is("running", "hv1"))
    place(store, "vm1", "hv2")
    doc = await wait_doc(store, store.paths.vm_status("vm1"),
                         lambda d: bool(d and d["state"] == "failed"))
    assert doc is not None and "not supported" in doc["reason"]
    assert (await hv1.hypervisor.domain("vm1")).state == RunState.RUNNING  # type: ignore[union-attr]
    assert await hv2.hypervisor.domain("vm1") is None
