"""herd-node growing its volumes (issue #15): a node daemon on libvirt's test driver
against a real ZooKeeper. A volume whose `spec.size` went up is grown by its node: through
the running domain of the VM holding it (virDomainBlockResize on that disk's target) when
that VM runs here, else offline (virStorageVolResize). The test driver has neither verb,
which is the permanent refusal these tests see: the volume is `failed` with libvirt's
reason, naming the verb the node chose. Real growth (online and offline, on real QEMU
hosts) is tests/e2e/test_qemu_volume_ops.py."""

from __future__ import annotations

import asyncio

from store import txn
from store.client import Store
from store.objects import with_spec
from tests.integration.test_node_daemon import NODE, node, node_config
from tests.integration.test_node_pools import pool_state, put_pool, put_volume, volume_state
from tests.support.daemons import RunningDaemon

__all__ = ["node", "node_config"]  # fixtures used by name

MiB = 1 << 20


async def made(store: Store, name: str) -> None:
    await asyncio.to_thread(put_volume, store, "local", name, size=256 * MiB)
    found = await volume_state(store, "local", name, "ready")
    assert found is not None and found["capacity"] == 256 * MiB


def grow(store: Store, name: str, size: int) -> None:
    store.update(store.paths.volume("local", name), lambda doc: with_spec(doc, size=size))


async def test_a_grown_volume_is_resized_offline_or_through_its_running_vm(
        node: RunningDaemon, store: Store) -> None:
    await asyncio.to_thread(put_pool, store, "local", {"type": "local",
                                                        "path": "/var/lib/herd/pools/local"})
    await pool_state(store, "local", usable=True)
    await made(store, "idle")
    await asyncio.to_thread(grow, store, "idle", 512 * MiB)
    failed = await volume_state(store, "local", "idle", "failed")
    assert failed is not None and "virStorageVolResize" in failed["reason"], failed

    await made(store, "busy")  # held by vm1, which runs here
    conn = node.hypervisor.connection.get()
    dom = await asyncio.to_thread(conn.defineXML, (
        "<domain type='test'><name>vm1</name><memory unit='MiB'>64</memory><os><type>hvm"
        "</type></os><devices><disk type='volume' device='disk'><source pool='local' "
        "volume='busy'/><target dev='vdc' bus='virtio'/></disk></devices></domain>"))
    await asyncio.to_thread(dom.create)
    await asyncio.to_thread(txn.commit, store, [txn.Create(
        store.paths.volume_attachment("local", "busy"), {"vm": "vm1"})])
    await asyncio.to_thread(grow, store, "busy", 1024 * MiB)
    failed = await volume_state(store, "local", "busy", "failed")
    assert failed is not None and "virDomainBlockResize" in failed["reason"], failed
    assert "vdc" in failed["reason"] and failed["node"] == NODE
