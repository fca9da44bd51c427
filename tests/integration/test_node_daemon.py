"""herd-node against a real ZooKeeper and libvirt's test driver: registration, the VM
lifecycle (start, graceful and forced shutdown, the aborts), restart, delete, adoption.

The daemon runs on the test's loop. Its libvirt connection is handed in, so a test can
look at libvirt's state directly and keep the "hypervisor" across a daemon restart (the
test driver's state lives in the connection).
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
from reconciler.libvirt import RunState
from store import events, txn, vms
from store.client import Store
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file
from tests.support.waits import state_is, wait_doc

NODE = "hv1"


@pytest.fixture
def node_config(zk_hosts: str, zk_root: str, tmp_path: Path) -> NodeConfig:
    return NodeConfig(name=NODE, zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=5.0,
                      libvirt_uri=write_node_file(tmp_path, NODE, cpus=8, memory_mib=32768),
                      coordinator=False, address=None, initial_domain_state="ready",
                      status_interval=1.0, resync_interval=30.0, workers=4, log_level="INFO")


@pytest.fixture
async def node(node_config: NodeConfig) -> AsyncIterator[Daemon]:
    running = Daemon(node_config)
    await running.start()
    yield running
    await running.stop()
    await running.close()


def define(store: Store, name: str, *, state: str = "running", node: str | None = NODE,
           timeout: int | None = None, stubborn: bool = False) -> None:
    xml = simple_domain_xml(name, on_poweroff="restart" if stubborn else None)
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": state, "stopMode": "graceful", "restartRequest": 0, "node": node,
                   "shutdownTimeout": timeout,
                   "meta": {"limits": [], "selector": "none", "autorestart": False,
                            "migrationMethod": "any"},
                   "xml": xml}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def set_spec(store: Store, name: str, **changes: Any) -> None:
    def modify(doc: dict[str, Any]) -> dict[str, Any]:
        spec = {**doc["spec"], **changes}
        meta = doc["metadata"]
        return {**doc, "spec": spec, "metadata": {**meta, "generation": meta["generation"] + 1}}
    store.update(store.paths.vm(name), modify)


async def status(store: Store, name: str, predicate: Callable[[dict[str, Any] | None], bool],
                 timeout: float = 10.0) -> dict[str, Any]:
    doc = await wait_doc(store, store.paths.vm_status(name), predicate, timeout=timeout)
    assert doc is not None
    return doc


async def domain_state(run: Daemon, name: str) -> RunState:
    info = await run.hypervisor.domain(name)
    return RunState.ABSENT if info is None else info.state


# --- registration ---------------------------------------------------------------------------

async def test_registers_the_node_and_publishes_resources(node: Daemon, store: Store) -> None:
    p = store.paths
    assert store.get(p.node(NODE)).doc["spec"]["domainState"] == "ready"
    alive = store.exists(p.node_alive(NODE))
    assert alive is not None and alive.ephemeralOwner != 0
    st = await wait_doc(store, p.node_status(NODE), lambda d: bool(d and d.get("daemonState")))
    assert st is not None and st["daemonState"] == "run"
    assert st["resources"]["memTotal"] == 32768 and st["resources"]["vcpuTotal"] == 8
    assert st["libvirtUri"] == node.config.libvirt_uri


async def test_resources_follow_running_vms(node: Daemon, store: Store) -> None:
    define(store, "vm1")
    await status(store, "vm1", state_is("running"))
    st = await wait_doc(store, store.paths.node_status(NODE),
                        lambda d: bool(d and d["resources"]["vms"] == 1))
    assert st is not None
    assert st["resources"]["memAlloc"] == 512 and st["resources"]["vcpuAlloc"] == 1
    assert st["resources"]["memProv"] == 512


async def test_sigterm_leaves_vms_running_and_marks_the_node_stopped(
        node: Daemon, store: Store) -> None:
    define(store, "vm1")
    await status(store, "vm1", state_is("running"))
    first_id = (await node.hypervisor.domain("vm1")).domain_id  # type: ignore[union-attr]
    await node.stop()
    assert store.get(store.paths.node_status(NODE)).doc["daemonState"] == "stop"
    assert store.exists(store.paths.node_alive(NODE)) is None
    assert await domain_state(node, "vm1") == RunState.RUNNING
    assert (await node.hypervisor.domain("vm1")).domain_id == first_id  # type: ignore[union-attr]


# --- lifecycle ----------------------------------------------------------------------------------

async def test_start_and_graceful_shutdown(node: Daemon, store: Store) -> None:
    define(store, "vm1")
    doc = await status(store, "vm1", state_is("running"))
    assert doc["node"] == NODE
    assert await domain_state(node, "vm1") == RunState.RUNNING
    assert store.get(store.paths.vm_owner("vm1")).doc == {"node": NODE}
    set_spec(store, "vm1", state="stopped")
    doc = await status(store, "vm1", state_is("stopped"))
    assert doc["node"] is None
    assert await domain_state(node, "vm1") == RunState.DEFINED
    await wait_doc(store, store.paths.vm_owner("vm1"), lambda d: d is None)


async def test_a_stubborn_guest_is_forced_off_at_the_timeout(node: Daemon, store: Store) -> None:
    define(store, "stub", stubborn=True, timeout=1)
    await status(store, "stub", state_is("running"))
    set_spec(store, "stub", state="stopped")
    doc = await status(store, "stub", state_is("shutting-down"))
    deadline = doc["shutdownDeadline"]
    assert deadline is not None and deadline - time.time() <= 1.0
    assert await domain_state(node, "stub") == RunState.RUNNING  # it ignored the ACPI request
    doc = await status(store, "stub", state_is("stopped"), timeout=10)
    assert time.time() >= deadline
    assert await domain_state(node, "stub") == RunState.DEFINED


async def test_start_aborts_a_shutdown_and_the_vm_stays_up(node: Daemon, store: Store) -> None:
    define(store, "stub", stubborn=True, timeout=1)
    await status(store, "stub", state_is("running"))
    domain_id = (await node.hypervisor.domain("stub")).domain_id  # type: ignore[union-attr]
    set_spec(store, "stub", state="stopped")
    await status(store, "stub", state_is("shutting-down"))
    set_spec(store, "stub", state="running")
    await status(store, "stub", lambda d: bool(d and d["state"] == "running"
                                                     and d["shutdownDeadline"] is None))
    await asyncio.sleep(1.5)  # past the old deadline: nothing may force it off now
    assert await domain_state(node, "stub") == RunState.RUNNING
    assert (await node.hypervisor.domain("stub")).domain_id == domain_id  # type: ignore[union-attr]
    assert store.get(store.paths.vm_status("stub")).doc["state"] == "running"


async def test_a_force_stop_during_a_shutdown_destroys_at_once(node: Daemon,
                                                               store: Store) -> None:
    define(store, "stub", stubborn=True, timeout=600)
    await status(store, "stub", state_is("running"))
    set_spec(store, "stub", state="stopped")
    await status(store, "stub", state_is("shutting-down"))
    set_spec(store, "stub", stopMode="force")
    await status(store, "stub", state_is("stopped"), timeout=5)
    assert await domain_state(node, "stub") == RunState.DEFINED


async def test_restart_runs_the_vm_again(node: Daemon, store: Store) -> None:
    define(store, "vm1")
    await status(store, "vm1", state_is("running"))
    first = (await node.hypervisor.domain("vm1")).domain_id  # type: ignore[union-attr]
    set_spec(store, "vm1", restartRequest=1)
    doc = await status(store, "vm1", lambda d: bool(d and d["state"] == "running"
                                                    and d["observedRestart"] == 1))
    assert doc["node"] == NODE
    assert (await node.hypervisor.domain("vm1")).domain_id != first  # type: ignore[union-attr]


async def test_disable_stops_the_vm_as_disabled(node: Daemon, store: Store) -> None:
    define(store, "vm1")
    await status(store, "vm1", state_is("running"))
    set_spec(store, "vm1", state="disabled")
    await status(store, "vm1", state_is("disabled"))
    assert await domain_state(node, "vm1") == RunState.DEFINED


async def test_a_deleted_vm_is_stopped_and_undefined(node: Daemon, store: Store) -> None:
    define(store, "vm1")
    await status(store, "vm1", state_is("running"))
    undefined = asyncio.get_running_loop().create_future()

    def on_event(name: str, kind: str, _detail: int) -> None:
        if name == "vm1" and kind == "undefined" and not undefined.done():
            undefined.set_result(True)

    assert node.daemon is not None
    node.daemon.event_listeners.append(on_event)
    store.delete(store.paths.vm("vm1"), recursive=True)
    await asyncio.wait_for(undefined, 10)
    assert await node.hypervisor.domain("vm1") is None


async def test_xml_change_while_running_requires_a_restart(node: Daemon, store: Store) -> None:
    define(store, "vm1")
    await status(store, "vm1", state_is("running"))
    set_spec(store, "vm1", xml=simple_domain_xml("vm1", memory_mib=1024))
    doc = await status(store, "vm1", lambda d: bool(d and any(
        c["type"] == "RestartRequired" for c in d.get("conditions", []))))
    assert doc["state"] == "running"
    set_spec(store, "vm1", restartRequest=1)
    doc = await status(store, "vm1", lambda d: bool(d and d["observedRestart"] == 1
                                                    and d["state"] == "running"))
    assert not any(c["type"] == "RestartRequired" for c in doc["conditions"])
    assert (await node.hypervisor.domain("vm1")).memory_mib == 1024  # type: ignore[union-attr]


async def test_a_vm_placed_elsewhere_is_left_alone(node: Daemon, store: Store) -> None:
    define(store, "other", node="hv2")
    define(store, "mine")
    await status(store, "mine", state_is("running"))
    assert await node.hypervisor.domain("other") is None
    assert store.get(store.paths.vm_status("other")).doc["state"] == "stopped"


# --- restarts and adoption -------------------------------------------------------------------

async def test_daemon_restart_adopts_running_vms_without_restarting_them(
        node: Daemon, store: Store) -> None:
    define(store, "vm1")
    await status(store, "vm1", state_is("running"))
    first = (await node.hypervisor.domain("vm1")).domain_id  # type: ignore[union-attr]
    await node.stop()
    await node.start()
    doc = await wait_doc(store, store.paths.vm_owner("vm1"), lambda d: d is not None, timeout=15)
    assert doc == {"node": NODE}
    assert (await node.hypervisor.domain("vm1")).domain_id == first  # type: ignore[union-attr]
    assert store.get(store.paths.vm_status("vm1")).doc["state"] == "running"


async def test_daemon_restart_mid_shutdown_keeps_the_deadline(node: Daemon,
                                                              store: Store) -> None:
    define(store, "stub", stubborn=True, timeout=3)
    await status(store, "stub", state_is("running"))
    set_spec(store, "stub", state="stopped")
    doc = await status(store, "stub", state_is("shutting-down"))
    deadline = doc["shutdownDeadline"]
    await node.stop()
    await node.start()
    doc = await status(store, "stub", state_is("stopped"), timeout=15)
    assert time.time() >= deadline
    assert time.time() < deadline + 5, "the restarted daemon started a new timeout"
    assert await domain_state(node, "stub") == RunState.DEFINED


async def test_a_domain_herd_does_not_know_is_left_alone(node_config: NodeConfig,
                                                         store: Store, tmp_path: Path) -> None:
    uri = write_node_file(tmp_path, "hv1b", domains=[simple_domain_xml("foreign")])
    run = Daemon(replace(node_config, libvirt_uri=uri))
    await run.start()
    try:
        define(store, "mine")
        await status(store, "mine", state_is("running"))
        assert await domain_state(run, "foreign") == RunState.RUNNING
        assert store.exists(store.paths.vm("foreign")) is None
        reported = [e for e in events.recent(store) if e["kind"] == "foreign-domains"]
        assert reported and "foreign" in reported[0]["message"]
    finally:
        await run.stop()
        await run.close()


async def test_a_libvirt_failure_shows_as_failed_with_the_reason(node: Daemon,
                                                                 store: Store) -> None:
    # Valid for Herd's schema, refused by libvirt: an architecture it does not know.
    xml = simple_domain_xml("bad").replace("<type>hvm</type>", "<type arch='sparc99'>hvm</type>")
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": "bad", "generation": 1},
          "spec": {"state": "running", "node": NODE, "shutdownTimeout": None,
                   "meta": {"limits": [], "selector": "none", "autorestart": False,
                            "migrationMethod": "any"}, "xml": xml}}
    txn.commit(store, vms.define_ops(store.paths, vm))
    doc = await status(store, "bad", state_is("failed"))
    assert doc["reason"].startswith("start failed: cannot define domain 'bad'")
    assert await node.hypervisor.domain("bad") is None
