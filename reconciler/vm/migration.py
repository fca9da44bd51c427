"""Live migration out of this node, for the VM controller (`reconciler.vm.reconcile`, whose
`VMReconciler` mixes this in): the slot limit (at most `MigrationLimits.concurrency`
outgoing at once; the others wait, status says so, and are woken when one ends), owning
the guest before it moves, the call to libvirt, the fallback of method `any` to
shutdown-and-start after a failed live migration (`_live_failure`), the hand-over once
the guest is gone here (`_moved_to`: status names the target), and the record of an
arrival on the destination (`_record_arrival`: duration, downtime, Herd's own part).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from reconciler.libvirt import DomainInfo, Hypervisor, HypervisorError
from reconciler.runtime.workqueue import Result
from reconciler.vm.view import HANDOVER_LOOK, OWNER_WAIT, MigrationLimits, View
from statemachine import Step
from store import events, txn
from store.client import Store
from store.codec import Doc
from store.errors import AlreadyExists
from vocabulary import UP_RUN_STATES as UP

log = logging.getLogger(__name__)


class LiveMigration:
    """The live-migration half of `VMReconciler` (its state is set up there)."""

    node: str
    store: Store
    hv: Hypervisor
    clock: Callable[[], float]
    wake: Callable[[str], None]
    limits: MigrationLimits
    _outbound: set[str]
    _slot_waiters: set[str]
    _live_failed: dict[str, str]
    _migrated: dict[str, Doc]

    async def reconcile(self, name: str) -> Result:
        raise NotImplementedError

    def _claim_ops(self, view: View) -> list[txn.Op] | None:
        raise NotImplementedError

    async def _write_status(self, view: View, step: Step, domain: DomainInfo | None, *,
                            with_ops: list[txn.Op] | None = None) -> bool:
        raise NotImplementedError

    def _record_failure(self, name: str, step: Step, error: HypervisorError) -> None:
        raise NotImplementedError

    async def _migrating_out(self, view: View, domain: DomainInfo | None) -> bool:
        """An outgoing migration job of the domain runs here (say, one this daemon started
        before it restarted): only where live migration exists and the VM is placed away."""
        if (domain is None or domain.state not in UP or not self.hv.live_migration_supported
                or view.placement.get("node") in (None, self.node)):
            return False
        return await self.hv.migrating_out(view.name)

    async def _migrate(self, view: View, step: Step, domain: DomainInfo | None) -> Result:
        """Say `migrating` (source, target), then migrate peer to peer, within the node's
        concurrency limit; a VM over the limit waits (status says so) and is woken when a
        migration ends. The owner znode is this node's before the call (claimed with the
        status when a restarted daemon found the guest unowned) and stays here until the
        domain is gone here (`_settle`): the destination takes over only then."""
        name = view.name
        if len(self._outbound) >= self.limits.concurrency:
            self._slot_waiters.add(name)
            waiting = replace(step, reason=f"waiting for a migration slot "
                                           f"({len(self._outbound)} in flight from {self.node})")
            await self._write_status(view, waiting, domain)
            return Result.done()
        claim = self._claim_ops(view)  # own it before it moves, as before a start
        if claim is None:
            return Result.after(OWNER_WAIT)  # another session's (a dead daemon's): wait
        self._outbound.add(name)
        self._slot_waiters.discard(name)
        try:
            try:
                await self._write_status(view, step, domain, with_ops=claim)
            except AlreadyExists:
                return Result.after(OWNER_WAIT)
            began = time.perf_counter()
            await self._do_migrate(view)
        except HypervisorError as e:
            return await self._live_failure(view, step, e)
        finally:
            self._outbound.discard(name)
            for waiter in sorted(self._slot_waiters):
                self.wake(waiter)
        call_ms = round((time.perf_counter() - began) * 1000)
        log.info("%s: live-migrated to %s (libvirt call %d ms)", name,
                 view.placement.get("node"), call_ms)
        self._migrated[name] = {"callMs": call_ms}
        # Look again at once (not at the next event): gone here, the owner znode is handed
        # over in one transaction with status, and the destination takes it from there.
        if await self.hv.domain(name) is not None:
            return Result.after(HANDOVER_LOOK)  # libvirt still lists it: look again soon
        return await self.reconcile(name)

    async def _do_migrate(self, view: View) -> None:
        target = str(view.placement.get("node"))
        node_status = await asyncio.to_thread(self.store.get,
                                              self.store.paths.node_status(target))
        uri = node_status.doc.get("migrationUri")
        if not uri:
            raise HypervisorError(f"node {target} publishes no migration URI (set address or "
                                  "migration_uri in its herd-node config)")
        downtime = view.spec_doc.get("meta", {}).get("migrationMaxDowntime")
        await self.hv.migrate_live(view.name, str(uri), max_downtime_ms=downtime,
                                   timeout_s=self.limits.timeout)

    async def _live_failure(self, view: View, step: Step, error: HypervisorError) -> Result:
        """Method `any`: fall back to shutdown-and-start (the next plan sees live migration
        as unavailable for this target). Method `live`: status failed, retried with backoff."""
        target = str(view.placement.get("node"))
        method = view.spec_doc.get("meta", {}).get("migrationMethod", "any")
        await asyncio.to_thread(
            events.record, self.store, "migration-failed",
            f"{view.name}: live migration {self.node} -> {target} failed: {error}",
            vm=view.name, source=self.node, target=target,
            fallback="shutdown" if method == "any" else None)
        if method != "any":
            await asyncio.to_thread(self._record_failure, view.name, step, error)
            raise error
        log.warning("%s: live migration to %s failed (%s); migrating by shutdown",
                    view.name, target, error)
        self._live_failed[view.name] = target
        return Result.after(0)

    async def _record_arrival(self, view: View) -> None:
        """The owner znode was just claimed here: if the VM came by live migration, record
        it in the cluster's events (start, end, duration, libvirt's downtime)."""
        moving = (view.status.doc.get("migration") if view.status else None) or {}
        if moving.get("target") != self.node or moving.get("method") != "live":
            return
        stats = await self.hv.completed_migration(view.name)
        started, ended = float(moving.get("started", 0.0)), self.clock()
        about: dict[str, Any] = {"vm": view.name, "source": moving.get("source"),
                                 "target": self.node, "started": started, "ended": ended,
                                 "duration": round(ended - started, 3)}
        if stats is not None:
            about.update(downtimeMs=stats.downtime_ms, libvirtMs=stats.elapsed_ms)
        if "callMs" in moving:  # the source's migrateToURI3, start to return
            about.update(libvirtCallMs=moving["callMs"],
                         herdMs=round(about["duration"] * 1000) - int(moving["callMs"]))
        try:
            await asyncio.to_thread(
                events.record, self.store, "migrated",
                f"{view.name}: live-migrated {about['source']} -> {self.node} in "
                f"{about['duration']:.2f}s (downtime {about.get('downtimeMs', '?')} ms)",
                **about)
        except Exception:  # the record is history, not state: never fail the reconcile
            log.exception("%s: cannot record the migration event", view.name)

    def _moved_to(self, name: str, old: Doc) -> str | None:
        """Where the guest runs after this node migrated it away live (the target, until
        that node writes its own status: no other node may start it meanwhile); None for
        a guest that is simply off here."""
        if name not in self._migrated:
            return None
        target = (old.get("migration") or {}).get("target")
        return target if isinstance(target, str) and target != self.node else None

