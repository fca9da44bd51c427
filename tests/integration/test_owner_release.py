"""Regression (found on the real-QEMU cluster, issue #7): the source of a live migration
released the owner znode, the destination created its own at the same path, and a second
reconcile of the source, from a vm that still held the old owner, deleted the NEW one:
an owner znode's version says nothing (every new one has version 0), and that release
wrote no status (unchanged), so nothing else was checked. The VM then looked unowned and a
third reconcile claimed it on a node where it did not run. Now a release always checks
status at the version it read, and every claim writes status, so a stale release fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.vm.observe import Observation
from reconciler.vm.reconcile import VMReconciler
from statemachine.nodeplan import plan_vm
from store import txn, vms
from store.client import Store
from store.errors import Conflict
from store.model import VM
from tests.support.fakehypervisor import FakeHypervisor
from tests.support.libvirt_nodes import simple_domain_xml


def define(store: Store, name: str, *, node: str) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": "running", "node": node, "meta": {},
                   "xml": simple_domain_xml(name)}}
    txn.commit(store, vms.define_ops(store.paths, vm))


async def test_a_release_from_a_stale_view_never_deletes_the_new_owner(
        store: Store, zk_hosts: str, zk_root: str) -> None:
    p, name = store.paths, "g1"
    define(store, name, node="hv2")
    hv1, hv2 = Store(zk_hosts, zk_root), Store(zk_hosts, zk_root)
    hv1.start()
    hv2.start()
    try:
        hv1.create(p.vm_owner(name), {"node": "hv1"}, ephemeral=True)
        stale_owner = hv1.get(p.vm_owner(name))
        nothing: Any = None  # the views are given; the cache is not read
        source = VMReconciler("hv1", hv1, vms=nothing, hypervisor=FakeHypervisor(),
                              cluster_default=lambda _key, default: default)

        async def reconcile_from(vm: VM) -> None:
            """hv1's reconcile of `vm` with no domain there: plan, act, record."""
            seen = Observation("hv1", vm, None, source.observer.situation(vm, None))
            await source.actuator.carry_out(seen, plan_vm(seen.situation, now=0.0))

        spec, placement = hv1.get(p.vm(name)), hv1.get(p.vm_placement(name))
        # hv1's release, as its reconcile makes it: owner deleted, status in one transaction.
        await reconcile_from(VM(name, spec, placement, hv1.get(p.vm_status(name)),
                                stale_owner))
        released = hv1.get(p.vm_status(name))
        txn.commit_one(hv2, [txn.Create(p.vm_owner(name), {"node": "hv2"}, ephemeral=True),
                             txn.Set(p.vm_status(name), {**released.doc, "state": "running",
                                                         "node": "hv2"}, released.version)])
        # hv1 again, from a view taken between its release and hv2's claim reaching it:
        # the status it wrote itself (nothing to change) and its old owner znode.
        vm = VM(name, spec, placement, released, stale_owner)
        with pytest.raises(Conflict):
            await reconcile_from(vm)
        owner = store.get(p.vm_owner(name))
        assert owner.doc == {"node": "hv2"}
        assert owner.stat.ephemeralOwner == hv2.session_id
    finally:
        hv1.stop()
        hv2.stop()
