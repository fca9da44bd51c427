"""The per-VM reconcile of the node daemon: make this node's libvirt match ZooKeeper.

`VMReconciler.reconcile(name)` reads the VM's spec, placement, status and owner from the
watched cache, observes the domain in libvirt, asks `statemachine.plan` for ONE step,
carries it out, and writes status with a version check. It never looks at what woke it,
so running it again is always safe (level-triggered).

Who acts: the node the VM is placed on, or the node whose libvirt runs it (which then
migrates it out). Ownership guards against running twice: a node starts a VM only after
it created the ephemeral `/vms/<name>/owner`, waits while another session holds it, and
deletes it only once libvirt reports the domain off here. The hypervisor is awaited through
the `reconciler.libvirt.Hypervisor` protocol; blocking ZooKeeper calls run in threads.
Called by the work queue of `reconciler.daemon`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from reconciler.libvirt import DomainInfo, Hypervisor, HypervisorError
from reconciler.runtime.workqueue import Result
from reconciler.vm import status
from reconciler.vm.migration import LiveMigration
from reconciler.vm.view import HANDOVER_LOOK, OWNER_WAIT, MigrationLimits, View
from statemachine import Action, Desired, Observed, Recorded, Step, plan
from store import txn
from store.client import Store, Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, NotFound
from store.informer import Change, Informer
from vocabulary import UP_RUN_STATES as UP
from vocabulary import RunState, VMState

__all__ = ["OWNER_WAIT", "MigrationLimits", "VMReconciler", "View"]

log = logging.getLogger(__name__)

STATES = frozenset(s.value for s in VMState)
class VMReconciler(LiveMigration):
    """Reconciles the VMs of one node; one instance per daemon."""

    def __init__(self, node: str, store: Store, *, vms: Informer, hypervisor: Hypervisor,
                 cluster_default: Callable[[str, Any], Any],
                 clock: Callable[[], float] = time.time,
                 wake: Callable[[str], None] = lambda _name: None,
                 migrations: MigrationLimits | None = None) -> None:
        self.node = node
        self.store = store
        self.vms = vms
        self.hv = hypervisor
        self.cluster_default = cluster_default
        self.clock = clock
        self._written: dict[str, Versioned] = {}  # our own newest status writes
        # Names ZooKeeper has had while we watched: a domain whose name never appeared there
        # is not Herd's, and is left alone (reported), never destroyed.
        self.known: set[str] = set()
        self.wake = wake  # re-queue a VM (thread-safe)
        self.limits = migrations or MigrationLimits()
        self._outbound: set[str] = set()  # VMs migrating out of here now
        self._slot_waiters: set[str] = set()  # VMs waiting for an outbound migration slot
        self._live_failed: dict[str, str] = {}  # VM -> target a live migration failed to
        self._migrated: dict[str, Doc] = {}  # VM -> facts of its finished outgoing migration

    # --- reading -------------------------------------------------------------------------

    def view(self, name: str) -> View:
        p = self.store.paths
        placement = self.vms.get(p.vm_placement(name))
        return View(name, self.vms.get(p.vm(name)), placement.doc if placement else {},
                    self._newest(name, self.vms.get(p.vm_status(name))),
                    self.vms.get(p.vm_owner(name)))

    def _newest(self, name: str, cached: Versioned | None) -> Versioned | None:
        mine = self._written.get(name)
        if cached is None or mine is None:
            return cached
        return mine if mine.mzxid > cached.mzxid else cached

    def _ours(self, owner: Versioned | None) -> bool:
        """The owner znode is this node's, created by this very session (while the client
        reconnects it has no session: then nothing is ours)."""
        if owner is None or owner.doc.get("node") != self.node:
            return False
        return self.store.session_owns(owner.stat)

    def responsible(self, view: View, domain: DomainInfo | None) -> bool:
        """Running here; else never while status says another node has it (also when our
        view still shows the owner znode we released with that very status: a guest just
        handed over after a live migration); else owned by us (a handover to finish), or
        placed here and unowned."""
        if domain is not None and domain.state in UP:
            return True
        if _status_node(view) not in (None, self.node):
            return False
        if self._ours(view.owner):
            return True
        if view.placement.get("node") != self.node or not view.exists:
            return False
        # An owner gone with its session is no release (a stopped daemon's guests run on):
        # status names the node that has it until that node says it is off (issue #8).
        return view.owner is None or bool(view.owner.doc.get("node") == self.node)

    # --- the reconcile ---------------------------------------------------------------------

    async def reconcile(self, name: str) -> Result:
        view = self.view(name)
        if view.exists:
            self.known.add(name)
        elif name not in self.known:
            return Result.done()
        domain = await self.hv.domain(name)
        if name in self._migrated and domain is not None:
            return Result.after(HANDOVER_LOOK)  # migrated away; libvirt still lists it here
        if not self.responsible(view, domain):
            return await self._tidy(view, domain)
        if self._incoming(view, domain):
            return Result.after(OWNER_WAIT)  # the source still owns it; woken when it lets go
        migrating_out = await self._migrating_out(view, domain)
        step = plan(self.desired(view), self.observed(domain, migrating_out=migrating_out),
                    self.recorded(view), now=self.clock())
        if step.action == Action.START:
            claim = self._claim_ops(view)
            if claim is None:
                return Result.after(OWNER_WAIT)
            try:  # own it and say "starting" in one transaction, before libvirt starts it
                await self._write_status(view, step, domain, with_ops=claim)
            except AlreadyExists:
                return Result.after(OWNER_WAIT)
            await self._act(step, view)
        elif step.action == Action.MIGRATE_LIVE:
            return await self._migrate(view, step, domain)
        elif step.action in (Action.RELEASE, Action.UNDEFINE):
            await self._act(step, view)
            await self._write_status(view, step, domain, with_ops=self._release_ops(view))
        else:
            return await self._settle(view, step, domain)
        return Result.done() if step.requeue_after is None else Result.after(step.requeue_after)

    async def _settle(self, view: View, step: Step, domain: DomainInfo | None) -> Result:
        """Every other step: act, then write status with the owner claimed (running here,
        unowned: adopted, or arrived by live migration) or released (off here) in the
        same transaction."""
        ops = self._owner_ops(view, domain)
        await self._act(step, view)
        try:
            if not await self._write_status(view, step, domain, with_ops=ops):
                ops = []  # the owner change was ours already
        except AlreadyExists:  # another session owns it
            return Result.after(OWNER_WAIT)
        if any(isinstance(op, txn.Delete) for op in ops):
            self._migrated.pop(view.name, None)  # handed over, with the facts in status
        if ops:
            log.info("%s: %s the owner znode (domain %s here; %s)", view.name,
                     "claimed" if isinstance(ops[0], txn.Create) else "released",
                     domain.state if domain else "absent", step.reason)
        if any(isinstance(op, txn.Create) for op in ops):
            await self._record_arrival(view)
        return Result.done() if step.requeue_after is None else Result.after(step.requeue_after)

    def desired(self, view: View) -> Desired:
        spec = view.spec_doc
        meta = spec.get("meta", {})
        timeout = spec.get("shutdownTimeout") or self.cluster_default("shutdownTimeout", 180)
        return Desired(
            target=spec.get("state", "stopped"),
            stop_mode=spec.get("stopMode", "graceful"),
            restart_request=int(spec.get("restartRequest", 0)),
            # Just migrated away: not ours to run here, whatever the placement says now
            # (placed back mid-migration), until handed over to the node that runs it.
            placed_here=view.placement.get("node") == self.node
            and view.name not in self._migrated,
            migration_method=meta.get("migrationMethod", "any"),
            live_supported=self.hv.live_migration_supported
            and self._live_failed.get(view.name) != view.placement.get("node"),
            shutdown_timeout=float(timeout),
            exists=view.exists,
        )

    @staticmethod
    def observed(domain: DomainInfo | None, *, migrating_out: bool = False) -> Observed:
        return Observed(domain=domain.state if domain else RunState.ABSENT,
                        migrating_out=migrating_out)

    @staticmethod
    def recorded(view: View) -> Recorded:
        doc = view.status.doc if view.status else {}
        state = doc.get("state", "stopped")
        return Recorded(state=VMState(state) if state in STATES else VMState.UNKNOWN,
                        shutdown_deadline=doc.get("shutdownDeadline"),
                        observed_restart=int(doc.get("observedRestart", 0)),
                        since=float(doc.get("since", 0.0)))

    # --- ownership ---------------------------------------------------------------------------

    def _claim_ops(self, view: View) -> list[txn.Op] | None:
        """What claiming the VM takes: nothing (ours), a create (free), None (another's)."""
        if self._ours(view.owner):
            return []
        if view.owner is not None:
            log.info("%s: owned by %s (session %x); waiting", view.name,
                     view.owner.doc.get("node"), view.owner.stat.ephemeralOwner)
            return None
        return [txn.Create(self.store.paths.vm_owner(view.name), {"node": self.node},
                           ephemeral=True)]

    def _release_ops(self, view: View) -> list[txn.Op]:
        if view.owner is None or not self._ours(view.owner):
            return []
        return [txn.Delete(self.store.paths.vm_owner(view.name), view.owner.version)]

    def _owner_ops(self, view: View, domain: DomainInfo | None) -> list[txn.Op]:
        """Running here: hold the owner znode (claim it if free). Off here: let it go."""
        up = domain is not None and domain.state in UP
        if up and view.owner is None and view.exists:
            return [txn.Create(self.store.paths.vm_owner(view.name), {"node": self.node},
                               ephemeral=True)]
        if up and view.owner is not None and not self._ours(view.owner):
            log.error("%s runs here but %s owns it", view.name, view.owner.doc.get("node"))
        if not up:
            return self._release_ops(view)
        return []

    def _incoming(self, view: View, domain: DomainInfo | None) -> bool:
        """A live migration into this node not finished yet: the domain is still paused
        for it, or it runs here while another node's session owns the VM (the source has
        not yet reported it gone there and let the owner znode go). Until then the source
        speaks for the VM; in particular an owner vanished with the source's session does
        not make an unfinished incoming guest ours (the migration may still fail back)."""
        if domain is None or domain.state not in UP or not view.exists:
            return False
        if view.placement.get("node") != self.node:
            return False
        if domain.migrating_in and not self._ours(view.owner):
            return True
        return (view.owner is not None and not self._ours(view.owner)
                and view.owner.doc.get("node") != self.node)

    # --- acting ------------------------------------------------------------------------------

    async def _act(self, step: Step, view: View) -> None:
        """Carry out the step; a libvirt failure is recorded in status (state failed, the
        error as reason) and raised again, so the work queue retries with backoff."""
        try:
            await self._do(step, view)
        except HypervisorError as e:
            if view.exists:
                await asyncio.to_thread(self._record_failure, view.name, step, e)
            raise

    def _record_failure(self, name: str, step: Step, error: HypervisorError) -> None:
        def modify(doc: Doc) -> Doc:
            return status.failed(doc, reason=f"{step.action} failed: {error}", now=self.clock())
        self._written[name] = self.store.update(self.store.paths.vm_status(name), modify)

    async def _do(self, step: Step, view: View) -> None:
        name = view.name
        if step.action == Action.START:
            await self.hv.define(view.spec_doc["xml"])
            await self.hv.start(name)
        elif step.action == Action.SHUTDOWN:
            await self.hv.shutdown(name)
        elif step.action == Action.DESTROY:
            await self.hv.destroy(name)
        elif step.action in (Action.RELEASE, Action.UNDEFINE):
            await self.hv.undefine(name)
        if step.action != Action.NONE:
            log.info("%s: %s (%s)", name, step.action, step.reason)

    async def _tidy(self, view: View, domain: DomainInfo | None) -> Result:
        """Not ours to run: a shut-off leftover definition here is removed, nothing written."""
        if domain is not None and view.placement.get("node") != self.node:
            await self.hv.undefine(view.name)
            log.info("%s: removed the shut-off definition left here", view.name)
        if view.exists and view.owner is None and _status_node(view) == self.node:
            await asyncio.to_thread(self._say_off_here, view)  # lost here (a restart)
        if not view.exists:
            self.forget(view.name)
        return Result.done()

    def _say_off_here(self, view: View) -> None:
        """Status says the VM is up here, but it is not and nobody owns it (the guest went
        with a restart): say it is off, so that the node it is placed on may start it."""
        assert view.status is not None
        doc = status.off_here(view.status.doc, node=self.node, now=self.clock())
        try:
            self.store.set(self.store.paths.vm_status(view.name), doc,
                           version=view.status.version)
        except Conflict:
            pass  # a newer status stands
        log.info("%s: not running here; status says so now", view.name)

    # --- status ------------------------------------------------------------------------------

    def _status_doc(self, view: View, step: Step, domain: DomainInfo | None) -> Doc:
        up = step.action == Action.START or (domain is not None and domain.state in UP
                                             and step.action not in (Action.DESTROY,))
        old = view.status.doc if view.status else {}
        return status.after_step(old, step, status.StepFacts(
            node=self.node, up=up, spec_xml=view.spec_doc.get("xml", ""),
            generation=int(view.spec.doc.get("metadata", {}).get("generation", 0))
            if view.spec else 0,
            placed_on=view.placement.get("node"), moved_to=self._moved_to(view.name, old),
            migrated=self._migrated.get(view.name, {}), now=self.clock()))

    async def _write_status(self, view: View, step: Step, domain: DomainInfo | None, *,
                            with_ops: list[txn.Op] | None = None) -> bool:
        """Write status if it changed (version-checked), in one transaction with `with_ops`;
        False when `with_ops` met our own last owner change, which the cache did not show
        yet (our owner znode already there, or already gone; our own changes wake no
        reconcile): then status goes alone.

        A change of the owner znode always goes with status checked at the version this
        reconcile read, and a claim always writes status (its version moves on): an owner
        znode's version says nothing (every new one has version 0), so only this makes a
        release from a stale view fail instead of deleting the owner another node just
        created at the same path."""
        ops = list(with_ops or [])
        new = self._status_doc(view, step, domain) if view.exists else None
        path, version = self.store.paths.vm_status(view.name), (
            view.status.version if view.status else -1)
        claims = any(isinstance(op, txn.Create) for op in ops)
        if new is not None and (view.status is None or new != view.status.doc or claims):
            ops.append(txn.Set(path, new, version))
        elif ops and view.status is not None:
            ops.append(txn.Check(path, version))
        if not ops:
            return True
        try:
            results = await asyncio.to_thread(txn.commit_one, self.store, ops)
        except Conflict:
            self._written.pop(view.name, None)
            raise
        except (AlreadyExists, NotFound) as e:
            if not with_ops or not await self._own_owner_change(view, e):
                raise
            await self._write_status(view, step, domain)
            return False
        if isinstance(ops[-1], txn.Set) and new is not None:
            self._written[view.name] = Versioned(new, results[-1])
        elif isinstance(ops[-1], txn.Check):
            self._written.pop(view.name, None)
        return True

    async def _own_owner_change(self, view: View, error: Exception) -> bool:
        """The owner op failed on our own earlier change: the znode a claim ran into is
        this session's, or the one a release wanted is gone (only its owner deletes it)."""
        path = self.store.paths.vm_owner(view.name)
        if str(error) != path:
            return False
        if isinstance(error, NotFound):
            return True
        try:
            owner = await asyncio.to_thread(self.store.get, path)
        except NotFound:
            return False
        return self._ours(owner)

    def echo(self, name: str, child: str, change: Change) -> bool:
        """True for a change this reconciler made itself (nothing new to reconcile): the
        status it wrote last, or the owner znode its own session created or deleted."""
        if child == "status" and change.new is not None:
            mine = self._written.get(name)
            return mine is not None and mine.mzxid == change.new.mzxid
        if child == "owner":
            owner = change.new or change.old
            return owner is not None and self.store.session_owns(owner.stat)
        return False

    def forget(self, name: str) -> None:
        """The VM and its domain are gone: drop what we remembered of it."""
        self._written.pop(name, None)
        self._live_failed.pop(name, None)
        self._migrated.pop(name, None)
        self.known.discard(name)


def _status_node(view: View) -> str | None:
    """The node status says has the VM (None once that node said it is off there)."""
    return view.status.doc.get("node") if view.status else None
