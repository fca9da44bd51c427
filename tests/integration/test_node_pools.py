"""herd-node's storage pools (issue #15): a node daemon on libvirt's test driver against a
real ZooKeeper. A Pool written to ZooKeeper becomes an active, autostarted libvirt pool of
Herd's and the node's status shows it usable with its capacity and free space; an rbd
pool whose cephx key the node's config lacks is reported unusable with that reason; a
Pool removed from the cluster is undefined on the node, and a pool of the operator's is
never touched."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.libvirt.pools import list_pools
from statemachine.poolplan import pool_uuid
from store import pools
from store.client import Store
from store.objects import new_object
from store.siblings import commit_with
from tests.integration.test_node_daemon import NODE, node, node_config
from tests.support.daemons import RunningDaemon
from tests.support.waits import wait_doc

__all__ = ["node", "node_config"]  # fixtures used by name


def put_pool(store: Store, name: str, spec: dict[str, Any] | None) -> None:
    seen = pools.read_all(store)
    if spec is None:
        ops = pools.delete_ops(store, name, version=seen.docs[name].version)
    else:
        ops = pools.create_ops(store, name, new_object({
            "apiVersion": "herd/v1", "kind": "Pool", "metadata": {"name": name},
            "spec": spec}))
    commit_with(store, seen, ops)


async def pool_state(store: Store, name: str, *, usable: bool | None) -> dict[str, Any] | None:
    def done(doc: dict[str, Any] | None) -> bool:
        entry = (doc or {}).get("pools", {}).get(name)
        return entry is None if usable is None else bool(entry and entry["usable"] == usable)

    doc = await wait_doc(store, store.paths.node_status(NODE), done, timeout=20)
    entry: dict[str, Any] | None = (doc or {}).get("pools", {}).get(name)
    return entry


async def test_a_pool_is_made_reported_and_removed(node: RunningDaemon, store: Store) -> None:
    await asyncio.to_thread(put_pool, store, "local", {"type": "local",
                                                        "path": "/var/lib/herd/pools/local"})
    entry = await pool_state(store, "local", usable=True)
    assert entry is not None and entry["capacity"] > 0 and entry["available"] > 0
    found = await asyncio.to_thread(list_pools, node.hypervisor.connection)
    assert found["local"].active and found["local"].autostart
    assert found["local"].uuid == pool_uuid("local")
    assert found["local"].path == "/var/lib/herd/pools/local"
    operators = set(found) - {"local"}
    await asyncio.to_thread(put_pool, store, "local", None)
    assert await pool_state(store, "local", usable=None) is None
    after = await asyncio.to_thread(list_pools, node.hypervisor.connection)
    assert "local" not in after and operators <= set(after)


async def test_an_rbd_pool_without_its_key_here_is_unusable_with_the_reason(
        node: RunningDaemon, store: Store) -> None:
    rbd = {"monitors": ["mon1.example.net:6789"], "pool": "vms", "user": "herd",
           "secret": "ceph-vms"}
    await asyncio.to_thread(put_pool, store, "ceph", {"type": "rbd", "rbd": rbd})
    entry = await pool_state(store, "ceph", usable=False)
    assert entry is not None and "no cephx key" in entry["reason"]
    found = await asyncio.to_thread(list_pools, node.hypervisor.connection)
    assert "ceph" not in found  # nothing half-made

