"""Regression (found by the fault suite, issue #8, seed 1): after a ZooKeeper outage longer
than the fence timeout, every node's heartbeat is as old as the outage. A healthy node
that reconnects a little late — its session expired meanwhile, so its `alive` znode is
gone — re-registers within moments; but the primary, taking office again as ZooKeeper
came back, saw `alive` gone and a heartbeat older than the fence timeout and fenced it at
once (in the fault suite: two healthy nodes of three power-cycled, with every VM on them).
A primary cannot have seen heartbeats while it was not in office, so a node's silence
counts from the start of the primary's term at the earliest: a node gets the whole fence
timeout to come back after a new primary takes office.

A real coordinator (election, controllers, the `command` fence agent that records what it
fences) on the session's ZooKeeper; hv2's znodes are as an outage leaves them (status
`run`, heartbeat 60 s old, no `alive`); hv2 re-registers a second after hv1 took office.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from reconciler.cluster.coordinator import Coordinator
from reconciler.cluster.fencing import Fencer
from reconciler.cluster.state import ClusterState
from store.client import Store
from store.informer import Informer
from tests.support.waits import wait_children, wait_doc

FENCE_TIMEOUT = 4.0
LATE = 1.0  # seconds after the primary took office that hv2 is back


def fence_agent(tmp_path: Path) -> Fencer:
    script = tmp_path / "fence"
    script.write_text(f"#!/bin/sh\necho \"$HERD_NODE\" >> {tmp_path}/fenced\nexit 0\n")
    script.chmod(0o755)
    return Fencer({"default": {"agent": "command", "command": str(script)}})


def as_an_outage_left_it(store: Store, name: str) -> None:
    p = store.paths
    store.create(p.node(name), {"apiVersion": "herd/v1", "kind": "Node",
                                "metadata": {"name": name},
                                "spec": {"domainState": "ready", "coordinator": False,
                                         "fence": "auto"}})
    store.create(p.node_status(name), {"daemonState": "run", "domainState": "ready",
                                       "heartbeat": time.time() - 60.0, "resources": {}})


@asynccontextmanager
async def primary_hv1(store: Store, tmp_path: Path) -> AsyncIterator[Coordinator]:
    """hv1's coordinator (its own informers), running until the block ends."""
    p = store.paths
    informers = [Informer(store, path) for path in (p.vms, p.nodes, p.config)]
    for informer in informers:
        await asyncio.to_thread(informer.start)
    vms, nodes, cluster = informers
    coordinator = Coordinator(store, "hv1", fencer=fence_agent(tmp_path),
                              state=ClusterState(store, vms=vms, nodes=nodes, cluster=cluster))
    nodes.subscribe(coordinator.on_node_change)
    task = asyncio.create_task(coordinator.run())
    try:
        yield coordinator
    finally:
        coordinator.stop()
        await asyncio.wait_for(task, 30)
        for informer in informers:
            await asyncio.to_thread(informer.stop)


async def test_a_node_back_soon_after_a_new_primary_took_office_is_not_fenced(
        store: Store, tmp_path: Path) -> None:
    store.update(store.paths.config, lambda d: {**d, "fenceTimeout": FENCE_TIMEOUT})
    as_an_outage_left_it(store, "hv2")
    p = store.paths
    async with primary_hv1(store, tmp_path) as coordinator:
        # taking office records a "primary" event: a new child of the events znode
        await wait_children(store, p.events, lambda _c: coordinator.is_primary, timeout=20)
        await asyncio.sleep(LATE)  # hv2 reconnects a little after the primary took office
        store.create(p.node_alive("hv2"), {"pid": 0, "since": time.time()}, ephemeral=True)
        with pytest.raises(AssertionError):  # and it is never fenced
            await wait_doc(store, p.node_status("hv2"),
                           lambda d: bool(d and d.get("daemonState") == "fenced"),
                           timeout=FENCE_TIMEOUT + 2)
        assert not (tmp_path / "fenced").exists()


async def test_a_node_that_stays_away_is_still_fenced_after_the_timeout(
        store: Store, tmp_path: Path) -> None:
    store.update(store.paths.config, lambda d: {**d, "fenceTimeout": 1.0})
    as_an_outage_left_it(store, "hv2")
    async with primary_hv1(store, tmp_path):
        await wait_doc(store, store.paths.node_status("hv2"),
                       lambda d: bool(d and d.get("daemonState") == "fenced"), timeout=20)
        assert (tmp_path / "fenced").read_text().split() == ["hv2"]
