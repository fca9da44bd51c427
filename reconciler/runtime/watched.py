"""A controller fed by its own watched cache: one informer on a subtree of ZooKeeper and
a work queue (`reconciler.runtime.controller.Controller`) whose keys its callbacks queue.
`start(on_change, resync)` subscribes, syncs the informer in a thread, starts the workers
and asks for a full pass; `stop()` undoes it. Used by the node's network, pool and volume
controllers (`reconciler.network.nodenets`, `reconciler.storage`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reconciler.runtime.controller import Controller
from reconciler.runtime.workqueue import Handler
from store.client import Store
from store.informer import Change, Informer


class WatchedQueue:
    """An informer on `folder` and the queue of one controller of this node."""

    def __init__(self, store: Store, folder: str, *, name: str, node: str,
                 reconcile: Handler, workers: int = 1) -> None:
        self.informer = Informer(store, folder)
        self.queue = Controller(name, reconcile, node=node, workers=workers)

    async def start(self, on_change: Callable[[Change], None],
                    resync: Callable[[], None]) -> None:
        self.queue.bind(asyncio.get_running_loop())
        self.informer.subscribe(on_change)
        self.informer.on_synced(resync)  # a (re)sync: every key again (level-triggered)
        await asyncio.to_thread(self.informer.start)
        self.queue.start()
        resync()

    async def stop(self) -> None:
        await self.queue.stop()
        await asyncio.to_thread(self.informer.stop)
