"""Regression (found by the flake hunt of issue #20, tests/e2e/test_qemu_cluster.py
`test_a_daemon_restarted_mid_migration_finishes_it` under load): a daemon killed after it
wrote `migrating` and before it called libvirt; its restarted successor found the guest
running here, unowned (the owner znode went with the old session), and migrated it out
WITHOUT claiming it first. The destination, seeing the guest running there and nobody
owning it, claimed it while the source still held it paused: the hand-over was no longer
"the source lets go once libvirt reports the guest gone here". Now a node owns a guest
before it migrates it out, like before it starts one; a guest another session owns is
waited for.

A real ZooKeeper; the node's hypervisor is the in-memory fake, taught a live migration
that the test holds open so that it can look at ZooKeeper during the call.
"""

from __future__ import annotations

import asyncio

from reconciler.vm.reconcile import OWNER_WAIT
from store.client import Store
from tests.support.sourcenode import define_on_hv1, source_node
from tests.support.waits import wait_doc


def define_running_on_hv1_placed_on_hv2(store: Store, name: str) -> None:
    """What the killed daemon left: placed on hv2, status `migrating` from hv1, no owner."""
    define_on_hv1(store, name)
    p = store.paths
    store.update(p.vm_placement(name), lambda d: {**d, "node": "hv2", "lastNode": "hv1"})
    store.update(p.vm_status(name), lambda d: {
        **d, "state": "migrating", "node": "hv1", "reason": "migrating",
        "migration": {"source": "hv1", "target": "hv2", "method": "live", "started": 1.0}})


async def test_a_node_owns_a_guest_before_it_migrates_it_out(store: Store, zk_hosts: str,
                                                             zk_root: str) -> None:
    name, p = "mig1", store.paths
    define_running_on_hv1_placed_on_hv2(store, name)
    async with source_node(zk_hosts, zk_root, name) as hv1:
        migrating = hv1.spawn(hv1.drive(name))
        await asyncio.wait_for(hv1.hv.started.wait(), 10)
        owner = store.get(p.vm_owner(name))  # during the call: ours, by this session
        assert owner.doc == {"node": "hv1"}
        assert owner.stat.ephemeralOwner == hv1.store.session_id
        hv1.hv.done.set()
        await asyncio.wait_for(migrating, 10)
        await wait_doc(store, p.vm_status(name), lambda d: bool(d and d["node"] == "hv2"))
        assert not store.exists(p.vm_owner(name))  # released once the guest was gone here


async def test_a_guest_another_session_owns_is_not_migrated(store: Store, zk_hosts: str,
                                                             zk_root: str) -> None:
    name, p = "mig2", store.paths
    define_running_on_hv1_placed_on_hv2(store, name)
    store.create(p.vm_owner(name), {"node": "hv1"}, ephemeral=True)  # the old session's
    async with source_node(zk_hosts, zk_root, name) as hv1:
        hv1.hv.done.set()  # were it called, the migration would end at once
        result = await asyncio.wait_for(hv1.drive(name), 10)
        assert result.requeue_after == OWNER_WAIT and not hv1.hv.started.is_set()
