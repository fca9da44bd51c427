"""Record: the node's one writer of a VM's status and owner znodes.

Every status a node writes goes through `StatusWriter`: built by `store.vmstatus`
(pure), version-checked against the status this reconcile observed, and committed in ONE
transaction with the owner znode change the plan asked for (`OwnerOp`). It remembers its
own newest write (`Observer.written`), so the next reconcile reads its own writes even
before the cache shows them, and so the daemon can drop the echo of its own change.
Called by the actuator (`reconciler.vm.act`) and the live migration (`reconciler.vm.migration`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.vm.observe import Observation, Observer
from statemachine import Action, Step
from statemachine.nodeplan import OwnerOp
from store import txn, volumes
from store import vmstatus as status
from store.client import Store, Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, NotFound
from store.model import VM
from vocabulary import UP_RUN_STATES as UP

log = logging.getLogger(__name__)


class StatusWriter:
    """Writes one node's VM status documents, each with its owner znode change."""

    def __init__(self, observer: Observer, *, clock: Callable[[], float]) -> None:
        self.node = observer.node
        self.store: Store = observer.store
        self.observer = observer
        self.clock = clock

    @property
    def written(self) -> dict[str, Versioned]:
        return self.observer.written

    # --- the owner znode ----------------------------------------------------------------------

    def owner_ops(self, obs: Observation, op: OwnerOp, *, up: bool) -> list[txn.Op]:
        """The owner znode change of `op`: claim (create when free), release (delete when
        ours), hold (running here: claim when free; off here: release)."""
        vm, ours = obs.vm, self.observer.ours(obs.vm.owner)
        if op == OwnerOp.HOLD:
            if up and vm.owner is not None and not ours:
                log.error("%s runs here but %s owns it", vm.name, vm.owner.doc.get("node"))
            op = OwnerOp.CLAIM if up and vm.exists else OwnerOp.RELEASE
        if op == OwnerOp.CLAIM and vm.owner is None:
            return [txn.Create(self.store.paths.vm_owner(vm.name), {"node": self.node},
                               ephemeral=True)]
        if op == OwnerOp.RELEASE and vm.owner is not None and ours:
            return [txn.Delete(self.store.paths.vm_owner(vm.name), vm.owner.version)]
        return []

    # --- status after a step ----------------------------------------------------------------

    def doc_after(self, obs: Observation, step: Step) -> Doc:
        domain = obs.domain
        up = step.action == Action.START or (domain is not None and domain.state in UP
                                             and step.action != Action.DESTROY)
        vm = obs.vm
        old = vm.status_doc
        return status.after_step(old, step, status.StepFacts(
            node=self.node, up=up, spec_xml=vm.xml,
            generation=vm.generation if vm.exists else 0,
            placed_on=obs.target, moved_to=self.moved_to(obs), now=self.clock()))

    def moved_to(self, obs: Observation) -> str | None:
        """Where the guest runs after this node migrated it away live (the target, until
        that node writes its own status: no other node may start it meanwhile)."""
        if not obs.situation.left_here:
            return None
        target = obs.vm.migration.target if obs.vm.migration else None
        return target if target != self.node else None

    async def volume_handover(self, obs: Observation) -> list[txn.Op]:
        """After this node migrated the guest away live: its volumes here now live on the
        target (`store.volumes.handover_ops`), in the hand-over's transaction."""
        target = self.moved_to(obs)
        if target is None:
            return []
        return await asyncio.to_thread(volumes.handover_ops, self.store, obs.vm.xml,
                                       source=self.node, target=target)

    async def write(self, obs: Observation, new: Doc | None, *,
                    with_ops: list[txn.Op] | None = None, also: Sequence[txn.Op] = ()) -> bool:
        """Write status `new` if it changed (version-checked), in one transaction with
        `with_ops`; False when `with_ops` met our own last owner change, which the cache
        did not show yet (our owner znode already there, or already gone; our own changes
        wake no reconcile): then status goes alone.

        A change of the owner znode always goes with status checked at the version this
        reconcile read, and a claim always writes status (its version moves on): an owner
        znode's version says nothing (every new one has version 0), so only this makes a
        release from a stale vm fail instead of deleting the owner another node just
        created at the same path."""
        vm, ops = obs.vm, [*(with_ops or []), *also]
        path = self.store.paths.vm_status(vm.name)
        version = vm.status.version if vm.status else -1
        claims = any(isinstance(op, txn.Create) for op in ops)
        if new is not None and (vm.status is None or new != vm.status.doc or claims):
            ops.append(txn.Set(path, new, version))
        elif ops and vm.status is not None:
            ops.append(txn.Check(path, version))
        if not ops:
            return True
        try:
            results = await asyncio.to_thread(txn.commit_one, self.store, ops)
        except Conflict:
            self.written.pop(vm.name, None)
            raise
        except (AlreadyExists, NotFound) as e:
            if not with_ops or not await self._own_owner_change(vm, e):
                raise
            await self.write(obs, new, also=also)
            return False
        if isinstance(ops[-1], txn.Set) and new is not None:
            self.written[vm.name] = Versioned(new, results[-1])
        elif isinstance(ops[-1], txn.Check):
            self.written.pop(vm.name, None)
        return True

    async def _own_owner_change(self, vm: VM, error: Exception) -> bool:
        """The owner op failed on our own earlier change: the znode a claim ran into is
        this session's, or the one a release wanted is gone (only its owner deletes it)."""
        path = self.store.paths.vm_owner(vm.name)
        if str(error) != path:
            return False
        if isinstance(error, NotFound):
            return True
        try:
            owner = await asyncio.to_thread(self.store.get, path)
        except NotFound:
            return False
        return self.observer.ours(owner)

    # --- status outside a step ---------------------------------------------------------------

    async def update(self, name: str, build: Callable[[Doc], Doc]) -> None:
        """A read-modify-write of status, version-checked (a libvirt failure, a migration's
        outcome): from the newest status in ZooKeeper, whatever this reconcile read."""
        def modify(doc: Doc) -> Doc:
            return build(doc)
        self.written[name] = await asyncio.to_thread(
            self.store.update, self.store.paths.vm_status(name), modify)

    async def failed(self, name: str, step: Step, error: Exception) -> None:
        """The step's libvirt call failed: state failed, the error as reason."""
        now = self.clock()
        await self.update(name, lambda doc: status.failed(
            doc, reason=f"{step.action} failed: {error}", now=now))

    async def failed_for_good(self, obs: Observation, reason: str, **extra: Any) -> None:
        """libvirt refused the VM as such, or the node gave it up (restart limits): status
        failed for this spec generation (with `extra` fields), and the owner znode (claimed
        for the step) let go, in one version-checked transaction."""
        name, now = obs.name, self.clock()
        path, owner_path = self.store.paths.vm_status(name), self.store.paths.vm_owner(name)

        def commit() -> Versioned:
            current = self.store.get(path)
            new = {**status.failed(current.doc, reason=reason, now=now,
                                   for_good=obs.vm.generation), **extra}
            ops: list[txn.Op] = [txn.Set(path, new, current.version)]
            try:
                owner: Versioned | None = self.store.get(owner_path)
            except NotFound:
                owner = None
            if owner is not None and self.observer.ours(owner):
                ops.append(txn.Delete(owner_path, owner.version))
            return Versioned(new, txn.commit_one(self.store, ops)[0])
        self.written[name] = await asyncio.to_thread(commit)

    async def say_off_here(self, vm: VM) -> None:
        """Status says the VM is up here, but it is not and nobody owns it (the guest went
        with a restart): say it is off, so that the node it is placed on may start it."""
        assert vm.status is not None
        doc = status.off_here(vm.status.doc, node=self.node, now=self.clock())
        try:
            await asyncio.to_thread(self.store.set, self.store.paths.vm_status(vm.name),
                                    doc, version=vm.status.version)
        except Conflict:
            return  # a newer status stands
        log.info("%s: not running here; status says so now", vm.name)
