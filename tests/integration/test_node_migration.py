"""Two herd-node daemons on test-driver nodes: moving a VM between them.

The test driver cannot migrate, so a placement change is carried out as shutdown on the
source, release of ownership, and a cold start on the target; `live` is reported as
unsupported, never faked. A timeline of both nodes' libvirt lifecycle events shows that
the VM never runs on two nodes at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import NodeConfig
from reconciler.daemon import NodeDaemon
from reconciler.hypervisor import DomainState, Hypervisor
from store import txn, vms
from store.client import Store
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file
from tests.support.waits import wait_doc

Timeline = list[tuple[float, str, str]]  # (time, node, "up" | "down")


class Node:
    def __init__(self, config: NodeConfig, timeline: Timeline) -> None:
        self.config = config
        self.hv = Hypervisor(config.libvirt_uri)
        self.hv.open()
        self.daemon = NodeDaemon(config, hypervisor=self.hv)
        self.daemon.event_listeners.append(self._record)
        self.timeline = timeline
        self.task: asyncio.Task[None] | None = None

    def _record(self, _name: str, kind: str, _detail: int) -> None:
        if kind in ("started", "resumed"):
            self.timeline.append((time.monotonic(), self.config.name, "up"))
        elif kind in ("stopped", "crashed"):
            self.timeline.append((time.monotonic(), self.config.name, "down"))

    async def start(self) -> None:
        self.task = asyncio.create_task(self.daemon.run())
        await asyncio.wait_for(self.daemon.ready.wait(), 30)

    async def stop(self) -> None:
        self.daemon.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)
        self.hv.close()


@pytest.fixture
async def cluster(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[
        tuple[Node, Node, Timeline]]:
    base = NodeConfig(name="hv1", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=5.0,
                      libvirt_uri="", coordinator=False, address=None,
                      initial_domain_state="ready", status_interval=1.0, resync_interval=30.0,
                      workers=4, log_level="INFO")
    timeline: Timeline = []
    nodes = [Node(replace(base, name=n, libvirt_uri=write_node_file(tmp_path, n)), timeline)
             for n in ("hv1", "hv2")]
    for n in nodes:
        await n.start()
    yield nodes[0], nodes[1], timeline
    for n in nodes:
        await n.stop()


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


def never_on_two(timeline: Timeline) -> None:
    running: set[str] = set()
    for _, node, what in sorted(timeline):
        if what == "up":
            running.add(node)
            assert len(running) == 1, f"running on {sorted(running)} at once: {timeline}"
        else:
            running.discard(node)


async def test_a_placement_change_moves_the_vm_by_shutdown_and_start(
        cluster: tuple[Node, Node, Timeline], store: Store) -> None:
    hv1, hv2, timeline = cluster
    define(store, "vm1", "hv1")
    await wait_doc(store, store.paths.vm_status("vm1"), status_is("running", "hv1"))
    place(store, "vm1", "hv2")
    await wait_doc(store, store.paths.vm_status("vm1"), status_is("running", "hv2"))
    assert hv2.hv.domain("vm1") is not None
    assert hv2.hv.domain("vm1").state == DomainState.RUNNING  # type: ignore[union-attr]
    assert hv1.hv.domain("vm1") is None  # released: undefined on the source
    owner = await wait_doc(store, store.paths.vm_owner("vm1"), lambda d: d is not None)
    assert owner == {"node": "hv2"}
    assert [n for _, n, w in sorted(timeline) if w == "up"] == ["hv1", "hv2"]
    never_on_two(timeline)


async def test_the_target_waits_for_a_stubborn_source_shutdown(
        cluster: tuple[Node, Node, Timeline], store: Store) -> None:
    _hv1, hv2, timeline = cluster
    define(store, "stub", "hv1", stubborn=True, timeout=1)
    await wait_doc(store, store.paths.vm_status("stub"), status_is("running", "hv1"))
    place(store, "stub", "hv2")
    doc = await wait_doc(store, store.paths.vm_status("stub"),
                         lambda d: bool(d and d["state"] == "migrating"))
    assert doc is not None
    assert doc["migration"]["source"] == "hv1" and doc["migration"]["target"] == "hv2"
    assert doc["migration"]["method"] == "shutdown"
    assert hv2.hv.domain("stub") is None  # the target does not start it while hv1 owns it
    await wait_doc(store, store.paths.vm_status("stub"), status_is("running", "hv2"),
                   timeout=15)
    never_on_two(timeline)


async def test_live_only_migration_is_refused_on_the_test_driver(
        cluster: tuple[Node, Node, Timeline], store: Store) -> None:
    hv1, hv2, _ = cluster
    define(store, "vm1", "hv1", method="live")
    await wait_doc(store, store.paths.vm_status("vm1"), status_is("running", "hv1"))
    place(store, "vm1", "hv2")
    doc = await wait_doc(store, store.paths.vm_status("vm1"),
                         lambda d: bool(d and d["state"] == "failed"))
    assert doc is not None and "not supported" in doc["reason"]
    assert hv1.hv.domain("vm1").state == DomainState.RUNNING  # type: ignore[union-attr]
    assert hv2.hv.domain("vm1") is None
