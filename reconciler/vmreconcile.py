"""The per-VM reconcile of the node daemon: make this node's libvirt match ZooKeeper.

`VMReconciler.reconcile(name)` reads the VM's spec, placement, status and owner from the
watched cache, observes the domain in libvirt, asks `statemachine.plan` for ONE step,
carries it out, and writes status with a version check. It never looks at what woke it,
so running it again is always safe (level-triggered).

Who acts: the node the VM is placed on, or the node whose libvirt runs it (which then
migrates it out). Ownership guards against running twice: a node starts a VM only after
it created the ephemeral `/vms/<name>/owner`, waits while another session holds it, and
deletes it only once libvirt reports the domain off here. Blocking libvirt and ZooKeeper
calls run in threads. Called by the work queue of `reconciler.daemon`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.hypervisor import DomainInfo, DomainState, Hypervisor, HypervisorError
from reconciler.workqueue import Result
from statemachine import Action, Desired, Observed, Recorded, Step, VMState, plan
from store import txn
from store.client import Store, Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, NotFound
from store.informer import Change, Informer

log = logging.getLogger(__name__)

UP = (DomainState.RUNNING, DomainState.PAUSED)
STATES = frozenset(s.value for s in VMState)
OWNER_WAIT = 2.0  # look again this soon while another session holds the owner znode


def xml_hash(xml: str) -> str:
    return hashlib.sha256(xml.encode()).hexdigest()


@dataclass(frozen=True)
class View:
    """What ZooKeeper (through the cache) says about one VM."""

    name: str
    spec: Versioned | None
    placement: Doc
    status: Versioned | None
    owner: Versioned | None

    @property
    def exists(self) -> bool:
        return self.spec is not None

    @property
    def spec_doc(self) -> Doc:
        return self.spec.doc.get("spec", {}) if self.spec else {}


class VMReconciler:
    """Reconciles the VMs of one node; one instance per daemon."""

    def __init__(self, node: str, store: Store, *, vms: Informer, hypervisor: Hypervisor,
                 cluster_default: Callable[[str, Any], Any],
                 clock: Callable[[], float] = time.time) -> None:
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
        return (owner is not None and owner.doc.get("node") == self.node
                and owner.stat.ephemeralOwner == self.store.client.client_id[0])

    def responsible(self, view: View, domain: DomainInfo | None) -> bool:
        """Running here, owned by us (a handover to finish), or placed here and unowned."""
        if domain is not None and domain.state in UP:
            return True
        if self._ours(view.owner):
            return True
        if view.placement.get("node") != self.node or not view.exists:
            return False
        return view.owner is None or view.owner.doc.get("node") == self.node

    # --- the reconcile ---------------------------------------------------------------------

    async def reconcile(self, name: str) -> Result:
        view = self.view(name)
        if view.exists:
            self.known.add(name)
        elif name not in self.known:
            return Result.done()
        domain = await asyncio.to_thread(self.hv.domain, name)
        if not self.responsible(view, domain):
            return await self._tidy(view, domain)
        step = plan(self.desired(view), self.observed(domain), self.recorded(view),
                    now=self.clock())
        if step.action == Action.START:
            claim = self._claim_ops(view)
            if claim is None:
                return Result.after(OWNER_WAIT)
            try:  # own it and say "starting" in one transaction, before libvirt starts it
                await self._write_status(view, step, domain, with_ops=claim)
            except AlreadyExists:
                return Result.after(OWNER_WAIT)
            await self._act(step, view)
        elif step.action in (Action.RELEASE, Action.UNDEFINE):
            await self._act(step, view)
            await self._write_status(view, step, domain, with_ops=self._release_ops(view))
        else:
            await self._sync_owner(view, domain)
            await self._act(step, view)
            await self._write_status(view, step, domain)
        return Result.done() if step.requeue_after is None else Result.after(step.requeue_after)

    def desired(self, view: View) -> Desired:
        spec = view.spec_doc
        meta = spec.get("meta", {})
        timeout = spec.get("shutdownTimeout") or self.cluster_default("shutdownTimeout", 180)
        return Desired(
            target=spec.get("state", "stopped"),
            stop_mode=spec.get("stopMode", "graceful"),
            restart_request=int(spec.get("restartRequest", 0)),
            placed_here=view.placement.get("node") == self.node,
            migration_method=meta.get("migrationMethod", "any"),
            live_supported=self.hv.live_migration_supported,
            shutdown_timeout=float(timeout),
            exists=view.exists,
        )

    @staticmethod
    def observed(domain: DomainInfo | None) -> Observed:
        return Observed(domain=str(domain.state) if domain else "absent")  # type: ignore[arg-type]

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

    async def _claim(self, view: View) -> bool:
        """Own the VM before starting it; False while another session holds it."""
        if self._ours(view.owner):
            return True
        if view.owner is not None:
            log.info("%s: owned by %s (session %x); waiting", view.name,
                     view.owner.doc.get("node"), view.owner.stat.ephemeralOwner)
            return False
        try:
            await asyncio.to_thread(self.store.create, self.store.paths.vm_owner(view.name),
                                    {"node": self.node}, ephemeral=True)
        except AlreadyExists:
            return False
        return True

    async def _sync_owner(self, view: View, domain: DomainInfo | None) -> None:
        """Running here: hold the owner znode. Off here: let it go."""
        up = domain is not None and domain.state in UP
        if up and view.owner is None and view.exists:
            await self._claim(view)
        elif up and view.owner is not None and not self._ours(view.owner):
            log.error("%s runs here but %s owns it", view.name, view.owner.doc.get("node"))
        elif not up and self._ours(view.owner):
            await self._release_owner(view)

    async def _release_owner(self, view: View) -> None:
        if view.owner is None:
            return
        try:
            await asyncio.to_thread(self.store.delete, self.store.paths.vm_owner(view.name),
                                    version=view.owner.version)
        except NotFound:
            pass

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
            return {**doc, "state": "failed", "reason": f"{step.action} failed: {error}"[:256],
                    "since": doc.get("since", 0.0) if doc.get("state") == "failed"
                    else self.clock()}
        self._written[name] = self.store.update(self.store.paths.vm_status(name), modify)

    async def _do(self, step: Step, view: View) -> None:
        name = view.name
        if step.action == Action.START:
            await asyncio.to_thread(self.hv.define, view.spec_doc["xml"])
            await asyncio.to_thread(self.hv.start, name)
        elif step.action == Action.SHUTDOWN:
            await asyncio.to_thread(self.hv.shutdown, name)
        elif step.action == Action.DESTROY:
            await asyncio.to_thread(self.hv.destroy, name)
        elif step.action in (Action.RELEASE, Action.UNDEFINE):
            await asyncio.to_thread(self.hv.undefine, name)
        elif step.action == Action.MIGRATE_LIVE:
            await self._migrate_live(view)
        if step.action != Action.NONE:
            log.info("%s: %s (%s)", name, step.action, step.reason)

    async def _migrate_live(self, view: View) -> None:
        target = view.placement.get("node")
        status = self.store.paths.node_status(str(target))
        node_status = await asyncio.to_thread(self.store.get, status)
        uri = node_status.doc.get("migrationUri") or node_status.doc.get("libvirtUri")
        await asyncio.to_thread(self.hv.migrate_live, view.name, str(uri))

    async def _tidy(self, view: View, domain: DomainInfo | None) -> Result:
        """Not ours to run: a shut-off leftover definition here is removed, nothing written."""
        if domain is not None and view.placement.get("node") != self.node:
            await asyncio.to_thread(self.hv.undefine, view.name)
            log.info("%s: removed the shut-off definition left here", view.name)
        if not view.exists:
            self.forget(view.name)
        return Result.done()

    # --- status ------------------------------------------------------------------------------

    def _status_doc(self, view: View, step: Step, domain: DomainInfo | None) -> Doc:
        old = dict(view.status.doc) if view.status else {}
        now = self.clock()
        running = step.action == Action.START or (domain is not None and domain.state in UP
                                                  and step.action not in (Action.DESTROY,))
        spec_xml = view.spec_doc.get("xml", "")
        run_hash = (xml_hash(spec_xml) if step.action == Action.START
                    else old.get("runningXmlHash") if running else None)
        new = {**old, "state": str(step.state), "node": self.node if running else None,
               "reason": step.reason, "shutdownDeadline": step.shutdown_deadline,
               "observedRestart": step.observed_restart, "runningXmlHash": run_hash,
               "observedGeneration": int(view.spec.doc.get("metadata", {}).get("generation", 0))
               if view.spec else 0}
        if old.get("state") != new["state"]:
            new["since"] = now
        new["migration"] = self._migration(view, step, old, now)
        new["conditions"] = _restart_condition(old.get("conditions", []), run_hash, spec_xml, now)
        return new

    def _migration(self, view: View, step: Step, old: Doc, now: float) -> Doc | None:
        """Source, target and method while this node moves the VM out; None otherwise."""
        target = view.placement.get("node")
        if step.state != VMState.MIGRATING or not target or target == self.node:
            return None
        method = "live" if step.action == Action.MIGRATE_LIVE else "shutdown"
        previous = old.get("migration") or {}
        if previous.get("target") == target:
            return {**previous, "method": previous.get("method", method)}
        return {"source": self.node, "target": target, "method": method, "started": now}

    async def _write_status(self, view: View, step: Step, domain: DomainInfo | None, *,
                            with_ops: list[txn.Op] | None = None) -> None:
        """Write status if it changed (version-checked), in one transaction with `with_ops`."""
        ops = list(with_ops or [])
        new = self._status_doc(view, step, domain) if view.exists else None
        if new is not None and (view.status is None or new != view.status.doc):
            version = view.status.version if view.status else -1
            ops.append(txn.Set(self.store.paths.vm_status(view.name), new, version))
        if not ops:
            return
        try:
            results = await asyncio.to_thread(txn.commit_one, self.store, ops)
        except Conflict:
            self._written.pop(view.name, None)
            raise
        if isinstance(ops[-1], txn.Set) and new is not None:
            self._written[view.name] = Versioned(new, results[-1])

    def echo(self, name: str, child: str, change: Change) -> bool:
        """True for a change this reconciler made itself (nothing new to reconcile): the
        status it wrote last, or the owner znode its own session created or deleted."""
        if child == "status" and change.new is not None:
            mine = self._written.get(name)
            return mine is not None and mine.mzxid == change.new.mzxid
        if child == "owner":
            owner = change.new or change.old
            session = self.store.client.client_id
            return (owner is not None and session is not None
                    and owner.stat.ephemeralOwner == session[0])
        return False

    def forget(self, name: str) -> None:
        """The VM and its domain are gone: drop what we remembered of it."""
        self._written.pop(name, None)
        self.known.discard(name)


def _restart_condition(conditions: list[Doc], run_hash: str | None, spec_xml: str,
                       now: float) -> list[Doc]:
    """`RestartRequired` is True while the running domain was started from other XML."""
    others = [c for c in conditions if c.get("type") != "RestartRequired"]
    if run_hash is None or run_hash == xml_hash(spec_xml):
        return others
    old = next((c for c in conditions if c.get("type") == "RestartRequired"), None)
    since = old["lastTransitionTime"] if old else now
    return [*others, {"type": "RestartRequired", "status": "True", "reason": "XMLChanged",
                      "message": "the domain XML changed; it applies at the next start",
                      "lastTransitionTime": since}]
