"""Restart limits (issue #17) with three coordinator daemons on test-driver nodes: a guest
that keeps stopping by itself (destroyed behind Herd's back, as a crash would) is started
again in place `maxRestart` times, then given up there and relocated to a node not tried,
and after `maxRelocate` relocations it stays failed with the reason and one event; a new
desired state starts it afresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from store import events, txn, vms
from store.client import Store
from tests.integration.test_controllers import make_cluster
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml
from tests.support.waits import wait_doc

NAME = "flaky"


@pytest.fixture
async def cluster(zk_hosts: str, zk_root: str, tmp_path: Path,
                  store: Store) -> AsyncIterator[list[Daemon]]:
    members = await make_cluster(zk_hosts, zk_root, tmp_path, store)
    yield members
    for m in members:
        await m.stop()
        await m.close()


def define_flaky(store: Store, node: str) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": NAME, "generation": 1},
          "spec": {"state": "running", "node": node, "shutdownTimeout": 5,
                   "meta": {"limits": [], "selector": "none", "autorestart": False,
                            "migrationMethod": "any", "maxRestart": 1, "maxRelocate": 1},
                   "xml": simple_domain_xml(NAME)}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def crash(cluster: list[Daemon], node: str) -> None:
    """The guest stops by itself on `node` (destroyed behind Herd's back)."""
    daemon = next(m for m in cluster if m.config.name == node)
    daemon.hypervisor.connection.get().lookupByName(NAME).destroy()


def running(node: str, *, restarts: int) -> Any:
    return lambda d: bool(d and d["state"] == "running" and d["node"] == node
                          and len(d.get("restarts") or []) == restarts)


async def test_restarts_in_place_then_relocates_then_fails(cluster: list[Daemon],
                                                           store: Store) -> None:
    status, placement = store.paths.vm_status(NAME), store.paths.vm_placement(NAME)
    define_flaky(store, "hv1")
    await wait_doc(store, status, running("hv1", restarts=0))
    crash(cluster, "hv1")
    await wait_doc(store, status, running("hv1", restarts=1))  # maxRestart: once in place
    crash(cluster, "hv1")
    moved = await wait_doc(store, placement, lambda d: bool(d and d["node"] != "hv1"))
    assert moved is not None and moved["tried"] == {"generation": 1, "nodes": ["hv1"]}
    assert moved["reason"].startswith(f"relocated to {moved['node']}: gave up on hv1 after 1")
    other = moved["node"]
    await wait_doc(store, status, running(other, restarts=0))
    crash(cluster, other)
    await wait_doc(store, status, running(other, restarts=1))
    crash(cluster, other)
    reason = f"failed: given up on hv1, {other} (restart limits)"
    await wait_doc(store, placement, lambda d: bool(d and d["reason"] == reason))
    assert store.get(status).doc["state"] == "failed"
    assert [e["message"] for e in events.recent(store) if e["kind"] == "failed"] == [
        f"{NAME}: {reason}"]
    # A new desired state (here: restart) starts afresh on its node.
    store.update(store.paths.vm(NAME), lambda d: {**d, "metadata": {
        **d["metadata"], "generation": d["metadata"]["generation"] + 1},
        "spec": {**d["spec"], "restartRequest": d["spec"].get("restartRequest", 0) + 1}})
    await wait_doc(store, status, running(other, restarts=0))
