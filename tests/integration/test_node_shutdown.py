"""The node shutdown policy (`config.shutdownPolicy`) with three coordinator daemons on
test-driver nodes: as its host shuts down (`stop(host_shutdown=True)`, what systemd's
queued shutdown says to herd-node), a node flushes itself and is ready again when back
(migrate, bounded, cut short by a second SIGTERM), leaves its guests as they are (freeze,
and any stop of the daemon alone), or shuts them down to start them again when back (stop).

The daemons share their libvirt connections with the test (`tests.support.daemons`), so
a restarted daemon finds its "hypervisor" as it left it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import NodeConfig
from reconciler.libvirt import RunState
from store import election, events, txn, vms
from store.client import Store
from store.objects import node_patch
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file
from tests.support.waits import wait_doc

NAMES = ("hv1", "hv2", "hv3")
FLUSH_TIMEOUT = 20.0  # within RunningDaemon's 30 s for a stop


@pytest.fixture
async def cluster(zk_hosts: str, zk_root: str, tmp_path: Path,
                  store: Store) -> AsyncIterator[dict[str, Daemon]]:
    base = NodeConfig(name="hv1", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=4.0,
                      libvirt_uri="", coordinator=True, address=None,
                      initial_domain_state="ready", status_interval=0.5,
                      resync_interval=30.0, workers=4, log_level="INFO",
                      shutdown_flush_timeout=FLUSH_TIMEOUT)
    members = {n: Daemon(replace(base, name=n, libvirt_uri=write_node_file(tmp_path, n)))
               for n in NAMES}
    try:
        for m in members.values():
            await m.start()
        yield members
    finally:
        for m in members.values():
            await m.stop()
            await m.close()


def define(store: Store, name: str, *, node: str, timeout: int = 5,
           stubborn: bool = False) -> None:
    xml = simple_domain_xml(name, on_poweroff="restart" if stubborn else None)
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": "running", "node": node, "shutdownTimeout": timeout,
                   "meta": {"limits": [], "selector": "none", "autorestart": False,
                            "migrationMethod": "any"}, "xml": xml}}
    txn.commit(store, vms.define_ops(store.paths, vm))


def set_policy(store: Store, policy: str) -> None:
    store.update(store.paths.config, lambda d: {**d, "shutdownPolicy": policy})


def running_on(node: str) -> Callable[[dict[str, Any] | None], bool]:
    return lambda d: bool(d and d["state"] == "running" and d["node"] == node)


async def victim_with(store: Store, cluster: dict[str, Daemon], *guests: str,
                      stubborn: tuple[str, ...] = (), timeout: int = 5) -> str:
    """A node that is not the primary, with `guests` (and `stubborn` ones) running on it."""
    name = next(n for n in NAMES if n != election.primary(store))
    for guest in (*guests, *stubborn):
        define(store, guest, node=name, stubborn=guest in stubborn, timeout=timeout)
    for guest in (*guests, *stubborn):
        await wait_doc(store, store.paths.vm_status(guest), running_on(name), timeout=20)
    return name


async def host_shutdown(member: Daemon, *,
                        meanwhile: Callable[[], Awaitable[Any]] | None = None) -> float:
    """SIGTERM as the host shuts down (and once more after `meanwhile` happened); until
    `run()` returns. The seconds it took."""
    daemon, task = member.daemon, member.task
    assert daemon is not None and task is not None
    began = time.monotonic()
    daemon.stop(host_shutdown=True)
    if meanwhile is not None:
        await meanwhile()
        assert not task.done(), "the daemon stopped before the second SIGTERM"
        daemon.stop()
    await asyncio.wait_for(task, 30)
    member.daemon = member.task = None
    return time.monotonic() - began


def shutdown_events(store: Store, node: str) -> list[str]:
    return [e["message"] for e in events.recent(store)
            if e["kind"] == "shutdown" and e.get("node") == node]


async def domain_state(member: Daemon, name: str) -> RunState:
    info = await member.hypervisor.domain(name)
    return RunState.ABSENT if info is None else info.state


def node_docs(store: Store, node: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (store.get(store.paths.node(node)).doc["spec"],
            store.get(store.paths.node_status(node)).doc)


async def test_migrate_flushes_the_node_first_and_readies_it_when_back(
        cluster: dict[str, Daemon], store: Store) -> None:
    victim = await victim_with(store, cluster, "web")
    await host_shutdown(cluster[victim])
    # run() returned: the node flushed itself (marked so), the VM runs elsewhere
    spec, status = node_docs(store, victim)
    generation = store.get(store.paths.node(victim)).doc["metadata"]["generation"]
    assert spec["domainState"] == "flushed" and status["domainState"] == "flushed"
    assert status["shutdownFlush"] == generation and status["daemonState"] == "stop"
    assert await domain_state(cluster[victim], "web") != RunState.RUNNING
    placement = store.get(store.paths.vm_placement("web")).doc
    assert placement["node"] != victim and placement["lastNode"] == victim
    assert running_on(placement["node"])(store.get(store.paths.vm_status("web")).doc)

    await cluster[victim].start()  # back: ready again, and its VM returns
    await wait_doc(store, store.paths.node_status(victim),
                   lambda d: bool(d and d["domainState"] == "ready"), timeout=20)
    await wait_doc(store, store.paths.vm_status("web"), running_on(victim), timeout=20)
    spec, status = node_docs(store, victim)
    assert spec["domainState"] == "ready" and "shutdownFlush" not in status
    assert store.get(store.paths.vm_placement("web")).doc["lastNode"] is None
    assert shutdown_events(store, victim) == [
        f"{victim} shuts down (shutdownPolicy migrate): flushed, 1 VM(s) moved away"]


async def test_a_node_an_operator_flushed_stays_flushed_when_back(
        cluster: dict[str, Daemon], store: Store) -> None:
    victim = await victim_with(store, cluster)
    store.update(store.paths.node(victim), lambda d: node_patch(d, {"domainState": "flushed"}))
    await wait_doc(store, store.paths.node_status(victim),
                   lambda d: bool(d and d["domainState"] == "flushed"))
    await host_shutdown(cluster[victim])
    assert "shutdownFlush" not in node_docs(store, victim)[1]
    await cluster[victim].start()
    spec, status = node_docs(store, victim)
    assert spec["domainState"] == "flushed" and status["domainState"] == "flushed"


async def test_migrate_waits_at_most_its_bound_and_a_second_sigterm_ends_the_wait(
        cluster: dict[str, Daemon], store: Store) -> None:
    # A guest that ignores ACPI and may take 60 s: the flush cannot end meanwhile.
    victim = await victim_with(store, cluster, stubborn=("stubborn",), timeout=60)

    async def flushing() -> None:  # the node flushes itself, shutting down meanwhile
        await wait_doc(store, store.paths.node_status(victim), lambda d: bool(
            d and (d["daemonState"], d["domainState"]) == ("shutdown", "flushing")))
    took = await host_shutdown(cluster[victim], meanwhile=flushing)
    assert took < 30.0  # ended by the second SIGTERM, not by the guest's 60 s
    spec, status = node_docs(store, victim)
    assert spec["domainState"] == "flushed" and status["domainState"] == "flushing"
    # The domainState it names is its own cache's, which may not have seen `flushing` yet.
    assert re.search(r"not flushed \(asked again to stop; domainState (ready|flushing), VMs "
                     r"on their way: stubborn\)$", shutdown_events(store, victim)[-1])
    assert await domain_state(cluster[victim], "stubborn") == RunState.RUNNING

    await cluster[victim].start()  # ready again; the guest stays where it runs
    await wait_doc(store, store.paths.node_status(victim),
                   lambda d: bool(d and d["domainState"] == "ready"), timeout=20)
    member = cluster[victim]
    member.config = replace(member.config, shutdown_flush_timeout=1.0)
    await member.stop()  # a restart of the daemon alone: no flush
    await member.start()
    took = await host_shutdown(member)
    assert 1.0 <= took < 30.0  # the bound, then the stop (not the guests' own 60 s)
    assert "not flushed (not within 1 s;" in shutdown_events(store, victim)[-1]


async def test_freeze_and_a_daemon_restart_leave_the_guests_running(
        cluster: dict[str, Daemon], store: Store) -> None:
    victim = await victim_with(store, cluster, "web")
    member = cluster[victim]
    first_id = (await member.hypervisor.domain("web")).domain_id  # type: ignore[union-attr]
    await member.stop()  # policy migrate, but only the daemon stops: nothing moves
    assert node_docs(store, victim)[0]["domainState"] == "ready"
    set_policy(store, "freeze")
    await member.start()  # its cache of the config has freeze
    await host_shutdown(member)
    info = await member.hypervisor.domain("web")
    assert info is not None and info.state == RunState.RUNNING and info.domain_id == first_id
    status = store.get(store.paths.vm_status("web")).doc
    assert (status["state"], status["node"]) == ("running", victim)
    spec, node_status = node_docs(store, victim)
    assert spec["domainState"] == "ready" and "shutdownFlush" not in node_status
    assert store.get(store.paths.vm_placement("web")).doc["node"] == victim


async def test_stop_shuts_the_guests_down_and_starts_them_when_back(
        cluster: dict[str, Daemon], store: Store) -> None:
    set_policy(store, "stop")  # seen by the daemons before the guests below run
    victim = await victim_with(store, cluster, "web", stubborn=("stubborn",), timeout=1)
    member = cluster[victim]
    took = await host_shutdown(member)
    assert took < 30.0  # the stubborn guest is forced off after its 1 s (it ignores ACPI)
    for name, how in (("web", "shut down"), ("stubborn", "forced off")):
        assert await domain_state(member, name) == RunState.DEFINED
        status = store.get(store.paths.vm_status(name)).doc
        assert (status["state"], status["node"]) == ("stopped", None)
        assert status["reason"] == f"{how} with node {victim} (shutdownPolicy stop)"
        assert store.get(store.paths.vm(name)).doc["spec"]["state"] == "running"
        assert store.get(store.paths.vm_placement(name)).doc["node"] == victim
    assert node_docs(store, victim)[0]["domainState"] == "ready"
    assert shutdown_events(store, victim) == [
        f"{victim} shuts down (shutdownPolicy stop): 2 guest(s) shut down"]

    await member.start()
    for name in ("web", "stubborn"):
        await wait_doc(store, store.paths.vm_status(name), running_on(victim), timeout=20)
        assert await domain_state(member, name) == RunState.RUNNING
