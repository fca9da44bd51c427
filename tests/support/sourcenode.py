"""The source node of a live migration, for tests of the VM controller's migration path:
its own ZooKeeper session and cache, an in-memory hypervisor whose live migration the test
holds open (`HeldMigration`), the guest already running there, and its `VMReconciler`.
Used by tests/integration/test_unowned_migration.py and test_migration_flip.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from reconciler.runtime.workqueue import Result
from reconciler.vm.reconcile import VMReconciler
from store import txn, vms
from store.client import Store
from store.informer import Informer
from tests.support.fakehypervisor import FakeHypervisor
from tests.support.libvirt_nodes import simple_domain_xml


def define_on_hv1(store: Store, name: str) -> None:
    """The VM `name`, running, placed on hv1; hv2 publishes a migration URI."""
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
          "spec": {"state": "running", "node": "hv1", "meta": {},
                   "xml": simple_domain_xml(name)}}
    txn.commit(store, vms.define_ops(store.paths, vm))
    store.create(store.paths.node_status("hv2"), {"migrationUri": "qemu+tcp://hv2/system"},
                 makepath=True)


class HeldMigration(FakeHypervisor):
    """A fake whose live migration runs until `done` is set; `started` is set at the call."""

    def __init__(self) -> None:
        super().__init__("fake:///hv1")
        self.started = asyncio.Event()
        self.done = asyncio.Event()

    @property
    def live_migration_supported(self) -> bool:
        return True

    async def migrate_live(self, name: str, dest_uri: str, **_kw: Any) -> None:
        self.started.set()
        await self.done.wait()
        del self.domains[name]  # gone here: it runs on the destination now


@dataclass
class SourceNode:
    store: Store  # hv1's own session
    informer: Informer  # hv1's cache of /vms
    hv: HeldMigration
    reconciler: VMReconciler
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def drive(self, name: str) -> Result:
        """Reconcile `name` as the work queue does: again at once while a result asks for
        that (one step per reconcile: a live migration is recorded, then carried out, then
        handed over), until one asks to wait or is done."""
        while True:
            result = await self.reconciler.reconcile(name)
            if result.requeue_after != 0:
                return result

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A reconcile running beside the test (ended, whatever happens, on exit)."""
        task = asyncio.create_task(coro)
        self.tasks.append(task)
        return task


@asynccontextmanager
async def source_node(zk_hosts: str, zk_root: str, vm: str, *,
                      before_sync: Callable[[Store], None] = lambda _store: None,
                      ) -> AsyncIterator[SourceNode]:
    """hv1 with `vm` running in its hypervisor; `before_sync` runs on hv1's session before
    its cache syncs (say, to create an owner znode of that session)."""
    hv1 = Store(zk_hosts, zk_root)
    hv1.start()
    before_sync(hv1)
    informer, hv = Informer(hv1, hv1.paths.vms), HeldMigration()
    await asyncio.to_thread(informer.start)
    node = SourceNode(hv1, informer, hv, VMReconciler(
        "hv1", hv1, vms=informer, hypervisor=hv, cluster_default=lambda _key, default: default))
    try:
        await hv.open()
        await hv.define(simple_domain_xml(vm))
        await hv.start(vm)
        yield node
    finally:
        hv.done.set()
        await asyncio.gather(*node.tasks, return_exceptions=True)
        informer.stop()
        hv1.stop()
