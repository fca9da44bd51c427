"""herd-node against real QEMU (`qemu:///system`): start, the stubborn guest's forced
shutdown, the abort of a shutdown by start, and adoption across a daemon restart.

The daemon runs in-process on the test's loop with its own libvirt connection and a real
ZooKeeper; the test looks at the world through ZooKeeper (by watches) and through a second
libvirt connection of its own (with QEMU the state lives in libvirtd, so both connections
see the same guests) and the guest's QEMU process (its pid file). The guest is a disk-less
SeaBIOS domain that ignores ACPI shutdown (`tests.support.libvirtd.qemu_domain_xml`).
Each test has its own domain `herd-e2e-<hex>`, destroyed and undefined after it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import libvirt
import pytest

from reconciler.config import NodeConfig
from reconciler.libvirt.events import settle_events
from store import txn, vms
from store.client import Store
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirtd import (
    SYSTEM_URI,
    TEST_DOMAIN_PREFIX,
    LibvirtDaemon,
    process_alive,
    qemu_domain_xml,
    qemu_pid,
    remove_domain,
)
from tests.support.waits import state_is, wait_doc

pytestmark = pytest.mark.qemu

NODE = "hv1"
UP_TIMEOUT = 30.0  # QEMU starts in well under a second; slow CI machines get room


@pytest.fixture
def vm_name(libvirtd: LibvirtDaemon) -> Iterator[str]:
    """A domain name of this test's own; the domain is destroyed and undefined after it."""
    name = f"{TEST_DOMAIN_PREFIX}{uuid.uuid4().hex[:8]}"
    yield name
    remove_domain(name, uri=libvirtd.uri)


@pytest.fixture
async def virt(libvirtd: LibvirtDaemon) -> AsyncIterator[libvirt.virConnect]:
    """The test's own connection to libvirtd, separate from the daemon's."""
    conn = await asyncio.to_thread(libvirt.open, libvirtd.uri)
    yield conn
    await asyncio.to_thread(conn.close)
    await settle_events()


@pytest.fixture
async def node(zk_hosts: str, zk_root: str, vm_name: str) -> AsyncIterator[Daemon]:
    """The daemon, stopped before `vm_name` removes the domain (else it would restart it)."""
    config = NodeConfig(name=NODE, zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=5.0,
                        libvirt_uri=SYSTEM_URI, coordinator=False, address=None,
                        initial_domain_state="ready", status_interval=1.0,
                        resync_interval=30.0, workers=4, log_level="INFO")
    running = Daemon(config, shared_hypervisor=False)
    await running.start()
    yield running
    await running.stop()
    await settle_events()


def define(store: Store, name: str, *, state: str = "running", timeout: int | None = None) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": state, "stopMode": "graceful", "restartRequest": 0, "node": NODE,
                   "shutdownTimeout": timeout,
                   "meta": {"limits": [], "selector": "none", "autorestart": False,
                            "migrationMethod": "any"},
                   "xml": qemu_domain_xml(name)}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def set_spec(store: Store, name: str, **changes: Any) -> None:
    def modify(doc: dict[str, Any]) -> dict[str, Any]:
        meta = doc["metadata"]
        return {**doc, "spec": {**doc["spec"], **changes},
                "metadata": {**meta, "generation": meta["generation"] + 1}}
    store.update(store.paths.vm(name), modify)


async def status(store: Store, name: str, predicate: Callable[[dict[str, Any] | None], bool],
                 *, timeout: float = 10.0) -> dict[str, Any]:
    doc = await wait_doc(store, store.paths.vm_status(name), predicate, timeout=timeout)
    assert doc is not None
    return doc


async def domain_state(conn: libvirt.virConnect, name: str) -> tuple[int, int]:
    """libvirt's state of the domain and its reason (`VIR_DOMAIN_SHUTOFF`,
    `VIR_DOMAIN_SHUTOFF_DESTROYED`), asked on the test's own connection."""
    dom = await asyncio.to_thread(conn.lookupByName, name)
    state, reason = await asyncio.to_thread(dom.state)
    return int(state), int(reason)


async def runs(conn: libvirt.virConnect, name: str) -> bool:
    state, _reason = await domain_state(conn, name)
    return bool(state == libvirt.VIR_DOMAIN_RUNNING)


def running_qemu(name: str) -> int:
    """The PID of the guest's QEMU process, which must exist."""
    pid = qemu_pid(name)
    assert pid is not None, f"no QEMU process for {name}"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f"guest={name}".encode() in f.read()
    return pid


async def started(store: Store, conn: libvirt.virConnect, name: str, *,
                  timeout: int | None = None) -> int:
    """Define the VM to run here, wait until it runs; its QEMU PID."""
    define(store, name, timeout=timeout)
    await status(store, name, state_is("running"), timeout=UP_TIMEOUT)
    assert await runs(conn, name)
    return running_qemu(name)


# --- the tests -------------------------------------------------------------------------------

async def test_start_runs_the_guest_in_qemu(node: Daemon, store: Store, vm_name: str,
                                            virt: libvirt.virConnect) -> None:
    pid = await started(store, virt, vm_name)
    doc = store.get(store.paths.vm_status(vm_name)).doc
    assert doc["node"] == NODE
    assert store.get(store.paths.vm_owner(vm_name)).doc == {"node": NODE}
    assert process_alive(pid)
    assert await asyncio.to_thread(virt.getType) == "QEMU"


async def test_the_stubborn_guest_is_forced_off_at_the_timeout(
        node: Daemon, store: Store, vm_name: str, virt: libvirt.virConnect) -> None:
    pid = await started(store, virt, vm_name, timeout=2)
    set_spec(store, vm_name, state="stopped")
    doc = await status(store, vm_name, state_is("shutting-down"))
    deadline = doc["shutdownDeadline"]
    assert deadline is not None and 0 < deadline - time.time() <= 2.0
    await asyncio.sleep(deadline - 0.7 - time.time())  # SeaBIOS ignores the ACPI request
    assert time.time() < deadline
    assert await runs(virt, vm_name) and qemu_pid(vm_name) == pid
    doc = await status(store, vm_name, state_is("stopped"), timeout=UP_TIMEOUT)
    assert time.time() >= deadline
    assert doc["node"] is None and doc["shutdownDeadline"] is None
    assert await domain_state(virt, vm_name) == (libvirt.VIR_DOMAIN_SHUTOFF,
                                                 libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)
    assert qemu_pid(vm_name) is None and not process_alive(pid)
    await wait_doc(store, store.paths.vm_owner(vm_name), lambda d: d is None)


async def test_start_aborts_the_shutdown_and_the_guest_stays_up(
        node: Daemon, store: Store, vm_name: str, virt: libvirt.virConnect) -> None:
    pid = await started(store, virt, vm_name, timeout=2)
    set_spec(store, vm_name, state="stopped")
    doc = await status(store, vm_name, state_is("shutting-down"))
    deadline = doc["shutdownDeadline"]
    assert deadline is not None
    set_spec(store, vm_name, state="running")
    await status(store, vm_name, lambda d: bool(d and d["state"] == "running"
                                                and d["shutdownDeadline"] is None))
    await asyncio.sleep(deadline + 1.0 - time.time())  # past the old deadline: nothing happens
    assert await runs(virt, vm_name) and qemu_pid(vm_name) == pid
    doc = store.get(store.paths.vm_status(vm_name)).doc
    assert doc["state"] == "running" and doc["shutdownDeadline"] is None


async def test_a_restarted_daemon_adopts_the_running_guest(
        node: Daemon, store: Store, vm_name: str, virt: libvirt.virConnect) -> None:
    pid = await started(store, virt, vm_name)
    before = store.get(store.paths.vm_status(vm_name)).doc
    await node.stop()
    assert store.exists(store.paths.vm_owner(vm_name)) is None  # gone with the session
    assert await runs(virt, vm_name) and qemu_pid(vm_name) == pid
    daemon = await node.start()
    await wait_doc(store, store.paths.vm_owner(vm_name), lambda d: d == {"node": NODE},
                   timeout=15)
    owner = store.exists(store.paths.vm_owner(vm_name))
    assert owner is not None and owner.ephemeralOwner == daemon.store.session_id
    assert qemu_pid(vm_name) == pid
    after = store.get(store.paths.vm_status(vm_name)).doc
    assert after["state"] == "running" and after["since"] == before["since"]
