"""The primary coordinator's cluster controllers, as level-triggered reconciles.

Keys of the primary's work queue:
- `schedule`: VMs desired running with no node are placed by their selector and limits
  (one `Planner` pass, so a batch spreads).
- `node/<name>`: one node's domain state and health:
  - failed (its `alive` znode gone, daemon not stopped cleanly, heartbeat — and this
    primary's term — older than the fence timeout): its VMs show `unknown`, it is fenced
    by its agent, and only after a successful fence are its VMs recovered elsewhere
    (cold start) or, with no valid target, stopped (and marked `autorestartPending` when
    they have autorestart). A failed fence recovers nothing, records an event and is
    retried with backoff;
  - spec `flushed`: ready -> flushing; every running VM placed there moves away
    (temporarily: lastNode), or is stopped when nothing fits; flushed once none runs there;
  - spec `ready`: -> unflushing; VMs whose lastNode is this node come back, its
    autorestartPending VMs start there; then ready. Disabled VMs are never started.
Where the cluster cannot keep a VM running (no valid target), the primary itself sets
spec.state to stopped, with the reason in placement; this is the one spec write that is
not the API's (see the issue note). Every write is version-checked against the cache.
Called by `reconciler.cluster.coordinator` while this node is primary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from reconciler.cluster.fencing import Fencer, FenceResult
from reconciler.cluster.selffence import fence_wait
from reconciler.cluster.state import ClusterState
from reconciler.metrics.families import FENCES
from reconciler.runtime.workqueue import Result
from store import clusterview, events, nodestatus, rebalance, restarts, txn, vmstatus
from store.affinity import going_together
from store.client import Store
from store.codec import Doc
from store.errors import Conflict
from store.model import VM, Node
from store.objects import node_patch, with_spec
from store.placement import Planner, VMNeeds, carries_storage
from vocabulary import DaemonState, DesiredDomainState, DesiredState, FenceMode, VMState

log = logging.getLogger(__name__)

NOT_FAILED = frozenset({"", DaemonState.STOP, DaemonState.FENCED, DaemonState.DEAD})
STALE_RETRY = 0.2  # seconds: our cache lagged a write; it will have caught up by then


class FenceFailed(Exception):
    """The agent did not confirm the node off; retried by the work queue with backoff."""


class Controllers:
    """The primary's reconciles (see the module docstring)."""

    def __init__(self, store: Store, state: ClusterState, fencer: Fencer, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.state, self.fencer, self.clock = store, state, fencer, clock
        self.primary_node = ""  # this node (herd_fences_total's node label)
        self.term_started = 0.0
        self._unfenceable_said: set[str] = set()

    def took_office(self) -> None:
        """A new term as primary begins: no heartbeat could be seen before it (ZooKeeper
        may have been down), so a node's silence counts from now at the earliest."""
        self.term_started = self.clock()

    async def reconcile(self, key: str) -> Result:
        if key == "schedule":
            return await self.schedule()
        kind, _, name = key.partition("/")
        if kind == "node" and name:
            return await self.node(name)
        log.error("unknown controller key %r", key)
        return Result.done()

    def _planner(self) -> Planner:
        return Planner(self.state.node_views(), default=str(self.state.setting("selector", "mem")),
                       rules=self.state.rules(), where=self.state.where())

    # --- scheduling ------------------------------------------------------------------------

    async def schedule(self) -> Result:
        waiting = {v.name: v for v in self.state.all_vms() if v.want == DesiredState.RUNNING
                   and v.home is None and not v.autorestart_pending}
        planner = self._planner()
        moves = []
        for needs in planner.most_constrained_first(self.state.needs(v)
                                                    for v in waiting.values()):
            target = planner.place(needs)
            reason = _with_broken(f"scheduled on {target}", planner.broken_soft(needs.name)) \
                if target else f"waiting: {planner.why_not(needs) or 'no valid node'}"
            moves.append((waiting[needs.name], {"node": target, "reason": reason}))
        moves += await self._relocations(planner)
        if await self._place_many(moves):
            return Result.after(STALE_RETRY)
        return Result.done()

    async def _relocations(self, planner: Planner) -> list[tuple[VM, Doc]]:
        """VMs a node gave up on after their restarts (`store.restarts`): placed on a node
        not tried yet, until `maxRelocate` were; then failed, with an event, once."""
        moves: list[tuple[VM, Doc]] = []
        for vm in sorted(self.state.all_vms(), key=lambda v: v.name):
            relocate = vm.status_doc.get("relocate") or {}
            if (vm.want != DesiredState.RUNNING or vm.state != VMState.FAILED
                    or relocate.get("node") != vm.home or vm.home is None
                    or vm.failed_generation != vm.generation):
                continue
            found = restarts.relocation(vm.placement_doc, gave_up_on=vm.home,
                                        generation=vm.generation, max_relocate=vm.max_relocate)
            if found.exhausted:
                await self._give_up(vm, found.tried)
                continue
            tried = {"generation": vm.generation, "nodes": list(found.tried)}
            target = planner.place(self.state.needs(vm), exclude=found.tried)
            reason = (f"relocated to {target}: {vm.status_doc.get('reason')}" if target else
                      f"waiting: no node left to relocate to (tried {', '.join(found.tried)})")
            moves.append((vm, {"node": target or vm.home, "tried": tried, "reason": reason}))
        return moves

    async def _give_up(self, vm: VM, tried: tuple[str, ...]) -> None:
        reason = f"failed: given up on {', '.join(tried)} (restart limits)"
        if vm.placement_doc.get("reason") == reason:
            return  # reported once
        if not await self._place_many([(vm, {"reason": reason})]):  # written: said once
            await self._event("failed", f"{vm.name}: {reason}", vm=vm.name)


    async def _place_many(self, moves: list[tuple[VM, Doc]]) -> int:
        """Version-checked placement writes, pipelined (one transaction each). Returns how
        many met a newer version: the cache had not caught up yet (often with our own
        writes), so the pass should look again shortly; other errors raise."""
        p = self.store.paths
        writes = [[txn.Set(p.vm_placement(vm.name), {**vm.placement_doc, **change},
                           vm.placement_znode.version)]
                  for vm, change in moves if {**vm.placement_doc, **change} != vm.placement_doc]
        if not writes:
            return 0
        errors = await asyncio.to_thread(txn.commit_pipelined, self.store, writes)
        failed = [e for e in errors if e is not None and not isinstance(e, Conflict)]
        if failed:
            raise failed[0]
        return sum(isinstance(e, Conflict) for e in errors)

    async def _stop_for_lack(self, vm: VM, node: str, why: str) -> None:
        """No valid target: stop the VM (spec and placement in one transaction)."""
        autorestart = vm.autorestart
        placement = {**vm.placement_doc, "reason": why, "autorestartPending": autorestart,
                     "home": node if autorestart else None}
        await self._set_spec_and_placement(vm, placement, state="stopped",
                                           stopMode="graceful")
        await self._event("stopped", f"{vm.name}: {why}", vm=vm.name, node=node)

    async def _set_spec_and_placement(self, vm: VM, placement: Doc,
                                      **spec: Any) -> None:
        """The spec fields `spec` (built by `store.objects`, the API's own builder: one
        generation rule) and the placement, in one version-checked transaction."""
        p = self.store.paths
        ops: list[txn.Op] = [txn.Set(p.vm_placement(vm.name), placement,
                                     vm.placement_znode.version)]
        new_spec = with_spec(vm.spec_znode.doc, **spec)
        if new_spec is not None:
            ops.insert(0, txn.Set(p.vm(vm.name), new_spec, vm.spec_znode.version))
        await asyncio.to_thread(txn.commit, self.store, ops)

    async def _event(self, kind: str, message: str, **about: Any) -> None:
        log.info("%s: %s", kind, message)
        await asyncio.to_thread(events.record, self.store, kind, message, **about)

    # --- one node --------------------------------------------------------------------------

    async def node(self, name: str) -> Result:
        node = self.state.node(name)
        if not node.exists or node.status is None:
            return Result.done()
        failing = self._failing(node)
        if failing is not None:
            return await failing
        self._unfenceable_said.discard(name)
        if node.daemon_state == DaemonState.FENCED and not node.alive:
            return await self._recover(name)  # level-triggered: until nothing is left there
        if node.want in (None, DesiredDomainState.FLUSHED):
            return await self.flush(node)
        return await self.ready(node)

    def _failing(self, node: Node) -> Awaitable[Result] | None:
        """A coroutine handling a dead node, or None when the node is not failed."""
        if node.alive or (node.daemon_state or "") in NOT_FAILED:
            return None
        # Silence counts from the start of this term at the earliest: after a ZooKeeper
        # outage every heartbeat is old, and a node that reconnects late gets the whole
        # fence timeout to register again (issue #8, tests/integration/test_fence_after_outage).
        silent = self.clock() - max(node.heartbeat, self.term_started)
        timeout = fence_wait(node.fence, node.status_doc.get("watchdog"),
                             fence_timeout=float(self.state.setting("fenceTimeout", 8.0)))
        if timeout is None:
            return self._unfenceable(node.name)
        if silent < timeout:
            return _after(timeout - silent)
        return self.fence(node.name)

    async def _unfenceable(self, name: str) -> Result:
        """A failed node of `fence: self` that had no watchdog armed: said once a failure."""
        if name not in self._unfenceable_said:
            self._unfenceable_said.add(name)
            await self._event("fence-impossible", f"{name} failed; it is fence: self but had "
                              "no watchdog armed: nothing of it is recovered", node=name)
        return Result.done()

    async def _set_domain_state(self, name: str, state: str, **extra: Any) -> None:
        def modify(doc: Doc) -> Doc:
            return nodestatus.with_domain_state(doc, state, **extra)
        await asyncio.to_thread(self.store.update, self.store.paths.node_status(name), modify)

    # --- failure: fence, then recover ------------------------------------------------------

    async def fence(self, name: str) -> Result:
        if self.state.node(name).fence == FenceMode.NONE:
            log.warning("node %s failed; fencing is off for it, nothing is recovered", name)
            return Result.done()
        if self.state.setting("maintenance", False):  # looked at again when it ends
            await self._event("fence-held", f"{name} failed; cluster maintenance is on: "
                              "not fenced, nothing recovered until it ends", node=name)
            return Result.done()
        await self._mark_unknown(name)
        result = FenceResult(True, "its watchdog powered its guests off (session expired, "
                             "selfFenceTimeout passed)") \
            if self.state.node(name).fence == FenceMode.SELF \
            else await asyncio.to_thread(self.fencer.fence, name)
        FENCES.labels(self.primary_node, name, "done" if result.ok else "failed").inc()
        if not result.ok:
            await self._event("fence-failed", f"fencing {name} failed: {result.message}",
                              node=name)
            raise FenceFailed(result.message)
        await self._event("fenced", f"{name} fenced: {result.message}", node=name)
        await self._set_domain_state(name, "flushed", daemonState="fenced")
        await self._mark_flushed(name)
        return await self._recover(name)

    async def _settle_left_behind(self, node: str) -> None:
        """VMs still placed on the fenced node, or that status says were there (say, half-way
        migrating away), are off (the fence confirmed it): their status says stopped, since
        no node is left to say so (a target waits for that before it starts a VM)."""
        for vm in self.state.all_vms():
            if vm.status is None or node not in (vm.home, vm.status_node) \
                    or vm.state != VMState.UNKNOWN:
                continue
            new = vmstatus.fenced_off(vm.status_doc, node=node, now=self.clock())
            try:
                await asyncio.to_thread(self.store.set, self.store.paths.vm_status(vm.name),
                                        new, version=vm.status.version)
            except Conflict:
                pass  # someone wrote a newer status: theirs stands

    async def _mark_unknown(self, node: str) -> None:
        for vm in self.state.all_vms():
            if vm.status is not None and vm.runs_on(node) and vm.state != VMState.UNKNOWN:
                new = vmstatus.unknown(vm.status_doc, node=node, now=self.clock())
                await asyncio.to_thread(self.store.set, self.store.paths.vm_status(vm.name),
                                        new, version=vm.status.version)

    async def _mark_flushed(self, name: str) -> None:
        def modify(doc: Doc) -> Doc:
            return node_patch(doc, {"domainState": "flushed"}) or doc
        await asyncio.to_thread(self.store.update, self.store.paths.node(name), modify)

    async def _recover(self, node: str) -> Result:
        """Place the fenced node's VMs that should run elsewhere (or stop them when nothing
        fits), then record the ones left behind as stopped; again until none is left."""
        moves = await self._moves_away(node, reason=f"recovered: {node} was fenced",
                                       lacking=f"no valid target to recover from {node}")
        if await self._place_many(moves):
            return Result.after(STALE_RETRY)
        if moves:
            await self._event("recovered", f"{len(moves)} VM(s) of {node} placed elsewhere",
                              node=node)
        await self._settle_left_behind(node)
        return Result.done()

    async def _moves_away(self, node: str, *, reason: str, lacking: str,
                          flushing: bool = False) -> list[tuple[VM, Doc]]:
        """New placements for the VMs placed on `node` that should run (temporarily: they
        remember `lastNode`); the ones nothing fits are stopped, `lacking` the reason. A
        flush moves VMs with volumes on `node`'s local pools live with them (when they
        can: `store.placement.carries_storage`); a recovery cannot (the disks are gone
        with the host) and says so."""
        planner, moves = self._planner(), []
        source = self.state.node(node).view if flushing else None
        leaving = {vm.name: vm for vm in self.state.all_vms()
                   if vm.home == node and vm.want == DesiredState.RUNNING}
        planner.unplace(leaving)  # they all move: none holds another back
        for needs in planner.most_constrained_first(
                (self.state.needs(vm) for vm in leaving.values()), exclude=[node]):
            vm = leaving[needs.name]
            running = vm.status_node if vm.state == VMState.RUNNING else None
            carrying = carries_storage(needs, running_on=running, source=source,
                                       method=vm.migration_method.value)
            target = planner.place(needs, exclude=[node], carrying=carrying)
            if target is None:
                await self._stop_for_lack(vm, node, self._lacking(
                    planner, needs, node, lacking=lacking, flushing=flushing,
                    autorestart=vm.autorestart))
            else:
                moves.append((vm, {"node": target, "lastNode": vm.last_node or node,
                                   "reason": _with_broken(reason,
                                                          planner.broken_soft(vm.name))}))
        return moves

    @staticmethod
    def _lacking(planner: Planner, needs: VMNeeds, node: str, *, lacking: str,
                 flushing: bool, autorestart: bool) -> str:
        """Why a VM leaving `node` has nowhere to go: its disks went with a fenced node,
        or `lacking`, with the strict rule that stopped it, if one did."""
        if not flushing and node in needs.pins:
            return _disks_gone(node, autorestart)
        why = planner.why_not(needs, exclude=[node])
        return lacking if why is None else f"{lacking}: {why}"

    # --- flush and ready -------------------------------------------------------------------

    async def flush(self, node: Node) -> Result:
        name, state = node.name, node.domain_state
        if state == "flushed":
            return Result.done()
        if state != "flushing":
            await self._set_domain_state(name, "flushing")
        moves = await self._moves_away(name, reason=f"flush of {name}", flushing=True,
                                       lacking=f"no valid target during the flush of {name}")
        if await self._place_many(moves):
            return Result.after(STALE_RETRY)
        if any(vm.runs_on(name) for vm in self.state.all_vms()):
            return Result.done()  # the VMs' status changes bring this node back to the queue
        await self._set_domain_state(name, "flushed")
        await self._event("flushed", f"{name} is flushed", node=name)
        return Result.done()

    async def ready(self, node: Node) -> Result:
        name, state = node.name, node.domain_state
        if state == "ready":
            return Result.done()
        if not node.alive or node.daemon_state != DaemonState.RUN:
            return Result.done()  # its daemon's registration brings it back to the queue
        if state != "unflushing":
            await self._set_domain_state(name, "unflushing")
        vms = [vm for vm in sorted(self.state.all_vms(), key=lambda v: v.name)
               if vm.want != DesiredState.DISABLED]
        back = {vm.name for vm in vms if vm.last_node == name and vm.home != name}
        # As one move: a `together` group returns whole; what a strict rule keeps away stays.
        back = going_together(back, name, self.state.rules(), self.state.where())
        returning = [(vm, {"node": name, "reason": f"returned to {name}", "lastNode": None})
                     for vm in vms if vm.name in back]
        for vm in vms:
            if vm.autorestart_pending and vm.restart_home == name:
                await self._autorestart(vm, name)
        if await self._place_many(returning):
            return Result.after(STALE_RETRY)
        await self._set_domain_state(name, "ready")
        await self._event("ready", f"{name} is ready", node=name)
        await self._auto_rebalance(name)
        return Result.done()

    async def _auto_rebalance(self, ready: str) -> None:
        """With `config.rebalance.auto`, even the nodes out now that `ready` takes VMs."""
        settings = self.state.setting("rebalance", None) or {}
        if not settings.get("auto"):
            return
        selector = str(self.state.setting("selector", "mem"))
        running = clusterview.movable(self.state.all_vms(), self.state.needs)
        found = rebalance.plan(self.state.node_views(), running, selector=selector,
                               rules=self.state.rules(), where=self.state.where(),
                               threshold=float(settings.get("threshold", 0.1)))
        moves = [(vm, {"node": m.target, "reason": f"rebalanced from {m.source} to "
                       f"{m.target} ({ready} ready)"})
                 for m in found.moves if (vm := self.state.vm(m.vm)) is not None]
        if moves and not await self._place_many(moves):
            await self._event("rebalanced", f"{len(moves)} VM(s) moved after {ready} came "
                              f"back: imbalance {found.before} -> {found.after}", node=ready)

    async def _autorestart(self, vm: VM, node: str) -> None:
        placement = {**vm.placement_doc, "node": node, "autorestartPending": False,
                     "home": None, "reason": f"autorestart on {node}"}
        await self._set_spec_and_placement(vm, placement, state="running")
        await self._event("autorestart", f"{vm.name} starts again on {node}", vm=vm.name,
                          node=node)


def _with_broken(reason: str, broken: list[str]) -> str:
    """A placement reason with the soft rules it had to break."""
    return reason if not broken else f"{reason}; broken: {'; '.join(broken)}"


def _disks_gone(node: str, autorestart: bool) -> str:
    then = "; it starts again when that node is ready" if autorestart else ""
    return f"not recovered: its volumes on local pools are on {node}, which was fenced{then}"


async def _after(seconds: float) -> Result:
    return Result.after(seconds)
