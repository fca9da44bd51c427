"""The coordinator election, and the controllers that run while this node is primary.

Coordinator nodes contend for a kazoo lock under `<root>/election` (its contenders are
identified by node name, so `store.election.primary()` tells who leads). The winner runs
`reconciler.controllers` on a work queue of its own, fed by the caches' changes.

Safety: the lock is an ephemeral znode of this node's session. When the session is
SUSPENDED or LOST, the primary stops acting at once — before ZooKeeper can expire the
session and let another coordinator win — then gives the lock up and contends again once
connected. Called by `reconciler.daemon` on coordinator nodes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kazoo.exceptions import CancelledError as KazooCancelled

from reconciler.controller import Controller
from reconciler.controllers import ClusterState, Controllers
from reconciler.fencing import Fencer
from reconciler.workqueue import Backoff
from store import election, events
from store.client import Store
from store.informer import Change

log = logging.getLogger(__name__)

COALESCE = 0.1  # seconds: the longest a change waits for the controller pass it triggers


class Coordinator:
    """Contends for leadership; while primary, runs the controllers' work queue."""

    def __init__(self, store: Store, node: str, *, state: ClusterState, fencer: Fencer) -> None:
        self.store = store
        self.node = node
        self.state = state
        self.controllers = Controllers(store, state, fencer)
        self.queue: Controller | None = None  # the cluster controller, while primary
        self.is_primary = False
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = store.client.Lock(store.paths.election, election.identifier(node))

    # --- feeding the queue (informer threads) ----------------------------------------------

    def on_node_change(self, change: Change) -> None:
        parts = self.store.paths.split(change.path)
        if len(parts) >= 2 and parts[0] == "nodes":
            self._enqueue(f"node/{parts[1]}", "schedule")

    def on_vm_change(self, change: Change) -> None:
        keys = {"schedule"}
        for doc in (change.old, change.new):
            if doc is None:
                continue
            for field in ("node", "lastNode", "home"):
                value = doc.doc.get(field)
                if isinstance(value, str):
                    keys.add(f"node/{value}")
        self._enqueue(*sorted(keys))

    def _enqueue(self, *keys: str) -> None:
        """Each controller pass looks at every VM, so a burst of changes is coalesced: a key
        runs at most once per COALESCE seconds however many changes ask for it (without
        this, a flush of 1,000 VMs made the primary's passes quadratic)."""
        queue = self.queue
        if queue is not None:
            queue.enqueue(*keys)

    def on_session(self, what: str) -> None:
        """Kazoo thread: any doubt about the session ends this term at once."""
        if self._loop is None or self._loop.is_closed():
            return
        if what in ("suspended", "lost"):
            self._loop.call_soon_threadsafe(self._lost.set)
        elif what == "reconnected":
            self._loop.call_soon_threadsafe(self._reconnected.set)

    # --- the term loop -----------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            if not await self._acquire():
                continue
            try:
                await self._lead()
            finally:
                await self._step_down()

    def stop(self) -> None:
        self._stopping.set()
        self._lost.set()
        self._lock.cancel()

    async def _acquire(self) -> bool:
        """Block until this node leads (True), or the attempt was cancelled or failed."""
        while not self.store.writable and not self._stopping.is_set():
            self._reconnected.clear()
            await _first(self._reconnected, self._stopping)
        if self._stopping.is_set():
            return False
        try:
            return bool(await asyncio.to_thread(self._lock.acquire))
        except KazooCancelled:
            return False
        except Exception as e:  # connection trouble: contend again once connected
            log.warning("election: %r", e)
            self._failures += 1
            await asyncio.sleep(min(0.1 * 2**self._failures, 5.0))  # capped backoff
            return False

    async def _lead(self) -> None:
        self._lost.clear()
        self._failures = 0
        if not self.store.writable:
            return
        self.is_primary = True
        self.controllers.took_office()
        log.info("%s is the primary coordinator", self.node)
        await asyncio.to_thread(events.record, self.store, "primary",
                                f"{self.node} is the primary coordinator", node=self.node)
        await asyncio.to_thread(events.trim, self.store)
        self.queue = Controller("cluster", self.controllers.reconcile, node=self.node,
                                workers=2, backoff=Backoff(base=0.5, cap=30.0),
                                coalesce=COALESCE)
        self.queue.start()
        self._enqueue_all()
        await self._lost.wait()

    def _enqueue_all(self) -> None:
        assert self.queue is not None
        self.queue.add("schedule")
        for name in self.state.node_names():
            self.queue.add(f"node/{name}")

    async def _step_down(self) -> None:
        queue, self.queue = self.queue, None
        if queue is not None:
            await queue.stop()
        if self.is_primary:
            log.warning("%s stops acting as primary", self.node)
        self.is_primary = False
        try:
            await asyncio.to_thread(self._lock.release)
        except Exception as e:  # the session may be gone; so is the lock znode then
            log.debug("releasing the election lock: %s", e)

    def snapshot(self) -> dict[str, Any]:
        return {"primary": self.is_primary, "queued": len(self.queue) if self.queue else 0}


async def _first(*events: asyncio.Event) -> None:
    """Until any of the events is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
