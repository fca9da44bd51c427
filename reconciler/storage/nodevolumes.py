"""`NodeVolumes`: the volumes this node holds (issue #15) — those whose `spec.node` names
it — made, described and deleted in libvirt, one volume per key of ONE work queue.

For each volume of this node, level-triggered: asked to be deleted → the image goes
from libvirt, then the volume's znodes (version-checked); its pool not usable here →
status `pending` with the pool's reason, looked at again later; the image missing → made
(empty, or a copy of the source volume); its capacity below `size` → grown
(`reconciler.storage.resize`, online when its VM runs here); then status `ready` with
path, capacity, allocation. Volumes of other nodes: one of a shared pool, once its node
made it (status `ready`) → this node's libvirt refreshes the pool until it lists it (a VM
naming it may start or arrive here); one that moved away with its VM (live, or copied by
the target: `leftovers` names this node) → the old copy here is deleted once the VM runs
on the volume's new node.
Status is written only when it changes (a version-checked update). A libvirt refusal
that retrying cannot change (the image cannot be made as asked) is `failed` with the
reason, once, until the volume changes. Watch callbacks only enqueue. Made by
`reconciler.daemon.NodeDaemon` beside `NodePools` (whose state it reads).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from reconciler.libvirt import volumes as lv
from reconciler.libvirt.connection import Connection
from reconciler.libvirt.interface import HypervisorError
from reconciler.runtime.watched import WatchedQueue
from reconciler.runtime.workqueue import Result, brief
from reconciler.storage import resize
from reconciler.storage.nodepools import PoolState
from store import txn
from store import volumes as vols
from store.client import Store
from store.codec import Doc
from store.errors import Conflict, NotFound
from store.informer import Change

log = logging.getLogger(__name__)

LOOK_AGAIN = 10.0  # seconds: a transient libvirt failure (a pool becoming usable: resync)
LEFTOVER_LOOK = 1.0  # seconds: an old copy waits for its VM to run on the new node


class NodeVolumes:
    """The volumes of one node (see the module doc)."""

    def __init__(self, store: Store, node: str, *, connection: Connection,
                 pools: Mapping[str, PoolState]) -> None:
        self.store = store
        self.node = node
        self.connection = connection
        self.pools = pools  # NodePools.state: whether each pool is usable here
        self.watch = WatchedQueue(store, store.paths.volumes, name="volume", node=node,
                                  reconcile=self._reconcile, workers=2)
        self.informer, self.queue = self.watch.informer, self.watch.queue
        self._failed: dict[str, int] = {}  # volume -> the generation that failed for good

    async def start(self) -> None:
        await self.watch.start(self._on_change, self.resync)

    async def stop(self) -> None:
        await self.watch.stop()

    def resync(self) -> None:
        folder = self.store.paths.volumes
        self.queue.enqueue(*(f"{pool}/{name}" for pool in self.informer.children(folder)
                             for name in self.informer.children(f"{folder}/{pool}")))

    def _on_change(self, change: Change) -> None:
        parts = self.store.paths.split(change.path)
        if len(parts) < 3 or parts[0] != "volumes":
            return
        # the document; or the status of another node's volume (made: seen here too)
        if len(parts) == 3 or (parts[3] == "status" and not self._mine(parts[1], parts[2])):
            self.queue.enqueue(f"{parts[1]}/{parts[2]}")

    def _mine(self, pool: str, name: str) -> bool:
        found = self.informer.get(self.store.paths.volume(pool, name))
        return found is not None and found.doc.get("spec", {}).get("node") == self.node

    # --- one volume --------------------------------------------------------------------

    async def _reconcile(self, key: str) -> Result:
        pool, name = key.split("/", 1)
        found = self.informer.get(self.store.paths.volume(pool, name))
        if found is None or not found.doc:
            return Result.done()
        vol = vols.read_volume(pool, name, found.doc)
        if vol.node != self.node:
            if self.node in vol.leftovers:
                return await self._drop_leftover(vol)
            return await self._see_shared(vol)
        if vol.deleting:
            return await self._delete(vol)
        state = self.pools.get(pool)
        if state is None or not state.usable:
            why = state.reason if state is not None else "not known here yet"
            await self._status(vol, vols.status_doc(vols.PENDING, node=self.node,
                                                    reason=f"pool {pool}: {why}"))
            return Result.after(LOOK_AGAIN)
        if self._failed.get(key) == vol.generation:
            return Result.done()  # failed for good: until the volume changes
        return await self._make(vol)

    async def _make(self, vol: vols.Volume) -> Result:
        c = self.connection
        try:
            info = await asyncio.to_thread(lv.find, c, vol.pool, vol.name)
            if info is None:
                await asyncio.to_thread(lv.create, c, vol.pool, vol.name, size=vol.size,
                                        fmt=vol.format, source=vol.source)
                info = await asyncio.to_thread(lv.find, c, vol.pool, vol.name)
            if info is not None and info.capacity < vol.size:  # grown: storage.resize
                held = self.informer.get(self.store.paths.volume_attachment(vol.pool, vol.name))
                info = await resize.grow(c, self.store, vol, node=self.node,
                                         vm=held.doc.get("vm") if held is not None else None)
        except HypervisorError as e:
            reason = brief(e)
            if not e.permanent:
                log.warning("volume %s: %s", vol.key, reason)
                return Result.after(LOOK_AGAIN)
            self._failed[vol.key] = vol.generation
            await self._status(vol, vols.status_doc(vols.FAILED, node=self.node,
                                                    reason=reason))
            return Result.done()
        if info is None:
            return Result.after(LOOK_AGAIN)
        await self._status(vol, vols.status_doc(
            vols.READY, node=self.node, path=info.path, capacity=info.capacity,
            allocation=info.allocation))
        return Result.done()

    async def _status(self, vol: vols.Volume, doc: Doc) -> None:
        def modify(old: Doc) -> Doc | None:
            same = {k: v for k, v in old.items() if k != "since"} == \
                {k: v for k, v in doc.items() if k != "since"}
            return None if same else doc

        try:
            await asyncio.to_thread(self.store.update,
                                    self.store.paths.volume_status(vol.pool, vol.name), modify)
        except NotFound:
            pass  # deleted meanwhile

    async def _see_shared(self, vol: vols.Volume) -> Result:
        """Another node made a volume of a shared pool: libvirt here learns of it (a pool
        refresh), so a VM naming it can start or arrive here."""
        state = self.pools.get(vol.pool)
        if vol.deleting or state is None or not state.usable or not state.shared:
            return Result.done()
        made = self.informer.get(self.store.paths.volume_status(vol.pool, vol.name))
        if made is None or made.doc.get("state") != vols.READY:
            return Result.done()  # not made yet: its node's `ready` brings it back here
        try:
            await asyncio.to_thread(lv.see, self.connection, vol.pool, vol.name)
        except HypervisorError as e:
            log.warning("volume %s: not seen here yet: %s", vol.key, brief(e))
            return Result.after(LOOK_AGAIN)
        return Result.done()

    async def _drop_leftover(self, vol: vols.Volume) -> Result:
        """The volume moved to another node with its VM (live or copied): once the VM runs
        there, the old copy here goes, then this node leaves `leftovers`."""
        attached = self.informer.get(self.store.paths.volume_attachment(vol.pool, vol.name))
        if attached is not None and not await asyncio.to_thread(
                self._runs_on, str(attached.doc.get("vm")), str(vol.node)):
            return Result.after(LEFTOVER_LOOK)
        try:
            await asyncio.to_thread(lv.delete, self.connection, vol.pool, vol.name)
            await asyncio.to_thread(self.store.update, self.store.paths.volume(
                vol.pool, vol.name), lambda doc: vols.without_leftover(doc, self.node))
        except HypervisorError as e:
            log.warning("volume %s: old copy not deleted yet: %s", vol.key, brief(e))
            return Result.after(LOOK_AGAIN)
        except NotFound:
            return Result.done()
        log.info("volume %s: the old copy here is deleted (it lives on %s)", vol.key, vol.node)
        return Result.done()

    def _runs_on(self, vm: str, node: str) -> bool:
        try:
            found = self.store.get(self.store.paths.vm_status(vm)).doc
        except NotFound:
            return True  # the VM is gone: nothing runs from the old copy
        return found.get("node") == node and found.get("state") == "running"

    async def _delete(self, vol: vols.Volume) -> Result:
        attached = self.informer.get(self.store.paths.volume_attachment(vol.pool, vol.name))
        if attached is not None:  # attached after the mark: keep it, say why
            await self._status(vol, vols.status_doc(
                vols.READY, node=self.node, reason=f"not deleted: attached to VM "
                f"{attached.doc.get('vm')}"))
            return Result.after(LOOK_AGAIN)
        try:
            await asyncio.to_thread(lv.delete, self.connection, vol.pool, vol.name)
        except HypervisorError as e:
            log.warning("volume %s: not deleted yet: %s", vol.key, brief(e))
            return Result.after(LOOK_AGAIN)
        path = self.store.paths.volume(vol.pool, vol.name)
        try:
            tree = await asyncio.to_thread(txn.read_subtree, self.store, path)
            await asyncio.to_thread(txn.commit, self.store, txn.delete_subtree_ops(tree))
        except NotFound:
            pass
        except Conflict:
            return Result.after(0.0)  # written meanwhile: look again
        self._failed.pop(vol.key, None)
        log.info("volume %s deleted", vol.key)
        return Result.done()
