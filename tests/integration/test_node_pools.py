"""herd-node's storage pools (issue #15): a node daemon on libvirt's test driver against a
real ZooKeeper. A Pool written to ZooKeeper becomes an active, autostarted libvirt pool of
Herd's and the node's status shows it usable with its capacity and free space; an rbd
pool whose cephx key the node's config lacks is reported unusable with that reason; a
Pool removed from the cluster is undefined on the node, and a pool of the operator's is
never touched. Volumes of the node are made (empty or as a copy), described in their
status, and deleted from libvirt and ZooKeeper when asked."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.libvirt import volumes as lv_volumes
from reconciler.libvirt.pools import list_pools
from statemachine.poolplan import pool_uuid
from store import pools, volumes
from store.client import Store
from store.objects import new_object
from store.siblings import commit_with
from store.txn import commit
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



def put_volume(store: Store, pool: str, name: str, **spec: Any) -> None:
    doc = new_object({"apiVersion": "herd/v1", "kind": "Volume", "metadata": {"name": name},
                      "spec": {"pool": pool, "format": "qcow2", "node": NODE, **spec}})
    commit(store, volumes.create_ops(store, pool, name, doc))


async def volume_state(store: Store, pool: str, name: str, state: str | None
                       ) -> dict[str, Any] | None:
    return await wait_doc(store, store.paths.volume_status(pool, name),
                          lambda d: (d is None) if state is None else
                          bool(d and d.get("state") == state), timeout=20)


async def test_volumes_are_made_copied_and_deleted_on_their_node(
        node: RunningDaemon, store: Store) -> None:
    await asyncio.to_thread(put_pool, store, "local", {"type": "local",
                                                        "path": "/var/lib/herd/pools/local"})
    await pool_state(store, "local", usable=True)
    await asyncio.to_thread(put_volume, store, "local", "base", size=256 << 20)
    ready = await volume_state(store, "local", "base", "ready")
    assert ready is not None and ready["path"] == "/var/lib/herd/pools/local/base"
    assert ready["capacity"] == 256 << 20 and ready["node"] == NODE
    await asyncio.to_thread(put_volume, store, "local", "copy", size=256 << 20,
                            source={"volume": "base"})
    assert await volume_state(store, "local", "copy", "ready") is not None
    c = node.hypervisor.connection
    assert await asyncio.to_thread(lv_volumes.find, c, "local", "copy") is not None
    await asyncio.to_thread(store.update, store.paths.volume("local", "base"),
                            volumes.mark_deleted)
    assert await volume_state(store, "local", "base", None) is None
    assert store.exists(store.paths.volume("local", "base")) is None
    assert await asyncio.to_thread(lv_volumes.find, c, "local", "base") is None
    assert await asyncio.to_thread(lv_volumes.find, c, "local", "copy") is not None
