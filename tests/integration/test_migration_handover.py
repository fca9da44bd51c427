"""Regression (found by the fault suite, issue #8, seed 1: "node-restart-mid-migration"): a
VM migrating by shutdown from hv1 to hv2 (a stubborn guest, waiting out its shutdown
timeout) when hv1's daemon stops. The `owner` znode is an ephemeral of hv1's session, so
it vanished with the session while the guest still ran there — and hv2, seeing the VM
placed on it and unowned, started it: the VM ran on two nodes (for 40 ms on test-driver
nodes, whose guests die with the daemon's connection; for good on real hypervisors, whose
guests outlive the daemon). An owner gone is not a release: the source also records in
status that the VM is off there (status.node None), in the same transaction. A target now
starts a VM only when status does not say it is up on another node; a source that finds
its guest gone (a restarted test-driver node) says so; and after a fence, the primary
records as stopped the VMs that status placed on the fenced node, wherever they are placed.

Three in-process daemons (hv3 the only coordinator, so the primary); the test holds each
node's libvirt connection (tests/support/daemons.py), so a daemon stop leaves its guests
running, as on real hypervisors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import NodeConfig
from reconciler.libvirt import RunState
from store import txn, vms
from store.client import Store
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file
from tests.support.waits import wait_doc

SHUTDOWN_TIMEOUT = 6  # seconds the stubborn guest keeps running after the ACPI request


def base_config(zk_hosts: str, zk_root: str, *, tmp_path: Path) -> NodeConfig:
    script = tmp_path / "fence"
    script.write_text(f"#!/bin/sh\necho \"$HERD_NODE\" >> {tmp_path}/fenced\nexit 0\n")
    script.chmod(0o755)
    return NodeConfig(name="hv1", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=3.0,
                      libvirt_uri="", coordinator=False, address=None,
                      initial_domain_state="ready", status_interval=0.5,
                      resync_interval=30.0, workers=4, log_level="INFO",
                      fence={"default": {"agent": "command", "command": str(script)}})


@pytest.fixture
async def nodes(zk_hosts: str, zk_root: str, tmp_path: Path,
               store: Store) -> AsyncIterator[dict[str, Daemon]]:
    store.update(store.paths.config, lambda d: {**d, "fenceTimeout": 1.0})
    base = base_config(zk_hosts, zk_root, tmp_path=tmp_path)
    made = {n: Daemon(replace(base, name=n, libvirt_uri=write_node_file(tmp_path, n),
                              coordinator=n == "hv3")) for n in ("hv1", "hv2", "hv3")}
    for n in made.values():
        await n.start()
    yield made
    for n in made.values():
        if n.daemon is not None:
            await n.stop()
        await n.close()


def define_stubborn(store: Store, name: str, *, node: str) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": "running", "node": node, "shutdownTimeout": SHUTDOWN_TIMEOUT,
                   "meta": {"limits": ["hv1", "hv2"], "selector": "none",
                            "autorestart": False, "migrationMethod": "any"},
                   "xml": simple_domain_xml(name, on_poweroff="restart")}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def migrate(store: Store, name: str, *, node: str) -> None:
    def modify(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "node": node, "lastNode": doc.get("node"), "reason": "migrate"}
    store.update(store.paths.vm_placement(name), modify)


def status_is(state: str, node: str | None) -> Callable[[dict[str, Any] | None], bool]:
    return lambda d: bool(d and d["state"] == state and d["node"] == node)


async def runs_on(daemon: Daemon, name: str) -> bool:
    info = await daemon.hypervisor.domain(name)
    return info is not None and info.state == RunState.RUNNING


async def migrating(store: Store) -> None:
    define_stubborn(store, "web", node="hv1")
    await wait_doc(store, store.paths.vm_status("web"), status_is("running", "hv1"), timeout=30)
    migrate(store, "web", node="hv2")
    await wait_doc(store, store.paths.vm_status("web"), status_is("migrating", "hv1"),
                   timeout=SHUTDOWN_TIMEOUT)


async def test_a_target_never_starts_a_vm_still_up_on_a_stopped_source(
        nodes: dict[str, Daemon], store: Store) -> None:
    await migrating(store)
    await nodes["hv1"].stop()  # the daemon stops; its guest runs on (real hypervisors)
    assert await runs_on(nodes["hv1"], "web")
    with pytest.raises(AssertionError):  # hv2 must not start it meanwhile
        await wait_doc(store, store.paths.vm_status("web"),
                       lambda d: bool(d and d["node"] == "hv2"), timeout=SHUTDOWN_TIMEOUT)
    assert not await runs_on(nodes["hv2"], "web")
    await nodes["hv1"].start()  # adopts the guest, finishes the migration
    await wait_doc(store, store.paths.vm_status("web"), status_is("running", "hv2"),
                   timeout=SHUTDOWN_TIMEOUT + 60)
    assert not await runs_on(nodes["hv1"], "web")


async def test_a_source_that_lost_its_guest_in_a_restart_hands_it_over(
        nodes: dict[str, Daemon], store: Store) -> None:
    await migrating(store)
    old = nodes["hv1"]
    await old.stop()
    await old.close()  # a test-driver node: its guests vanish with the connection
    nodes["hv1"] = Daemon(old.config)  # the node's file afresh: no domains
    await nodes["hv1"].start()
    await wait_doc(store, store.paths.vm_status("web"), status_is("running", "hv2"),
                   timeout=60)


async def test_after_a_fence_a_vm_migrating_from_the_fenced_node_starts_on_its_target(
        nodes: dict[str, Daemon], store: Store) -> None:
    await migrating(store)
    await nodes["hv1"].crash()  # a power-off: the session ends without a clean stop
    await wait_doc(store, store.paths.vm_status("web"), status_is("running", "hv2"),
                   timeout=60)
    assert store.get(store.paths.vm_owner("web")).doc["node"] == "hv2"


async def test_the_target_leaves_the_status_of_a_vm_still_up_on_a_stopped_source_alone(
        nodes: dict[str, Daemon], store: Store) -> None:
    """Seed 6: while hv1's daemon was down, the primary stopped the VM (no valid target)
    and autorestarted it; hv2, placed-on and unowned, wrote "stopped, on no node" over
    hv1's status, and then started the VM that hv1's guest still ran."""
    await migrating(store)
    await nodes["hv1"].stop()
    set_state(store, "web", "stopped")
    with pytest.raises(AssertionError):
        await wait_doc(store, store.paths.vm_status("web"),
                       lambda d: bool(d and d["node"] != "hv1"), timeout=2)
    set_state(store, "web", "running")
    with pytest.raises(AssertionError):
        await wait_doc(store, store.paths.vm_status("web"),
                       lambda d: bool(d and d["node"] != "hv1"), timeout=2)
    assert await runs_on(nodes["hv1"], "web") and not await runs_on(nodes["hv2"], "web")
    await nodes["hv1"].start()
    await wait_doc(store, store.paths.vm_status("web"), status_is("running", "hv2"),
                   timeout=SHUTDOWN_TIMEOUT + 60)
    assert not await runs_on(nodes["hv1"], "web")


def set_state(store: Store, name: str, state: str) -> None:
    def modify(doc: dict[str, Any]) -> dict[str, Any]:
        meta = doc["metadata"]
        return {**doc, "spec": {**doc["spec"], "state": state},
                "metadata": {**meta, "generation": meta["generation"] + 1}}
    store.update(store.paths.vm(name), modify)
