"""Restart limits (issue #17) with three coordinator daemons on test-driver nodes: a VM
whose starts fail on a node (the node's libvirt refuses them: `FlakyStarts`, the real
test-driver adapter with an injected transient error) is started again in place
`maxRestart` times, then given up there and relocated to a node not tried, and after
`maxRelocate` relocations it stays failed with the reason and one event; a new desired
state starts it afresh, on the node where starts work again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.libvirt.adapter import LibvirtHypervisor
from reconciler.libvirt.interface import HypervisorError
from store import events, txn, vms
from store.client import Store
from tests.integration.test_controllers import make_cluster
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml
from tests.support.waits import wait_doc

NAME = "flaky"


class FlakyStarts(LibvirtHypervisor):
    """The real adapter, whose `start` of the VMs in `failing` fails as a transient libvirt
    error would (VIR_ERR_INTERNAL_ERROR: retried, not terminal)."""

    failing: set[str] = set()

    async def start(self, name: str) -> None:
        if name in self.failing:
            raise HypervisorError(f"cannot start {name!r}: injected failure", code=1)
        await super().start(name)


@pytest.fixture
async def cluster(zk_hosts: str, zk_root: str, tmp_path: Path,
                  store: Store) -> AsyncIterator[list[Daemon]]:
    FlakyStarts.failing = {NAME}
    members = await make_cluster(zk_hosts, zk_root, tmp_path, store, hypervisor=FlakyStarts)
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


def failed_on(node: str, *, restarts: int) -> Any:
    return lambda d: bool(d and d["state"] == "failed" and d["node"] == node
                          and len(d.get("restarts") or []) == restarts)


async def test_failed_starts_restart_then_relocate_then_fail(cluster: list[Daemon],
                                                             store: Store) -> None:
    status, placement = store.paths.vm_status(NAME), store.paths.vm_placement(NAME)
    define_flaky(store, "hv1")
    await wait_doc(store, status, failed_on("hv1", restarts=1))  # maxRestart: once in place
    moved = await wait_doc(store, placement, lambda d: bool(d and d["node"] != "hv1"))
    assert moved is not None and moved["tried"] == {"generation": 1, "nodes": ["hv1"]}
    assert moved["reason"].startswith(f"relocated to {moved['node']}: gave up on hv1 after 1")
    other = moved["node"]
    reason = f"failed: given up on hv1, {other} (restart limits)"
    await wait_doc(store, placement, lambda d: bool(d and d["reason"] == reason))
    assert store.get(status).doc["state"] == "failed"
    assert [e["message"] for e in events.recent(store) if e["kind"] == "failed"] == [
        f"{NAME}: {reason}"]
    # A new desired state (here: restart) starts afresh on its node, where starts work now.
    FlakyStarts.failing = set()
    store.update(store.paths.vm(NAME), lambda d: {**d, "metadata": {
        **d["metadata"], "generation": d["metadata"]["generation"] + 1},
        "spec": {**d["spec"], "restartRequest": d["spec"].get("restartRequest", 0) + 1}})
    await wait_doc(store, status, lambda d: bool(d and d["state"] == "running"
                                                 and d["node"] == other and not d["restarts"]))
