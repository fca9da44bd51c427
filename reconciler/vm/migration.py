"""Live migration out of this node, for the actuator (`reconciler.vm.act`): the second
phase of a move the plan (`statemachine.nodeplan`) asked for, once status records it with
the guest owned here. The slots (at most `MigrationLimits.concurrency` outgoing at once;
the plan makes the others wait, and `Migrator` wakes them when one ends), the call to
libvirt, its outcome written to status (`handedOver` with the call's duration; or, for
method `any`, `liveFailed`: the next plans move the VM by shutdown and start), and the
record of an arrival on the destination (`record_arrival`: duration, downtime, Herd's own
part). A VM with volumes on this node's local pools takes them along (libvirt copies the
disks; `store.volumes.handover_ops` moves the volume objects with the hand-over): its
status shows the bytes copied while it runs; should it fail (method `any`), the move
falls back to a shutdown, and the target copies the volumes before it starts the VM
(`reconciler.vm.fetch`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from reconciler.libvirt import Hypervisor, HypervisorError
from reconciler.metrics.families import MIGRATION_DOWNTIME, MIGRATION_DURATION, MIGRATIONS
from reconciler.runtime.workqueue import Result
from reconciler.vm.observe import MigrationLimits, Observation
from reconciler.vm.record import StatusWriter
from statemachine import Step
from statemachine.nodeplan import HANDOVER_LOOK
from store import events
from store import vmstatus as status
from store import volumes as vols
from store.client import Store
from store.errors import NotFound, StoreError

log = logging.getLogger(__name__)

PROGRESS_FIRST = 0.2  # seconds: the first sample of a running migration with disks
PROGRESS_EVERY = 0.5  # seconds between two samples after that


class Migrator:
    """The outgoing live migrations of one node, and the record of incoming ones."""

    def __init__(self, writer: StatusWriter, hv: Hypervisor, *, outbound: set[str],
                 limits: MigrationLimits, wake: Callable[[str], None],
                 departed: Callable[[str, str], None] = lambda _vm, _node: None) -> None:
        self.writer, self.hv, self.limits = writer, hv, limits
        self.node, self.store, self.clock = writer.node, writer.store, writer.clock
        self.outbound = outbound  # VMs migrating out of here now (the observer counts them)
        self.waiters: set[str] = set()  # VMs waiting for a slot
        self.wake = wake  # re-queue a VM (thread-safe)
        self.departed = departed  # a VM left for another node (its console log follows)

    def wait_for_slot(self, name: str) -> None:
        self.waiters.add(name)

    async def migrate(self, obs: Observation, step: Step) -> Result:
        """Migrate peer to peer (the owner znode stays ours until the domain is gone here,
        when the next reconcile hands it over with status), then record the outcome."""
        name = obs.name
        self.outbound.add(name)
        self.waiters.discard(name)
        try:
            began = time.perf_counter()
            await self._do_migrate(obs)
        except HypervisorError as e:
            MIGRATIONS.labels(self.node, obs.vm.migration_method, "failed").inc()
            return await self._live_failure(obs, step, e)
        finally:
            self.outbound.discard(name)
            for waiter in sorted(self.waiters):
                self.wake(waiter)
        call_ms = round((time.perf_counter() - began) * 1000)
        MIGRATIONS.labels(self.node, obs.vm.migration_method, "done").inc()
        log.info("%s: live-migrated to %s (libvirt call %d ms)", name, obs.target, call_ms)
        await self.writer.update(name, lambda doc: status.migrated_out(doc, call_ms=call_ms))
        self.departed(name, str(obs.target))
        # Look again at once (not at the next event): gone here, the owner znode is handed
        # over in one transaction with status, and the destination takes it from there.
        return Result.after(HANDOVER_LOOK if await self.hv.domain(name) is not None else 0)

    async def _do_migrate(self, obs: Observation) -> None:
        vm = obs.vm
        uri = await libvirt_uri(self.store, str(obs.target))
        disks = await asyncio.to_thread(vols.migration_disks, self.store, vm.xml,
                                        node=self.node)
        downtime = vm.meta.get("migrationMaxDowntime")
        sampling = asyncio.create_task(self._sample(vm.name)) if disks.copied else None
        try:
            await self.hv.migrate_live(vm.name, uri, max_downtime_ms=downtime,
                                       timeout_s=self.limits.timeout, copy_disks=disks.copied,
                                       shared_storage=disks.shared)
        finally:
            if sampling is not None:
                sampling.cancel()
                await asyncio.gather(sampling, return_exceptions=True)

    async def _sample(self, name: str) -> None:
        """Status shows how far the migration got, every PROGRESS_EVERY seconds (libvirt
        has no progress event to follow)."""
        pause = PROGRESS_FIRST
        while True:
            await asyncio.sleep(pause)
            pause = PROGRESS_EVERY
            try:
                got = await self.hv.migration_progress(name)
                if got is not None:
                    await self.writer.update(name, partial(
                        status.migration_progress, disk=(got.disk_done, got.disk_total),
                        memory=(got.memory_done, got.memory_total)))
            except (HypervisorError, StoreError) as e:  # progress is news, not state
                log.debug("%s: no migration progress now: %s", name, e)

    async def _live_failure(self, obs: Observation, step: Step,
                            error: HypervisorError) -> Result:
        """Method `any`: fall back to shutdown-and-start (status says the live migration to
        this target failed; the next plan moves it by shutdown). Method `live`: status
        failed, retried with backoff."""
        vm, target = obs.vm, str(obs.target)
        method = vm.migration_method
        await asyncio.to_thread(
            events.record, self.store, "migration-failed",
            f"{vm.name}: live migration {self.node} -> {target} failed: {error}",
            vm=vm.name, source=self.node, target=target,
            fallback="shutdown" if method == "any" else None)
        if method != "any":
            await self.writer.failed(vm.name, step, error)
            raise error
        why = f"live migration to {target} failed ({error}); migrating by shutdown"
        log.warning("%s: %s", vm.name, why)
        await self.writer.update(vm.name, lambda doc: status.live_failed(doc, reason=why))
        return Result.after(0)

    async def record_arrival(self, obs: Observation) -> None:
        """The owner znode was just claimed here: if the VM came by live migration, record
        it in the cluster's events (start, end, duration, libvirt's downtime)."""
        vm, moving = obs.vm, obs.vm.migration
        if moving is None or moving.target != self.node or moving.method != "live":
            return
        stats = await self.hv.completed_migration(vm.name)
        ended = self.clock()
        about: dict[str, Any] = {"vm": vm.name, "source": moving.source, "target": self.node,
                                 "started": moving.started, "ended": ended,
                                 "duration": round(ended - moving.started, 3)}
        MIGRATION_DURATION.labels(self.node).observe(max(0.0, about["duration"]))
        if stats is not None:
            about.update(downtimeMs=stats.downtime_ms, libvirtMs=stats.elapsed_ms)
            MIGRATION_DOWNTIME.labels(self.node).observe(stats.downtime_ms / 1000)
        if moving.call_ms is not None:  # the source's migrateToURI3, start to return
            about.update(libvirtCallMs=moving.call_ms,
                         herdMs=round(about["duration"] * 1000) - moving.call_ms)
        try:
            await asyncio.to_thread(
                events.record, self.store, "migrated",
                f"{vm.name}: live-migrated {about['source']} -> {self.node} in "
                f"{about['duration']:.2f}s (downtime {about.get('downtimeMs', '?')} ms)",
                **about)
        except Exception:  # the record is history, not state: never fail the reconcile
            log.exception("%s: cannot record the migration event", vm.name)


async def libvirt_uri(store: Store, node: str) -> str:
    """The URI of `node`'s libvirtd as that node publishes it (`migrationUri`), where a
    live migration goes and an offline copy comes from; HypervisorError when it has none."""
    try:
        found = await asyncio.to_thread(store.get, store.paths.node_status(node))
    except NotFound:
        found = None
    uri = found.doc.get("migrationUri") if found is not None else None
    if not uri:
        raise HypervisorError(f"node {node} publishes no migration URI (set address or "
                              "migration_uri in its herd-node config)")
    return str(uri)
