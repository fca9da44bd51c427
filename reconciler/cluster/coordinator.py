"""The controllers that run while this node is the primary coordinator.

Coordinator nodes campaign for the primary role (`store.election.Campaign`, a lock under
`<root>/election` whose contenders are identified by node name, so
`store.election.primary()` tells who leads). For each term it wins, this node runs
`reconciler.cluster.controllers` on a work queue of its own, fed by the caches' changes.

Safety: a term ends at once when the session is SUSPENDED or LOST (before ZooKeeper can
expire the session and let another coordinator win); the queue is stopped before the
campaign gives the lock up and contends again once connected. Called by
`reconciler.daemon` on coordinator nodes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from reconciler.cluster.controllers import Controllers
from reconciler.cluster.fencing import Fencer
from reconciler.cluster.state import ClusterState
from reconciler.runtime.controller import Controller
from reconciler.runtime.workqueue import Backoff
from store import events
from store.client import Store
from store.election import Campaign, Term
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
        self.controllers.primary_node = node
        self.queue: Controller | None = None  # the cluster controller, while primary
        self.is_primary = False
        self.campaign = Campaign(store, node)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Told (on the loop) when a term begins or ends: the gateways of networks follow.
        self.term_listeners: list[Callable[[], None]] = []

    # --- feeding the queue (informer threads) ----------------------------------------------

    def on_node_change(self, change: Change) -> None:
        parts = self.store.paths.split(change.path)
        if len(parts) >= 2 and parts[0] == "nodes":
            self._enqueue(f"node/{parts[1]}", "schedule")

    def on_cluster_change(self, _change: Change) -> None:
        """The cluster config (maintenance ended, another selector) or an affinity rule
        changed: every pass may decide otherwise now."""
        self._enqueue("schedule", *(f"node/{n}" for n in self.state.node_names()))

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

    # --- the term loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Lead for every term the campaign wins, until `stop()`; the campaign gives the lock
        up after each `_step_down`."""
        self._loop = asyncio.get_running_loop()
        async with aclosing(self.campaign.terms()) as terms:
            async for term in terms:
                try:
                    await self._lead(term)
                finally:
                    await self._step_down()

    def stop(self) -> None:
        self.campaign.stop()

    async def _lead(self, term: Term) -> None:
        self.is_primary = True
        self._tell()
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
        await term.wait()

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
        self._tell()

    def _tell(self) -> None:
        for listener in list(self.term_listeners):
            listener()

    def snapshot(self) -> dict[str, Any]:
        return {"primary": self.is_primary, "queued": len(self.queue) if self.queue else 0}
