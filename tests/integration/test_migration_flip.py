"""Regression (found by the issue #20 flake hunt, QEMU fault suite seed 14: one VM running on
two hosts): a VM was placed back on its source while its live migration away was in
flight. When the call returned, the source re-planned from the placement — placed here,
no domain here, the owner znode its own (held for the migration) — and STARTED the VM,
which was running on the target. A node that has just migrated a guest away now hands
it over first (owner released, status naming the target, where it runs), whatever the
placement says meanwhile; the target then owns it and migrates it back.

A real ZooKeeper; the source's hypervisor is the in-memory fake with a live migration the
test holds open (tests/integration/test_unowned_migration.py).
"""

from __future__ import annotations

import asyncio
from functools import partial

from store.client import Store
from store.informer import Change, Informer
from tests.support.sourcenode import define_on_hv1, source_node


def define_running_on_hv1(store: Store, name: str, owner: Store) -> None:
    define_on_hv1(store, name)
    p = store.paths
    store.update(p.vm_status(name), lambda d: {**d, "state": "running", "node": "hv1"})
    owner.create(p.vm_owner(name), {"node": "hv1"}, ephemeral=True)


async def place(store: Store, informer: Informer, name: str, node: str) -> None:
    """Place the VM on `node`; return once the source's cache shows it."""
    path, loop, seen = store.paths.vm_placement(name), asyncio.get_running_loop(), \
        asyncio.Event()

    def on_change(change: Change) -> None:
        if change.path == path and change.new is not None and change.new.doc["node"] == node:
            loop.call_soon_threadsafe(seen.set)

    unsubscribe = informer.subscribe(on_change)
    try:
        store.update(path, lambda d: {**d, "node": node,
                                      "lastNode": "hv1" if node != "hv1" else None})
        await asyncio.wait_for(seen.wait(), 30)
    finally:
        unsubscribe()


async def test_a_vm_placed_back_mid_migration_is_not_started_at_its_source(
        store: Store, zk_hosts: str, zk_root: str) -> None:
    name, p = "flip1", store.paths
    before = partial(define_running_on_hv1, store, name)  # owned by hv1's session
    async with source_node(zk_hosts, zk_root, name, before_sync=before) as hv1:
        await place(store, hv1.informer, name, "hv2")
        migrating = hv1.spawn(hv1.drive(name))
        await asyncio.wait_for(hv1.hv.started.wait(), 10)
        await place(store, hv1.informer, name, "hv1")  # back, while the migration runs
        hv1.hv.done.set()  # the guest arrives on hv2
        await asyncio.wait_for(migrating, 10)
        for _ in range(3):  # whatever wakes it next: it must not start the guest here
            await asyncio.wait_for(hv1.reconciler.reconcile(name), 10)
        assert name not in hv1.hv.domains, "started at the source while it runs on the target"
        assert not store.exists(p.vm_owner(name))  # handed over: the target claims it
        status = store.get(p.vm_status(name)).doc
        assert status["node"] == "hv2"  # where it runs, so no other node starts it
