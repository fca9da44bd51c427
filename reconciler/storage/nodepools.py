"""`NodePools`: the cluster's storage pools on this node (issue #15), a controller beside
the VM and network controllers of `reconciler.daemon`.

It watches `/pools` (its own informer) and runs ONE work queue, one worker, keyed by pool
name plus `COLLECT`: a pool's key brings its libvirt storage pool to what the Pool says,
one step at a time (`statemachine.poolplan.plan_pool`, pure), then reads its capacity,
allocation and free space; done pools are looked at again every `REFRESH` seconds (free
space changes). `COLLECT` undefines the libvirt pools Herd made for pools the cluster no
longer has (once the informer is in sync). Each pool's state goes into `report()` (node
status `pools`: usable or why not, and its figures) and the status publisher is told.
Watch callbacks only enqueue. Made by `reconciler.daemon.NodeDaemon` (real libvirt).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.libvirt import pools as lv
from reconciler.libvirt.connection import Connection
from reconciler.libvirt.interface import HypervisorError
from reconciler.runtime.watched import WatchedQueue
from reconciler.runtime.workqueue import Result, brief
from statemachine.poolplan import PoolAction, PoolSpec, PoolStep, plan_pool, plan_removal
from store.client import Store
from store.codec import Doc
from store.informer import Change
from store.pools import Pool, read_pool
from vocabulary.storage import PoolKind

log = logging.getLogger(__name__)

COLLECT = "*collect*"
REFRESH = 30.0  # seconds between looks at a pool that is up (its free space)
BLOCKED_LOOK = 30.0
ERROR_LOOK = 5.0
STEPS = 8


@dataclass(frozen=True)
class PoolState:
    usable: bool
    reason: str = ""
    capacity: int = 0
    allocation: int = 0
    available: int = 0
    shared: bool = False  # reachable from every node (shared, rbd): volumes of others too


class NodePools:
    """The storage pools of one node (see the module doc)."""

    def __init__(self, store: Store, node: str, *, connection: Connection,
                 keys: Mapping[str, str], changed: Callable[[], None]) -> None:
        self.store = store
        self.connection = connection
        self.keys = dict(keys)  # cephx keys by name (the node's config: ceph_secrets)
        self.changed = changed
        self.watch = WatchedQueue(store, store.paths.pools, name="pool", node=node,
                                  reconcile=self._reconcile)
        self.informer, self.queue = self.watch.informer, self.watch.queue
        self.state: dict[str, PoolState] = {}

    async def start(self) -> None:
        await self.watch.start(self._on_change, self.resync)

    async def stop(self) -> None:
        await self.watch.stop()

    def resync(self) -> None:
        self.queue.enqueue(*self.names(), COLLECT)

    def names(self) -> list[str]:
        return sorted(self.informer.children(self.store.paths.pools))

    def pool(self, name: str) -> Pool | None:
        found = self.informer.get(self.store.paths.pool(name))
        return read_pool(name, found.doc) if found is not None and found.doc else None

    def report(self) -> Doc:
        return {name: {"usable": s.usable, "reason": s.reason[:256], "capacity": s.capacity,
                       "allocation": s.allocation, "available": s.available}
                for name, s in sorted(self.state.items())}

    def spec_of(self, pool: Pool) -> PoolSpec:
        rbd = pool.rbd
        return PoolSpec(name=pool.name, kind=pool.kind, path=pool.path,
                        monitors=rbd.monitors if rbd else (),
                        rbd_pool=rbd.pool if rbd else None, user=rbd.user if rbd else None,
                        has_key=rbd is not None and rbd.secret in self.keys)

    def _on_change(self, change: Change) -> None:
        parts = self.store.paths.split(change.path)
        if len(parts) == 2 and parts[0] == "pools":
            self.queue.enqueue(parts[1], COLLECT)

    # --- one key -----------------------------------------------------------------------

    async def _reconcile(self, key: str) -> Result:
        if key == COLLECT:
            return await self._collect()
        pool = self.pool(key)
        if pool is None:
            self._set(key, None)
            return Result.done()
        state, result = await self._converge(self.spec_of(pool), pool)
        self._set(key, state)
        return result

    async def _converge(self, spec: PoolSpec, pool: Pool) -> tuple[PoolState, Result]:
        step: PoolStep | None = None
        try:
            for _ in range(STEPS):
                pools = await asyncio.to_thread(lv.list_pools, self.connection)
                step = plan_pool(spec, pools.get(spec.name))
                if step.action == PoolAction.BLOCKED:
                    return PoolState(False, step.reason), Result.after(BLOCKED_LOOK)
                if step.action == PoolAction.REFRESH:
                    figures = await asyncio.to_thread(lv.usage, self.connection, spec.name)
                    return PoolState(True, "", *figures, shared=spec.kind != PoolKind.LOCAL), \
                        Result.after(REFRESH)
                await self._act(spec, pool, step)
        except HypervisorError as e:
            what = f"{step.action} " if step is not None else ""
            return PoolState(False, f"{what}failed: {brief(e)}"), Result.after(ERROR_LOOK)
        return PoolState(False, f"not converged in {STEPS} steps"), Result.after(0.0)

    async def _act(self, spec: PoolSpec, pool: Pool, step: PoolStep) -> None:
        log.info("pool %s: %s", spec.name, step.action)
        c = self.connection
        if step.action == PoolAction.DEFINE:
            key = self.keys.get(pool.rbd.secret) if pool.rbd else None
            await asyncio.to_thread(lv.define, c, spec, key=key)
        elif step.action == PoolAction.START:
            await asyncio.to_thread(lv.start, c, spec)
        elif step.action == PoolAction.AUTOSTART:
            await asyncio.to_thread(lv.autostart, c, spec.name)
        elif step.action == PoolAction.UNDEFINE:
            await asyncio.to_thread(lv.undefine, c, spec.name)

    async def _collect(self) -> Result:
        if not self.informer.wait_synced(0):
            return Result.after(1.0)
        try:
            for _ in range(STEPS * 4):
                found = await asyncio.to_thread(lv.list_pools, self.connection)
                step = plan_removal(self.names(), found)
                if step is None:
                    return Result.done()
                log.info("pool %s: no longer in the cluster; undefining", step.pool)
                await asyncio.to_thread(lv.undefine, self.connection, step.pool)
        except HypervisorError as e:
            log.warning("pool cleanup: %s", brief(e))
            return Result.after(ERROR_LOOK)
        return Result.after(0.0)

    def _set(self, name: str, state: PoolState | None) -> None:
        before = self.state.get(name)
        if state is None:
            self.state.pop(name, None)
        else:
            self.state[name] = state
        if before != state:
            self.changed()
